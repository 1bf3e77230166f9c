r"""Training steps with the logits at the target positions only, or at all.

  python -m benchmarks.verifier_step            # the 270M comparison's runs
  python -m benchmarks.verifier_step --tiny     # tiny model on a CPU, seconds
  python -m benchmarks.verifier_step --batch=4  # Gemma 3 270M on a CPU

With Gemma's 256K vocabulary the output projection of every position is
most of a small model's step, and no loss reads a prompt position's logits.
`loss_positions=K` (configs/common.py, `losses.token_stats_from_hidden`)
projects only each row's first K target positions whenever every row has at
most K. This times our full train step (AdamW, clipping, bf16 compute, the
270M comparison's remat and 32-position loss chunks) for each method with
K = 0 (every position) and K = the configs' default (-1), on synthetic rows
shaped like the comparison's last-letter runs:
  genrm  direct GenRM: examples of a third to two thirds of the row packed
         together, each with two targets (verdict + EOS); K = 16
  dpo    pairs of a 60% prompt and a 30% solution; K = half the row
  solve  generator SFT: one example a row, a 55% prompt, a 26% solution
         (last-letter: 141 and 66 Gemma tokens of 256); K = half the row
  cot    GenRM-CoT at twice the row length: a 45% prompt, a 45% rationale;
         K = half the row
The loss of one more step is printed for each row: equal, up to rounding,
within a method.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402

# The 270M comparison's rows (configs/pipeline/paper_270m.py, last_letter:
# 32 x 256; DPO 16 pairs; GenRM-CoT 32 x 512).
FULL = common.Shape("gemma3_270m", 32, 256)
# A vocabulary of LARGE_VOCAB entries, so that -1 turns the projection on.
TINY = common.Shape("tiny", 4, 64, (("num_embed", 32768),))
METHODS = ("genrm", "dpo", "solve", "cot")
# method -> (row length / the shape's, prompt share, target share) of the
# one-example-a-row methods.
SINGLE = {"solve": (1, 0.55, 0.26), "cot": (2, 0.45, 0.45)}


def genrm_batch(np, batch: int, length: int, vocab: int, seed: int = 0):
  """Packed direct-GenRM rows: examples of length/3 to 2*length/3 tokens,
  BOS first, targets the last two (verdict + EOS)."""
  rng = np.random.default_rng(seed)
  tokens = rng.integers(3, vocab, size=(batch, length)).astype(np.int32)
  seg = np.zeros((batch, length), np.int32)
  pos = np.zeros((batch, length), np.int32)
  weights = np.zeros((batch, length), np.int32)
  for b in range(batch):
    start, s = 0, 1
    while True:
      n = int(rng.integers(length // 3, 2 * length // 3 + 1))
      if start + n > length:
        break
      seg[b, start:start + n] = s
      pos[b, start:start + n] = np.arange(n)
      tokens[b, start] = 2
      weights[b, start + n - 2:start + n] = 1
      start, s = start + n, s + 1
  tokens[seg == 0] = 0
  return {"decoder_target_tokens": tokens, "decoder_loss_weights": weights,
          "decoder_segment_ids": seg, "decoder_positions": pos}


def single_batch(np, batch: int, length: int, vocab: int, prompt: float,
                 target: float, seed: int = 0):
  """One example a row: BOS + a `prompt` share of the row, then a `target`
  share (the targets), then padding."""
  rng = np.random.default_rng(seed)
  p, t = int(length * prompt), int(length * target)
  tokens = np.zeros((batch, length), np.int32)
  tokens[:, :p + t] = rng.integers(3, vocab, (batch, p + t))
  tokens[:, 0] = 2
  weights = np.zeros((batch, length), np.int32)
  weights[:, p:p + t] = 1
  seg = (tokens != 0).astype(np.int32)
  return {"decoder_target_tokens": tokens, "decoder_loss_weights": weights,
          "decoder_segment_ids": seg,
          "decoder_positions": np.where(seg > 0, np.arange(length), 0).astype(np.int32)}


def dpo_batch(np, batch: int, length: int, vocab: int, seed: int = 0):
  """Chosen/rejected rows: a 60% prompt, a 30% solution (the targets)."""
  rng = np.random.default_rng(seed)
  prompt, solution = int(length * 0.6), int(length * 0.3)
  out = {}
  for name in ("chosen", "rejected"):
    tokens = np.zeros((batch, length), np.int32)
    tokens[:, :prompt + solution] = rng.integers(3, vocab,
                                                 (batch, prompt + solution))
    tokens[:, 0] = 2
    w = np.zeros((batch, length), np.int32)
    w[:, prompt:prompt + solution] = 1
    out[f"{name}_tokens"] = tokens
    out[f"{name}_loss_weights"] = w
    out[f"{name}_segment_ids"] = (tokens != 0).astype(np.int32)
  return out


def most_targets(np, batch) -> int:
  """Most weighted targets in one row (the shifted weights' count)."""
  w = [v for k, v in batch.items() if k.endswith("loss_weights")]
  return int(max((x[:, 1:] > 0).sum(axis=1).max() for x in w))


def run_row(shape: common.Shape, method: str, loss_positions: int,
            steps: int) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from configs import common as configs  # pylint: disable=g-import-not-at-top
  from genrm_jax import optimizer as optimizer_lib  # pylint: disable=g-import-not-at-top
  from genrm_jax import train  # pylint: disable=g-import-not-at-top
  from genrm_jax.models import gemma  # pylint: disable=g-import-not-at-top

  cfg = configs.get_config("last_letter", method)
  length = shape.seq_len * (SINGLE[method][0] if method in SINGLE else 1)
  cfg.data.seq_len = length
  cfg.model.preset = shape.preset
  cfg.model.remat_policy = "dots_with_no_batch_dims_saveable"
  mcfg = train.model_config(cfg).replace(**shape.model_overrides())
  model = gemma.Transformer(mcfg)
  tx, schedule = optimizer_lib.make_optimizer(cfg)
  init = gemma.init_params(mcfg, jax.random.PRNGKey(0))
  state = jax.jit(lambda p: train._state_from_model_params(  # pylint: disable=protected-access
      p, mcfg, tx, cfg.method))(init)
  if method in SINGLE:
    host = single_batch(np, shape.batch, length, mcfg.num_embed,
                        *SINGLE[method][1:])
  else:
    make = genrm_batch if method == "genrm" else dpo_batch
    host = make(np, shape.batch, length, mcfg.num_embed)
  cfg.loss_positions = loss_positions
  k = train.loss_positions(cfg, mcfg.num_embed)
  batch = jax.device_put(host)
  step = jax.jit(functools.partial(
      train.train_step, model=model, tx=tx, schedule=schedule, method=cfg.method,
      beta=0.1, yes_id=5, no_id=6, accum_steps=1, loss_chunk_size=32,
      loss_positions=k, cast_params_once=True), donate_argnums=(0,))
  first, secs, one, _ = common.train_step_timer(
      step, state, batch, init if method == "dpo" else None, steps)
  rows = np.concatenate([v for name, v in host.items() if name.endswith("segment_ids")])
  tokens = int((rows != 0).sum())
  return dict(benchmark="verifier_step", method=method, preset=shape.preset,
              batch=shape.batch, seq_len=length, loss_positions=k,
              most_targets=most_targets(np, host), step_s=secs,
              first_call_s=first, tokens_per_s=tokens / secs,
              loss=float(one()), **common.device_info())


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--tiny", action="store_true")
  parser.add_argument("--methods", default=",".join(METHODS))
  parser.add_argument("--loss_positions", default="0,-1",
                      help="comma list, one row per method each: 0 = every "
                      "position, -1 = the configs' default for the method "
                      "(train.loss_positions), K > 0 = K")
  parser.add_argument("--batch", type=int, default=0, help="rows (0: the shape's)")
  parser.add_argument("--seq_len", type=int, default=0)
  parser.add_argument("--steps", type=int, default=5)
  common.add_run_args(parser, timeout=600)
  args = parser.parse_args()
  shape = TINY if args.tiny else FULL
  shape = common.Shape(shape.preset, args.batch or shape.batch,
                       args.seq_len or shape.seq_len, shape.overrides)

  if args.worker:  # one row, in this process: "method:K"
    method, k = args.worker.split(":")
    print(json.dumps(run_row(shape, method, int(k), args.steps)))
    return

  rows = []
  for method in args.methods.split(","):
    base = None
    for k in (int(x) for x in args.loss_positions.split(",")):
      cmd = ["-m", "benchmarks.verifier_step", f"--worker={method}:{k}",
             f"--steps={args.steps}", f"--batch={shape.batch}",
             f"--seq_len={shape.seq_len}"] + (["--tiny"] if args.tiny else [])
      row = common.run_subprocess(cmd, args.timeout)
      row.setdefault("benchmark", "verifier_step")
      row.setdefault("method", method)
      if "step_s" in row:
        base = base or row
        row["speedup"] = base["step_s"] / row["step_s"]
      rows.append(row)
      common.record(args.out, row)
  common.print_table(
      f"train step by method, {shape.preset} batch {shape.batch} x "
      f"{shape.seq_len} ({rows[0].get('device', '?')})", rows,
      ["method", "seq_len", "loss_positions", "most_targets", "tokens_per_s", "step_s",
       "first_call_s", "speedup", "loss", "error"])
  for r in rows:
    if "error" in r:
      print(f"{r['method']}: {r['error']}\n{r.get('stderr_tail', '')}")


if __name__ == "__main__":
  main()
