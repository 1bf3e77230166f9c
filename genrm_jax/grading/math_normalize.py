r"""String normalisation of MATH answers (cheap, in-process, linear time).

Follows the spirit of the Hendrycks et al. `is_equiv`, Minerva's
`normalize_final_answer` and PRM800K's grader: remove presentation-only LaTeX
(`\left`, `\!`, `\dfrac`, `^\circ`, `\%`, `\$`, `\text{ units}`, `x=`) so that
answers that differ only in formatting compare equal as strings. The result is
also the input of `latex_parser`, so it keeps a space only where one is needed
to separate a command from a following letter (`\pi r`).

All regexes here are free of nested quantifiers, so their cost is linear in
the input and adversarial strings cannot make them backtrack exponentially.
"""

import re
from typing import Optional

# Longer inputs are not normalised (they are not plausible final answers); they
# can still be equal to a reference by exact string comparison.
MAX_ANSWER_CHARS = 2_000

_UNICODE_REPLACEMENTS = (
    ('−', '-'), ('–', '-'), ('×', r'\times '), ('·', r'\cdot '), ('÷', r'\div '),
    ('π', r'\pi '), ('∞', r'\infty '), ('≤', r'\le '), ('≥', r'\ge '),
    ('°', r'^\circ'), ('√', r'\sqrt'), ('∪', r'\cup '),
)

_COMMAND_ALIASES = (
    (r'\\(?:d|t|c)frac(?![a-zA-Z])', r'\\frac'),
    (r'\\(?:d|t)binom(?![a-zA-Z])', r'\\binom'),
    (r'\\(?:mbox|textnormal|textrm|textit|textbf|mathrm|mathit|mathbf|mathbb|operatorname|hbox)(?![a-zA-Z])',
     r'\\text'),
    (r'\\(?:leq|leqslant)(?![a-zA-Z])', r'\\le'),
    (r'\\(?:geq|geqslant)(?![a-zA-Z])', r'\\ge'),
    (r'\\(?:neq)(?![a-zA-Z])', r'\\ne'),
    (r'\\varnothing(?![a-zA-Z])', r'\\emptyset'),
    (r'\\(?:bmatrix|smallmatrix|Bmatrix)(?![a-zA-Z])', r'pmatrix'),
    (r'\{(?:bmatrix|smallmatrix|Bmatrix|matrix)\}', r'{pmatrix}'),
)

# Commands that only affect spacing or display; removing them never changes
# the mathematical value.
# The first alternative matches a `\\\\` row separator so that its second
# backslash is never mistaken for the start of `\\ ` (a space command).
_PRESENTATION_ONLY = re.compile(
    r'(\\\\)'
    r'|\\(?:left|right|big|Big|bigg|Bigg|bigl|bigr|Bigl|Bigr|displaystyle|textstyle|phantom)(?![a-zA-Z])'
    r'|\\[!,;:> ]|\\q?quad(?![a-zA-Z])|~')

_TEXT_SPACE_BEFORE_BRACE = re.compile(r'\\text\s+\{')
_DEGREES = re.compile(r'\^\s*\{?\s*\\circ\s*\}?|\\circ(?![a-zA-Z])|\\degree(?![a-zA-Z])')
_PERCENT = re.compile(r'\\?%|\\percent(?![a-zA-Z])')
_DOLLARS = re.compile(r'\\?\$')

# `\text{ and }` / `\text{or}` between list items mean a comma.
_TEXT_CONJUNCTION = re.compile(r',?\s*\\text\{\s*(?:and|or)\s*\}\s*')
# A `\text{...}` whose content starts with a space is a unit ("5\text{ cm}^2"),
# as in the Hendrycks grader's remove_right_units.
_TEXT_UNIT = re.compile(r'\\text\{\s+[^{}]*\}(?:\^\{?[23]\}?)?')
_TEXT_GROUP = re.compile(r'\\text\{([^{}]*)\}')

# Unit or filler words that follow a number ("18 dollars", "5 square feet").
_UNIT_WORDS = (
    r'square|sq\.?|cubic|units?|inches|inch|feet|foot|ft|yards?|yd|miles?|mi|mph|'
    r'meters?|metres?|cm|mm|km|kilometers?|centimeters?|millimeters?|'
    r'seconds?|sec|minutes?|min|hours?|hrs?|days?|weeks?|months?|years?|'
    r'dollars?|cents?|degrees?|radians?|percent|pounds?|lbs?|ounces?|oz|gallons?|'
    r'liters?|grams?|kg|ways|students|people|points|digits|integers|numbers?|'
    r'times|edges|faces|vertices|meals|tickets|games|coins|marbles|outfits|'
    r'handshakes|triangles|squares|rectangles|paths|arrangements|sequences|'
    r'positive|possible|distinct|values?|solutions?|total|each|per')
# Each word must be preceded by whitespace, so the split into words is unique
# and the regex cannot backtrack combinatorially.
_TRAILING_UNITS = re.compile(
    r'(?<=[\d}).])(?:\s+(?:' + _UNIT_WORDS + r')(?:\^\{?[23]\}?)?)+\s*$')

# Thousands separators: `20,\!000` and `1{,}000` always; a bare `1,000` only
# when the whole answer is such a number (otherwise it may be a list).
_EXPLICIT_THOUSANDS = re.compile(r'(?<=\d)(?:,\\!|\{,\})(?=\d{3})')
_THOUSANDS_NUMBER = re.compile(r'-?\d{1,3}(?:,\d{3})+(?:\.\d+)?')
# What makes `d,ddd` a list, not a number, before spaces and degrees go: a
# comma and a space (`81, 256`), or degrees on both items
# (`45^\circ,135^\circ`); `1,080^\circ` and a bare `70,110` stay numbers.
_LIST_SEPARATOR = re.compile(r',\s')

_LEADING_POINT = re.compile(r'(?<![\d}])\.(?=\d)')
_SPACES = re.compile(r'(\\[a-zA-Z]+)\s+(?=[a-zA-Z])|\s+')

# `x = 3`, `y=2x+1`, `\theta = \pi`, `a_1 = 5`: a short left-hand side is a
# label, not part of the answer (PRM800K strips a lhs of length <= 2); so is
# `x \in` before an interval.
_LABEL_LHS = re.compile(
    r'^(?:[a-zA-Z]|\\[a-zA-Z]+)(?:_\{?[a-zA-Z0-9]\}?)?\s*(?:=|\\in(?![a-zA-Z]))\s*(?=\S)')
# `x = 1, y = 2`: a list with a labelled item after the first keeps its labels
# here; the grader pairs values by label (`math_grader._strip_labels`).
_LABELLED_LIST = re.compile(r',\s*(?:[a-zA-Z]|\\[a-zA-Z]+)(?:_\{?[a-zA-Z0-9]\}?)?\s*=')

_FRAC_SHORTHAND = (
    (re.compile(r'\\frac(\d)(\d)'), r'\\frac{\1}{\2}'),
    (re.compile(r'\\frac(\d)\{'), r'\\frac{\1}{'),
    (re.compile(r'\\frac\{([^{}]*)\}(\d)'), r'\\frac{\1}{\2}'),
    (re.compile(r'\\sqrt(\d)'), r'\\sqrt{\1}'),
)

_SIMPLE_A_SLASH_B = re.compile(r'(-?)(\d+)/(\d+)')
_CHOICE_LETTER = re.compile(r'\(([A-Ea-e])\)')


def normalize_answer(answer: Optional[str]) -> Optional[str]:
  r"""Normalises a MATH final answer for string comparison and parsing.

  Args:
    answer: The content of a `\boxed{}` (or any short LaTeX answer).

  Returns:
    The normalised string, or None for non-strings and over-long inputs.
  """
  if not isinstance(answer, str) or len(answer) > MAX_ANSWER_CHARS:
    return None
  text = answer.strip()
  for old, new in _UNICODE_REPLACEMENTS:
    text = text.replace(old, new)
  text = text.replace('\n', ' ').replace('\t', ' ')
  text = _EXPLICIT_THOUSANDS.sub('', text)
  may_be_thousands = not _LIST_SEPARATOR.search(text) and len(_DEGREES.findall(text)) < 2
  for pattern, replacement in _COMMAND_ALIASES:
    text = re.sub(pattern, replacement, text)
  text = _PRESENTATION_ONLY.sub(lambda m: m.group(1) or ' ', text)
  text = _TEXT_SPACE_BEFORE_BRACE.sub(r'\\text{', text)
  text = _DEGREES.sub('', text)
  text = _PERCENT.sub('', text)
  text = _DOLLARS.sub('', text)
  text = _TEXT_CONJUNCTION.sub(',', text)
  text = _strip_trailing_text_units(text)
  # Unwrap `\text{...}` (possibly nested a few levels, e.g. `\text{\text{A}}`).
  for _ in range(5):
    unwrapped = _TEXT_GROUP.sub(r'\1', text)
    if unwrapped == text:
      break
    text = unwrapped
  text = text.strip()
  text = _TRAILING_UNITS.sub('', text).strip()
  if not _LABELLED_LIST.search(text):
    text = _LABEL_LHS.sub('', text)
  text = _SPACES.sub(lambda m: m.group(1) + ' ' if m.group(1) else '', text)
  text = text.rstrip('.').strip()
  text = _strip_outer_braces(text)
  text = _LEADING_POINT.sub('0.', text)
  for pattern, replacement in _FRAC_SHORTHAND:
    text = pattern.sub(replacement, text)
  if may_be_thousands and _THOUSANDS_NUMBER.fullmatch(text):
    text = text.replace(',', '')
  slash = _SIMPLE_A_SLASH_B.fullmatch(text)
  if slash:
    text = f'{slash.group(1)}\\frac{{{slash.group(2)}}}{{{slash.group(3)}}}'
  choice = _CHOICE_LETTER.fullmatch(text)
  if choice:
    text = choice.group(1).upper()
  return text


def _strip_trailing_text_units(text: str) -> str:
  r"""Drops `\text{ unit}` groups that follow some other content."""
  stripped = _TEXT_UNIT.sub('', text).strip()
  return stripped if stripped else text


def _strip_outer_braces(text: str) -> str:
  """Removes braces that wrap the whole answer (`{5}` -> `5`)."""
  for _ in range(5):
    if not (text.startswith('{') and text.endswith('}')):
      break
    depth = 0
    for index, char in enumerate(text):
      depth += char == '{'
      depth -= char == '}'
      if depth == 0 and index < len(text) - 1:
        return text
    text = text[1:-1].strip()
  return text
