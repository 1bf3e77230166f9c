"""Sympy comparison worker: runs as a separate process, one request per line.

Started by `symbolic.SymbolicWorker` as `python sympy_worker.py` (a plain
script, so the child imports only the standard library and sympy, not this
package or JAX). Symbolic algebra can take unbounded time or memory on hostile
input (`10^{10^{10}}`), and a thread cannot be interrupted; a process can be
killed, so every sympy call happens here.

Protocol (JSON lines on stdin/stdout):
  -> {"id": 7, "a": <tree>, "b": <tree>}     trees from `latex_parser`
  <- {"id": 7, "equal": true}                or {"id": 7, "error": "..."}
The worker first writes {"ready": true} once sympy is imported.
"""

import json
import random
import sys

# Numeric agreement needed to call two expressions equal, where no exact
# comparison decides: far below any rounding a human would write, so
# 0.333 != 1/3, yet robust to evaluation error. Relative, so that 2^{-50} is
# not 0; a value within the absolute floor of another is one that evalf could
# not tell from 0 (sin^2(1) + cos^2(1) - 1 evaluates to 0.e-173).
_RELATIVE_TOLERANCE = 1e-12
_ABSOLUTE_TOLERANCE = 1e-30
_EVALUATION_DIGITS = 40
_NUM_RANDOM_POINTS = 6
# A worker may use this much address space before allocations fail (so one
# request cannot exhaust the machine's memory before the timeout kills it).
_MEMORY_LIMIT_BYTES = 4 * 1024**3


def _limit_memory() -> None:
  try:
    import resource  # pylint: disable=g-import-not-at-top
    resource.setrlimit(resource.RLIMIT_AS, (_MEMORY_LIMIT_BYTES, _MEMORY_LIMIT_BYTES))
  except (ImportError, ValueError, OSError):
    pass  # Not available on this platform; the timeout still bounds time.


class _Unsupported(Exception):
  """The tree contains something the worker does not know how to build."""


class Comparator:
  """Builds sympy objects from parser trees and compares them."""

  def __init__(self, sympy_module):
    self._sp = sympy_module
    self._functions = {
        name: getattr(sympy_module, name) for name in (
            'sin', 'cos', 'tan', 'sec', 'csc', 'cot', 'asin', 'acos', 'atan',
            'sinh', 'cosh', 'tanh', 'log', 'exp')
    }
    self._constants = {'pi': sympy_module.pi, 'oo': sympy_module.oo,
                       'I': sympy_module.I, 'E': sympy_module.E}

  # Building scalars.

  def build(self, node):
    """Converts a scalar tree to a sympy expression."""
    sp = self._sp
    kind = node[0]
    if kind == 'num':
      return sp.Rational(node[1])
    if kind == 'sym':
      return sp.Symbol(node[1])
    if kind == 'const':
      return self._constants[node[1]]
    if kind == 'add':
      return sp.Add(*[self.build(term) for term in node[1]])
    if kind == 'mul':
      return sp.Mul(*[self.build(factor) for factor in node[1]])
    if kind == 'neg':
      return -self.build(node[1])
    if kind == 'div':
      return self.build(node[1]) / self.build(node[2])
    if kind == 'pow':
      return sp.Pow(self.build(node[1]), self.build(node[2]))
    if kind == 'sqrt':
      return sp.sqrt(self.build(node[1]))
    if kind == 'root':
      radicand, index = self.build(node[1]), self.build(node[2])
      if index.is_integer and index.is_odd and radicand.is_extended_real:
        return sp.real_root(radicand, index)  # \sqrt[3]{-8} = -2, as meant.
      return sp.root(radicand, index)
    if kind == 'func':
      if node[1] == 'det':
        return self._matrix(node[2]).det()
      return self._functions[node[1]](self.build(node[2]))
    if kind == 'log':
      argument = self.build(node[1])
      return sp.log(argument) if node[2] is None else sp.log(argument, self.build(node[2]))
    if kind == 'fact':
      return sp.factorial(self.build(node[1]))
    if kind == 'abs':
      return sp.Abs(self.build(node[1]))
    if kind == 'binom':
      return sp.binomial(self.build(node[1]), self.build(node[2]))
    if kind == 'subscript':
      # Base-n numerals (1011_2) and indexed names (a_1) compare as opaque names.
      return sp.Symbol('subscript:' + json.dumps(node, sort_keys=True))
    raise _Unsupported(kind)

  def _matrix(self, node):
    if node[0] != 'matrix':
      raise _Unsupported('det of non-matrix')
    return self._sp.Matrix([[self.build(cell) for cell in row] for row in node[1]])

  # Comparing.

  def equal(self, a, b) -> bool:
    """Whether two trees denote the same answer."""
    unordered = ('list', 'set')
    if a[0] in unordered and b[0] in unordered:
      return self._unordered_equal(a[1], b[1])
    if a[0] != b[0] and {a[0], b[0]} & {'list', 'set', 'seq', 'union', 'matrix', 'rel'}:
      return False
    kind = a[0]
    if kind == 'seq':
      return (a[1] == b[1] and a[2] == b[2] and len(a[3]) == len(b[3])
              and all(self.equal(x, y) for x, y in zip(a[3], b[3])))
    if kind == 'union':
      return self._unordered_equal(a[1], b[1])
    if kind == 'matrix':
      rows_a, rows_b = a[1], b[1]
      return (len(rows_a) == len(rows_b)
              and all(len(ra) == len(rb) for ra, rb in zip(rows_a, rows_b))
              and all(self.equal(x, y) for ra, rb in zip(rows_a, rows_b)
                      for x, y in zip(ra, rb)))
    if kind == 'rel':
      return self._relation_equal(a, b)
    return self.scalar_equal(self.build(a), self.build(b))

  def _unordered_equal(self, items_a, items_b) -> bool:
    if len(items_a) != len(items_b):
      return False
    unmatched = list(items_b)
    for item in items_a:
      for index, candidate in enumerate(unmatched):
        if self.equal(item, candidate):
          del unmatched[index]
          break
      else:
        return False
    return True

  def _relation_equal(self, a, b) -> bool:
    flipped = {'<': '>', '>': '<', '<=': '>=', '>=': '<=', '=': '=', '!=': '!='}
    if a[1] in ('=', '!=') and a[1] == b[1]:
      # Equations are equal up to sign: y = 2x  <=>  2x = y.
      difference_a = self.build(a[2]) - self.build(a[3])
      difference_b = self.build(b[2]) - self.build(b[3])
      return (self.scalar_equal(difference_a, difference_b)
              or self.scalar_equal(difference_a, -difference_b))
    if a[1] == b[1]:
      return self.equal(a[2], b[2]) and self.equal(a[3], b[3])
    if flipped.get(a[1]) == b[1]:
      return self.equal(a[2], b[3]) and self.equal(a[3], b[2])
    return False

  def scalar_equal(self, x, y) -> bool:
    """Exact structural check, then exact or numeric checks at random points."""
    sp = self._sp
    if x.has(sp.zoo, sp.nan) or y.has(sp.zoo, sp.nan):
      return False  # Undefined (1/0, 0/0) equals nothing, not even itself.
    if x == y:
      return True
    if x.has(sp.oo, -sp.oo) or y.has(sp.oo, -sp.oo):
      return False  # Infinities compare structurally only (done above).
    symbols = sorted(x.free_symbols | y.free_symbols, key=str)
    if not symbols:
      verdict = self._numerically_equal(x, y, {})
      if verdict is not None:
        return verdict
      return bool(sp.simplify(x - y) == 0)
    rng = random.Random(0)
    agreed = 0
    for j in range(_NUM_RANDOM_POINTS):
      # Positive points first, then one all negative, then mixed signs: |x|
      # is not x, nor sqrt(x^2). A point outside either side's real domain
      # (a root or log of a negative) does not count, so answers equal where
      # both are defined (sqrt(x) sqrt(y) and sqrt(xy)) stay equal.
      signs = {s: 1 if j < 3 else -1 if j == 3 else rng.choice((-1, 1)) for s in symbols}
      point = {s: signs[s] * sp.Rational(rng.randint(3, 97), rng.randint(7, 29))
               for s in symbols}
      verdict = self._numerically_equal(x, y, point, real_only=True)
      if verdict is False:
        return False
      agreed += verdict is True
    if agreed >= 2:
      return True
    return bool(sp.simplify(x - y) == 0)

  def _in_real_domain(self, expr, point) -> bool:
    """Whether every root and logarithm in `expr` has a non-negative
    (positive) argument at `point`: sqrt(x) sqrt(y) and sqrt(xy) need not
    agree where x, y < 0, as real functions they are not defined there."""
    sp = self._sp
    for sub in sp.preorder_traversal(expr):
      if isinstance(sub, sp.Pow) and sub.exp.is_integer is not True:
        argument, strict = sub.base, False
      elif isinstance(sub, sp.log):
        argument, strict = sub.args[0], True
      else:
        continue
      value = argument.evalf(_EVALUATION_DIGITS, subs=point)
      if not value.is_number:
        continue
      real, imag = value.as_real_imag()
      try:
        if abs(imag) > 1e-20 * max(abs(real), 1) or real < 0 or (strict and real == 0):
          return False
      except TypeError:  # not comparable: no verdict from this point
        return False
    return True

  def _numerically_equal(self, x, y, point, real_only: bool = False):
    """True/False if both evaluate to finite numbers, None if they do not.

    Rational values (integers, fractions, rational functions at the rational
    points) compare exactly: 2^{100} + 1 is not 2^{100}. Others evaluate in
    sympy/mpmath floats (arbitrary exponent range), so 2^{4950} neither
    overflows nor loses its relative precision.
    """
    sp = self._sp
    exact_x = x.subs(point) if point else x
    exact_y = y.subs(point) if point else y
    if exact_x.is_Rational and exact_y.is_Rational:
      return bool(exact_x == exact_y)
    value_x = x.evalf(_EVALUATION_DIGITS, subs=point)
    value_y = y.evalf(_EVALUATION_DIGITS, subs=point)
    if not (value_x.is_number and value_y.is_number):
      return None
    if any(v.has(sp.nan, sp.zoo, sp.oo, -sp.oo) for v in (value_x, value_y)):
      return None
    if real_only and not (self._in_real_domain(x, point) and self._in_real_domain(y, point)):
      return None
    try:
      difference = sp.N(abs(value_x - value_y), 20)
      scale = sp.N(abs(value_x) + abs(value_y), 20)
      return bool(difference <= _RELATIVE_TOLERANCE * scale + _ABSOLUTE_TOLERANCE)
    except (TypeError, ValueError):  # a value evalf could not pin down
      return None


def main() -> None:
  _limit_memory()
  sys.setrecursionlimit(10_000)
  import sympy  # pylint: disable=g-import-not-at-top
  comparator = Comparator(sympy)
  out = sys.stdout
  out.write(json.dumps({'ready': True}) + '\n')
  out.flush()
  for line in sys.stdin:
    request_id = None
    try:
      request = json.loads(line)
      request_id = request['id']
      reply = {'id': request_id, 'equal': bool(comparator.equal(request['a'], request['b']))}
    except Exception as error:  # pylint: disable=broad-except
      # Any failure (unsupported tree, sympy error, MemoryError) means "not
      # shown equal"; the worker itself keeps serving.
      reply = {'id': request_id, 'error': f'{type(error).__name__}: {error}'[:500]}
    out.write(json.dumps(reply) + '\n')
    out.flush()


if __name__ == '__main__':
  main()
