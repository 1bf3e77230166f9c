"""Grading for the algorithmic tasks: last-letter concatenation and word sorting.

Answers are short strings compared exactly after whitespace normalisation.
"""

import re
from typing import Optional

from genrm_jax.grading import answer_text

# Characters that commonly wrap or terminate an answer phrase but are never part
# of a last-letter or word-sorting answer.
_WRAPPING_CHARS = ' \t\r\n."\'`*:'
_WHITESPACE = re.compile(r'\s+')


def normalize_text(answer: Optional[str]) -> str:
  """Collapses runs of whitespace, strips wrapping quotes and a trailing period."""
  if not isinstance(answer, str):
    return ''
  text = _WHITESPACE.sub(' ', answer).strip(_WRAPPING_CHARS)
  return _WHITESPACE.sub(' ', text).strip()


def extract_answer(solution: Optional[str]) -> Optional[str]:
  """Extracts the text after the last "The answer is" (on that line).

  Args:
    solution: A model solution ending with "The answer is <answer>.".

  Returns:
    The normalised answer string, or None if there is no answer phrase or it is
    empty.
  """
  rest = answer_text.text_after_last_marker(solution)
  if rest is None:
    return None
  answer = normalize_text(answer_text.first_line(rest.lstrip(' \t:')))
  return answer or None


def is_equivalent_last_letter(answer: Optional[str], reference: Optional[str]) -> bool:
  """Compares last-letter answers case-insensitively.

  The reference answers of Kojima et al.'s set are lowercase ("nkay") while the
  names are capitalised, so a model writing "NKAY" or "Nkay" has still
  concatenated the right letters; case is therefore ignored.
  """
  a, b = normalize_text(answer), normalize_text(reference)
  return bool(a) and a.casefold() == b.casefold()


def is_equivalent_word_sort(answer: Optional[str], reference: Optional[str]) -> bool:
  """Compares word-sorting answers exactly (case-sensitive) after whitespace normalisation.

  Commas between words are treated as separators ("a, b" == "a b") since the
  BBH targets are space-separated but models often list words with commas.
  """
  a = normalize_text(_commas_to_spaces(answer))
  b = normalize_text(_commas_to_spaces(reference))
  return bool(a) and a == b


def _commas_to_spaces(text: Optional[str]) -> Optional[str]:
  if not isinstance(text, str):
    return None
  return text.replace(',', ' ')
