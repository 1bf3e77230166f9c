"""Candidate stores and verifier-score files: typed JSON-lines I/O.

A *candidate store* holds one graded candidate solution per line (DESIGN.md,
"Contracts"):

  {"problem_id": str, "candidate_id": int | str, "question": str,
   "solution": str, "answer": str | null, "reference": str, "correct": bool,
   optional "task", "generator", "seed", "logprob"}

A *verifier-scores* file holds one score per line:

  {"problem_id": str, "candidate_id": int | str, "verifier": str,
   "score": float, optional "k": int, "rationale": str}

Unknown keys are kept (in `extra`) and written back, so a store passes through
tools that do not know about them unchanged. A malformed row is an error naming
the file, the line and what is wrong; with `on_error='skip'` it is skipped,
counted in a `ReadStats` and logged, never lost silently.

Writing is atomic (a temp file in the same directory, then a rename) so a
crash never leaves half a store; `append=True` adds rows in place, flushed and
fsync'ed line by line, for resumable generation.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import math
import os
import tempfile
from typing import Any, Callable, Iterable, Iterator, Optional, TypeVar, Union

CandidateId = Union[int, str]

RAISE = 'raise'
SKIP = 'skip'
_ON_ERROR = (RAISE, SKIP)


class MalformedRowError(ValueError):
  """A JSON-lines row that does not fit its format; names the file and line."""

  def __init__(self, path: str, line_number: int, problem: str):
    super().__init__(f'{path}:{line_number}: {problem}')
    self.path = path
    self.line_number = line_number
    self.problem = problem


@dataclasses.dataclass
class ReadStats:
  """What a read saw: rows kept, rows skipped (with the first few reasons)."""

  path: str = ''
  rows: int = 0
  skipped: int = 0
  errors: list[str] = dataclasses.field(default_factory=list)  # first `_MAX_ERRORS`

  def __str__(self):
    return f'{self.path}: {self.rows} rows read, {self.skipped} malformed rows skipped'


_MAX_ERRORS = 20


# -----------------------------------------------------------------------------
# Row types.
# -----------------------------------------------------------------------------


def _is_str(value) -> bool:
  return isinstance(value, str)


def _is_optional_str(value) -> bool:
  return value is None or isinstance(value, str)


def _is_candidate_id(value) -> bool:
  # bool is an int subclass; `true` as an id is a bug upstream.
  return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _is_bool(value) -> bool:
  return isinstance(value, bool)


def _is_optional_int(value) -> bool:
  return value is None or (isinstance(value, int) and not isinstance(value, bool))


def _is_finite_number(value) -> bool:
  if not isinstance(value, (int, float)) or isinstance(value, bool):
    return False
  try:
    return math.isfinite(value)
  except OverflowError:  # an int past float range, e.g. 10**400
    return False


def _is_optional_finite_number(value) -> bool:
  return value is None or _is_finite_number(value)


_TYPE_NAMES = {
    _is_str: 'a string',
    _is_optional_str: 'a string or null',
    _is_candidate_id: 'an integer or a string',
    _is_bool: 'true or false',
    _is_optional_int: 'an integer or null',
    _is_finite_number: 'a finite number',
    _is_optional_finite_number: 'a finite number or null',
}


def _check_fields(row: dict, required: dict, optional: dict) -> Optional[str]:
  """Returns what is wrong with `row` (None if nothing)."""
  missing = [name for name in required if name not in row]
  if missing:
    return f'missing field(s) {", ".join(missing)}'
  for name, check in {**required, **optional}.items():
    if name in row and not check(row[name]):
      return (f'field {name!r} must be {_TYPE_NAMES[check]}, got '
              f'{type(row[name]).__name__} {json.dumps(row[name])[:60]}')
  return None


@dataclasses.dataclass
class Candidate:
  """One graded candidate solution of one problem."""

  problem_id: str
  candidate_id: CandidateId
  question: str
  solution: str
  answer: Optional[str]
  reference: str
  correct: bool
  task: Optional[str] = None
  generator: Optional[str] = None
  seed: Optional[int] = None
  logprob: Optional[float] = None
  extra: dict[str, Any] = dataclasses.field(default_factory=dict)

  # Schemas (unannotated, so class attributes rather than dataclass fields).
  _REQUIRED = {
      'problem_id': _is_str, 'candidate_id': _is_candidate_id, 'question': _is_str,
      'solution': _is_str, 'answer': _is_optional_str, 'reference': _is_str,
      'correct': _is_bool,
  }
  _OPTIONAL = {
      'task': _is_optional_str, 'generator': _is_optional_str, 'seed': _is_optional_int,
      'logprob': _is_optional_finite_number,
  }

  @classmethod
  def from_dict(cls, row: dict) -> 'Candidate':
    """Validates and converts one row; raises ValueError saying what is wrong."""
    return _from_dict(cls, row)

  def to_dict(self) -> dict:
    """The JSON row: required fields, then the optional ones that are set, then extras."""
    return _to_dict(self)


@dataclasses.dataclass
class VerifierScore:
  """One verifier's score of one candidate (optionally of its k-th rationale)."""

  problem_id: str
  candidate_id: CandidateId
  verifier: str
  score: float
  k: Optional[int] = None
  rationale: Optional[str] = None
  extra: dict[str, Any] = dataclasses.field(default_factory=dict)

  _REQUIRED = {
      'problem_id': _is_str, 'candidate_id': _is_candidate_id, 'verifier': _is_str,
      'score': _is_finite_number,
  }
  _OPTIONAL = {'k': _is_optional_int, 'rationale': _is_optional_str}

  @classmethod
  def from_dict(cls, row: dict) -> 'VerifierScore':
    """Validates and converts one row; raises ValueError saying what is wrong."""
    return _from_dict(cls, row)

  def to_dict(self) -> dict:
    """The JSON row: required fields, then the optional ones that are set, then extras."""
    return _to_dict(self)


_Row = TypeVar('_Row', Candidate, VerifierScore)


def _from_dict(cls, row):
  if not isinstance(row, dict):
    raise ValueError(f'a row must be a JSON object, got {type(row).__name__}')
  problem = _check_fields(row, cls._REQUIRED, cls._OPTIONAL)
  if problem:
    raise ValueError(problem)
  known = {**cls._REQUIRED, **cls._OPTIONAL}
  kwargs = {name: row[name] for name in known if name in row}
  if 'score' in kwargs:
    kwargs['score'] = float(kwargs['score'])
  if kwargs.get('logprob') is not None:
    kwargs['logprob'] = float(kwargs['logprob'])
  extra = {key: value for key, value in row.items() if key not in known}
  return cls(**kwargs, extra=extra)


def _to_dict(item) -> dict:
  row = {name: getattr(item, name) for name in item._REQUIRED}
  row.update({name: getattr(item, name) for name in item._OPTIONAL
              if getattr(item, name) is not None})
  for key, value in item.extra.items():
    row.setdefault(key, value)
  return row


# -----------------------------------------------------------------------------
# Reading.
# -----------------------------------------------------------------------------


def iter_json_rows(path: str, parse: Callable[[Any], Any] = lambda row: row
                   ) -> Iterator[tuple[int, Any]]:
  """(line number, `parse(row)`) of each non-blank line of a JSON-lines
  file; invalid JSON, or a ValueError of `parse`, raises MalformedRowError
  naming the file and line."""
  path = os.fspath(path)
  with open(path, encoding='utf-8') as f:
    for line_number, line in enumerate(f, start=1):
      if not line.strip():
        continue
      try:
        try:
          row = json.loads(line)
        except json.JSONDecodeError as e:
          raise ValueError(f'invalid JSON ({e.msg} at column {e.colno})') from None
        yield line_number, parse(row)
      except ValueError as e:
        raise MalformedRowError(path, line_number, str(e)) from None


def _iter_rows(path: str, parse: Callable[[dict], _Row], on_error: str,
               stats: Optional[ReadStats]) -> Iterator[_Row]:
  if on_error not in _ON_ERROR:
    raise ValueError(f'on_error must be one of {_ON_ERROR}, got {on_error!r}')
  path = os.fspath(path)
  stats = stats if stats is not None else ReadStats()
  stats.path = path
  with open(path, encoding='utf-8') as f:
    for line_number, line in enumerate(f, start=1):
      if not line.strip():
        continue  # blank lines carry no row (e.g. a trailing newline)
      try:
        try:
          row = json.loads(line)
        except json.JSONDecodeError as e:
          raise ValueError(f'invalid JSON ({e.msg} at column {e.colno})') from None
        item = parse(row)
      except ValueError as e:
        if on_error == RAISE:
          raise MalformedRowError(path, line_number, str(e)) from None
        stats.skipped += 1
        if len(stats.errors) < _MAX_ERRORS:
          stats.errors.append(f'{path}:{line_number}: {e}')
        continue
      stats.rows += 1
      yield item
  if stats.skipped:
    logging.warning('%s; first: %s', stats, stats.errors[0])


def iter_candidates(path: str, on_error: str = RAISE,
                    stats: Optional[ReadStats] = None) -> Iterator[Candidate]:
  """Yields the candidates of a store lazily (see `read_candidates`)."""
  return _iter_rows(path, Candidate.from_dict, on_error, stats)


def read_candidates(path: str, on_error: str = RAISE,
                    stats: Optional[ReadStats] = None) -> list[Candidate]:
  """Reads a candidate store.

  Args:
    path: A JSON-lines candidate store.
    on_error: 'raise' (default): a malformed row raises `MalformedRowError`
      ("FILE:LINE: what is wrong"); 'skip': it is skipped, counted in `stats`
      and a warning is logged.
    stats: Optional `ReadStats` to fill in (rows read, rows skipped, reasons).

  Returns:
    The candidates in file order.
  """
  return list(iter_candidates(path, on_error, stats))


def iter_scores(path: str, on_error: str = RAISE,
                stats: Optional[ReadStats] = None) -> Iterator[VerifierScore]:
  """Yields the rows of a verifier-scores file lazily (see `read_scores`)."""
  return _iter_rows(path, VerifierScore.from_dict, on_error, stats)


def read_scores(path: str, on_error: str = RAISE,
                stats: Optional[ReadStats] = None) -> list[VerifierScore]:
  """Reads a verifier-scores file; errors and `on_error` as in `read_candidates`."""
  return list(iter_scores(path, on_error, stats))


# -----------------------------------------------------------------------------
# Writing.
# -----------------------------------------------------------------------------


def _dump(item, cls) -> str:
  if isinstance(item, dict):
    item = cls.from_dict(item)  # validate before anything reaches the file
  elif not isinstance(item, cls):
    raise TypeError(f'expected {cls.__name__} or dict, got {type(item).__name__}')
  # ensure_ascii=False keeps questions readable; allow_nan=False keeps it JSON.
  return json.dumps(item.to_dict(), ensure_ascii=False, allow_nan=False) + '\n'


def _write_rows(path: str, items: Iterable, cls, append: bool) -> int:
  path = os.fspath(path)
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  count = 0
  if append:
    end_partial_last_line(path)
    with open(path, 'a', encoding='utf-8') as f:
      for item in items:
        f.write(_dump(item, cls))
        # One durable line at a time: a resumed run loses at most the line
        # being written when it was killed.
        f.flush()
        os.fsync(f.fileno())
        count += 1
    return count
  fd, tmp_path = tempfile.mkstemp(dir=directory, prefix=os.path.basename(path) + '.',
                                  suffix='.tmp')
  try:
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
      for item in items:
        f.write(_dump(item, cls))
        count += 1
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp_path, path)
  except BaseException:
    os.unlink(tmp_path)
    raise
  return count


CUT_SUFFIX = '.cut'


def end_partial_last_line(path: str) -> None:
  """Makes a JSON-lines file that a killed writer may have cut safe to
  append to and to read.

  A last line without its newline that is not JSON (a row cut mid-write,
  which the resumed writer redoes) moves to PATH.cut: the file stays
  readable by every later stage, and nothing is deleted behind the user's
  back. A complete row that only lacks its newline gets one.
  """
  if not os.path.exists(path) or os.path.getsize(path) == 0:
    return
  with open(path, 'rb+') as f:
    end = f.seek(0, os.SEEK_END)
    f.seek(end - 1)
    if f.read(1) == b'\n':
      return
    start = end  # the last line's first byte: after the last newline
    while start > 0:
      block = max(0, start - (1 << 16))
      f.seek(block)
      newline = f.read(start - block).rfind(b'\n')
      if newline >= 0:
        start = block + newline + 1
        break
      start = block
    f.seek(start)
    tail = f.read()
    try:
      json.loads(tail)
      f.write(b'\n')
      return
    except ValueError:
      pass
    with open(path + CUT_SUFFIX, 'ab') as side:
      side.write(tail + b'\n')
    f.truncate(start)
  logging.warning('%s: its last line was cut by an interrupted write; moved it to %s '
                  '(the row is written again).', path, path + CUT_SUFFIX)


def write_candidates(path: str, candidates: Iterable[Union[Candidate, dict]],
                     append: bool = False) -> int:
  """Writes candidates (Candidate or dict rows, validated) as JSON lines.

  Args:
    path: The store to write.
    candidates: The rows.
    append: False (default): replace `path` atomically (temp file + rename).
      True: append in place, each line flushed and fsync'ed (resumable
      generation: re-read with `on_error='skip'` to see what is done).

  Returns:
    The number of rows written.
  """
  return _write_rows(path, candidates, Candidate, append)


def write_scores(path: str, scores: Iterable[Union[VerifierScore, dict]],
                 append: bool = False) -> int:
  """Writes verifier scores as JSON lines; `append` as in `write_candidates`."""
  return _write_rows(path, scores, VerifierScore, append)


# -----------------------------------------------------------------------------
# Grouping.
# -----------------------------------------------------------------------------


def group_by_problem(rows: Iterable[_Row]) -> dict[str, list[_Row]]:
  """Groups candidates (or scores) by problem_id, keeping first-seen problem and row order."""
  groups = collections.defaultdict(list)
  for row in rows:
    groups[row.problem_id].append(row)
  return dict(groups)
