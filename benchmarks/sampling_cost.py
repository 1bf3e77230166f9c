r"""What one decode step of the sampler costs, by XLA's own model, before the GPU.

  python -m benchmarks.sampling_cost                  # Gemma-2B, batch 16/64/256, H100
  python -m benchmarks.sampling_cost --tiny --topology=cpu:1
  python -m benchmarks.sampling_cost --by_op=15      # ... and where the bytes go
  python -m benchmarks.sampling_cost --continuous    # + continuous batching's loop
  python -m benchmarks.sampling_cost --watch         # + a stop string watched

Compiles `genrm_jax.sampling.Sampler`'s own program (greedy; bf16 weights
cast once and held per layer, a bf16 KV cache of 128 + 256 slots: prefill,
then the decode loop) for `--topology` (an H100 by default: the CUDA
plugin's deviceless compiler, `pip install -e '.[gpu_aot]'`; no GPU needed)
and prints the bytes one iteration of the decode loop moves (its kernels'
operands and outputs, `benchmarks.hlo_ops`) against what a step must read
(every weight and the cache once), and the HBM-roofline tokens/s of each. `--continuous`: also the loop that decodes with
continuous batching (`Sampler.generate(batch_size=...)`, whose cache holds
`stream_headroom` more slots, and a store of prefilled prompts), to show
what its iteration costs beside the one-batch loop's: it runs fewer of
them when rows stop at different lengths. `--watch`: also each loop with
a stop string watched in it (GenRM-CoT's verification question, over a
[vocabulary, 32]-byte table), what stopping rows at a string costs a step.
The whole program's total by XLA's cost analysis (prefill + one loop
iteration, as XLA counts a loop) is in the JSON row. A model, not a
measurement: no caches, no overlap. Measure with benchmarks/sampling.py.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402
from benchmarks import hlo_ops  # noqa: E402

PROMPT, NEW = 128, 256  # benchmarks/sampling.py's shape


def _abstract_sampler(preset: str, devices, overrides=()):
  """A `Sampler` over abstract bf16 weights on `devices[0]`, as it runs
  there: (sampler, its params, abstract(shape, dtype) on that device)."""
  import jax  # pylint: disable=g-import-not-at-top
  from genrm_jax import sampling  # pylint: disable=g-import-not-at-top
  from genrm_jax.models import gemma  # pylint: disable=g-import-not-at-top

  on_device = jax.sharding.SingleDeviceSharding(devices[0])
  abstract = lambda shape, dtype: jax.ShapeDtypeStruct(shape, dtype,
                                                       sharding=on_device)
  stacked = gemma.get_config(preset, dtype="bfloat16", **dict(overrides))
  # The weights as Sampler holds them (cast once, one buffer per layer),
  # given to it already so: abstract arrays cannot be cast or unstacked.
  params = jax.tree.map(lambda x: abstract(x.shape, x.dtype), jax.eval_shape(
      lambda: gemma.unstack_layers(gemma.cast_for_compute(
          stacked, gemma.init_params(stacked, 0)))))
  # The cache layout the sampler picks on a GPU (elsewhere: stacked), and
  # its attention on that device (not this host's backend).
  gpu = devices[0].platform == "gpu"
  sampler = sampling.Sampler(
      stacked.replace(scan_layers=False), params, cast_params=False,
      unstack_layers=False, per_layer_cache=gpu,
      cache_left_attention=devices[0].platform == "cpu")
  return sampler, params, abstract


def _stop(abstract, config, watch: bool):
  """The decode loop's stop argument: stop tokens and the stop-string watch
  (`Sampler._watch`), with GenRM-CoT's stop string over a full-width
  table of the model's vocabulary when `watch`."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from genrm_jax import prompts  # pylint: disable=g-import-not-at-top
  from genrm_jax import sampling  # pylint: disable=g-import-not-at-top
  tokens = abstract((1,), jnp.int32)
  if not watch:
    return tokens, sampling.no_watch()
  vocab, width = config.num_embed, sampling._PIECE_BYTES  # pylint: disable=protected-access
  pattern = np.frombuffer(prompts.VERIFY_QUESTION.encode(), np.uint8)
  return tokens, dict(table=abstract((vocab, width), jnp.uint8),
                      length=abstract((vocab,), jnp.int32),
                      clear=abstract((vocab,), jnp.bool_),
                      stops=pattern.astype(np.int16)[None])


def compile_sampler(preset: str, batch: int, devices, overrides=(),
                    watch: bool = False):
  """The sampler's program (prefill + decode loop, greedy, PROMPT + NEW
  tokens; `watch`: a stop string watched) compiled for `devices[0]`:
  (compiled, abstract params, abstract cache, the sampler's model
  config)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from genrm_jax.models import gemma  # pylint: disable=g-import-not-at-top

  sampler, params, abstract = _abstract_sampler(preset, devices, overrides)
  cache = jax.eval_shape(lambda: gemma.init_cache(
      sampler.config, batch, PROMPT + NEW, jnp.bfloat16,
      per_layer=sampler.per_layer_cache))
  program = jax.jit(functools.partial(
      sampler._sample, max_new_tokens=NEW, top_k=0, use_top_p=False,  # pylint: disable=protected-access
      greedy=True))
  ids = abstract((batch, PROMPT), jnp.int32)
  compiled = program.lower(
      params, ids, ids, abstract((batch,), jnp.int32),
      abstract((batch,), jnp.bool_), abstract((batch,), jnp.int32),
      abstract((2,), jnp.uint32),
      abstract((), jnp.float32), abstract((), jnp.float32),
      _stop(abstract, sampler.config, watch),
      abstract((0,), jnp.int32)).compile()
  return compiled, params, cache, sampler.config


def compile_stream_decode(preset: str, batch: int, devices, overrides=(),
                          watch: bool = False):
  """The continuous-batching decode loop (`Sampler._decode`, greedy) over
  `batch` slots, PROMPT + NEW tokens, compiled for `devices[0]`:
  (compiled, abstract params, abstract cache of the loop)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  from genrm_jax import sampling  # pylint: disable=g-import-not-at-top
  sampler, params, abstract = _abstract_sampler(preset, devices, overrides)
  columns = PROMPT + NEW + sampler.stream_headroom
  stop = _stop(abstract, sampler.config, watch)
  window = sampling._watch_window(stop[1])  # pylint: disable=protected-access
  state = jax.tree.map(lambda x: abstract(x.shape, x.dtype), jax.eval_shape(
      lambda: sampler._stream_state(batch, columns, PROMPT, NEW, 0, window)))  # pylint: disable=protected-access
  program = jax.jit(functools.partial(
      sampler._decode, max_new_tokens=NEW, top_k=0, use_top_p=False,  # pylint: disable=protected-access
      greedy=True), donate_argnums=(1,))
  compiled = program.lower(
      params, state, abstract((), jnp.int32), abstract((), jnp.float32),
      abstract((), jnp.float32), stop,
      abstract((0,), jnp.int32)).compile()
  return compiled, params, state["cache"]


def decode_loop_ops(compiled) -> list:
  """The kernels of one decode-loop iteration (`hlo_ops.Op`s)."""
  ops = [op for op in hlo_ops.program_ops(compiled.as_text()) if op.loop]
  if not ops:
    raise ValueError("The sampler's program has no decode loop.")
  return ops


def decode_step_cost(preset: str, batch: int, devices, overrides=(),
                     by_op: int = 0, continuous: bool = False,
                     watch: bool = False) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  from genrm_jax import compile_check  # pylint: disable=g-import-not-at-top
  if continuous:
    compiled, params, cache = compile_stream_decode(preset, batch, devices,
                                                    overrides, watch)
  else:
    compiled, params, cache, _ = compile_sampler(preset, batch, devices,
                                                 overrides, watch)
  nbytes = lambda tree: sum(x.size * x.dtype.itemsize
                            for x in jax.tree.leaves(tree))
  step = decode_loop_ops(compiled)
  cost = compile_check.xla_cost(compiled)
  row = dict(benchmark="sampling_cost",
             impl="ours_sampler" + ("_continuous" if continuous else "")
             + ("+watch" if watch else ""),
             preset=preset, batch=batch,
             cache_slots=jax.tree.leaves(cache["segment_ids"])[0].shape[1],
             device=devices[0].device_kind,
             step_bytes=sum(op.moved for op in step),
             step_kernels=len(step), program_xla_bytes=cost["bytes accessed"],
             weight_bytes=nbytes(params), cache_bytes=nbytes(cache))
  if by_op:
    row["by_op"] = hlo_ops.table(step, by_op)
  return row


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--tiny", action="store_true")
  parser.add_argument("--topology", default="h100",
                      help="a compile-check target: h100, h200, a100, cpu:1")
  parser.add_argument("--batches", default="16,64,256")
  parser.add_argument("--preset", default="",
                      help="another model shape (default gemma_2b; tiny "
                      "with --tiny), e.g. gemma3_270m")
  parser.add_argument("--by_op", type=int, default=0,
                      help="also print the N largest ops of a loop iteration")
  parser.add_argument("--continuous", action="store_true",
                      help="also continuous batching's decode loop")
  parser.add_argument("--watch", action="store_true",
                      help="also each loop with a stop string watched")
  parser.add_argument("--out", default=common.default_out())
  args = parser.parse_args()
  shape = common.TINY if args.tiny else common.FULL
  if args.preset:
    shape = common.Shape(args.preset, shape.batch, shape.seq_len)

  from genrm_jax import compile_check  # pylint: disable=g-import-not-at-top
  target = compile_check.parse_topology(args.topology)
  devices = compile_check.topology_devices(target)[:1]
  bandwidth = target.gpu.memory_bandwidth if target.gpu else None
  info = common.device_info()
  rows = []
  runs = [(int(b), c, w) for b in args.batches.split(",")
          for c in ((False, True) if args.continuous else (False,))
          for w in ((False, True) if args.watch else (False,))]
  for batch, continuous, watch in runs:
    row = decode_step_cost(shape.preset, batch, devices, shape.overrides,
                           args.by_op, continuous, watch)
    row.update(topology=target.label, host=info["host"], jax=info.get("jax"))
    if bandwidth:
      row["roofline_tokens_per_s"] = batch * bandwidth / row["step_bytes"]
      row["ideal_tokens_per_s"] = batch * bandwidth / (
          row["weight_bytes"] + row["cache_bytes"])
    rows.append(row)
    common.record(args.out, {k: v for k, v in row.items() if k != "by_op"})

  scale, unit = (1e9, "GB") if not args.tiny else (1e6, "MB")
  print(f"\nXLA's program of one decode-loop iteration for {target.label} "
        f"({devices[0].device_kind}), {shape.preset}, {PROMPT}+{NEW} cache "
        f"slots; a model, not a measurement:\n")
  head = (f"{'loop':>18}{'batch':>6}{unit + ' moved':>11}{'weights+cache':>15}"
          f"{'x ideal':>9}{'roofline tok/s':>16}{'ideal tok/s':>13}")
  print(head + "\n" + "-" * len(head))
  for r in rows:
    ideal = r["weight_bytes"] + r["cache_bytes"]
    tok = lambda k: f"{r[k]:>{16 if k.startswith('roof') else 13},.0f}" if (
        k in r) else f"{'-':>{16 if k.startswith('roof') else 13}}"
    loop = ("continuous" if "_continuous" in r["impl"] else "one batch") + (
        " +watch" if r["impl"].endswith("+watch") else "")
    print(f"{loop:>18}{r['batch']:>6}{r['step_bytes'] / scale:>11.2f}"
          f"{ideal / scale:>15.2f}{r['step_bytes'] / ideal:>9.2f}"
          f"{tok('roofline_tokens_per_s')}{tok('ideal_tokens_per_s')}")
  for r in rows:
    if "by_op" in r:
      print(f"\n{r['impl']}, batch {r['batch']}, one decode-loop iteration "
            f"by op:\n"
            f"{r['by_op']}")


if __name__ == "__main__":
  main()
