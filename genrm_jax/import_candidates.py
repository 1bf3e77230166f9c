r"""A candidate store from your own samples (vLLM, TRL, another codebase).

  python -m genrm_jax.import_candidates --input=samples.jsonl --out=C.jsonl \
      --question=prompt --solution=responses --reference=gold_answer --task=gsm8k
  python -m genrm_jax.import_candidates --input=graded.jsonl --out=C.jsonl \
      --question=question --solution=output --correct=is_correct

  python -m genrm_jax.import_candidates --input=prefs.jsonl --out=C.jsonl \
      --question=prompt --chosen=chosen --rejected=rejected      # TRL preference data

Each input line is a JSON object; the flags name its keys:
* `--question` (required) and `--solution` (required): the solution field
  may hold one text or a list of them (vLLM's n samples of one prompt): one
  candidate each.
* `--correct`: a label per solution (true/false, 1/0; a list beside a list
  of solutions); or, without it, `--task` grades each solution against
  `--reference` with this project's graders (`genrm_jax.grading`: GSM8K,
  MATH with sympy, last-letter, word sort), as `genrm_jax.generate` does.
* `--reference`: the reference answer (or, with `--task`, a reference field
  the task's grader extracts it from, e.g. GSM8K's "#### 42").
* `--answer`: each solution's final answer, for majority voting (a list
  beside a list); with `--task` and without it, the grader extracts it.
* `--problem_id`: a problem's id (default: a hash of its question, so lines
  of one problem in several places join the same problem).
* `--chosen` / `--rejected` instead of `--solution`: preference pairs (TRL's
  `prompt` / `chosen` / `rejected` columns): two candidates a line, the
  chosen one correct, the rejected one not, for the Bradley-Terry, DPO and
  discriminative verifiers (the generative ones too, whose "correct" then
  means "preferred"). Training pairs a problem's correct and incorrect
  candidates itself (`verification_data.dpo_pairs`), so several pairs of one
  prompt may be re-paired among themselves.

Candidates of one problem are numbered 0, 1, ... in input order. The store
is then what every tool here reads: `genrm_jax.score`, `evaluate`, and
training (`--config.data.candidates.train=C.jsonl`). A malformed line stops
the import, naming the file, the line and the fix; nothing is written.
"""

from __future__ import annotations

import hashlib
import sys
from typing import Any, Iterable, Iterator, Optional

from absl import app
from absl import flags

from genrm_jax import candidates as candidates_lib
from genrm_jax import grading

_TRUE = (True, 1, "true", "True", "1", "yes")
_FALSE = (False, 0, "false", "False", "0", "no")


def _label(value: Any) -> bool:
  if isinstance(value, bool) or value in _TRUE or value in _FALSE:
    return value in _TRUE
  raise ValueError(f"label {value!r} is not true/false or 1/0")


def _problem_id(collapsed_question: str) -> str:
  return "q" + hashlib.sha256(collapsed_question.encode("utf-8")).hexdigest()[:12]


def convert(rows: Iterable[tuple[int, dict]], *, question: str, solution: Optional[str] = None,
            correct: Optional[str] = None, reference: Optional[str] = None,
            task: Optional[str] = None, problem_id: Optional[str] = None,
            answer: Optional[str] = None, chosen: Optional[str] = None,
            rejected: Optional[str] = None, source: str = "<input>"
            ) -> Iterator[candidates_lib.Candidate]:
  """Candidates of (line number, JSON object) rows; ValueError naming the
  source and line on a row that does not fit the keys."""
  pairs = bool(chosen or rejected)
  if pairs == bool(solution) or (pairs and not (chosen and rejected)):
    raise ValueError("name the solutions with --solution=KEY, or preference pairs with "
                     "--chosen=KEY and --rejected=KEY (not both).")
  if pairs and (correct or answer):
    raise ValueError("--chosen/--rejected label the pair themselves: drop --correct and "
                     "--answer.")
  if correct is None and not pairs and not (task and reference):
    raise ValueError("no labels: pass --correct=KEY (a label per solution), or --task and "
                     "--reference=KEY to grade each solution against its reference.")
  if task is not None and task not in grading.TASKS:
    raise ValueError(f"--task={task!r}: graders exist for {', '.join(grading.TASKS)}.")
  next_id: dict[str, int] = {}
  questions: dict[str, str] = {}  # problem id -> its question (collapsed)
  for line, row in rows:
    where = f"{source}:{line}"
    if not isinstance(row, dict):
      raise ValueError(f"{where}: a line must be a JSON object, got {type(row).__name__}")

    def field(key, kind="text"):
      if key not in row:
        raise ValueError(f"{where}: no key {key!r} (keys: {sorted(row)}); name the "
                         f"{kind} field with its flag")
      return row[key]

    q = field(question, "question")
    if pairs:
      texts = [field(chosen, "chosen"), field(rejected, "rejected")]
    else:
      texts = field(solution, "solution")
      texts = texts if isinstance(texts, list) else [texts]
      if not texts:
        raise ValueError(f"{where}: no solutions ({solution!r} is an empty list)")

    def per_solution(key, kind):
      values = field(key, kind)
      values = values if isinstance(values, list) else [values]
      if len(values) != len(texts):
        raise ValueError(f"{where}: {len(values)} {kind}s ({key!r}) for {len(texts)} "
                         f"solutions ({solution!r})")
      return values

    labels = [True, False] if pairs else (
        per_solution(correct, "label") if correct else None)
    answers = per_solution(answer, "answer") if answer else None
    if not isinstance(q, str) or not all(isinstance(t, str) for t in texts):
      raise ValueError(f"{where}: the question and solutions must be strings")
    raw_reference = field(reference, "reference") if reference else None
    if labels is None and (raw_reference is None or not str(raw_reference).strip()):
      raise ValueError(f"{where}: reference {reference!r} is empty: --task grades "
                       "against it (give it, or labels with --correct=KEY)")
    ref = str(raw_reference) if raw_reference is not None else ""
    if task and raw_reference is not None:
      ref = grading.extract_reference(task, ref) or ref
    # Whitespace collapsed: "What is 2+2?" and "What is 2+2?\n" are one problem.
    collapsed = " ".join(q.split())
    if problem_id:
      raw_id = field(problem_id, "problem id")
      if raw_id is None or not str(raw_id).strip():
        raise ValueError(f"{where}: problem id {problem_id!r} is empty")
      pid = str(raw_id)
    else:
      pid = _problem_id(collapsed)
    if questions.setdefault(pid, collapsed) != collapsed:
      raise ValueError(f"{where}: problem id {pid!r} came with another question before "
                       f"({questions[pid][:60]!r}); one id, one question")
    for i, text in enumerate(texts):
      if answers is not None:
        final = None if answers[i] is None else str(answers[i])
      else:
        final = grading.extract_answer(task, text) if task else None
      try:
        ok = (_label(labels[i]) if labels is not None else
              final is not None and grading.is_equivalent(task, final, ref))
      except ValueError as e:
        raise ValueError(f"{where}: {e}") from None
      cid = next_id.get(pid, 0)
      next_id[pid] = cid + 1
      yield candidates_lib.Candidate(
          problem_id=pid, candidate_id=cid, question=q, solution=text, answer=final,
          reference=ref, correct=ok, task=task)


def define_flags() -> None:
  flags.DEFINE_string("input", None, "JSON-lines file of samples.")
  flags.DEFINE_string("out", None, "Candidate store to write.")
  flags.DEFINE_string("question", None, "Key of the question.")
  flags.DEFINE_string("solution", None, "Key of the solution (a text or a list of texts).")
  flags.DEFINE_string("chosen", None, "Preference pairs: key of the chosen solution.")
  flags.DEFINE_string("rejected", None, "Preference pairs: key of the rejected solution.")
  flags.DEFINE_string("correct", None, "Key of the label(s): true/false or 1/0.")
  flags.DEFINE_string("reference", None, "Key of the reference answer.")
  flags.DEFINE_string("answer", None, "Key of the final answer(s), for majority voting "
                      "(default: extracted by --task's grader).")
  flags.DEFINE_string("task", None, f"Grade with this task's grader ({', '.join(grading.TASKS)}).")
  flags.DEFINE_string("problem_id", None, "Key of the problem id (default: a hash of the "
                      "question).")
  flags.mark_flags_as_required(["input", "out", "question"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  f = flags.FLAGS
  try:
    rows = list(convert(candidates_lib.iter_json_rows(f.input), question=f.question, solution=f.solution,
                        correct=f.correct, reference=f.reference, task=f.task,
                        problem_id=f.problem_id, answer=f.answer, chosen=f.chosen,
                        rejected=f.rejected, source=f.input))
  except (ValueError, FileNotFoundError) as e:
    sys.exit(f"error: {e}")
  candidates_lib.write_candidates(f.out, rows)
  problems = len({c.problem_id for c in rows})
  print(f"Wrote {f.out}: {len(rows)} candidates of {problems} problems, "
        f"{sum(c.correct for c in rows)} correct.")


if __name__ == "__main__":
  define_flags()
  app.run(main)
