"""Answer extraction and equivalence checking for the GenRM tasks.

Public contract (see DESIGN.md, "Contracts" -> "Grading"); task names are
`last_letter`, `word_sort`, `gsm8k` and `math`:

  extract_answer(task, solution) -> str | None
  is_equivalent(task, answer, reference) -> bool   # bounded time, never raises
  grade(task, solution, reference) -> bool          # extract, then compare
  extract_reference(task, raw_reference) -> str | None
  normalize_answer(task, answer) -> str | None      # canonical form for voting

Only an unknown task name raises (ValueError listing the known names).
"""

import dataclasses
from typing import Callable, Optional

from genrm_jax.grading import algorithmic
from genrm_jax.grading import gsm8k
from genrm_jax.grading import math_grader


@dataclasses.dataclass(frozen=True)
class _TaskGrader:
  extract_answer: Callable[[Optional[str]], Optional[str]]
  extract_reference: Callable[[Optional[str]], Optional[str]]
  is_equivalent: Callable[[Optional[str], Optional[str]], bool]
  normalize_answer: Callable[[Optional[str]], Optional[str]]


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
        normalize_answer=math_grader.normalize_answer),
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
