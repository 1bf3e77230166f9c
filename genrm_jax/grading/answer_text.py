"""Helpers for locating the final-answer phrase in free-form solutions.

Every task in the GenRM paper formats solutions so that they end with
"The answer is <answer>." (GSM8K, algorithmic tasks); BIG-Bench-Hard CoT
outputs use "So the answer is <answer>."; GSM8K references use "#### <answer>".
"""

import re
from typing import Optional

# Case-insensitive so "So the answer is", "the answer is:", "Final answer is"
# and "Answer is" (both seen in the paper's generated solutions) all count. The
# optional colon is consumed so it is not part of the answer.
_ANSWER_IS = re.compile(r'\banswer\s+is\s*:?', re.IGNORECASE)
_HASHES = re.compile(r'####')

# Cap on what is scanned: model generations can be arbitrarily long, and the
# answer phrase is at the end. Regex scans here are linear, so this only bounds
# memory and time on pathological inputs.
MAX_SOLUTION_CHARS = 200_000


def text_after_last_marker(solution: Optional[str], markers=(_ANSWER_IS,)) -> Optional[str]:
  """Returns the text following the last occurrence of any marker pattern.

  Args:
    solution: A model solution or reference text; non-strings give None.
    markers: Compiled regexes; the match that ends last wins.

  Returns:
    The remainder of the text after the last marker (not stripped), or None if
    no marker occurs.
  """
  if not isinstance(solution, str) or not solution:
    return None
  if len(solution) > MAX_SOLUTION_CHARS:
    solution = solution[-MAX_SOLUTION_CHARS:]
  best_end = -1
  for marker in markers:
    for match in marker.finditer(solution):
      best_end = max(best_end, match.end())
  if best_end < 0:
    return None
  return solution[best_end:]


def first_line(text: str) -> str:
  """Returns the text up to the first newline (the answer phrase's line)."""
  return text.split('\n', 1)[0]


ANSWER_IS_MARKER = _ANSWER_IS
GSM8K_REFERENCE_MARKER = _HASHES
