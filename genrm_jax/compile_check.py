r"""Offline compile check: will this config's train step fit on a TPU slice?

  python -m genrm_jax.train --config=configs/gsm8k_cot.py --compile_only \
      --topology=v5p-32 [--config.mesh='(1,-1,1)'] [--config.batch_size=64]

compiles the *real* train step (`train.jit_train_step`, the same function the
trainer runs) ahead of time for the devices of a TPU topology, on a machine
without TPUs, and prints the per-device memory XLA plans for it: arguments
(params, optimizer state, batch), outputs, temporaries, their total against
the chip's HBM, and whether it fits. The exit status is 1 when it does not.
Nothing is materialised: params, optimizer state and batch are
`ShapeDtypeStruct`s carrying `NamedSharding`s on the topology's mesh, so
Gemma-2 9B costs nothing but compile time (maxtext's `train_compile.py` does
the same). Needs libtpu (`pip install -e '.[tpu]'`, see setup.py for the pin);
jax loads it as a compile-only PJRT plugin.

`--topology` takes a Cloud TPU accelerator type as gcloud spells it (`v5p-32`,
`v6e-16`, `v5litepod-16`, `v4-8`), a libtpu topology name (`v5p:2x2x4`), or
`cpu:N`, which compiles against N (fake) CPU devices without libtpu: the same
code path on any machine, used by the tests so that it cannot rot (CPU has no
HBM budget, so that mode reports memory but no verdict).

One slice only (no multi-slice DCN meshes). The memory numbers are XLA's
buffer assignment for one device; the runtime reserves a little HBM besides,
so treat anything above ~95% as not fitting.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import sys
import time
from typing import Any

import jax
import numpy as np

from genrm_jax import checkpointing
from genrm_jax import data_synthetic
from genrm_jax import losses
from genrm_jax import optimizer as optimizer_lib
from genrm_jax import sharding as sharding_lib
from genrm_jax import train
from genrm_jax.models import gemma

GIB = 1024**3

# The libtpu version jax 0.10.2's own `jax[tpu]` extra pins (setup.py `tpu`).
LIBTPU_PIN = "libtpu==0.0.42.1"


@dataclasses.dataclass(frozen=True)
class Chip:
  """A TPU generation as the compile check needs it."""
  libtpu_name: str  # the family in libtpu's topology names ("v5p:2x2x4")
  cores_in_type: int  # accelerator types count TensorCores (2/chip) or chips
  ndim: int  # 3D torus (v4, v5p) or 2D (v5e, v6e)
  hbm_gib: float  # HBM per JAX device (one chip; megacore)
  chip_config: str | None = None  # libtpu's chip_config_name, if not default


CHIPS = {
    "v4": Chip("v4", 2, 3, 32.0, "megacore"),
    "v5p": Chip("v5p", 2, 3, 95.0),
    "v5e": Chip("v5e", 1, 2, 16.0),
    "v5litepod": Chip("v5e", 1, 2, 16.0),
    "v6e": Chip("v6e", 1, 2, 32.0),
}
# Chips -> the slice shapes Cloud TPU provisions (v4/v5p: 3D, v5e/v6e: 2D).
SHAPES = {
    3: {4: "2x2x1", 8: "2x2x2", 16: "2x2x4", 32: "2x4x4", 64: "4x4x4",
        128: "4x4x8", 256: "4x8x8", 512: "8x8x8", 1024: "8x8x16",
        2048: "8x16x16", 4096: "16x16x16"},
    2: {1: "1x1", 4: "2x2", 8: "2x4", 16: "4x4", 32: "4x8", 64: "8x8",
        128: "8x16", 256: "16x16"},
}


@dataclasses.dataclass(frozen=True)
class Target:
  """What to compile for: `platform` 'tpu' (a libtpu topology) or 'cpu'."""
  label: str  # as the user wrote it
  platform: str
  topology: str  # libtpu name ("v5p:2x2x4") or "cpu:N"
  num_devices: int
  hbm_bytes: int | None  # per device; None: no budget (CPU)
  chip_config: str | None = None


def parse_topology(spec: str) -> Target:
  """'v5p-32' | 'v6e-16' | 'v5p:2x2x4' | 'cpu:8' -> Target."""
  spec = spec.strip()
  m = re.fullmatch(r"cpu(?::(\d+))?", spec)
  if m:
    n = int(m.group(1) or 8)
    return Target(spec, "cpu", f"cpu:{n}", n, None)
  m = re.fullmatch(r"([a-z0-9]+)-(\d+)", spec)  # accelerator type
  if m and m.group(1) in CHIPS:
    chip = CHIPS[m.group(1)]
    n, rem = divmod(int(m.group(2)), chip.cores_in_type)
    shape = SHAPES[chip.ndim].get(n)
    if rem or shape is None:
      valid = ", ".join(f"{m.group(1)}-{c * chip.cores_in_type}"
                        for c in SHAPES[chip.ndim])
      raise ValueError(f"--topology={spec}: not a single-slice size this "
                       f"check knows; one of {valid}, or a libtpu topology "
                       f"such as {chip.libtpu_name}:{SHAPES[chip.ndim][4]}.")
    return Target(spec, "tpu", f"{chip.libtpu_name}:{shape}", n,
                  int(chip.hbm_gib * GIB), chip.chip_config)
  m = re.fullmatch(r"([a-z0-9]+):(\d+(?:x\d+)*)", spec)  # libtpu topology
  if m and m.group(1) in CHIPS:
    chip = CHIPS[m.group(1)]
    n = math.prod(int(d) for d in m.group(2).split("x"))
    return Target(spec, "tpu", f"{chip.libtpu_name}:{m.group(2)}", n,
                  int(chip.hbm_gib * GIB), chip.chip_config)
  raise ValueError(
      f"--topology={spec!r}: expected a TPU accelerator type ("
      f"{', '.join(sorted(CHIPS))} followed by -N, e.g. v5p-32, v6e-16), a "
      "libtpu topology (e.g. v5p:2x2x4) or cpu:N.")


# -----------------------------------------------------------------------------
# Devices.
# -----------------------------------------------------------------------------


def _backends_initialized() -> bool:
  from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
  return xla_bridge.backends_are_initialized()


def _libtpu_path() -> str | None:
  from jax._src import cloud_tpu_init  # pylint: disable=g-import-not-at-top
  return cloud_tpu_init.get_tpu_library_path()


def topology_devices(target: Target) -> list[jax.Device]:
  """The target's devices: compile-only TPU devices, or CPU devices."""
  # Only compile-only devices (or CPUs) are needed: keep jax's own backend on
  # the CPU, so no TPU runtime starts (an installed libtpu would otherwise
  # probe for chips; on a TPU VM it would claim them).
  if not _backends_initialized() and not jax.config.jax_platforms:
    jax.config.update("jax_platforms", "cpu")
  if target.platform == "cpu":
    if not _backends_initialized():
      jax.config.update("jax_num_cpu_devices", target.num_devices)
    devices = jax.devices("cpu")
    if len(devices) < target.num_devices:
      raise RuntimeError(
          f"--topology={target.label} needs {target.num_devices} CPU devices; "
          f"this process has {len(devices)} (set XLA_FLAGS=--xla_force_host_"
          f"platform_device_count={target.num_devices} before jax starts).")
    return devices[:target.num_devices]

  if _libtpu_path() is None:
    raise RuntimeError(
        "The TPU compile check needs libtpu, which is not installed. Install "
        f"the version jax {jax.__version__} pins: pip install -e '.[tpu]' "
        f"(= {LIBTPU_PIN}). Without it, --topology=cpu:8 checks the same "
        "code path on CPU devices.")
  # libtpu reads the TPU VM's metadata as it loads; off a TPU VM (where jax's
  # cloud_tpu_init set TPU_SKIP_MDS_QUERY) it prints errors about values that
  # compile-only devices do not need. Any well-formed values silence them.
  if os.environ.get("TPU_SKIP_MDS_QUERY") == "1":
    os.environ.setdefault("TPU_ACCELERATOR_TYPE", target.label if "-" in
                          target.label else target.topology.split(":")[0] + "-8")
    os.environ.setdefault("TPU_WORKER_HOSTNAMES", "localhost")
  from jax.experimental import topologies  # pylint: disable=g-import-not-at-top
  kwargs = {}
  if target.chip_config:
    kwargs["chip_config_name"] = target.chip_config
  try:
    topo = topologies.get_topology_desc(target.topology, "tpu", **kwargs)
  except Exception as e:  # pylint: disable=broad-except
    raise RuntimeError(
        f"libtpu could not describe topology {target.topology!r} "
        f"({type(e).__name__}: {e}). This check was tested with jax "
        f"0.10.2 and {LIBTPU_PIN}; a libtpu that does not match the installed "
        "jax fails here.") from e
  devices = list(topo.devices)
  if len(devices) != target.num_devices:
    raise RuntimeError(f"topology {target.topology} has {len(devices)} "
                       f"devices, expected {target.num_devices}.")
  return devices


# -----------------------------------------------------------------------------
# Abstract inputs and the compile.
# -----------------------------------------------------------------------------


def batch_spec(config) -> dict[str, tuple[tuple[int, ...], Any]]:
  """Field -> (global shape, dtype) of one training batch of `config`.

  The fields the data sources yield (data_synthetic.py, input_pipeline.py)
  for the method's batch kind; every sequence has `data.seq_len` tokens.
  """
  b, l = int(config.batch_size), int(config.data.seq_len)
  kind = losses.batch_kind(config.method)
  if kind == "generative":
    return {"decoder_target_tokens": ((b, l), np.int32),
            "decoder_loss_weights": ((b, l), np.float32),
            "decoder_segment_ids": ((b, l), np.int32),
            "decoder_positions": ((b, l), np.int32)}
  if kind == "disc":
    return {"tokens": ((b, l), np.int32), "segment_ids": ((b, l), np.int32),
            "label": ((b,), np.float32)}
  spec = {}
  for prefix in ("chosen", "rejected"):
    spec[f"{prefix}_tokens"] = ((b, l), np.int32)
    spec[f"{prefix}_loss_weights"] = ((b, l), np.float32)
    spec[f"{prefix}_segment_ids"] = ((b, l), np.int32)
  return spec


def abstract_batch(config, mesh) -> dict[str, jax.ShapeDtypeStruct]:
  return {k: jax.ShapeDtypeStruct(
      shape, dtype, sharding=sharding_lib.batch_sharding(mesh, len(shape)))
          for k, (shape, dtype) in batch_spec(config).items()}


def _verdict_ids(config) -> tuple[int | None, int | None]:
  """Yes/No ids for the step's verdict metrics. They are constants in the
  program and do not change its memory, so when the config leaves them to the
  data source (which would need the vocabulary) any valid ids do."""
  if config.method not in losses.VERDICT_METHODS:
    return None, None
  if config.yes_token_id >= 0 and config.no_token_id >= 0:
    return int(config.yes_token_id), int(config.no_token_id)
  return data_synthetic.YES, data_synthetic.NO


def _bytes_per_device(tree) -> int:
  """Bytes one device holds of a tree of sharded ShapeDtypeStructs."""
  return sum(
      math.prod(x.sharding.shard_shape(x.shape)) * np.dtype(x.dtype).itemsize
      for x in jax.tree.leaves(tree))


def compile_train_step(config, devices: list[jax.Device]):
  """AOT-compiles `config`'s train step for `devices`.

  Returns `(compiled, info)`; `info` holds the mesh and the analytic
  per-device bytes of params, optimizer state and batch.
  """
  method = config.method
  losses.batch_kind(method)  # validates the method name
  mesh = sharding_lib.make_mesh(tuple(config.mesh), devices)
  data_parallel = mesh.shape["data"] * mesh.shape["fsdp"]
  if config.batch_size % data_parallel:
    raise ValueError(f"batch_size={config.batch_size} is not divisible by the "
                     f"data x fsdp mesh size {data_parallel} (mesh "
                     f"{dict(mesh.shape)}).")

  # The trainer's own pieces (train.py): model, optimizer, state shardings,
  # the jitted step.
  mcfg = train.model_config(config)
  tx, schedule = optimizer_lib.make_optimizer(config)
  yes_id, no_id = _verdict_ids(config)
  step_kw = dict(model=gemma.Transformer(mcfg), method=method,
                 beta=float(config.dpo.beta), yes_id=yes_id, no_id=no_id,
                 loss_chunk_size=int(config.get("loss_chunk_size", 0)))
  rng = jax.eval_shape(lambda: jax.random.PRNGKey(0))
  state_shapes = jax.eval_shape(
      lambda r: train._state_from_model_params(  # pylint: disable=protected-access
          gemma.init_params(mcfg, r), mcfg, tx, method), rng)
  state_shardings = train.state_shardings_for(state_shapes, mcfg, tx, mesh,
                                              method)
  state = checkpointing.abstract_like(state_shapes, state_shardings)
  batch = abstract_batch(config, mesh)
  if method == "dpo":  # the frozen reference: model params, same shardings
    ref_shardings = state_shardings["params"]["model"]
    ref = checkpointing.abstract_like(state_shapes["params"]["model"],
                                      ref_shardings)
  else:
    ref_shardings, ref = None, None
  replicated = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())
  rng = jax.ShapeDtypeStruct(rng.shape, rng.dtype, sharding=replicated)

  update = train.jit_train_step(
      config, tx=tx, schedule=schedule, step_kw=step_kw,
      state_shardings=state_shardings,
      batch_shardings=jax.tree.map(lambda x: x.sharding, batch),
      ref_shardings=ref_shardings, mesh=mesh)
  with sharding_lib.use_mesh(mesh):
    compiled = update.lower(state, batch, ref, rng).compile()

  info = {
      "mesh": dict(mesh.shape),
      "num_params": sum(math.prod(x.shape)
                        for x in jax.tree.leaves(state_shapes["params"])),
      "params_bytes": _bytes_per_device(state["params"]),
      "opt_state_bytes": _bytes_per_device(state["opt_state"]),
      "batch_bytes": _bytes_per_device(batch),
      "ref_bytes": _bytes_per_device(ref) if ref is not None else 0,
  }
  return compiled, info


def memory_report(compiled) -> dict[str, int]:
  """Per-device bytes from XLA's buffer assignment (`memory_analysis()`).

  total = arguments + outputs - aliased (donated state reuses its input
  buffers) + temporaries + generated code, as maxtext's train_compile.py
  counts it.
  """
  m = compiled.memory_analysis()
  if m is None:
    raise RuntimeError("This backend reports no memory analysis.")
  out = {
      "argument_bytes": int(m.argument_size_in_bytes),
      "output_bytes": int(m.output_size_in_bytes),
      "alias_bytes": int(m.alias_size_in_bytes),
      "temp_bytes": int(m.temp_size_in_bytes),
      "code_bytes": int(m.generated_code_size_in_bytes),
  }
  out["total_bytes"] = (out["argument_bytes"] + out["output_bytes"] -
                        out["alias_bytes"] + out["temp_bytes"] +
                        out["code_bytes"])
  peak = getattr(m, "peak_memory_in_bytes", 0)
  if peak:
    out["peak_bytes"] = int(peak)
  return out


def run(config, topology: str) -> dict[str, Any]:
  """Compiles `config`'s train step for `topology`; returns the report."""
  target = parse_topology(topology)
  devices = topology_devices(target)
  t0 = time.perf_counter()
  compiled, info = compile_train_step(config, devices)
  report = {
      "topology": target.label,
      "libtpu_topology": target.topology if target.platform == "tpu" else None,
      "platform": target.platform,
      "device_kind": devices[0].device_kind,
      "num_devices": len(devices),
      "method": config.method,
      "model": config.model.preset,
      "batch_size": int(config.batch_size),
      "seq_len": int(config.data.seq_len),
      "compile_seconds": round(time.perf_counter() - t0, 1),
      **info,
      **memory_report(compiled),
      "hbm_bytes": target.hbm_bytes,
  }
  report["fits"] = (None if target.hbm_bytes is None
                    else report["total_bytes"] <= target.hbm_bytes)
  return report


def _size(b: float) -> str:
  """Bytes in GiB, MiB or KiB, whichever reads best."""
  for unit, scale in (("GiB", GIB), ("MiB", 1024**2)):
    if abs(b) >= scale:
      return f"{b / scale:.2f} {unit}"
  return f"{b / 1024:.1f} KiB"


def _count(n: float) -> str:
  for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
    if n >= scale:
      return f"{n / scale:.2f}{unit}"
  return str(int(n))


def format_report(r: dict[str, Any]) -> str:
  """The report as the console shows it."""
  row = lambda name, b, note="": (f"    {name:<10}{_size(b):>12}"
                                  + (f"   {note}" if note else ""))
  mesh = ", ".join(f"{k}={v}" for k, v in r["mesh"].items())
  where = (f"{r['topology']} ({r['libtpu_topology']})"
           if r["libtpu_topology"] and r["libtpu_topology"] != r["topology"]
           else r["topology"])
  state = (f"params {_size(r['params_bytes'])}, optimizer "
           f"{_size(r['opt_state_bytes'])}, batch {_size(r['batch_bytes'])}")
  if r["ref_bytes"]:
    state += f", DPO reference {_size(r['ref_bytes'])}"
  lines = [
      f"Compile check: {r['method']} on {r['model']} "
      f"({_count(r['num_params'])} params), batch {r['batch_size']} x "
      f"{r['seq_len']} tokens",
      f"  {where}: {r['num_devices']} x {r['device_kind']}, mesh {mesh}; "
      f"compiled in {r['compile_seconds']:.1f} s",
      "  per device:",
      row("arguments", r["argument_bytes"], f"({state})"),
      row("outputs", r["output_bytes"]),
      row("aliased", -r["alias_bytes"], "(donated state: outputs reuse it)"),
      row("temps", r["temp_bytes"], "(activations, gradients, workspace)"),
      row("code", r["code_bytes"]),
  ]
  if r["hbm_bytes"]:
    share = r["total_bytes"] / r["hbm_bytes"]
    verdict = "FITS" if r["fits"] else "DOES NOT FIT"
    if r["fits"] and share > 0.95:
      verdict += " (tight: the runtime reserves some HBM too)"
    lines.append(row("total", r["total_bytes"],
                     f"of {_size(r['hbm_bytes'])} HBM ({share:.0%}): "
                     f"{verdict}"))
  else:
    lines.append(row("total", r["total_bytes"],
                     "(CPU: no HBM budget to judge against)"))
  if r["fits"] is False:
    lines.append("  To fit: more fsdp (--config.mesh), "
                 "--config.optimizer.grad_accum_steps, "
                 "--config.optimizer.mu_dtype=bfloat16, "
                 "--config.model.param_dtype=bfloat16, or a larger slice.")
  return "\n".join(lines)


def main(config, topology: str) -> None:
  """CLI entry (`train.py --compile_only`): prints the report and a JSON
  line; exits with status 1 if the step does not fit."""
  try:
    report = run(config, topology)
  except (RuntimeError, ValueError) as e:
    print(f"compile check failed: {e}", file=sys.stderr)
    sys.exit(2)
  print(format_report(report))
  print("compile_check_json: " + json.dumps(report, sort_keys=True))
  sys.stdout.flush()
  if report["fits"] is False:
    sys.exit(1)


if __name__ == "__main__":
  print("Run it through the trainer: python -m genrm_jax.train "
        "--config=configs/<exp>.py --compile_only --topology=v5p-32",
        file=sys.stderr)
  sys.exit(2)
