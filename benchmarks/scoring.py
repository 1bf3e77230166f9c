r"""Verifier scoring throughput: direct GenRM and GenRM-CoT on GSM8K-shaped pools.

  python -m benchmarks.scoring            # Gemma-2B shape, bf16, one GPU
  python -m benchmarks.scoring --tiny     # tiny model on a CPU, seconds

Random weights and random token ids; the lengths are GSM8K's (see
`GSM8K_TOKENS`), so the shapes, buckets and FLOPs are those of a real pool.
* direct: `--questions` problems x `--n` candidates (N=16); p(" Yes") after
  the direct verification prompt from one teacher-forced pass per candidate
  (`scoring.ContinuationScorer.score`, what `scoring.yes_probabilities` and
  the `genrm` verifier run after tokenising), with the problem's header +
  question shared across its N candidates (`prefixes=`, the verifier's
  `share_prefix=True`, default) and without (`prefixes=None`). Reports
  candidates/s, the prefill tokens run, the FLOPs of the prefill passes
  (real tokens only, and as executed with bucket and batch padding) and the
  unshared / shared ratios; also the largest |log p| difference between the
  two paths (they compute the same numbers).
* cot: `--cot_candidates` candidates x K=8 rationales (`--k`), as the
  `genrm_cot` verifier runs them (`verifiers._Runner._cot`, on token ids):
  the `Sampler` with per-row keys, temperature 0.7 and repeated prompts
  prefilled once (`dedupe_prompts`). `--rationale_lengths=gsm8k` (default):
  each rationale stops at a length drawn from GSM8K's (`GSM8K_TOKENS`,
  `row_max_new_tokens`), as real ones stop at different steps; `fixed`:
  every one runs `--rationale_tokens` new tokens. `--cot_batching=static`:
  work items go `--cot_batch` at a time, each call one sampler batch that
  decodes until its longest rationale ends; `continuous` (the verifier's
  default): `score_store`'s chunks of 8 x `--cot_batch` items, each
  decoded `--cot_batch` rows at a time with continuous batching (a stopped
  row's slot takes the next item). `--cot_readout=fused` (the verifier's
  default, `fused_readout=True`): p(" Yes") read off the sampler's last
  step (`readout_ids`), as if each rationale had ended with its
  verification question; `pass`: the question appended and p(" Yes") read
  by a second, teacher-forced pass with the candidate's prompt shared
  across its K rationales. Reports rationales/s, new tokens/s (tokens
  kept), the sampling / readout split, the decode steps run and the share
  of their `--cot_batch` rows that made a kept token (`busy_rows`).
Every figure is the second pass over the same pool (the first compiles).
`--count_only --modes=direct` counts the direct pool's prefill tokens and
FLOPs with the model calls stubbed out (shapes only: any machine, a second);
`--spread=0` gives every question / solution the median length (fewest
length buckets, so fewest compiles: the test runs it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402

# GSM8K token lengths, deciles (0, 10, ..., 100%), measured with the Gemma 3
# SentencePiece tokenizer (262K pieces; Gemma 1's 256K one splits English
# alike) on the paper's released GSM8K verification data (validation):
# questions (128), candidate solutions (212), CoT rationales (259).
GSM8K_TOKENS = {
    "question": (24, 37, 41, 46, 49, 54, 60, 68, 76, 93, 140),
    "solution": (17, 66, 77, 90, 100, 110, 125, 145, 167, 198, 386),
    "rationale": (40, 143, 166, 188, 205, 233, 255, 278, 328, 372, 487),
}
# Fixed parts of the prompts (genrm_jax/prompts.py), same tokenizer: BOS +
# header + "Q: " + "\nA: Let's think step by step.\n"; "\nVerification: Is
# the answer correct (Yes/No)?"; "\nVerification: Let's verify step by
# step.\n"; and the verification question a rationale ends with.
TEMPLATE_TOKENS = {"header": 120, "direct_suffix": 12, "cot_suffix": 12,
                   "verify_question": 11}


def _settings(tiny: bool) -> dict:
  if tiny:  # lengths / 8 (few length buckets, few compiles): a CPU
    return dict(preset="tiny", overrides=(("num_embed", 300),),
                dtype="float32", scale=0.125, questions=4, cot_candidates=8,
                rationale_tokens=16, cot_batch=16)
  return dict(preset="gemma_2b", overrides=(), dtype="bfloat16", scale=1.0,
              questions=32, cot_candidates=32, rationale_tokens=256,
              cot_batch=64)


_MODELS = {}


def _model(s: dict):
  """(config, random params) of the settings' model, made once a process."""
  from genrm_jax.models import gemma  # pylint: disable=g-import-not-at-top
  key = (s["preset"], s["dtype"], s["overrides"])
  if key not in _MODELS:
    cfg = gemma.get_config(s["preset"], dtype=s["dtype"],
                           param_dtype=s["dtype"], **dict(s["overrides"]))
    _MODELS[key] = cfg, gemma.init_params(cfg, 0)
  return _MODELS[key]


def _lengths(rng, kind: str, n: int, scale: float, spread: float):
  """n lengths from GSM8K's distribution; `spread` < 1 narrows it around
  the median (0: every length the median)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  deciles = GSM8K_TOKENS[kind]
  u = 0.5 + (rng.random(n) - 0.5) * spread
  x = np.interp(u * 10, np.arange(11), deciles)
  return np.maximum(1, np.round(x * scale)).astype(int)


def gsm8k_pool(num_questions: int, n: int, vocab: int, scale: float = 1.0,
               seed: int = 0, spread: float = 1.0):
  """Random token ids shaped like GSM8K verification inputs.

  Returns (prefixes, solutions, fixed): per question its shared prefix (BOS,
  header, question, step-by-step cue), per question n candidate solutions,
  and the template pieces {'direct_suffix', 'cot_suffix', 'verify_question',
  'yes'} (token lists).
  """
  import numpy as np  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(seed)
  ids = lambda k: rng.integers(3, vocab, size=int(k)).tolist()
  t = {k: max(1, round(v * scale)) for k, v in TEMPLATE_TOKENS.items()}
  header = [2] + ids(t["header"] - 1)
  q_len = _lengths(rng, "question", num_questions, scale, spread)
  s_len = _lengths(rng, "solution", num_questions * n, scale, spread).reshape(
      num_questions, n)
  prefixes = [header + ids(q) for q in q_len]
  solutions = [[ids(s) for s in row] for row in s_len]
  fixed = {k: ids(t[k]) for k in ("direct_suffix", "cot_suffix",
                                  "verify_question")}
  fixed["yes"] = ids(1)
  return prefixes, solutions, fixed


class _Flops:
  """Counts the prefill FLOPs of a `ContinuationScorer`'s passes (wraps its
  compiled functions; the scores are untouched): real tokens only (causal
  attention over real keys) and as executed (padded rows and buckets, dense
  attention over every key slot)."""

  def __init__(self, cfg, num_params: int):
    self.matmul = 2.0 * (num_params - cfg.num_embed * cfg.embed_dim)
    self.attn = 4.0 * cfg.num_layers * cfg.num_heads * cfg.head_dim
    self.readout = 2.0 * cfg.embed_dim * cfg.num_embed
    self.reset()

  def reset(self):
    self.real = self.executed = 0.0
    self.tokens_executed = 0
    self.calls = 0

  def wrap(self, scorer, stub: bool = False):
    """Counts every pass of `scorer`; `stub`: without running it (zeros)."""
    import numpy as np  # pylint: disable=g-import-not-at-top
    full = scorer._fn  # pylint: disable=protected-access
    prefill, suffix = scorer._prefill_fn, scorer._suffix_fn  # pylint: disable=protected-access
    if stub:
      full = lambda _, tokens, *rest: np.zeros(tokens.shape[0])
      prefill = lambda _, tokens, segments: {  # k/v stand-ins: shapes only
          "k": np.zeros((1, 1, tokens.shape[1], 1, 1), np.float32),
          "v": np.zeros((1, 1, tokens.shape[1], 1, 1), np.float32),
          "positions": np.zeros(tokens.shape, np.int32), "segment_ids": segments}
      suffix = lambda _, cache, tokens, *rest: np.zeros(tokens.shape[0])

    def full_fn(params, tokens, segments, positions, targets):
      b, l = tokens.shape
      n = np.asarray(segments).sum(-1)
      self.real += float(np.sum(self.matmul * n + self.attn * n * (n + 1) / 2))
      self.executed += b * (self.matmul * l + self.attn * l * l)
      self._readout(positions)
      self.tokens_executed += b * l
      self.calls += 1
      return full(params, tokens, segments, positions, targets)

    def prefill_fn(params, prefix_tokens, prefix_segments):
      p, lp = int(np.asarray(prefix_segments).sum()), prefix_tokens.shape[1]
      self.real += self.matmul * p + self.attn * p * (p + 1) / 2
      self.executed += self.matmul * lp + self.attn * lp * lp
      self.tokens_executed += lp
      self.calls += 1
      return prefill(params, prefix_tokens, prefix_segments)

    def suffix_fn(params, cache, tokens, segments, positions, targets):
      p = np.asarray(cache["segment_ids"]).sum(-1)  # each row's prefix
      b, ls = tokens.shape
      kv = cache["segment_ids"].shape[1] + ls  # the cache the rows attend over
      s = np.asarray(segments).sum(-1)
      self.real += float(np.sum(np.where(s > 0, self.matmul * s + self.attn * (
          s * p + s * (s + 1) / 2), 0.0)))
      self.executed += b * (self.matmul * ls + self.attn * ls * kv)
      self._readout(positions)
      self.tokens_executed += b * ls
      self.calls += 1
      return suffix(params, cache, tokens, segments, positions, targets)

    scorer._fn = full_fn  # pylint: disable=protected-access
    scorer._prefill_fn, scorer._suffix_fn = prefill_fn, suffix_fn  # pylint: disable=protected-access

  def _readout(self, positions):
    import numpy as np  # pylint: disable=g-import-not-at-top
    positions = np.asarray(positions)
    self.real += self.readout * float(np.sum(positions >= 0))
    self.executed += self.readout * positions.size


def _num_params(cfg) -> int:
  import jax  # pylint: disable=g-import-not-at-top
  from genrm_jax.models import gemma  # pylint: disable=g-import-not-at-top
  return gemma.count_params(jax.tree.map(
      lambda b: b.value, gemma.abstract_params(cfg),
      is_leaf=lambda x: hasattr(x, "names")))


def run_direct(s: dict, n: int, batch_size: int, repeats: int,
               count_only: bool = False) -> list[dict]:
  import numpy as np  # pylint: disable=g-import-not-at-top
  from genrm_jax import scoring  # pylint: disable=g-import-not-at-top
  if count_only:  # shapes only: no parameters, no model runs
    from genrm_jax.models import gemma  # pylint: disable=g-import-not-at-top
    cfg, params = gemma.get_config(s["preset"], dtype=s["dtype"],
                                   **dict(s["overrides"])), None
  else:
    cfg, params = _model(s)
  num_params = _num_params(cfg)
  prefixes, solutions, fixed = gsm8k_pool(s["questions"], n, cfg.num_embed,
                                          s["scale"], spread=s["spread"])
  prompts, shared = [], []
  for prefix, sols in zip(prefixes, solutions):
    for sol in sols:
      prompts.append(prefix + sol + fixed["direct_suffix"])
      shared.append(prefix)
  conts = [fixed["yes"]] * len(prompts)
  scorer = scoring.ContinuationScorer(cfg, params, batch_size=batch_size)
  flops = _Flops(cfg, num_params)
  flops.wrap(scorer, stub=count_only)
  info = common.device_info()
  if count_only:
    repeats = 0
  rows, logps = [], {}
  for mode, prefix_arg in (("shared", shared), ("unshared", None)):
    scorer.tokens_run = 0
    flops.reset()
    start = time.perf_counter()
    logps[mode] = scorer.score(prompts, conts, prefix_arg)
    first = time.perf_counter() - start
    counted = (scorer.tokens_run, flops.real, flops.executed,
               flops.tokens_executed, flops.calls)
    start = time.perf_counter()
    for _ in range(repeats):
      scorer.score(prompts, conts, prefix_arg)
    secs = (time.perf_counter() - start) / repeats if repeats else None
    tokens_run, real, executed, tokens_executed, calls = counted
    rows.append(dict(
        benchmark="scoring", impl=f"direct_{mode}", preset=s["preset"],
        dtype=s["dtype"], questions=s["questions"], n=n,
        candidates=len(prompts), batch_size=batch_size, seconds=secs,
        first_call_s=first,
        candidates_per_s=len(prompts) / secs if secs else None,
        prefill_tokens=tokens_run, prefill_tokens_executed=tokens_executed,
        prefill_tflops=real / 1e12, prefill_tflops_executed=executed / 1e12,
        prefill_gflops_per_candidate=real / len(prompts) / 1e9,
        passes=calls,
        mean_prompt_tokens=float(np.mean([len(p) for p in prompts])),
        params=num_params, **info))
  sh, un = rows
  diff = float(np.max(np.abs(logps["shared"] - logps["unshared"])))
  ratios = dict(
      tokens_ratio=un["prefill_tokens"] / sh["prefill_tokens"],
      flops_ratio=un["prefill_tflops"] / sh["prefill_tflops"],
      executed_flops_ratio=(un["prefill_tflops_executed"] /
                            sh["prefill_tflops_executed"]),
      speedup=(sh["candidates_per_s"] / un["candidates_per_s"]
               if sh["candidates_per_s"] else None),
      max_abs_logp_diff=diff)
  for r in rows:
    r.update(ratios)
  return rows


def run_cot(s: dict, k: int, batch_size: int, cot_batch: int,
            rationale_tokens: int, share_prefix: bool,
            repeats: int, readout: str = "fused", batching: str = "static",
            rationale_lengths: str = "gsm8k") -> list[dict]:
  import numpy as np  # pylint: disable=g-import-not-at-top
  from genrm_jax import sampling, scoring  # pylint: disable=g-import-not-at-top
  cfg, params = _model(s)
  n_cand = s["cot_candidates"]
  prefixes, solutions, fixed = gsm8k_pool(n_cand, 1, cfg.num_embed,
                                          s["scale"], seed=1,
                                          spread=s["spread"])
  cands = [p + sol[0] + fixed["cot_suffix"]
           for p, sol in zip(prefixes, solutions)]
  work = [(c, j) for c in range(n_cand) for j in range(k)]
  if rationale_lengths == "gsm8k":
    limits = _lengths(np.random.default_rng(2), "rationale", len(work),
                      s["scale"], s["spread"])
  else:
    limits = np.full(len(work), rationale_tokens)
  sampler = sampling.Sampler(cfg, params, dedupe_prompts=share_prefix)
  sp = sampling.SamplingParams(max_new_tokens=int(limits.max()),
                               temperature=0.7, stop_tokens=())
  # static: one sampler batch per call; continuous: score_store's chunk of
  # 8 batches per call, decoded cot_batch rows at a time.
  per_call, slots = ((cot_batch, None) if batching == "static" else
                     (8 * cot_batch, cot_batch))
  scorer = scoring.ContinuationScorer(cfg, params, batch_size=batch_size)
  tail = [fixed["cot_suffix"][0]] + fixed["verify_question"]  # "\n" + VQ

  def one_pass():
    t_sample = t_score = 0.0
    out_rows = new_tokens = steps = 0
    for lo in range(0, len(work), per_call):
      items = work[lo:lo + per_call]
      prompt_ids = [cands[c] for c, _ in items]
      keys = sampling.row_keys(0, [(str(c), "0", j) for c, j in items])
      start = time.perf_counter()
      out = sampler.generate(prompt_ids, sp, rng=keys, readout_ids=(
          fixed["yes"] if readout == "fused" else ()), batch_size=slots,
                             row_max_new_tokens=limits[lo:lo + per_call])
      t_sample += time.perf_counter() - start
      out_rows += len(items)
      new_tokens += sum(len(t) for t in out.tokens)
      steps += out.decode_steps
      if readout == "fused":
        continue
      readouts = [p + list(t) + tail for p, t in zip(prompt_ids, out.tokens)]
      start = time.perf_counter()
      scorer.score(readouts, [fixed["yes"]] * len(readouts),
                   prompt_ids if share_prefix else None)
      t_score += time.perf_counter() - start
    return t_sample, t_score, out_rows, new_tokens, steps

  start = time.perf_counter()
  one_pass()
  first = time.perf_counter() - start
  t_sample = t_score = 0.0
  for _ in range(repeats):
    a, b, rationales, new_tokens, steps = one_pass()
    t_sample += a / repeats
    t_score += b / repeats
  secs = t_sample + t_score
  return [dict(
      benchmark="scoring", impl="cot" + ("_shared" if share_prefix else
                                         "_unshared") + "_" + readout + (
                                             "_continuous" if slots else ""),
      readout=readout, batching=batching,
      rationale_lengths=rationale_lengths,
      mean_rationale_tokens=float(np.mean(limits)),
      preset=s["preset"], dtype=s["dtype"], candidates=n_cand, k=k,
      rationales=rationales, rationale_tokens=rationale_tokens,
      cot_batch=cot_batch, batch_size=batch_size, seconds=secs,
      first_call_s=first, rationales_per_s=rationales / secs,
      candidates_per_s=n_cand / secs, sample_s=t_sample, readout_s=t_score,
      new_tokens_per_s=new_tokens / t_sample, decode_steps=steps,
      # The share of decode-step rows that made a kept token.
      busy_rows=new_tokens / (steps * cot_batch),
      mean_prompt_tokens=float(np.mean([len(c) for c in cands])),
      params=_num_params(cfg), **common.device_info())]


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--tiny", action="store_true")
  parser.add_argument("--modes", default="direct,cot")
  parser.add_argument("--questions", type=int, default=0,
                      help="direct: problems in the pool (0: 32, tiny 4)")
  parser.add_argument("--n", type=int, default=16,
                      help="direct: candidates per problem")
  parser.add_argument("--batch_size", type=int, default=16,
                      help="rows per teacher-forced pass (the verifiers' "
                      "batch_size default)")
  parser.add_argument("--k", type=int, default=8, help="cot: rationales "
                      "per candidate")
  parser.add_argument("--cot_candidates", type=int, default=0,
                      help="cot: candidates (0: 32, tiny 8)")
  parser.add_argument("--cot_batch", type=int, default=0,
                      help="cot: work items per sampler call (0: 64, tiny 16)")
  parser.add_argument("--rationale_tokens", type=int, default=0,
                      help="cot: new tokens per rationale (0: 256, tiny 16)")
  parser.add_argument("--cot_share_prefix", default="true",
                      choices=("true", "false"))
  parser.add_argument("--cot_readout", default="fused",
                      help="cot: 'fused' (p(Yes) off the sampler's last "
                      "step), 'pass' (a second, teacher-forced pass), or "
                      "both: 'fused,pass'")
  parser.add_argument("--cot_batching", default="static,continuous",
                      help="cot: 'static' (a sampler batch per call), "
                      "'continuous' (stopped rows' slots refilled), or both")
  parser.add_argument("--rationale_lengths", default="gsm8k",
                      choices=("gsm8k", "fixed"),
                      help="cot: lengths drawn from GSM8K's rationales, or "
                      "--rationale_tokens each")
  parser.add_argument("--spread", type=float, default=1.0,
                      help="1: GSM8K's length spread; 0: every question / "
                      "solution the median length (fewest buckets)")
  parser.add_argument("--repeats", type=int, default=1)
  parser.add_argument("--preset", default="",
                      help="model shape (default gemma_2b; tiny with --tiny), "
                      "e.g. gemma3_270m to measure a real shape on a CPU")
  parser.add_argument("--dtype", default="",
                      help="default bfloat16 (float32 with --tiny)")
  parser.add_argument("--count_only", action="store_true",
                      help="direct: count prefill tokens and FLOPs without "
                      "running the model (shapes only; any machine)")
  common.add_run_args(parser, timeout=600)
  args = parser.parse_args()
  s = _settings(args.tiny)
  s["spread"] = args.spread
  if args.preset:
    s["preset"], s["overrides"] = args.preset, ()
  if args.dtype:
    s["dtype"] = args.dtype
  for key in ("questions", "cot_candidates", "cot_batch", "rationale_tokens"):
    if getattr(args, key):
      s[key] = getattr(args, key)

  if set(args.cot_readout.split(",")) - {"fused", "pass"}:
    parser.error(f"--cot_readout={args.cot_readout}: 'fused', 'pass' or "
                 "'fused,pass'.")

  if set(args.cot_batching.split(",")) - {"static", "continuous"}:
    parser.error(f"--cot_batching={args.cot_batching}: 'static', "
                 "'continuous' or 'static,continuous'.")

  if args.worker:  # the modes, in this process (one JAX implementation)
    rows = []
    for mode in args.modes.split(","):
      if mode == "direct":
        rows += run_direct(s, args.n, args.batch_size, args.repeats,
                           args.count_only)
      elif mode == "cot":
        for readout in args.cot_readout.split(","):
          for batching in args.cot_batching.split(","):
            rows += run_cot(s, args.k, args.batch_size, s["cot_batch"],
                            s["rationale_tokens"],
                            args.cot_share_prefix == "true", args.repeats,
                            readout, batching, args.rationale_lengths)
      else:
        raise ValueError(f"mode {mode!r}: expected direct or cot.")
    print(json.dumps({"rows": rows}))
    return

  worker_args = [f"--{k}={getattr(args, k)}" for k in (
      "questions", "n", "batch_size", "k", "cot_candidates", "cot_batch",
      "rationale_tokens", "cot_share_prefix", "cot_readout", "cot_batching",
      "rationale_lengths", "repeats",
      "modes", "spread", "preset", "dtype")]
  if args.count_only:
    if args.modes != "direct":
      parser.error("--count_only counts the direct mode's prefill only: "
                   "pass --modes=direct.")
    worker_args.append("--count_only")
  got = common.run_subprocess(
      ["-m", "benchmarks.scoring", "--worker=1", *worker_args] + (
          ["--tiny"] if args.tiny else []), args.timeout)
  rows = []
  for row in got.get("rows") or [dict(got, impl=args.modes)]:
    row.setdefault("benchmark", "scoring")
    rows.append(row)
    common.record(args.out, row)
  device = next((r["device"] for r in rows if "device" in r), "?")
  direct = [r for r in rows if r["impl"].startswith("direct")]
  if direct:
    common.print_table(
        f"direct GenRM scoring, {s['preset']}, N={args.n} ({device})", direct,
        ["impl", "candidates", "candidates_per_s", "prefill_tokens",
         "prefill_tokens_executed", "prefill_gflops_per_candidate",
         "prefill_tflops_executed", "seconds", "first_call_s", "error"])
    r = direct[0]
    if "flops_ratio" in r:
      print(f"unshared / shared: prefill tokens {r['tokens_ratio']:.2f}x, "
            f"FLOPs {r['flops_ratio']:.2f}x (executed, with padding: "
            f"{r['executed_flops_ratio']:.2f}x), candidates/s "
            f"{common._fmt(r['speedup'])}x; max |log p| difference "
            f"{r['max_abs_logp_diff']:.2g}")
  cot = [r for r in rows if r["impl"].startswith("cot")]
  if cot:
    common.print_table(
        f"GenRM-CoT scoring, {s['preset']}, K={args.k} ({device})", cot,
        ["impl", "rationales", "mean_rationale_tokens", "rationales_per_s",
         "candidates_per_s", "new_tokens_per_s", "decode_steps", "busy_rows", "sample_s", "readout_s", "first_call_s",
         "error"])
    by = {(r.get("readout"), r.get("batching")): r["rationales_per_s"]
          for r in cot if "error" not in r}
    for batching in ("static", "continuous"):
      if ("fused", batching) in by and ("pass", batching) in by:
        print(f"fused / pass readout ({batching}): rationales/s "
              f"{by['fused', batching] / by['pass', batching]:.2f}x")
    for readout in ("fused", "pass"):
      if (readout, "static") in by and (readout, "continuous") in by:
        print(f"continuous / static batching ({readout} readout): "
              f"rationales/s "
              f"{by[readout, 'continuous'] / by[readout, 'static']:.2f}x")
  for r in rows:
    if "error" in r:
      print(f"{r['impl']}: {r['error']}\n{r.get('stderr_tail', '')}")


if __name__ == "__main__":
  main()
