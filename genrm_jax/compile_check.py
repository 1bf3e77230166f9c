r"""Offline compile check: will this config's train step fit on a TPU slice or GPU?

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

NVIDIA GPUs work the same way: `--topology=h100` (one GPU), `h100:8` (eight
on one host), `h200`, `a100` compile for that GPU through the CUDA PJRT
plugin's deviceless compiler (XLA's GPU pipeline, Triton GEMM fusions and
cuDNN attention included), on a machine without a GPU or CUDA driver. Needs
the plugin and cuDNN (the `gpu_aot` extra; launch/setup_env.sh puts it in
`.venv/gpu_aot`, loaded only here); jax's backend stays on the CPU. The budget is
the GPU's memory times `XLA_PYTHON_CLIENT_MEM_FRACTION` (0.90 by default, as
launch/gpu.sh sets it): what JAX preallocates and XLA can plan into.

One slice only (no multi-slice DCN meshes). The memory numbers are XLA's
buffer assignment for one device; the runtime reserves a little HBM besides,
so treat anything above ~95% as not fitting.
"""

from __future__ import annotations

import contextlib
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
from genrm_jax import dpo_reference
from genrm_jax import losses
from genrm_jax import optimizer as optimizer_lib
from genrm_jax import sharding as sharding_lib
from genrm_jax import train
from genrm_jax.models import gemma

GIB = 1024**3

# The libtpu version jax 0.10.2's own `jax[tpu]` extra pins (setup.py `tpu`).
LIBTPU_PIN = "libtpu==0.0.42.1"
# The CUDA PJRT plugin (setup.py `gpu_aot`) that compiles for GPUs offline.
CUDA_PLUGIN_PIN = "jax-cuda12-plugin==0.10.2"
# launch/_common.sh's default XLA_PYTHON_CLIENT_MEM_FRACTION.
GPU_MEM_FRACTION = 0.90


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
class Gpu:
  """An NVIDIA GPU as XLA's GPU compiler needs to know it: the fields of a
  `stream_executor.GpuTargetConfigProto` that its cost models, fusion and
  tiling heuristics and buffer assignment read (what `nvidia-smi` and the CUDA
  device properties report for that board)."""
  name: str  # device_kind, as jax.devices() reports it on that GPU
  compute_capability: tuple[int, int]
  sm_count: int
  fp32_per_sm: int  # CUDA cores per SM
  shared_memory_per_sm: int
  shared_memory_per_block_optin: int
  l2_bytes: int
  clock_ghz: float
  memory_bandwidth: int  # bytes/s
  memory_bytes: int
  # The target's cuDNN, as its spec reports it (XLA's own H100 spec: 9.10).
  cudnn: tuple[int, int, int] = (9, 10, 0)

  def target_config(self) -> str:
    """The GpuTargetConfigProto text the CUDA plugin's topology reads."""
    major, minor = self.compute_capability
    # sm_90a: Hopper's wgmma/TMA instructions, which XLA's Triton GEMMs use.
    extension = "\n    feature_extension: ACCELERATED_FEATURES" if major == 9 else ""
    dnn = ".".join(map(str, self.cudnn))
    return f"""gpu_device_info {{
  threads_per_block_limit: 1024
  threads_per_warp: 32
  shared_memory_per_block: 49152
  shared_memory_per_core: {self.shared_memory_per_sm}
  threads_per_core_limit: 2048
  core_count: {self.sm_count}
  fpus_per_core: {self.fp32_per_sm}
  block_dim_limit_x: 2147483647
  block_dim_limit_y: 65535
  block_dim_limit_z: 65535
  memory_bandwidth: {self.memory_bandwidth}
  l2_cache_size: {self.l2_bytes}
  clock_rate_ghz: {self.clock_ghz}
  device_memory_size: {self.memory_bytes}
  shared_memory_per_block_optin: {self.shared_memory_per_block_optin}
  cuda_compute_capability {{
    major: {major}
    minor: {minor}{extension}
  }}
  registers_per_core_limit: 65536
  registers_per_block_limit: 65536
  device_vendor: "NVIDIA Corporation"
  name: "{self.name}"
  dnn_version: "{dnn}"
}}
platform_name: "CUDA"
dnn_version_info {{
  major: {self.cudnn[0]}
  minor: {self.cudnn[1]}
  patch: {self.cudnn[2]}
}}
device_description_str: "{self.name}"
"""


GPUS = {
    "h100": Gpu("NVIDIA H100 80GB HBM3", (9, 0), 132, 128, 233472, 232448,
                50 * 2**20, 1.98, 3352 * 10**9, 84942979072),
    "h200": Gpu("NVIDIA H200", (9, 0), 132, 128, 233472, 232448,
                50 * 2**20, 1.98, 4800 * 10**9, 150754820096),
    "a100": Gpu("NVIDIA A100-SXM4-80GB", (8, 0), 108, 64, 167936, 166912,
                40 * 2**20, 1.41, 2039 * 10**9, 85198045184),
}


@dataclasses.dataclass(frozen=True)
class Target:
  """What to compile for: `platform` 'tpu' (a libtpu topology), 'cuda' (GPUs
  on one host, through the CUDA plugin) or 'cpu'."""
  label: str  # as the user wrote it
  platform: str
  topology: str  # libtpu name ("v5p:2x2x4"), "h100:8" or "cpu:N"
  num_devices: int
  hbm_bytes: int | None  # per device; None: no budget (CPU)
  chip_config: str | None = None
  gpu: Gpu | None = None


def gpu_mem_fraction() -> float:
  """The share of GPU memory JAX preallocates, as the run would set it."""
  raw = os.environ.get("XLA_PYTHON_CLIENT_MEM_FRACTION", "")
  try:
    return float(raw) if raw else GPU_MEM_FRACTION
  except ValueError as e:
    raise ValueError(f"XLA_PYTHON_CLIENT_MEM_FRACTION={raw!r} is not a "
                     "number (e.g. 0.90).") from e


def parse_topology(spec: str) -> Target:
  """'v5p-32' | 'v6e-16' | 'v5p:2x2x4' | 'h100' | 'h100:8' | 'cpu:8'."""
  spec = spec.strip()
  m = re.fullmatch(r"cpu(?::(\d+))?", spec)
  if m:
    n = int(m.group(1) or 8)
    return Target(spec, "cpu", f"cpu:{n}", n, None)
  m = re.fullmatch(r"([a-z0-9]+)(?::(\d+))?", spec)
  if m and m.group(1) in GPUS:
    gpu, n = GPUS[m.group(1)], int(m.group(2) or 1)
    if not 1 <= n <= 8:
      raise ValueError(f"--topology={spec}: one host holds 1 to 8 GPUs "
                       f"({m.group(1)}:8); multi-host GPU meshes are not "
                       "checked here.")
    return Target(spec, "cuda", f"{m.group(1)}:{n}", n,
                  int(gpu.memory_bytes * gpu_mem_fraction()), gpu=gpu)
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
      "libtpu topology (e.g. v5p:2x2x4), a GPU with an optional count on one "
      f"host ({', '.join(sorted(GPUS))}; e.g. h100, h100:8) or cpu:N.")


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

  if target.platform == "cuda":
    return _gpu_devices(target)
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
  return _all_devices_of(topo, target)


def _all_devices_of(topo, target: Target) -> list[jax.Device]:
  devices = list(topo.devices)
  if len(devices) != target.num_devices:
    raise RuntimeError(f"topology {target.topology} has {len(devices)} "
                       f"devices, expected {target.num_devices}.")
  return devices


def gpu_aot_dir() -> str:
  """Where launch/setup_env.sh puts the `gpu_aot` extra: beside the venv's
  site-packages, not in it, so that only processes that compile for a GPU
  load the CUDA plugin and cuDNN (every jax process would, at start, from
  site-packages: +0.25 s and +500 MB each)."""
  return os.environ.get("GENRM_GPU_AOT_DIR") or os.path.join(sys.prefix,
                                                              "gpu_aot")


def _module_found(name: str) -> bool:
  import importlib.util  # pylint: disable=g-import-not-at-top
  try:
    return importlib.util.find_spec(name) is not None
  except ModuleNotFoundError:  # the parent package is missing
    return False


def _cuda_plugin_installed() -> bool:
  return _module_found("jax_plugins.xla_cuda12") or os.path.isdir(
      os.path.join(gpu_aot_dir(), "jax_plugins", "xla_cuda12"))


def cudnn_installed() -> bool:
  return _module_found("nvidia.cudnn") or os.path.isdir(
      os.path.join(gpu_aot_dir(), "nvidia", "cudnn"))


def _register_cuda_plugin() -> None:
  """Registers the CUDA plugin with jax now, if jax did not find it at start
  (it lives in `gpu_aot_dir()`). Compile-only: no CUDA version check."""
  from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
  # jax's own plugin discovery first (once a process): run after `side` is on
  # sys.path, it would find the plugin initialised below and initialise it
  # again, logging an ALREADY_EXISTS traceback.
  discover = getattr(xla_bridge, "_discover_and_register_pjrt_plugins", None)
  if discover is not None:
    discover()
  if "cuda" in xla_bridge._topology_factories:  # pylint: disable=protected-access
    return
  side = gpu_aot_dir()
  if os.path.isdir(side) and side not in sys.path:
    sys.path.append(side)
  import importlib  # pylint: disable=g-import-not-at-top
  os.environ.setdefault("JAX_SKIP_CUDA_CONSTRAINTS_CHECK", "1")
  plugin = importlib.import_module("jax_plugins.xla_cuda12")
  plugin.initialize()
  # jax looked for the plugin's CUDA/cuDNN version module when it was
  # imported; its cuDNN attention asks that module for cuDNN's version.
  from jax._src import lib as jax_lib  # pylint: disable=g-import-not-at-top
  from jax._src.cudnn import fused_attention_stablehlo as fa  # pylint: disable=g-import-not-at-top
  for module in (jax_lib, fa):
    if getattr(module, "cuda_versions", None) is None:
      module.cuda_versions = plugin.cuda_versions


def _gpu_devices(target: Target) -> list[jax.Device]:
  """Compile-only devices of `target.num_devices` GPUs on one host, from the
  CUDA plugin's topology for the target config of `target.gpu`."""
  if not _cuda_plugin_installed():
    raise RuntimeError(
        "The GPU compile check needs the CUDA PJRT plugin, which is not "
        f"installed (nor in {gpu_aot_dir()}). Install the one jax "
        f"{jax.__version__} pairs with: GENRM_EXTRAS=test,gpu_aot bash "
        "launch/setup_env.sh, or pip install -e '.[gpu_aot]' (= "
        f"{CUDA_PLUGIN_PIN}; no GPU or CUDA driver needed). Without it, "
        "--topology=cpu:N checks the same code path on CPU devices.")
  from jax.experimental import topologies  # pylint: disable=g-import-not-at-top
  _register_cuda_plugin()
  topo = topologies.get_topology_desc(
      "", "cuda", target_config=target.gpu.target_config(),
      topology=f"1x1x{target.num_devices}")
  return _all_devices_of(topo, target)


@contextlib.contextmanager
def _cudnn_checks_answer_for(gpu: Gpu | None):
  """While tracing, JAX's cuDNN attention asks the *local* GPU's compute
  capability (head_dim 256 needs Hopper; some features Ampere); compiling for
  a GPU from a machine without one, the target GPU is the one to ask about.
  Its cuDNN version check stays real: XLA builds the cuDNN graph with that
  library at compile time, so it has to be installed."""
  try:
    from jax._src.cudnn import fused_attention_stablehlo as fa  # pylint: disable=g-import-not-at-top
  except ImportError:
    fa = None
  names = ("check_compute_capability", "is_cuda_compute_capability_equal")
  if gpu is None or fa is None or not all(hasattr(fa, n) for n in names):
    yield
    return
  cap = lambda spec: tuple(int(x) for x in spec.split("."))
  saved = {n: getattr(fa, n) for n in names}
  fa.check_compute_capability = lambda c: gpu.compute_capability >= cap(c)
  fa.is_cuda_compute_capability_equal = (
      lambda c: gpu.compute_capability == cap(c))
  try:
    yield
  finally:
    for n, f in saved.items():
      setattr(fa, n, f)


def _require_cudnn() -> None:
  """A clear error, before tracing, when cuDNN attention is compiled for a
  GPU without cuDNN's library at hand (JAX would say only 'cuDNN not
  found')."""
  from jax._src.cudnn import fused_attention_stablehlo as fa  # pylint: disable=g-import-not-at-top
  try:
    fa.check_cudnn_version()
  except Exception as e:  # pylint: disable=broad-except
    raise RuntimeError(
        "model.attention_impl='cudnn' compiles cuDNN's fused attention, and "
        "XLA builds its cuDNN graph at compile time, which needs cuDNN's "
        f"library ({e}). The gpu_aot extra installs it (nvidia-cudnn-cu12): "
        "GENRM_EXTRAS=test,gpu_aot bash launch/setup_env.sh, or pip install "
        "-e '.[gpu_aot]'; or check --config.model.attention_impl=einsum."
        ) from e


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
  if kind == "pairwise":
    return {f"{prefix}_{field}": ((b, l), np.int32) for prefix in ("chosen", "rejected")
            for field in ("tokens", "segment_ids")}
  spec = {}
  for prefix in ("chosen", "rejected"):
    spec[f"{prefix}_tokens"] = ((b, l), np.int32)
    spec[f"{prefix}_loss_weights"] = ((b, l), np.float32)
    spec[f"{prefix}_segment_ids"] = ((b, l), np.int32)
    if dpo_reference.enabled(config):  # the reference's, looked up per row
      spec[f"{prefix}_ref_logps"] = ((b,), np.float32)
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


def compile_train_step(config, devices: list[jax.Device],
                       gpu: Gpu | None = None):
  """AOT-compiles `config`'s train step for `devices` (of `gpu`, if GPUs).

  Returns `(compiled, info)`; `info` holds the mesh and the analytic
  per-device bytes of params, optimizer state and batch.
  """
  with _cudnn_checks_answer_for(gpu):  # init traces attention too
    return _compile_train_step(config, devices)


def _compile_train_step(config, devices: list[jax.Device]):
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
  on_gpu = devices[0].platform in ("gpu", "cuda")
  mcfg = train.model_config(config,
                            platform="gpu" if on_gpu else devices[0].platform)
  if on_gpu and mcfg.attention_impl == "cudnn":
    _require_cudnn()
  tx, schedule = optimizer_lib.make_optimizer(config)
  yes_id, no_id = _verdict_ids(config)
  step_kw = train.step_kwargs(config, gemma.Transformer(mcfg), yes_id, no_id)
  rng = jax.eval_shape(lambda: jax.random.PRNGKey(0))
  state_shapes = jax.eval_shape(
      lambda r: train._state_from_model_params(  # pylint: disable=protected-access
          gemma.init_params(mcfg, r), mcfg, tx, method), rng)
  state_shardings = train.state_shardings_for(state_shapes, mcfg, tx, mesh,
                                              method)
  state = checkpointing.abstract_like(state_shapes, state_shardings)
  batch = abstract_batch(config, mesh)
  if (method == "dpo" and not dpo_reference.enabled(config) and
      not step_kw["lora_reference"]):
    # The frozen reference: model params, same shardings. (Precomputed, the
    # batch carries its log-probs instead; under LoRA it is the state's own
    # weights with the adapters zeroed.)
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


def xla_cost(compiled) -> dict[str, float]:
  """XLA's cost analysis (HloCostAnalysis) of a compiled, optimised program:
  'flops', 'bytes accessed' (each kernel's operands and outputs: HBM traffic
  without cache reuse), 'transcendentals'. Compile-only GPU executables
  report none themselves, so it runs on their optimised HLO through the CPU
  client: the fusions, kernels and shapes are the GPU program's. A while
  loop's body counts once (unroll the layers to count them all)."""
  from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
  from jax._src.lib import xla_client  # pylint: disable=g-import-not-at-top
  module = compiled.runtime_executable().hlo_modules()[0]
  cost = xla_client._xla.hlo_module_cost_analysis(  # pylint: disable=protected-access
      xla_bridge.get_backend("cpu"), module)
  return {k: float(cost.get(k, 0.0))
          for k in ("flops", "bytes accessed", "transcendentals")}


def cudnn_attention_calls(hlo_text: str) -> dict[str, int]:
  """How many cuDNN fused-attention kernels (forward, backward) the compiled
  program calls: 0 and 0 for the einsum path, or where XLA fell back."""
  calls = re.findall(r'custom_call_target="__cudnn\$fmha(\w*)"', hlo_text)
  backward = sum(1 for c in calls if "Backward" in c)
  return {"cudnn_attention_fwd": len(calls) - backward,
          "cudnn_attention_bwd": backward}


def run(config, topology: str) -> dict[str, Any]:
  """Compiles `config`'s train step for `topology`; returns the report."""
  target = parse_topology(topology)
  devices = topology_devices(target)
  t0 = time.perf_counter()
  compiled, info = compile_train_step(config, devices, target.gpu)
  report = {
      "topology": target.label,
      "libtpu_topology": target.topology if target.platform == "tpu" else None,
      "mem_fraction": (gpu_mem_fraction() if target.platform == "cuda"
                       else None),
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
  if target.platform == "cuda":  # which attention the GPU program runs
    report.update(cudnn_attention_calls(compiled.as_text()))
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
  if r.get("platform") == "cuda":
    lines.insert(2, f"  attention: {r['cudnn_attention_fwd']} cuDNN fused "
                 f"forward, {r['cudnn_attention_bwd']} backward kernel calls "
                 "in the program" + ("" if r["cudnn_attention_fwd"] else
                                     " (einsum/XLA attention)"))
  if r["hbm_bytes"]:
    share = r["total_bytes"] / r["hbm_bytes"]
    verdict = "FITS" if r["fits"] else "DOES NOT FIT"
    if r["fits"] and share > 0.95:
      verdict += " (tight: the runtime reserves some HBM too)"
    budget = f"of {_size(r['hbm_bytes'])} HBM"
    if r.get("mem_fraction"):  # GPU: what JAX preallocates of the memory
      budget += (f" (XLA_PYTHON_CLIENT_MEM_FRACTION={r['mem_fraction']:.2f} "
                 "of the GPU's)")
    lines.append(row("total", r["total_bytes"],
                     f"{budget} ({share:.0%}): {verdict}"))
  else:
    lines.append(row("total", r["total_bytes"],
                     "(CPU: no HBM budget to judge against)"))
  if r["fits"] is False and r.get("platform") == "cuda":
    lines.append("  To fit: --config.loss_chunk_size (e.g. 256), "
                 "--config.model.remat_policy=dots_with_no_batch_dims_saveable"
                 " or full, --config.model.attention_impl=cudnn, "
                 "--config.optimizer.grad_accum_steps, fsdp over more GPUs "
                 "(--config.mesh, --topology=h100:8).")
  elif r["fits"] is False:
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
