"""Answer extraction and equivalence checking for the GenRM tasks.

Public contract (see DESIGN.md, "Contracts" -> "Grading"); task names are
`last_letter`, `word_sort`, `gsm8k` and `math`:

  extract_answer(task, solution) -> str | None
  is_equivalent(task, answer, reference) -> bool   # bounded time, never raises
  grade(task, solution, reference) -> bool          # extract, then compare
  extract_reference(task, raw_reference) -> str | None
  normalize_answer(task, answer) -> str | None      # canonical form for voting
  merge_equivalent(task, keys) -> (keys, merged)    # one key per equivalence class

Only an unknown task name raises (ValueError listing the known names).
"""

import dataclasses
from typing import Callable, Optional, Sequence

from genrm_jax.grading import algorithmic
from genrm_jax.grading import gsm8k
from genrm_jax.grading import math_grader


@dataclasses.dataclass(frozen=True)
class _TaskGrader:
  extract_answer: Callable[[Optional[str]], Optional[str]]
  extract_reference: Callable[[Optional[str]], Optional[str]]
  is_equivalent: Callable[[Optional[str], Optional[str]], bool]
  normalize_answer: Callable[[Optional[str]], Optional[str]]
  # Equal canonical strings <=> equivalent answers. MATH's are not: `0.5`
  # and `\frac{1}{2}` normalize apart, so voting must also compare them.
  normalization_is_complete: bool = True


def _normalized_or_none(text: Optional[str]) -> Optional[str]:
  return algorithmic.normalize_text(text) or None


def _casefolded_or_none(text: Optional[str]) -> Optional[str]:
  return algorithmic.normalize_text(text).casefold() or None


def _gsm8k_canonical(text: Optional[str]) -> Optional[str]:
  value = gsm8k.parse_number(text)
  return None if value is None else gsm8k.format_number(value)


def _identity_reference(text: Optional[str]) -> Optional[str]:
  # Algorithmic references (last_letters.json "answer", BBH "target") are the
  # answer itself.
  return _normalized_or_none(text)


_GRADERS = {
    'last_letter': _TaskGrader(
        extract_answer=algorithmic.extract_answer,
        extract_reference=_identity_reference,
        is_equivalent=algorithmic.is_equivalent_last_letter,
        normalize_answer=_casefolded_or_none),
    'word_sort': _TaskGrader(
        extract_answer=algorithmic.extract_answer,
        extract_reference=_identity_reference,
        is_equivalent=algorithmic.is_equivalent_word_sort,
        normalize_answer=lambda t: _normalized_or_none(
            t.replace(',', ' ') if isinstance(t, str) else None)),
    'gsm8k': _TaskGrader(
        extract_answer=gsm8k.extract_answer,
        extract_reference=gsm8k.extract_reference,
        is_equivalent=gsm8k.is_equivalent,
        normalize_answer=_gsm8k_canonical),
    'math': _TaskGrader(
        extract_answer=math_grader.extract_answer,
        extract_reference=math_grader.extract_reference,
        is_equivalent=math_grader.is_equivalent,
        normalize_answer=math_grader.normalize_answer,
        normalization_is_complete=False),
}

TASKS = tuple(_GRADERS)


def _grader(task: str) -> _TaskGrader:
  grader = _GRADERS.get(task) if isinstance(task, str) else None
  if grader is None:
    raise ValueError(f'Unknown task {task!r}; known tasks: {", ".join(TASKS)}')
  return grader


def extract_answer(task: str, solution: Optional[str]) -> Optional[str]:
  """Extracts the final answer of a solution; None if it has none."""
  grader = _grader(task)
  try:
    return grader.extract_answer(solution)
  except Exception:  # pylint: disable=broad-except
    return None  # Malformed input has no answer rather than crashing a sweep.


def extract_reference(task: str, raw_reference: Optional[str]) -> Optional[str]:
  """Extracts the reference answer from a dataset's reference field.

  GSM8K: the text after "#### "; MATH: the last `\\boxed{}` of the reference
  solution; algorithmic tasks: the (whitespace-normalised) field itself.
  """
  grader = _grader(task)
  try:
    return grader.extract_reference(raw_reference)
  except Exception:  # pylint: disable=broad-except
    return None


def is_equivalent(task: str, answer: Optional[str], reference: Optional[str]) -> bool:
  """Whether `answer` matches `reference` for `task`; bounded time, never raises."""
  grader = _grader(task)
  try:
    return bool(grader.is_equivalent(answer, reference))
  except Exception:  # pylint: disable=broad-except
    return False


def grade(task: str, solution: Optional[str], reference: Optional[str]) -> bool:
  """Extracts the solution's answer and compares it with an (extracted) reference answer."""
  answer = extract_answer(task, solution)
  return answer is not None and is_equivalent(task, answer, reference)


def normalize_answer(task: str, answer: Optional[str]) -> Optional[str]:
  """Canonical string for an extracted answer (e.g. to group answers for majority voting).

  Equal canonical strings imply equivalence; the converse does not hold for
  MATH (`0.5` vs `\\frac{1}{2}`), where `is_equivalent` is the full check.
  """
  grader = _grader(task)
  try:
    return grader.normalize_answer(answer)
  except Exception:  # pylint: disable=broad-except
    return None


def merge_equivalent(task: str, keys: Sequence[Optional[str]]
                     ) -> tuple[list[Optional[str]], int]:
  """One key per class of equivalent answers, e.g. for one problem's votes.

  Where canonical strings already decide equivalence (every task but MATH)
  the keys come back as they are. For MATH each distinct key is compared
  (`is_equivalent`, bounded time) with the first key of every class found so
  far and joins the first that matches, so `0.5`, `\frac{1}{2}` and `2^{-1}`
  vote together; the class takes its first key. (Symbolic equality with
  numeric tolerance need not be transitive: first match wins.)

  Args:
    task: The grading task.
    keys: Canonical answers (`normalize_answer`), None for no answer.

  Returns:
    (keys with every member of a class replaced by its first key, the
    number of distinct keys merged into an earlier class).
  """
  grader = _grader(task)
  if grader.normalization_is_complete:
    return list(keys), 0
  representative: dict[str, str] = {}
  classes: list[str] = []
  for key in keys:
    if key is None or key in representative:
      continue
    match = next((first for first in classes if is_equivalent(task, key, first)), None)
    if match is None:
      classes.append(key)
    representative[key] = match or key
  merged = sum(1 for key, first in representative.items() if key != first)
  return [None if key is None else representative[key] for key in keys], merged
