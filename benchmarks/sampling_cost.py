r"""What one decode step of the sampler costs, by XLA's own model, before the GPU.

  python -m benchmarks.sampling_cost                  # Gemma-2B, batch 16/64/256, H100
  python -m benchmarks.sampling_cost --tiny --topology=cpu:1

Compiles one decode step as `genrm_jax.sampling.Sampler` runs it (bf16
weights cast once and held per layer, a bf16 KV cache of 128 + 256 slots,
one new token per row, the next-token logits) for `--topology` (an H100 by
default: the CUDA plugin's deviceless compiler, `pip install -e
'.[gpu_aot]'`; no GPU needed) and prints XLA's bytes accessed per step
against what a step must read (every weight and the cache once), and the
HBM-roofline tokens/s of each. A model, not a measurement: no caches, no
overlap. The step's cache is an argument here, laid out row-major, so XLA
transposes each layer's K for the QK matmul; in the sampler's decode loop
XLA picks the cache's layout itself and needs no such copy, so these bytes
are an upper bound on the loop's. Measure with benchmarks/sampling.py.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402

PROMPT, NEW = 128, 256  # benchmarks/sampling.py's shape


def compile_decode_step(preset: str, batch: int, devices, overrides=()):
  """One decode step, as the sampler runs it, compiled for `devices[0]`:
  (compiled, abstract params, abstract cache, model config)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from genrm_jax.models import gemma  # pylint: disable=g-import-not-at-top

  on_device = jax.sharding.SingleDeviceSharding(devices[0])
  abstract = lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                            sharding=on_device)
  stacked = gemma.get_config(preset, dtype="bfloat16", **dict(overrides))
  config = stacked.replace(scan_layers=False)  # as Sampler holds the layers
  params = jax.tree.map(abstract, jax.eval_shape(
      lambda: gemma.unstack_layers(gemma.cast_for_inference(
          stacked, gemma.init_params(stacked, 0)))))
  cache = jax.tree.map(abstract, jax.eval_shape(
      lambda: gemma.init_cache(config, batch, PROMPT + NEW, jnp.bfloat16)))
  model = gemma.Transformer(config)

  def step(params, cache, token, pos):
    out = model.apply({"params": params}, token[:, None],
                      positions=pos[:, None],
                      segment_ids=jnp.ones((batch, 1), jnp.int32),
                      cache=cache, return_logits=False)
    logits = gemma.logits_from_hidden(config, params, out.hidden_states[:, 0])
    return jnp.argmax(logits, axis=-1), out.cache

  ids = jax.ShapeDtypeStruct((batch,), jnp.int32, sharding=on_device)
  compiled = jax.jit(step, donate_argnums=(1,)).lower(
      params, cache, ids, ids).compile()
  return compiled, params, cache, config


def decode_step_cost(preset: str, batch: int, devices, overrides=()) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  from genrm_jax import compile_check  # pylint: disable=g-import-not-at-top
  compiled, params, cache, _ = compile_decode_step(preset, batch, devices,
                                                   overrides)
  nbytes = lambda tree: sum(x.size * x.dtype.itemsize
                            for x in jax.tree.leaves(tree))
  cost = compile_check.xla_cost(compiled)
  return dict(benchmark="sampling_cost", impl="ours_decode_step",
              preset=preset, batch=batch, cache_slots=PROMPT + NEW,
              device=devices[0].device_kind, xla_bytes=cost["bytes accessed"],
              xla_flops=cost["flops"], weight_bytes=nbytes(params),
              cache_bytes=nbytes(cache))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--tiny", action="store_true")
  parser.add_argument("--topology", default="h100",
                      help="a compile-check target: h100, h200, a100, cpu:1")
  parser.add_argument("--batches", default="16,64,256")
  parser.add_argument("--out", default=common.default_out())
  args = parser.parse_args()
  shape = common.TINY if args.tiny else common.FULL

  from genrm_jax import compile_check  # pylint: disable=g-import-not-at-top
  target = compile_check.parse_topology(args.topology)
  devices = compile_check.topology_devices(target)[:1]
  bandwidth = target.gpu.memory_bandwidth if target.gpu else None
  info = common.device_info()
  rows = []
  for batch in (int(b) for b in args.batches.split(",")):
    row = decode_step_cost(shape.preset, batch, devices, shape.overrides)
    row.update(topology=target.label, host=info["host"], jax=info.get("jax"))
    if bandwidth:
      row["roofline_tokens_per_s"] = batch * bandwidth / row["xla_bytes"]
      row["ideal_tokens_per_s"] = batch * bandwidth / (
          row["weight_bytes"] + row["cache_bytes"])
    rows.append(row)
    common.record(args.out, row)

  scale, unit = (1e9, "GB") if not args.tiny else (1e6, "MB")
  print(f"\nXLA's cost model of one decode step for {target.label} "
        f"({devices[0].device_kind}), {shape.preset}, {PROMPT}+{NEW} cache "
        f"slots; a model, not a measurement:\n")
  head = (f"{'batch':>6}{unit + ' moved':>11}{'weights+cache':>15}"
          f"{'x ideal':>9}{'roofline tok/s':>16}{'ideal tok/s':>13}")
  print(head + "\n" + "-" * len(head))
  for r in rows:
    ideal = r["weight_bytes"] + r["cache_bytes"]
    tok = lambda k: f"{r[k]:>{16 if k.startswith('roof') else 13},.0f}" if (
        k in r) else f"{'-':>{16 if k.startswith('roof') else 13}}"
    print(f"{r['batch']:>6}{r['xla_bytes'] / scale:>11.2f}"
          f"{ideal / scale:>15.2f}{r['xla_bytes'] / ideal:>9.2f}"
          f"{tok('roofline_tokens_per_s')}{tok('ideal_tokens_per_s')}")


if __name__ == "__main__":
  main()
