r"""Training-step throughput: ours vs the official gemma code vs HF transformers.

  python -m benchmarks.train_step            # Gemma-2B shape, batch 8 x 1024
  python -m benchmarks.train_step --tiny     # tiny model on a CPU, seconds
  python -m benchmarks.train_step --impls=ours --loss_chunk=0,512

Each implementation runs in its own process (JAX preallocates GPU memory):
* ours: the full training step of `genrm_jax.train` (AdamW with warmup and
  cosine, grad-norm clipping, packed targets, fp32 params, bf16 compute);
  `--loss_chunk=N` (comma list: one row each) computes the cross-entropy in
  sequence chunks of N positions (`losses.compute_loss(loss_chunk_size=N)`,
  no fp32 [B, L, V] logits buffer), 0 = the full logits; `--attention=IMPL`
  (comma list) picks `TransformerConfig.attention_impl`: einsum (fp32
  scores), cudnn (fused flash attention, NVIDIA GPUs), xla (its portable
  reference); `--scan_unroll=N` (comma list) unrolls the layer scan N
  layers an iteration, `all` every layer (no loop); `--lora_rank=R` (comma
  list, 0 = full fine-tuning) trains rank-R adapters on every projection
  beside a frozen bf16 base, the README's one-GPU recipe (MFU from 4N, not
  6N: the frozen weights get no gradient);
* official: the official `gemma` package's Transformer (legacy modules),
  forward + backward of the same CE loss (no optimizer), bf16 params;
* hf: transformers' GemmaForCausalLM (sdpa), forward + backward, bf16.
Prints tokens/s, MFU (PaLM formula) and our speed-up over each.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402


def _packed_batch(np, shape, vocab: int, seed: int = 0):
  """Random tokens, two packed segments a row, loss on each second half."""
  rng = np.random.default_rng(seed)
  b, l = shape.batch, shape.seq_len
  tokens = rng.integers(3, vocab, size=(b, l)).astype(np.int32)
  half = l // 2
  segment_ids = np.where(np.arange(l) < half, 1, 2)[None].repeat(b, 0)
  positions = np.where(np.arange(l) < half, np.arange(l),
                       np.arange(l) - half)[None].repeat(b, 0)
  tokens[:, 0] = tokens[:, half] = 2  # BOS
  weights = ((positions >= half // 2)).astype(np.int32)
  return {"decoder_target_tokens": tokens,
          "decoder_loss_weights": weights,
          "decoder_segment_ids": segment_ids.astype(np.int32),
          "decoder_positions": positions.astype(np.int32)}


def run_ours(shape: common.Shape, steps: int, remat: str,
             loss_chunk: int = 0, attention: str = "einsum",
             profile_dir: str = "", scan_unroll: str = "1",
             lora_rank: int = 0) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from configs import common as configs  # pylint: disable=g-import-not-at-top
  from genrm_jax import lora  # pylint: disable=g-import-not-at-top
  from genrm_jax import optimizer as optimizer_lib  # pylint: disable=g-import-not-at-top
  from genrm_jax import train  # pylint: disable=g-import-not-at-top
  from genrm_jax.models import gemma  # pylint: disable=g-import-not-at-top

  cfg = configs.get_config("gsm8k", "solve")
  cfg.model.preset = shape.preset
  cfg.model.remat_policy = remat
  for k, v in shape.model_overrides().items():
    with cfg.unlocked():
      cfg.model[k] = v
  # The shape's overrides again: a train config drops None values (the tiny
  # shape's "no attention soft-cap").
  mcfg = train.model_config(cfg).replace(**shape.model_overrides(),
                                         attention_impl=attention)
  mcfg = mcfg.replace(scan_unroll=mcfg.num_layers if scan_unroll == "all"
                      else int(scan_unroll))
  if lora_rank:  # adapters fp32 whatever param_dtype is (genrm_jax/lora.py)
    mcfg = mcfg.replace(lora_rank=lora_rank, param_dtype="bfloat16")
  model = gemma.Transformer(mcfg)
  tx, schedule = optimizer_lib.make_optimizer(cfg)
  state = jax.jit(lambda r: train._state_from_model_params(  # pylint: disable=protected-access
      gemma.init_params(mcfg, r), mcfg, tx, "solve"))(jax.random.PRNGKey(0))
  batch = jax.device_put(_packed_batch(np, shape, mcfg.num_embed))
  step = jax.jit(functools.partial(
      train.train_step, model=model, tx=tx, schedule=schedule,
      method="solve", beta=0.1, yes_id=None, no_id=None, accum_steps=1,
      loss_chunk_size=loss_chunk,
      cast_params_once=bool(cfg.cast_params_once)), donate_argnums=(0,))
  first, secs, one, holder = common.train_step_timer(step, state, batch, None,
                                                     steps)
  profile = common.profile_row(
      profile_dir, f"ours_{attention}_chunk{loss_chunk}_unroll{scan_unroll}"
      f"_lora{lora_rank}",
      one, jax.block_until_ready)
  # The loss of one more step (every step trains on the same batch): equal,
  # up to rounding, with and without --loss_chunk.
  return _result("ours", shape, mcfg, first, secs, common.device_info(),
                 remat=remat, loss_chunk=loss_chunk, attention=attention,
                 scan_unroll=scan_unroll, lora_rank=lora_rank,
                 trainable_params=lora.count(holder["state"]["params"])[0]
                 if lora_rank else None,
                 param_dtype=mcfg.param_dtype,
                 loss=float(one()),
                 peak_bytes=common.peak_device_bytes(), **profile)


def official_model(shape: common.Shape):
  """(our config, the official gemma Transformer of the same shape, an init
  function rng -> its bf16 params in the official nested layout)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from gemma import transformer as official  # pylint: disable=g-import-not-at-top
  from genrm_jax.models import checkpoints, gemma  # pylint: disable=g-import-not-at-top
  from tests import gemma_reference  # pylint: disable=g-import-not-at-top

  mcfg = gemma.get_config(shape.preset, dtype="bfloat16",
                          **shape.model_overrides())
  model = official.Transformer(gemma_reference.official_config(mcfg))

  def init(rng):
    return jax.tree.map(lambda x: x.astype(jnp.bfloat16),
                        checkpoints.stacked_to_nested(
                            gemma.init_params(mcfg, rng)))

  return mcfg, model, init


def official_loss(model):
  """The official Transformer's mean CE over a packed batch (the fields of
  `_packed_batch`): its segment- and causal mask, log-softmax in fp32."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

  def loss(params, batch):
    tokens = batch["decoder_target_tokens"]
    seg = batch["decoder_segment_ids"]
    length = tokens.shape[1]
    causal = jnp.tril(jnp.ones((length, length), bool))
    mask = (seg[:, :, None] == seg[:, None, :]) & causal[None]
    logits, _ = model.apply({"params": params}, tokens,
                            batch["decoder_positions"], None, mask)
    logp = jax.nn.log_softmax(logits[:, :-1].astype(jnp.float32), -1)
    ll = jnp.take_along_axis(logp, tokens[:, 1:, None], -1)[..., 0]
    weights = batch["decoder_loss_weights"][:, 1:].astype(jnp.float32)
    return -jnp.sum(ll * weights) / jnp.sum(weights)

  return loss


def run_official(shape: common.Shape, steps: int, profile_dir: str = "") -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top

  mcfg, model, init = official_model(shape)
  params = jax.jit(init)(jax.random.PRNGKey(0))
  batch = {k: jnp.asarray(v) for k, v in
           _packed_batch(np, shape, mcfg.num_embed).items()}
  grad = jax.jit(jax.value_and_grad(official_loss(model)))
  one = lambda: grad(params, batch)[0]
  first, secs = common.time_it(one, jax.block_until_ready, 2, steps)
  profile = common.profile_row(profile_dir, "official", one,
                               jax.block_until_ready)
  return _result("official", shape, mcfg, first, secs, common.device_info(),
                 peak_bytes=common.peak_device_bytes(), **profile)


def run_hf(shape: common.Shape, steps: int) -> dict:
  import numpy as np  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  from genrm_jax.models import gemma  # pylint: disable=g-import-not-at-top

  mcfg = gemma.get_config(shape.preset, **shape.model_overrides())
  model, device = common.hf_gemma(mcfg, shape.seq_len)
  model.train()
  batch = _packed_batch(np, shape, mcfg.num_embed)
  tokens = torch.as_tensor(batch["decoder_target_tokens"], device=device,
                           dtype=torch.long)
  labels = tokens.clone()
  labels[torch.as_tensor(batch["decoder_loss_weights"], device=device) == 0] = -100

  def one():
    model.zero_grad(set_to_none=True)
    out = model(input_ids=tokens, labels=labels)
    out.loss.backward()
    return out.loss

  sync = (lambda _: torch.cuda.synchronize()) if device == "cuda" else (
      lambda _: None)
  first, secs = common.time_it(one, sync, 2, steps)
  return _result("hf", shape, mcfg, first, secs, common.torch_device_info())


def _result(impl, shape, mcfg, first, secs, info, **extra) -> dict:
  from genrm_jax.models import gemma  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from genrm_jax import lora  # pylint: disable=g-import-not-at-top
  base = lora.base_config(mcfg)
  params = jax.tree.map(lambda b: b.value, gemma.abstract_params(base),
                        is_leaf=lambda x: hasattr(x, "names"))
  n = gemma.count_params(params)  # the model's weights, adapters left out
  tokens = shape.batch * shape.seq_len
  tok_s = tokens / secs
  flops = common.train_flops_per_token(n, mcfg.num_layers, mcfg.num_heads,
                                       mcfg.head_dim, shape.seq_len,
                                       weight_grads=not mcfg.lora_rank)
  peak = common.peak_tflops(str(info.get("device", "")))
  return dict(benchmark="train_step", impl=impl, preset=shape.preset,
              batch=shape.batch, seq_len=shape.seq_len, params=n,
              step_s=secs, first_call_s=first, tokens_per_s=tok_s,
              flops_per_token=flops, tflops=tok_s * flops / 1e12,
              mfu=(tok_s * flops / 1e12 / peak) if peak else None, **info,
              **extra)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--tiny", action="store_true")
  parser.add_argument("--impls", default="ours,official,hf")
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--remat", default="dots_with_no_batch_dims_saveable")
  parser.add_argument("--loss_chunk", default="0",
                      help="ours: cross-entropy sequence chunk (positions); "
                      "a comma list runs one 'ours' row per value; 0 = off")
  parser.add_argument("--profile_dir", default="",
                      help="ours / official: trace 3 more steps into "
                      "DIR/<row>/ (jax.profiler, perfetto JSON) and add the "
                      "top device ops to the row (benchmarks.trace_summary)")
  parser.add_argument("--attention", default="einsum",
                      help="ours: attention_impl, a comma list (one 'ours' "
                      "row each): einsum | cudnn | xla")
  parser.add_argument("--scan_unroll", default="1",
                      help="ours: layers per scan iteration, a comma list "
                      "(one 'ours' row each); 'all': no loop")
  parser.add_argument("--lora_rank", default="0",
                      help="ours: LoRA rank, a comma list (one 'ours' row "
                      "each); 0 = full fine-tuning")
  common.add_run_args(parser, timeout=300)
  args = parser.parse_args()
  shape = common.TINY if args.tiny else common.FULL

  chunks = [int(c) for c in args.loss_chunk.split(",")]
  attentions = args.attention.split(",")
  unrolls = args.scan_unroll.split(",")
  ranks = [int(r) for r in args.lora_rank.split(",")]

  if args.worker:  # one implementation, in this process
    fn = {"ours": functools.partial(run_ours, remat=args.remat,
                                    loss_chunk=chunks[0],
                                    attention=attentions[0],
                                    profile_dir=args.profile_dir,
                                    scan_unroll=unrolls[0],
                                    lora_rank=ranks[0]),
          "official": functools.partial(run_official,
                                        profile_dir=args.profile_dir),
          "hf": run_hf}[args.worker]
    print(json.dumps(fn(shape, args.steps)))
    return

  rows = []
  for impl in args.impls.split(","):
    variants = [(c, a, u, r) for r in ranks for a in attentions for u in unrolls
                for c in chunks]
    for chunk, attention, unroll, rank in (variants if impl == "ours"
                                           else [(0, "", "1", 0)]):
      cmd = ["-m", "benchmarks.train_step", f"--worker={impl}",
             f"--steps={args.steps}", f"--remat={args.remat}",
             f"--loss_chunk={chunk}", f"--attention={attention or 'einsum'}",
             f"--profile_dir={args.profile_dir}", f"--scan_unroll={unroll}",
             f"--lora_rank={rank}"] + (["--tiny"] if args.tiny else [])
      row = common.not_installed(impl) or common.run_subprocess(cmd, args.timeout)
      row.setdefault("impl", impl)
      row.setdefault("benchmark", "train_step")
      if impl == "ours":
        row.setdefault("loss_chunk", chunk)
        row.setdefault("attention", attention)
        row.setdefault("scan_unroll", unroll)
        row.setdefault("lora_rank", rank)
      rows.append(row)
      common.record(args.out, row)
  # The speed-ups are those of the first "ours" row (the first --loss_chunk,
  # --attention, --scan_unroll and --lora_rank).
  ours = next((r for r in rows if r["impl"] == "ours" and "tokens_per_s" in r),
              None)
  for r in rows:
    if ours and "tokens_per_s" in r:
      r["ours_speedup"] = ours["tokens_per_s"] / r["tokens_per_s"]
    if r.get("peak_bytes"):
      r["peak_gib"] = r["peak_bytes"] / 2**30
  common.print_table(
      f"train step, {shape.preset} batch {shape.batch} x {shape.seq_len} "
      f"({rows[0].get('device', '?')})", rows,
      ["impl", "attention", "scan_unroll", "loss_chunk", "lora_rank", "tokens_per_s", "mfu",
       "step_s", "first_call_s",
       "peak_gib", "ours_speedup", "error"])
  for r in rows:
    if "error" in r:
      print(f"{r['impl']}: {r['error']}\n{r.get('stderr_tail', '')}")
    common.print_profile(f"{r['impl']} {r.get('attention') or ''}", r)


if __name__ == "__main__":
  main()
