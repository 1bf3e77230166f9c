r"""What the train step's GPU program costs, by XLA's own model, before the GPU.

  python -m benchmarks.train_step_cost               # Gemma-2B, 8 x 1024, H100
  python -m benchmarks.train_step_cost --variants=ours,ours_cudnn,official
  python -m benchmarks.train_step_cost --tiny --topology=cpu:1   # seconds
  python -m benchmarks.train_step_cost --variants=ours --by_op=20  # where
                                                  # the bytes go, op by op

Compiles the configurations `benchmarks/train_step.py` times for
`--topology` (an H100 by default, through the offline compile check: the
CUDA plugin's deviceless compiler, `pip install -e '.[gpu_aot]'`; no GPU
needed), with the layers unrolled so that XLA's cost analysis counts every
layer, and prints for each: XLA's FLOPs and bytes accessed (each kernel's
operands and outputs), the two roofline bounds (FLOPs / peak bf16,
bytes / HBM bandwidth), the MFU ceiling they imply (PaLM FLOPs over the
larger bound), and XLA's memory plan. cuDNN's fused attention is a custom
call XLA counts no FLOPs for; its rows add PaLM's attention term instead.

Variants (`--variants`, a comma list):
  ours              our full step as train_step.py runs it: AdamW, clipping,
                    fp32 params cast to bf16 once a step, bf16 compute,
                    einsum attention, remat dots_with_no_batch_dims_saveable,
                    whole logits
  ours_cudnn        ... with cuDNN fused attention (GPU targets)
  ours_remat_full   ... remat 'full';  ours_remat_none: no remat
  ours_mu_bf16      ... AdamW's first moment in bf16
  ours_cast_each_use  ... weights cast to bf16 at each use, not once a step
  ours_lora         ... LoRA rank 16 on every projection, the rest frozen
  official          the official gemma Transformer's fwd + bwd (no
                    optimizer), bf16 params, as train_step.py times it

A model, not a measurement: no caches, no overlap, no kernel efficiency.
Compare rows with each other; measure with benchmarks/train_step.py. Loops
other than the layers' count once, which is why the chunked cross-entropy
(`loss_chunk_size`, a loop over chunks) has no row here.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402

# name -> overrides of the `ours` row (config keys of configs/common.py).
OURS = {
    "ours": {},
    "ours_cudnn": {"model.attention_impl": "cudnn"},
    "ours_remat_full": {"model.remat_policy": "full"},
    "ours_remat_none": {"model.remat_policy": "none"},
    "ours_mu_bf16": {"optimizer.mu_dtype": "bfloat16"},
    "ours_cast_each_use": {"cast_params_once": False},
    # As train_step.py's LoRA rows and the README's one-GPU recipe: a bf16 base.
    "ours_lora": {"model.lora_rank": 16, "model.param_dtype": "bfloat16"},
}
VARIANTS = (*OURS, "official")
DEFAULT = ("ours,ours_cudnn,ours_cast_each_use,ours_remat_full,ours_remat_none,"
           "ours_mu_bf16,official")


def ours_config(shape: common.Shape, overrides: dict):
  """train_step.py's `ours` configuration, layers unrolled, plus overrides."""
  from configs import common as configs  # pylint: disable=g-import-not-at-top
  config = configs.get_config("gsm8k", "solve")
  with config.unlocked():
    config.model.preset = shape.preset
    config.batch_size, config.data.seq_len = shape.batch, shape.seq_len
    config.model.remat_policy = "dots_with_no_batch_dims_saveable"
    config.loss_chunk_size = 0
    for key, value in shape.model_overrides().items():
      config.model[key] = value
  config.update_from_flattened_dict(overrides)
  return config


def compile_ours(shape, overrides, target, devices):
  from genrm_jax import compile_check  # pylint: disable=g-import-not-at-top
  from genrm_jax import train  # pylint: disable=g-import-not-at-top
  config = ours_config(shape, overrides)
  mcfg = train.model_config(config, platform="gpu" if target.gpu else "cpu")
  with config.unlocked():  # every layer in the count (see xla_cost)
    config.model.scan_unroll = mcfg.num_layers
  compiled, info = compile_check.compile_train_step(config, devices,
                                                    target.gpu)
  return compiled, info["num_params"], mcfg


def compile_official(shape, devices):
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from benchmarks import train_step  # pylint: disable=g-import-not-at-top
  mcfg, model, init = train_step.official_model(shape)
  on_device = jax.sharding.SingleDeviceSharding(devices[0])
  abstract = lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype,
                                            sharding=on_device)
  params = jax.tree.map(abstract, jax.eval_shape(init, jax.random.PRNGKey(0)))
  batch = jax.tree.map(abstract, train_step._packed_batch(  # pylint: disable=protected-access
      np, shape, mcfg.num_embed))
  compiled = jax.jit(jax.value_and_grad(train_step.official_loss(model))
                     ).lower(params, batch).compile()
  return compiled, sum(int(np.prod(x.shape))
                       for x in jax.tree.leaves(params)), mcfg


def cost_row(variant: str, shape, target, devices, by_op: int = 0) -> dict:
  from genrm_jax import compile_check  # pylint: disable=g-import-not-at-top
  start = time.perf_counter()
  if variant == "official":
    compiled, num_params, mcfg = compile_official(shape, devices)
  else:
    compiled, num_params, mcfg = compile_ours(shape, OURS[variant], target,
                                              devices)
  seconds = time.perf_counter() - start
  cost = compile_check.xla_cost(compiled)
  memory = compile_check.memory_report(compiled)
  tokens = shape.batch * shape.seq_len
  flops_params = num_params
  if mcfg.lora_rank:  # as train_step.py: 4N of the frozen base, adapters left out
    from genrm_jax import lora  # pylint: disable=g-import-not-at-top
    from genrm_jax.models import gemma  # pylint: disable=g-import-not-at-top
    flops_params = gemma.count_params(gemma.abstract_params(lora.base_config(mcfg)))
  model_flops = tokens * common.train_flops_per_token(
      flops_params, mcfg.num_layers, mcfg.num_heads, mcfg.head_dim,
      shape.seq_len, weight_grads=not mcfg.lora_rank)
  row = dict(benchmark="train_step_cost", impl=variant, preset=shape.preset,
             batch=shape.batch, seq_len=shape.seq_len, params=num_params,
             topology=target.label, device=devices[0].device_kind,
             xla_flops=cost["flops"], xla_bytes=cost["bytes accessed"],
             model_flops=model_flops, plan_bytes=memory["total_bytes"],
             hbm_bytes=target.hbm_bytes, compile_s=round(seconds, 1),
             **compile_check.cudnn_attention_calls(compiled.as_text()))
  if by_op:  # benchmarks.hlo_ops: the bytes by kernel, grouped by op
    from benchmarks import hlo_ops  # pylint: disable=g-import-not-at-top
    row["by_op"] = hlo_ops.table(hlo_ops.program_ops(compiled.as_text()),
                                 by_op)
  if row["cudnn_attention_fwd"]:
    # cuDNN's kernels are custom calls, whose FLOPs XLA does not count: add
    # what they compute, PaLM's attention term (fwd + bwd, no recompute).
    row["xla_flops"] += tokens * 12.0 * mcfg.num_layers * mcfg.num_heads * (
        mcfg.head_dim * shape.seq_len)
  peak = common.peak_tflops(devices[0].device_kind)
  if target.gpu and peak:
    compute_s = row["xla_flops"] / (peak * 1e12)
    memory_s = cost["bytes accessed"] / target.gpu.memory_bandwidth
    row.update(compute_ms=1e3 * compute_s, memory_ms=1e3 * memory_s,
               mfu_ceiling=model_flops / (peak * 1e12) /
               max(compute_s, memory_s))
  return row


def _table(rows: list[dict]) -> str:
  ok = [r for r in rows if "error" not in r]
  big = ok and max(r["xla_flops"] for r in ok) >= 1e12  # TFLOP/GB, else G/MB
  flop_unit, byte_unit, plan_unit = (
      ("TFLOP", 1e12), ("GB", 1e9), ("GiB", 2**30)) if big else (
          ("GFLOP", 1e9), ("MB", 1e6), ("MiB", 2**20))
  head = (f"{'variant':<20}{'XLA ' + flop_unit[0]:>10}"
          f"{byte_unit[0] + ' moved':>10}{'compute ms':>12}{'memory ms':>11}"
          f"{'MFU ceiling':>13}{'plan ' + plan_unit[0]:>10}")
  lines = [head, "-" * len(head)]
  for r in rows:
    if "error" in r:
      lines.append(f"{r['impl']:<20}  error: {r['error'][:70]}")
      continue
    bound = lambda k, f, w: format(r[k], f) if k in r else f"{'-':>{w}}"
    lines.append(
        f"{r['impl']:<20}{r['xla_flops'] / flop_unit[1]:>10.2f}"
        f"{r['xla_bytes'] / byte_unit[1]:>10.1f}"
        f"{bound('compute_ms', '>12.1f', 12)}{bound('memory_ms', '>11.1f', 11)}"
        f"{bound('mfu_ceiling', '>13.0%', 13)}"
        f"{r['plan_bytes'] / plan_unit[1]:>10.2f}")
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--tiny", action="store_true")
  parser.add_argument("--topology", default="h100",
                      help="a compile-check target: h100, h200, a100, cpu:1")
  parser.add_argument("--variants", default=DEFAULT,
                      help=f"comma list of {', '.join(VARIANTS)}")
  parser.add_argument("--by_op", type=int, default=0,
                      help="also print each program's N largest ops by bytes")
  parser.add_argument("--out", default=common.default_out())
  args = parser.parse_args()
  variants = args.variants.split(",")
  unknown = [v for v in variants if v not in VARIANTS]
  if unknown:
    parser.error(f"--variants: unknown {unknown}; expected {VARIANTS}")
  shape = common.TINY if args.tiny else common.FULL

  from genrm_jax import compile_check  # pylint: disable=g-import-not-at-top
  target = compile_check.parse_topology(args.topology)
  devices = compile_check.topology_devices(target)[:1]  # one device's program
  info = common.device_info()
  rows = []
  for variant in variants:
    try:
      row = cost_row(variant, shape, target, devices, args.by_op)
    except Exception as e:  # pylint: disable=broad-except
      row = dict(benchmark="train_step_cost", impl=variant,
                 topology=target.label, error=f"{type(e).__name__}: {e}")
    row.update(host=info["host"], jax=info.get("jax"))
    rows.append(row)
    common.record(args.out, {k: v for k, v in row.items() if k != "by_op"})
    print(f"compiled {variant} in {row.get('compile_s', '-')} s", flush=True)
  print(f"\nXLA's cost model of the step for {target.label} "
        f"({devices[0].device_kind}), {shape.preset}, batch {shape.batch} x "
        f"{shape.seq_len}; a model, not a measurement:\n")
  print(_table(rows))
  for r in rows:
    if "by_op" in r:
      print(f"\n{r['impl']}, by op:\n{r['by_op']}")


if __name__ == "__main__":
  main()
