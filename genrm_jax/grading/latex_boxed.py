r"""Extraction of the final `\boxed{...}` answer from a MATH-style solution."""

import re
from typing import Optional

# `\boxed` and `\fbox` are both used by MATH references; the lookahead keeps
# `\boxeddots`-like commands from matching.
_BOXED = re.compile(r'\\(?:boxed|fbox)(?![a-zA-Z])')


def last_boxed_content(text: Optional[str]) -> Optional[str]:
  r"""Returns the content of the last `\boxed{...}` / `\fbox{...}` / `\boxed 5`.

  Braces are matched with a counter (linear time); an unbalanced `\boxed{`
  gives None rather than the rest of the text.

  Args:
    text: A solution, possibly containing several boxed expressions.

  Returns:
    The content of the last boxed expression with surrounding whitespace
    stripped, or None if there is none or it is malformed/empty.
  """
  if not isinstance(text, str):
    return None
  matches = list(_BOXED.finditer(text))
  if not matches:
    return None
  # Only the last box counts: it is the final answer by convention, and a
  # malformed last box must not fall back to an earlier, intermediate one.
  start = matches[-1].end()
  rest = text[start:]
  stripped = rest.lstrip()
  if stripped.startswith('{'):
    content = _balanced_group(stripped)
  else:
    # `\boxed 5` / `\boxed5$`: the answer runs to the next `$` or line end.
    content = re.split(r'[$\n]', stripped, maxsplit=1)[0]
  if content is None:
    return None
  content = content.strip()
  return content or None


def _balanced_group(text: str) -> Optional[str]:
  """Returns the content of the brace group that `text` starts with, or None."""
  depth = 0
  escaped = False
  for index, char in enumerate(text):
    if escaped:
      # `\{` and `\}` are literal braces (sets), not grouping.
      escaped = False
      continue
    if char == '\\':
      escaped = True
    elif char == '{':
      depth += 1
    elif char == '}':
      depth -= 1
      if depth == 0:
        return text[1:index]
  return None
