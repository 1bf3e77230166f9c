r"""A small LaTeX parser for MATH answers, producing a JSON-serialisable tree.

The tree is built here, in the calling process, with plain Python (no sympy),
and is sent to the sympy worker (`sympy_worker.py`), which turns it into sympy
objects. Parsing into a tree instead of a Python expression string means the
worker never `eval`s text that came from a model.

Nodes are lists whose first element names the kind:
  ["num", "3.5"]                 decimal literal (digits and at most one point)
  ["sym", "x"]                   variable (single letter or Greek name)
  ["const", "pi"|"oo"|"I"]       constants
  ["add", [t1, t2, ...]]         sum;  ["neg", t]  negation
  ["mul", [f1, f2, ...]]         product; ["div", a, b]  quotient
  ["pow", base, exp]             power; ["sqrt", a]; ["root", a, n]
  ["func", name, arg]            sin, cos, ..., ln, exp; ["log", arg, base|None]
  ["fact", a]; ["abs", a]; ["binom", n, k]
  ["subscript", base, sub]       opaque symbol such as a base-n numeral 1011_2
  ["seq", open, close, items]    tuple/point/interval with its brackets
  ["set", items]                 \{...\};  ["list", items]  bare comma list
  ["union", items]               \cup of intervals/sets
  (`a \pm b` in a list becomes the two items a + b and a - b)
  ["matrix", rows]               rows of cells
  ["rel", op, lhs, rhs]          =, <, >, \le, \ge, \ne

Anything outside this grammar raises `LatexParseError`; callers then fall back
to string comparison.
"""

import re
from typing import List, Optional

# Bounds that keep parsing cheap and the tree small enough to ship to the
# worker; real MATH answers are far below them.
MAX_TOKENS = 400
MAX_DEPTH = 40
MAX_NUMBER_CHARS = 60

_TOKEN = re.compile(
    r'\s*(?:'
    r'(?P<num>\d+(?:\.\d*)?|\.\d+)'
    r'|(?P<rowsep>\\\\)'
    r'|(?P<cmd>\\[a-zA-Z]+|\\[{}|])'
    r'|(?P<letter>[a-zA-Z])'
    r'|(?P<op>[-+*/^_()\[\]{},!|=<>&])'
    r')')

_FUNCTIONS = {
    r'\sin': 'sin', r'\cos': 'cos', r'\tan': 'tan', r'\sec': 'sec',
    r'\csc': 'csc', r'\cot': 'cot', r'\arcsin': 'asin', r'\arccos': 'acos',
    r'\arctan': 'atan', r'\sinh': 'sinh', r'\cosh': 'cosh', r'\tanh': 'tanh',
    r'\ln': 'log', r'\exp': 'exp',
}
_GREEK = frozenset(
    'alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta iota kappa '
    'lambda mu nu xi rho sigma tau upsilon phi varphi chi psi omega Gamma Delta '
    'Theta Lambda Xi Sigma Phi Psi Omega'.split())
_CONSTANTS = {r'\pi': 'pi', r'\infty': 'oo', r'\infin': 'oo'}
_RELATIONS = {'=': '=', '<': '<', '>': '>', r'\le': '<=', r'\ge': '>=',
              r'\lt': '<', r'\gt': '>', r'\ne': '!='}
_MULTIPLY = frozenset(['*', r'\cdot', r'\times'])
_DIVIDE = frozenset(['/', r'\div'])
_PRIMARY_COMMANDS = frozenset(
    [r'\frac', r'\sqrt', r'\binom', r'\begin', r'\log', r'\emptyset']
    + list(_FUNCTIONS) + list(_CONSTANTS) + ['\\' + g for g in _GREEK])


class LatexParseError(ValueError):
  """The answer is outside the supported LaTeX grammar."""


def parse_latex(text: Optional[str]) -> Optional[list]:
  """Parses a normalised MATH answer into a tree (see module docstring).

  Args:
    text: Output of `math_normalize.normalize_answer`.

  Returns:
    The tree, or None if the text cannot be parsed. Never raises.
  """
  if not isinstance(text, str) or not text:
    return None
  try:
    return _Parser(_tokenize(text)).parse()
  except (LatexParseError, RecursionError):
    return None


def _tokenize(text: str) -> List[str]:
  tokens = []
  position = 0
  length = len(text)
  while position < length:
    match = _TOKEN.match(text, position)
    if match is None or match.end() == position:
      if text[position:].strip() == '':
        break
      raise LatexParseError(f'unexpected character {text[position]!r}')
    tokens.append(match.group(match.lastgroup))
    position = match.end()
    if len(tokens) > MAX_TOKENS:
      raise LatexParseError('answer too long')
  return tokens


def _is_number(token: Optional[str]) -> bool:
  return token is not None and (token[0].isdigit() or token[0] == '.')


def _is_letter(token: Optional[str]) -> bool:
  return token is not None and len(token) == 1 and token.isalpha()


def _is_integer_literal(node: list) -> bool:
  return node[0] == 'num' and node[1].isdigit()


class _Parser:
  """Recursive-descent parser over the token list."""

  def __init__(self, tokens: List[str]):
    self._tokens = tokens
    self._position = 0
    self._depth = 0
    self._abs_depth = 0

  # Token helpers.

  def _peek(self, offset: int = 0) -> Optional[str]:
    index = self._position + offset
    return self._tokens[index] if index < len(self._tokens) else None

  def _next(self) -> str:
    token = self._peek()
    if token is None:
      raise LatexParseError('unexpected end of answer')
    self._position += 1
    return token

  def _expect(self, token: str) -> None:
    if self._next() != token:
      raise LatexParseError(f'expected {token!r}')

  def _enter(self) -> None:
    self._depth += 1
    if self._depth > MAX_DEPTH:
      raise LatexParseError('nesting too deep')

  def _leave(self) -> None:
    self._depth -= 1

  # Grammar, lowest precedence first.

  def parse(self) -> list:
    items = self._list_items()
    if self._peek() is not None:
      raise LatexParseError(f'unexpected {self._peek()!r}')
    return items[0] if len(items) == 1 else ['list', items]

  def _list_items(self) -> List[list]:
    items = []
    while True:
      item = self._union()
      if item[0] == 'pm':
        # `a \pm b` denotes the two answers a + b and a - b.
        items.extend([['add', [item[1], item[2]]],
                      ['add', [item[1], ['neg', item[2]]]]])
      else:
        items.append(item)
      if self._peek() != ',':
        return items
      self._next()

  def _union(self) -> list:
    items = [self._relation()]
    while self._peek() == r'\cup':
      self._next()
      items.append(self._relation())
    return items[0] if len(items) == 1 else ['union', items]

  def _relation(self) -> list:
    lhs = self._expression()
    op = _RELATIONS.get(self._peek())
    if op is None:
      return lhs
    self._next()
    rhs = self._expression()
    if self._peek() in _RELATIONS:
      raise LatexParseError('chained relations are not supported')
    return ['rel', op, lhs, rhs]

  def _expression(self) -> list:
    self._enter()
    terms = []
    sign = '+'
    if self._peek() in ('+', '-'):
      sign = self._next()
    while True:
      term = self._term()
      terms.append(['neg', term] if sign == '-' else term)
      if self._peek() not in ('+', '-'):
        break
      sign = self._next()
    self._leave()
    expression = terms[0] if len(terms) == 1 else ['add', terms]
    if self._peek() == r'\pm':
      self._next()
      return ['pm', expression, self._expression()]
    return expression

  def _term(self) -> list:
    factors = [self._factor()]
    while True:
      token = self._peek()
      if token in _MULTIPLY:
        self._next()
        factors.append(self._factor())
      elif token in _DIVIDE:
        self._next()
        numerator = factors[0] if len(factors) == 1 else ['mul', factors]
        factors = [['div', numerator, self._factor()]]
      elif self._starts_primary(token):
        factor = self._factor()
        # A mixed number such as 1\frac{9}{10} means 1 + 9/10 in MATH answers.
        if (len(factors) == 1 and _is_integer_literal(factors[0])
            and factor[0] == 'div' and _is_integer_literal(factor[1])
            and _is_integer_literal(factor[2]) and token == r'\frac'):
          factors = [['add', [factors[0], factor]]]
        else:
          factors.append(factor)
      else:
        break
    return factors[0] if len(factors) == 1 else ['mul', factors]

  def _starts_primary(self, token: Optional[str]) -> bool:
    if token is None:
      return False
    if _is_number(token) or _is_letter(token) or token in ('(', '{'):
      return True
    if token == '|':
      return self._abs_depth == 0
    return token in _PRIMARY_COMMANDS

  def _factor(self) -> list:
    token = self._peek()
    if token == '-':
      self._next()
      self._enter()
      operand = self._factor()
      self._leave()
      return ['neg', operand]
    if token == '+':
      self._next()
      return self._factor()
    return self._postfix(self._primary())

  def _postfix(self, base: list) -> list:
    while True:
      token = self._peek()
      if token == '^':
        self._next()
        base = ['pow', base, self._script_argument()]
      elif token == '!':
        self._next()
        base = ['fact', base]
      elif token == '_':
        self._next()
        base = ['subscript', base, self._script_argument()]
      else:
        return base

  def _script_argument(self) -> list:
    """Argument of ^, _, \\frac, \\sqrt: a {group} or a single token."""
    token = self._peek()
    if token == '{':
      return self._primary()
    if token == '-':
      self._next()
      return ['neg', self._script_argument()]
    if _is_number(token) and len(token) > 1:
      # `x^23` is x^2 * 3 and `\frac12` is 1/2: a bare argument is one char.
      self._tokens[self._position] = token[1:]
      return self._number(token[0])
    if token is None:
      raise LatexParseError('missing argument')
    return self._primary()

  def _number(self, token: str) -> list:
    if len(token) > MAX_NUMBER_CHARS:
      raise LatexParseError('number literal too long')
    if token.endswith('.'):
      token = token[:-1]
    return ['num', token]

  def _primary(self) -> list:
    self._enter()
    node = self._primary_inner()
    self._leave()
    return node

  def _primary_inner(self) -> list:
    token = self._next()
    if _is_number(token):
      return self._number(token)
    if _is_letter(token):
      return ['const', 'I'] if token == 'i' else ['sym', token]
    if token in _CONSTANTS:
      return ['const', _CONSTANTS[token]]
    if token[1:] in _GREEK and token.startswith('\\'):
      return ['sym', token[1:]]
    if token == r'\emptyset':
      return ['set', []]
    if token == r'\frac':
      numerator = self._script_argument()
      return ['div', numerator, self._script_argument()]
    if token == r'\binom':
      top = self._script_argument()
      return ['binom', top, self._script_argument()]
    if token == r'\sqrt':
      if self._peek() == '[':
        self._next()
        index = self._expression()
        self._expect(']')
        return ['root', self._script_argument(), index]
      return ['sqrt', self._script_argument()]
    if token in _FUNCTIONS or token == r'\log':
      return self._function(token)
    if token == '{':
      items = self._list_items()
      self._expect('}')
      return items[0] if len(items) == 1 else ['list', items]
    if token in ('(', '['):
      return self._bracketed(token)
    if token == r'\{':
      items = [] if self._peek() == r'\}' else self._list_items()
      self._expect(r'\}')
      return ['set', items]
    if token == '|':
      self._abs_depth += 1
      inner = self._expression()
      self._abs_depth -= 1
      self._expect('|')
      return ['abs', inner]
    if token == r'\begin':
      return self._matrix()
    raise LatexParseError(f'unsupported token {token!r}')

  def _function(self, token: str) -> list:
    power = None
    if self._peek() == '^':  # \sin^2 x
      self._next()
      power = self._script_argument()
    base = None
    if token == r'\log' and self._peek() == '_':
      self._next()
      base = self._script_argument()
    if self._peek() in ('(', '{'):
      argument = self._primary()
    else:
      argument = self._postfix(self._primary())
    if token == r'\log':
      node = ['log', argument, base]
    else:
      node = ['func', _FUNCTIONS[token], argument]
    return node if power is None else ['pow', node, power]

  def _bracketed(self, opener: str) -> list:
    items = self._list_items()
    closer = self._next()
    if closer not in (')', ']'):
      raise LatexParseError('unbalanced bracket')
    if len(items) == 1 and opener == '(' and closer == ')':
      return items[0]
    if len(items) == 1 and opener == '[' and closer == ']':
      return items[0]
    return ['seq', opener, closer, items]

  def _environment_name(self) -> str:
    self._expect('{')
    name = ''
    while self._peek() not in ('}', None):
      name += self._next()
    self._expect('}')
    return name

  def _matrix(self) -> list:
    name = self._environment_name()
    if name not in ('pmatrix', 'matrix', 'vmatrix', 'array'):
      raise LatexParseError(f'unsupported environment {name!r}')
    if name == 'array' and self._peek() == '{':
      self._environment_name()  # column spec such as {cc}
    rows, row = [], []
    while True:
      token = self._peek()
      if token == r'\end':
        self._next()
        if self._environment_name() != name:
          raise LatexParseError('mismatched environment')
        break
      row.append(self._expression())
      token = self._next()
      if token == '&':
        continue
      if token == r'\\':
        rows.append(row)
        row = []
        if self._peek() == r'\end':
          continue
      elif token == r'\end':
        self._position -= 1
      else:
        raise LatexParseError('bad matrix cell')
    if row:
      rows.append(row)
    if not rows or any(len(r) != len(rows[0]) for r in rows):
      raise LatexParseError('ragged matrix')
    node = ['matrix', rows]
    return ['func', 'det', node] if name == 'vmatrix' else node
