r"""Grading for MATH: `\boxed{}` answers compared after normalisation, then symbolically.

Order of checks in `is_equivalent`, cheapest first:
  1. normalised strings equal (`math_normalize`), in-process;
  2. both plain numbers (`0.5`, `-3`, `\frac{1}{2}`): exact rational comparison,
     in-process;
  3. both parse (`latex_parser`) to the same tree;
  4. sympy comparison in a killable worker process (`symbolic`), bounded by a
     timeout, after rejecting trees whose evaluation could explode (power
     towers, huge exponents or factorials).
"""

import fractions
import functools
import re
from typing import Optional

from genrm_jax.grading import answer_text
from genrm_jax.grading import latex_boxed
from genrm_jax.grading import latex_parser
from genrm_jax.grading import math_normalize
from genrm_jax.grading import symbolic

_PLAIN_NUMBER = re.compile(r'(-?)(\d{1,50}(?:\.\d{1,50})?)')
_PLAIN_FRACTION = re.compile(r'(-?)\\frac\{(\d{1,50})\}\{(\d{1,50})\}')
# Three or more consecutive letters outside a command are a word ("even",
# "Navin"): such answers are text and compare as strings only, otherwise the
# parser would read them as commutative products of variables.
_COMMAND = re.compile(r'\\(?:begin|end)\{[a-z]+\}|\\[a-zA-Z]+')
_WORD = re.compile(r'[a-zA-Z]{3,}')

# Limits on trees sent to sympy; see `_is_safe_to_evaluate`.
_MAX_TREE_NODES = 500
_MAX_EXPONENT = 10_000
_MAX_FACTORIAL_ARGUMENT = 2_000
_MAX_BINOMIAL_ARGUMENT = 100_000
_MAX_ROOT_INDEX = 100


def extract_answer(solution: Optional[str]) -> Optional[str]:
  r"""Extracts the final answer: the last `\boxed{}`, else the last "The answer is ...".

  The fallback serves generators prompted with the paper's "The answer is"
  format instead of `\boxed{}`.

  Args:
    solution: A MATH solution.

  Returns:
    The raw answer text (not normalised), or None.
  """
  boxed = latex_boxed.last_boxed_content(solution)
  if boxed is not None:
    return boxed
  rest = answer_text.text_after_last_marker(solution)
  if rest is None:
    return None
  answer = answer_text.first_line(rest).strip().rstrip('.').strip()
  return answer or None


def extract_reference(raw_reference: Optional[str]) -> Optional[str]:
  r"""Extracts the `\boxed{}` answer of a MATH reference solution."""
  return latex_boxed.last_boxed_content(raw_reference)


def normalize_answer(answer: Optional[str]) -> Optional[str]:
  """Canonical string of an answer (for grouping answers, e.g. majority voting)."""
  return math_normalize.normalize_answer(answer)


def is_equivalent(answer: Optional[str], reference: Optional[str],
                  timeout_s: Optional[float] = None) -> bool:
  """Whether a MATH answer is mathematically equal to the reference answer.

  Never raises on malformed input and never takes much longer than
  `timeout_s` (default `symbolic.DEFAULT_TIMEOUT_S`) plus, on the first call
  or after a timeout, the worker's start-up.

  Args:
    answer: Extracted answer (e.g. boxed content) of a candidate solution.
    reference: Reference answer.
    timeout_s: Limit for the symbolic comparison.

  Returns:
    True if shown equal; False if different, unparseable or undecided in time.
  """
  if not isinstance(answer, str) or not isinstance(reference, str):
    return False
  try:
    return _is_equivalent_normalized(
        math_normalize.normalize_answer(answer),
        math_normalize.normalize_answer(reference), timeout_s)
  except Exception:  # pylint: disable=broad-except
    # The contract is "never raises": any bug on odd input, or a comparison
    # undecided in time (`_Undecided`, not cached), counts as not equal.
    return False


class _Undecided(Exception):
  """The worker timed out or failed: False now, but asked again next time
  (a loaded machine must not fix a verdict for the rest of the run)."""


@functools.lru_cache(maxsize=65_536)  # exceptions are not cached
def _is_equivalent_normalized(answer: Optional[str], reference: Optional[str],
                              timeout_s: Optional[float]) -> bool:
  if not answer or not reference:
    return False
  if answer == reference:
    return True
  answer_number, reference_number = _plain_number(answer), _plain_number(reference)
  if answer_number is not None and reference_number is not None:
    return answer_number == reference_number
  if _is_text(answer) or _is_text(reference):
    return False
  answer_tree, reference_tree = _strip_labels(latex_parser.parse_latex(answer),
                                              latex_parser.parse_latex(reference))
  if answer_tree is None or reference_tree is None:
    return False
  if answer_tree == reference_tree:
    return True
  if not (_is_safe_to_evaluate(answer_tree) and _is_safe_to_evaluate(reference_tree)):
    return False
  verdict = symbolic.default_worker().compare(answer_tree, reference_tree, timeout_s)
  if verdict is None:
    raise _Undecided
  return verdict


def _plain_number(text: str) -> Optional[fractions.Fraction]:
  """Exact value of `-12.5` or `\\frac{3}{4}`-like text, else None."""
  match = _PLAIN_NUMBER.fullmatch(text)
  if match:
    value = fractions.Fraction(match.group(2))
  else:
    match = _PLAIN_FRACTION.fullmatch(text)
    if not match or int(match.group(3)) == 0:
      return None
    value = fractions.Fraction(int(match.group(2)), int(match.group(3)))
  return -value if match.group(1) else value


def _is_text(text: str) -> bool:
  return _WORD.search(_COMMAND.sub(' ', text)) is not None


def _strip_labels(answer: Optional[list], reference: Optional[list]):
  """Drops `x =` labels from both trees and from list items (`x=1, y=2` is
  `1, 2`), except where both are lists labelling every item with the same
  labels: then each value is compared with its label (`x=1, y=2` is
  `y=2, x=1`, not `x=2, y=1`)."""
  if answer is None or reference is None:
    return None, None
  labels = _item_labels(answer)
  if labels is not None and labels == _item_labels(reference):
    return answer, reference
  return _strip_list_labels(answer), _strip_list_labels(reference)


def _strip_list_labels(tree: list) -> list:
  if tree[0] in ('list', 'set'):
    return [tree[0], [_strip_label(item) for item in tree[1]]]
  return _strip_label(tree)


def _is_labelled(tree: list) -> bool:
  return tree[0] == 'rel' and tree[1] == '=' and tree[2][0] in ('sym', 'subscript')


def _strip_label(tree: list) -> list:
  return tree[3] if _is_labelled(tree) else tree


def _item_labels(tree: list) -> Optional[list]:
  """The sorted labels of a list whose every item is labelled, else None."""
  if tree[0] not in ('list', 'set') or not all(_is_labelled(item) for item in tree[1]):
    return None
  return sorted(repr(item[2]) for item in tree[1])


def _is_safe_to_evaluate(tree: list) -> bool:
  """Rejects trees whose sympy evaluation could need huge time or memory.

  The worker would be killed at the timeout anyway; rejecting early keeps
  grading fast and avoids restarting the worker on adversarial answers.
  """
  count = 0
  stack = [tree]
  while stack:
    node = stack.pop()
    count += 1
    if count > _MAX_TREE_NODES:
      return False
    kind = node[0]
    if kind == 'pow':
      exponent = node[2]
      if _contains_kind(exponent, ('pow', 'fact', 'binom')):
        return False
      if _literal_magnitude(exponent) > _MAX_EXPONENT:
        return False
    elif kind == 'fact':
      if _literal_magnitude(node[1]) > _MAX_FACTORIAL_ARGUMENT or node[1][0] not in ('num', 'sym'):
        return False
    elif kind == 'binom':
      if any(_literal_magnitude(arg) > _MAX_BINOMIAL_ARGUMENT
             or arg[0] not in ('num', 'sym', 'neg') for arg in node[1:]):
        return False
    elif kind == 'root':
      if _literal_magnitude(node[2]) > _MAX_ROOT_INDEX or node[2][0] not in ('num', 'sym'):
        return False
    stack.extend(_children(node))
  return True


def _children(node: list):
  for part in node[1:]:
    if isinstance(part, list):
      if part and isinstance(part[0], str):
        yield part  # A child node.
      else:
        for item in part:  # A list of nodes, or matrix rows.
          if item and isinstance(item[0], str):
            yield item
          else:
            yield from (cell for cell in item)


def _contains_kind(tree: list, kinds) -> bool:
  stack = [tree]
  while stack:
    node = stack.pop()
    if node[0] in kinds:
      return True
    stack.extend(_children(node))
  return False


def _literal_magnitude(node: list) -> float:
  """|value| of a (possibly negated) number literal; 0 for anything else."""
  while node[0] == 'neg':
    node = node[1]
  if node[0] != 'num':
    return 0.0
  try:
    return abs(float(node[1]))
  except ValueError:
    return float('inf')
