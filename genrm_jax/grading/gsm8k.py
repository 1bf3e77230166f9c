"""Grading for GSM8K: numeric final answers.

Solutions end with "The answer is 18." (the paper's format); references end with
"#### 18". Answers are compared as exact rationals, so "18", "18.0", "$18",
"18 dollars" and "36/2" are all the same answer.
"""

import fractions
import re
from typing import Optional

from genrm_jax.grading import answer_text

# A number as written in a GSM8K answer: optional sign and currency, thousands
# separators (",", or a space as in "216 000"), decimals, and an optional "/denominator". Digit runs are bounded
# so Fraction() never sees an absurdly long literal.
_NUMBER = re.compile(
    r'(?P<sign>[-−]?)\s*\$?\s*'
    r'(?<![\d.])(?P<int>\d{1,30}(?:[, \u202f]\d{3}){0,10}|(?=\.\d))'
    r'(?P<frac>\.\d{1,30})?'
    r'(?:\s*/\s*(?P<den>\d{1,30}(?:\.\d{1,30})?))?'
    # Not a prefix of a longer number: past the bounds there is no number
    # (the lookbehind keeps the search from starting inside the digits).
    r'(?!\.?\d)')


# End of a sentence: a period followed by whitespace (not a decimal point).
_SENTENCE_END = re.compile(r'\.\s')


def parse_number(text: Optional[str]) -> Optional[fractions.Fraction]:
  """Parses the first number in `text` ("$1,000.00 dollars" -> 1000).

  Args:
    text: Free text that should start with (or contain) a number.

  Returns:
    The number as an exact Fraction, or None if there is none.
  """
  if not isinstance(text, str):
    return None
  match = _NUMBER.search(text[:1000])
  if match is None:
    return None
  digits = re.sub(r'[, \u202f]', '', match.group('int')) + (match.group('frac') or '')
  try:
    value = fractions.Fraction(digits)
    if match.group('den'):
      denominator = fractions.Fraction(match.group('den'))
      if denominator == 0:
        return None
      value /= denominator
  except (ValueError, ZeroDivisionError):
    return None
  return -value if match.group('sign') else value


def format_number(value: fractions.Fraction) -> str:
  """Canonical string for a number: "18", "0.75", "-3", or "1/3" if not a finite decimal.

  A canonical form makes majority voting over extracted answers group "18.0"
  and "18" together.
  """
  if value.denominator == 1:
    return str(value.numerator)
  denominator = value.denominator
  for prime in (2, 5):
    while denominator % prime == 0:
      denominator //= prime
  if denominator != 1:
    return f'{value.numerator}/{value.denominator}'
  # Finite decimal: scale to an integer and re-insert the point.
  places = 0
  scaled = value
  while scaled.denominator != 1:
    scaled *= 10
    places += 1
  sign = '-' if scaled < 0 else ''
  digits = str(abs(scaled.numerator)).rjust(places + 1, '0')
  return f'{sign}{digits[:-places]}.{digits[-places:]}'


def extract_answer(solution: Optional[str]) -> Optional[str]:
  """Extracts the number after the last "The answer is" or "####".

  Deliberately strict: a solution without the answer phrase has no answer (the
  paper's generators are prompted to end with it), rather than falling back to
  the last number in the text.

  Args:
    solution: A GSM8K solution or reference.

  Returns:
    The canonical number string (see `format_number`), or None.
  """
  rest = answer_text.text_after_last_marker(
      solution, (answer_text.ANSWER_IS_MARKER, answer_text.GSM8K_REFERENCE_MARKER))
  if rest is None:
    return None
  value = parse_number(_final_value_text(answer_text.first_line(rest)))
  return None if value is None else format_number(value)


def _final_value_text(answer_line: str) -> str:
  """Keeps the result of a calculation in the answer phrase.

  Generated solutions often write "The answer is 30 + 10 = 40. Therefore ...";
  the answer is what follows the last "=" of the first sentence (the paper's
  own extracted answers follow the same rule).
  """
  sentence = _SENTENCE_END.split(answer_line, maxsplit=1)[0]
  return sentence.rsplit('=', 1)[-1]


def extract_reference(raw_reference: Optional[str]) -> Optional[str]:
  """Extracts the final answer of a GSM8K reference solution ("... #### 72")."""
  return extract_answer(raw_reference)


def is_equivalent(answer: Optional[str], reference: Optional[str]) -> bool:
  """Whether two GSM8K answers denote the same number (exact rational comparison)."""
  a, b = parse_number(answer), parse_number(reference)
  return a is not None and b is not None and a == b
