r"""Reference-guided synthetic verification rationales (the paper's GSM8K/MATH
GenRM-CoT data).

A grader model sees the question, a reference solution and a candidate
solution, and writes K step-by-step verifications that end with
"Verification: Is the answer correct (Yes/No)? Yes|No". The rationales are
stored with their verdicts; training keeps only those whose verdict agrees
with the candidate's label and pairs them with the ordinary CoT prompt, which
does *not* show the reference (`verification_data.cot_examples`).

  python -m genrm_jax.synthesize --candidates=C.jsonl --checkpoint=DIR \
      --out=R.jsonl --num_rationales=4 --temperature=0.7
  # a bare official checkpoint as the grader:
  python -m genrm_jax.synthesize ... --checkpoint=/ckpts/gemma2-27b \
      --preset=gemma2_27b --tokenizer=/ckpts/tokenizer.model

Rows of R.jsonl: problem_id, candidate_id, k, rationale, verdict (true /
false / null), agrees (bool). A rationale ends at its first verdict line:
sampling stops there (a stop string), not at `--max_new_tokens`. A rerun
skips candidates already in R.jsonl, and rationale k of a candidate is
sampled with the key of (seed, problem, candidate, k) alone, so a resumed
run writes what an uninterrupted one would. Candidates go `--batch_size`
rationales per sampler call (with continuous batching on accelerators).
An instruction-tuned grader takes `--chat_template=gemma`.
`--reference_guided=false` is the paper's ablation: the grader sees only
the question and the candidate (the verifier's own CoT prompt), no
reference; rows say `"guided": false`, and a file holds one kind only.
The reference shown to the grader is the candidate's `reference_solution`
field when the store has one (e.g. GSM8K/MATH reference solutions), else
its reference answer.
"""

from __future__ import annotations

import collections
import json
import os
import sys
import time
from typing import Callable, Iterator, Sequence

from absl import app
from absl import flags

from genrm_jax import candidates as candidates_lib
from genrm_jax import prompts
from genrm_jax import sampling

REFERENCE_LINE = "Reference solution (correct, for checking only): "
# A grader's rationale is complete once it has given its verdict.
VERDICT_STOPS = (prompts.verdict_line(True), prompts.verdict_line(False))


def reference_text(candidate: candidates_lib.Candidate) -> str:
  ref = candidate.extra.get("reference_solution")
  if ref:
    return str(ref).strip()
  return f"The answer is {candidate.reference}."


def grading_prompt(candidate: candidates_lib.Candidate) -> str:
  """The CoT verification prompt with the reference solution shown before
  the candidate's answer (reference-guided grading, Zheng et al. 2023)."""
  return (prompts.HEADER + prompts.QUESTION_PREFIX + candidate.question +
          "\n" + REFERENCE_LINE + reference_text(candidate) +
          prompts.STEP_BY_STEP + candidate.solution + prompts.COT_SUFFIX)


def prompt_for(candidate: candidates_lib.Candidate, guided: bool = True) -> str:
  """The grader's prompt: reference-guided (`grading_prompt`), or unguided,
  the CoT verification prompt the verifier itself sees."""
  if guided:
    return grading_prompt(candidate)
  return prompts.cot_verification_prompt(candidate.question, candidate.solution)


def cut_after_verdict(text: str) -> str:
  """Drops whatever the grader wrote after its (last) verdict line."""
  match = prompts.find_verdict(text)
  return text if match is None else text[:match.end()]


def synthesize(candidates: Sequence[candidates_lib.Candidate],
               generate: Callable[[list[str], list[tuple]], list[str]],
               num_rationales: int, batch_size: int = 32,
               chat_template: str | None = None, guided: bool = True) -> Iterator[dict]:
  """Yields one row per (candidate, k), candidate by candidate.
  `generate(prompts, rows)` returns one continuation per prompt, row i
  being (problem_id, str(candidate_id), k): what its sampling key should
  depend on, alone. Whole candidates go `batch_size` rationales a call (at
  least one candidate). `chat_template`: the grading prompt as the user's
  turn (`prompts.CHAT_TEMPLATES`; an instruction-tuned grader). `guided`:
  the reference shown to the grader (`prompt_for`)."""
  per_call = max(1, batch_size // num_rationales)
  for lo in range(0, len(candidates), per_call):
    group = candidates[lo:lo + per_call]
    work = [(c, k) for c in group for k in range(num_rationales)]
    texts = generate([prompts.as_chat(prompt_for(c, guided), chat_template)
                      for c, _ in work],
                     [(c.problem_id, str(c.candidate_id), k) for c, k in work])
    for (cand, k), text in zip(work, texts):
      rationale = cut_after_verdict(text)
      verdict = prompts.parse_verdict(rationale)
      yield {"problem_id": cand.problem_id, "candidate_id": cand.candidate_id,
             "k": k, "rationale": rationale, "verdict": verdict,
             "agrees": verdict is not None and verdict == cand.correct,
             "guided": guided}


def read_rationales(path: str) -> dict[tuple[str, str], list[str]]:
  """(problem_id, str(candidate_id)) -> rationales that agree with the label,
  in k order: the `rationale_fn` table for `verification_data.cot_examples`."""
  table: dict[tuple[str, str], dict[int, str]] = collections.defaultdict(dict)
  with open(path) as f:
    for line_no, line in enumerate(f, 1):
      if not line.strip():
        continue
      try:
        row = json.loads(line)
        key = (str(row["problem_id"]), str(row["candidate_id"]))
        if row.get("agrees", True):
          # The first row of each k: a candidate a killed run left incomplete
          # is written again whole (the same rationales: seeded per row).
          table[key].setdefault(int(row["k"]), str(row["rationale"]))
      except (ValueError, KeyError, TypeError) as e:
        raise candidates_lib.MalformedRowError(
            path, line_no, f"not a rationale row ({e!r}); expected "
            "problem_id, candidate_id, k, rationale") from e
  return {key: [by_k[k] for k in sorted(by_k)] for key, by_k in table.items()}


def _done(path: str, num_rationales: int, guided: bool = True) -> set[tuple[str, str]]:
  """Candidates with all `num_rationales` rows in `path`; ValueError if its
  rationales were made with the other `guided` setting (rows without one:
  guided)."""
  if not os.path.exists(path):
    return set()
  ks = collections.defaultdict(set)
  with open(path) as f:
    for line_no, line in enumerate(f, 1):
      try:
        row = json.loads(line)
        ks[(str(row["problem_id"]), str(row["candidate_id"]))].add(int(row["k"]))
      except (ValueError, KeyError, TypeError):
        continue  # not a row (`read_rationales` says which line)
      if row.get("guided", True) != guided:
        raise ValueError(
            f"{path}:{line_no}: rationales synthesised with reference_guided="
            f"{row.get('guided', True)}, not {guided}: use another --out (a file holds "
            "one kind, so a training run knows which it reads).")
  return {key for key, have in ks.items() if have >= set(range(num_rationales))}


def run(candidates_path: str, out_path: str, sampler: sampling.Sampler, *,
        num_rationales: int = 4, temperature: float = 0.7,
        max_new_tokens: int = 512, seed: int = 0, batch_size: int = 64,
        continuous_batching: bool | None = None, top_k: int = 0,
        top_p: float = 1.0, chat_template: str | None = None,
        max_candidates: int | None = None, guided: bool = True) -> dict[str, int]:
  """Writes rationales for every candidate not yet in `out_path`.

  `batch_size`: sampler rows; with `continuous_batching` (None: on except
  on a CPU) 8 batches' worth of rationales go per call, streamed through
  them. `max_candidates`: stop after this many (tests: a killed run)."""
  pool = candidates_lib.read_candidates(candidates_path)
  candidates_lib.end_partial_last_line(out_path)  # a row cut by a kill: aside
  done = _done(out_path, num_rationales, guided)
  todo = [c for c in pool
          if (c.problem_id, str(c.candidate_id)) not in done]
  if max_candidates is not None:
    todo = todo[:max_candidates]
  params = sampling.SamplingParams(max_new_tokens=max_new_tokens,
                                   temperature=temperature, top_k=top_k,
                                   top_p=top_p,
                                   stop_tokens=sampling.eos_stop_tokens(
                                       sampler.tokenizer),
                                   stop_strings=VERDICT_STOPS +
                                   prompts.chat_stop_strings(chat_template))
  per_call, stream = sampling.call_sizes(batch_size, continuous_batching)

  def generate(texts, rows):
    return sampler.generate(texts, params, rng=sampling.row_keys(seed, rows),
                            batch_size=stream).texts

  counts = collections.Counter()
  start = time.time()
  pending = []  # a candidate's rows, written together once all K are made
  with open(out_path, "a") as f:
    for n, row in enumerate(synthesize(todo, generate, num_rationales,
                                       per_call, chat_template, guided)):
      pending.append(json.dumps(row) + "\n")
      counts["rationales"] += 1
      counts["agree"] += row["agrees"]
      counts["no_verdict"] += row["verdict"] is None
      if row["k"] == num_rationales - 1:
        f.write("".join(pending))
        pending.clear()
        f.flush()
        done_c = (n + 1) // num_rationales
        rate = done_c / max(time.time() - start, 1e-9)
        print(f"\r{done_c}/{len(todo)} candidates, {rate:.2f}/s, kept "
              f"{counts['agree']}/{counts['rationales']}", end="", flush=True)
  print()
  counts["skipped_done"] = len(pool) - len(todo)
  return dict(counts)


def define_flags() -> None:
  """CLI flags (defined only when run as a program)."""
  from genrm_jax.models import bundle  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("candidates", None, "Candidate store (JSON lines).")
  bundle.define_flags("Grader")
  flags.DEFINE_string("out", None, "Rationales file (appended; resumable).")
  flags.DEFINE_integer("num_rationales", 4, "Rationales per candidate (K).")
  sampling.define_flags(temperature=0.7, max_new_tokens=512,
                        what="Rationale ", continuous_batching=True)
  flags.DEFINE_integer("batch_size", 64, "Sampler rows.")
  flags.DEFINE_bool("reference_guided", True, "Show the grader the reference solution "
                    "(false: the paper's unguided ablation, the verifier's own prompt).")
  prompts.define_chat_template_flag("grader")
  # --help lists them with this CLI's own flags.
  flags.adopt_module_key_flags(sampling)
  flags.adopt_module_key_flags(bundle)
  flags.adopt_module_key_flags(prompts)
  flags.mark_flags_as_required(["candidates", "checkpoint", "out"])


def main(argv: Sequence[str]) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  f = flags.FLAGS
  from genrm_jax.models import bundle  # pylint: disable=g-import-not-at-top
  try:
    model = bundle.from_flags()
    sampler = sampling.Sampler(model.config, model.params,
                               tokenizer=model.tokenizer)
    counts = run(f.candidates, f.out, sampler,
                 num_rationales=f.num_rationales, temperature=f.temperature,
                 top_k=f.top_k, top_p=f.top_p,
                 max_new_tokens=f.max_new_tokens, seed=f.seed,
                 batch_size=f.batch_size,
                 chat_template=prompts.chat_template_flag(),
                 continuous_batching=sampling.CONTINUOUS_BATCHING_FLAG[
                     f.continuous_batching], guided=f.reference_guided)
  except (FileNotFoundError, ValueError,
          candidates_lib.MalformedRowError) as e:
    sys.exit(f"error: {e}")
  print(json.dumps(counts))


if __name__ == "__main__":
  define_flags()
  app.run(main)
