"""Problem sources for the paper's four tasks, read from `GENRM_DATA_DIR`.

No seqio or TensorFlow here: `get_problems(task, split, **options)` returns
plain dicts, which the seqio registry (and anything else) builds on.

Every problem is a dict with at least

  problem_id  str, unique within a task ("gsm8k/train.jsonl/17", ...)
  question    the problem text as the prompt shows it
  reference   the final answer graders compare against
  solution    a step-by-step reference solution ending "The answer is X."
  task, split

plus per-task metadata (`words`, `num_words`, `level`, `subject`, ...).

The data directory is `$GENRM_DATA_DIR`, else `~/.cache/genrm_jax/data`
(`$XDG_CACHE_HOME` respected); `launch/download_data.sh` fills it. Its layout
is that of the repository's shared data (see its README): `gsm8k/`, `math/`,
`bbh/`, `last_letters/`, `genrm_critiques/`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import random
import re
from typing import Callable, Iterator, Optional, Sequence

from genrm_jax import data_files
from genrm_jax import grading
from genrm_jax import rationales
from genrm_jax import verification_data

TASKS = ('last_letter', 'word_sort', 'gsm8k', 'math')
SPLITS = {
    # test = out-of-distribution lengths; kojima / bbh = the published sets.
    'last_letter': ('train', 'validation', 'test', 'kojima'),
    'word_sort': ('train', 'validation', 'test', 'bbh'),
    # validation = the paper's 128 held-out GSM8K train questions.
    'gsm8k': ('train', 'validation', 'test'),
    'math': ('train', 'test', 'math500'),
}

# Default sizes and lengths of the generated algorithmic tasks. The paper does
# not give them (paper.md §3.1); training on short lists and testing on longer
# ones is its length-generalisation setup.
DEFAULT_TRAIN_LENGTHS = (2, 3, 4)
DEFAULT_TEST_LENGTHS = (6,)
DEFAULT_SIZES = {'train': 10_000, 'validation': 500, 'test': 500}
DEFAULT_NUM_NAMES = 1000

# Re-exported: where the data live (genrm_jax.data_files).
DATA_DIR_ENV = data_files.DATA_DIR_ENV
DataNotFoundError = data_files.DataNotFoundError
default_data_dir = data_files.default_data_dir
resolve_data_dir = data_files.resolve_data_dir
data_path = data_files.data_path


def _read_jsonl(path: str) -> Iterator[tuple[int, dict]]:
  """(line index, row) pairs; a malformed line is an error naming file and line."""
  with open(path, encoding='utf-8') as f:
    for index, line in enumerate(f):
      if not line.strip():
        continue
      try:
        yield index, json.loads(line)
      except json.JSONDecodeError as e:
        raise ValueError(f'{path}:{index + 1}: invalid JSON ({e.msg})') from None


def _require_example(example, fields: Sequence[str], path: str, index: int) -> None:
  """The same check for the examples of a JSON file (Kojima's, BBH's)."""
  if not isinstance(example, dict) or not all(isinstance(example.get(f), str) for f in fields):
    raise ValueError(f'{path}: example {index} needs string field(s) {", ".join(fields)}')


def _require(row: dict, fields: Sequence[str], path: str, index: int) -> None:
  if not isinstance(row, dict):
    raise ValueError(f'{path}:{index + 1}: expected a JSON object, got {type(row).__name__}')
  missing = [f for f in fields if not isinstance(row.get(f), str)]
  if missing:
    raise ValueError(f'{path}:{index + 1}: missing or non-string field(s) {", ".join(missing)}')


# -----------------------------------------------------------------------------
# Generated algorithmic tasks.
# -----------------------------------------------------------------------------


def _split_bucket(task: str, words: Sequence[str]) -> str:
  """A fixed split for every word list, so train/validation/test never share one.

  Hashing (rather than generating splits one after another) keeps each split
  independent of the other splits' sizes.
  """
  digest = hashlib.sha256(f'{task}:{" ".join(words)}'.encode()).digest()
  bucket = int.from_bytes(digest[:8], 'big') % 100
  return 'validation' if bucket < 5 else 'test' if bucket < 10 else 'train'


def _generate(task: str, split: str, vocabulary: Sequence[str], lengths: Sequence[int],
              size: int, seed: int,
              make_problem: Callable[[list[str]], dict],
              weights: Optional[Sequence[float]] = None) -> list[dict]:
  """Samples `size` distinct word lists of the given lengths (words distinct within a list).

  `weights` (one per length) make some lengths rarer than others; without
  them every length is equally likely.
  """
  lengths = tuple(lengths)
  if not lengths or any(not isinstance(n, int) or n < 1 or n > len(vocabulary)
                        for n in lengths):
    raise ValueError(f'{task}: lengths must be integers in 1..{len(vocabulary)}, got {lengths}')
  if weights is not None and (len(weights) != len(lengths) or min(weights) < 0
                              or sum(weights) <= 0):
    raise ValueError(f'{task}: length weights {tuple(weights)} must be one non-negative '
                     f'number per length {lengths}, not all zero.')
  if size < 0:
    raise ValueError(f'{task}: the {split} size must be >= 0, got {size}')
  # String seeds hash deterministically (unlike hash() of a tuple), so the
  # same (task, split, seed) gives the same problems on every machine.
  rng = random.Random(f'{task}/{split}/{seed}')
  seen = set()
  problems = []
  attempts = 0
  max_attempts = 100 * size + 10_000
  while len(problems) < size:
    attempts += 1
    if attempts > max_attempts:
      raise ValueError(f'{task}: could only generate {len(problems)} distinct {split} '
                       f'problems of lengths {lengths}; ask for fewer.')
    # (rng.choice without weights keeps the default problems what they were.)
    length = (rng.choice(lengths) if weights is None else
              rng.choices(lengths, weights=weights)[0])
    words = rng.sample(vocabulary, length)
    # Word sorting's answer is the same for every order of a list: its
    # problems are the word *set*, in splits and in distinctness alike (a
    # permutation of a test list in train would be a test problem seen).
    key = tuple(sorted(words)) if task == 'word_sort' else tuple(words)
    if key in seen or _split_bucket(task, key) != split:
      continue
    seen.add(key)
    problem = make_problem(words)
    problem.update(problem_id=f'{task}/{split}/{len(problems)}', task=task, split=split,
                   words=words, num_words=len(words))
    problems.append(problem)
  return problems


@functools.lru_cache(maxsize=8)
def _census_first_names(root: str, num_names: int) -> tuple[str, ...]:
  """The `num_names` most frequent first names, male and female lists merged.

  A name on both lists gets the sum of its two frequencies (percent of males
  plus percent of females: both populations are about the same size).
  """
  frequency = {}
  for filename in ('dist.male.first', 'dist.female.first'):
    path = data_path('last_letters', 'names', filename, data_dir=root)
    with open(path, encoding='utf-8') as f:
      for index, line in enumerate(f):
        fields = line.split()
        if not fields:
          continue
        try:
          name, percent = fields[0], float(fields[1])
        except (IndexError, ValueError):
          raise ValueError(f'{path}:{index + 1}: expected "NAME freq cum rank", '
                           f'got {line.strip()!r}') from None
        frequency[name] = frequency.get(name, 0.0) + percent
  ranked = sorted(frequency, key=lambda name: (-frequency[name], name))
  return tuple(name.capitalize() for name in ranked[:num_names])


def _last_letter_problem(words: list[str]) -> dict:
  return {
      'question': rationales.last_letter_question(words),
      'reference': rationales.last_letter_answer(words),
      'solution': rationales.solve_last_letter(words),
  }


def last_letter_problems(split: str, *, seed: int = 0,
                         train_lengths: Sequence[int] = DEFAULT_TRAIN_LENGTHS,
                         test_lengths: Sequence[int] = DEFAULT_TEST_LENGTHS,
                         train_size: int = DEFAULT_SIZES['train'],
                         validation_size: int = DEFAULT_SIZES['validation'],
                         test_size: int = DEFAULT_SIZES['test'],
                         num_names: int = DEFAULT_NUM_NAMES,
                         train_length_weights: Optional[Sequence[float]] = None,
                         data_dir: Optional[str] = None) -> list[dict]:
  """Last-letter concatenation problems.

  Args:
    split: 'train', 'validation' (same lengths as train, disjoint lists),
      'test' (out-of-distribution lengths) or 'kojima' (Kojima et al.'s 500
      four-name examples).
    seed: Generation seed; (split, seed) fixes the problems.
    train_lengths: Word counts of train and validation problems.
    test_lengths: Word counts of test problems.
    train_size, validation_size, test_size: Numbers of problems.
    num_names: Vocabulary: the most frequent census first names.
    train_length_weights: Relative frequency of each train length (train
      and validation); None = uniform. E.g. (32, 32, 32, 3) with lengths
      (2, 3, 4, 5) puts 5-name lists in about 3% of the problems.
    data_dir: Overrides $GENRM_DATA_DIR.
  """
  if split == 'kojima':
    path = data_path('last_letters', 'last_letters.json', data_dir=data_dir)
    with open(path, encoding='utf-8') as f:
      examples = json.load(f)['examples']
    problems = []
    for index, example in enumerate(examples):
      _require_example(example, ('question', 'answer'), path, index)
      # 15 examples have a two-word name ("Jose Antonio"); the answer says which.
      try:
        words = rationales.question_words('last_letter', example['question'],
                                          example['answer'])
      except ValueError as e:
        raise ValueError(f'{path}: example {index}: {e}') from None
      problems.append({
          'problem_id': f'last_letter/kojima/{index}', 'task': 'last_letter', 'split': split,
          'question': example['question'], 'reference': example['answer'],
          'solution': rationales.solve_last_letter(words),
          'words': words, 'num_words': len(words),
      })
    return problems
  names = _census_first_names(resolve_data_dir(data_dir), num_names)
  lengths, size = _generated_split(split, 'last_letter', train_lengths, test_lengths,
                                   train_size, validation_size, test_size)
  weights = train_length_weights if split in ('train', 'validation') else None
  return _generate('last_letter', split, names, lengths, size, seed, _last_letter_problem,
                   weights=weights)


def _generated_split(split, task, train_lengths, test_lengths, train_size, validation_size,
                     test_size):
  if split == 'train':
    return train_lengths, train_size
  if split == 'validation':
    return train_lengths, validation_size
  if split == 'test':
    return test_lengths, test_size
  raise ValueError(f'{task}: unknown split {split!r}; known: {", ".join(SPLITS[task])}')


_BBH_PREFIX = 'Sort the following words alphabetically: List: '


@functools.lru_cache(maxsize=8)
def _bbh_examples(root: str) -> tuple[dict, ...]:
  path = data_path('bbh', 'word_sorting.json', data_dir=root)
  with open(path, encoding='utf-8') as f:
    examples = json.load(f)['examples']
  for index, example in enumerate(examples):
    _require_example(example, ('input', 'target'), path, index)
    if not example['input'].startswith(_BBH_PREFIX):
      raise ValueError(f'{path}: example {index} does not start with {_BBH_PREFIX!r}')
  return tuple(examples)


def word_sort_vocabulary(data_dir: Optional[str] = None) -> tuple[str, ...]:
  """The distinct words of BBH's word-sorting lists, sorted (2,741 words)."""
  words = set()
  for example in _bbh_examples(resolve_data_dir(data_dir)):
    words.update(example['input'][len(_BBH_PREFIX):].split())
  return tuple(sorted(words))


def _word_sort_problem(words: list[str]) -> dict:
  return {
      'question': rationales.word_sort_question(words),
      'reference': rationales.word_sort_answer(words),
      'solution': rationales.solve_word_sort(words),
  }


def word_sort_problems(split: str, *, seed: int = 0,
                       train_lengths: Sequence[int] = DEFAULT_TRAIN_LENGTHS,
                       test_lengths: Sequence[int] = DEFAULT_TEST_LENGTHS,
                       train_size: int = DEFAULT_SIZES['train'],
                       validation_size: int = DEFAULT_SIZES['validation'],
                       test_size: int = DEFAULT_SIZES['test'],
                       train_length_weights: Optional[Sequence[float]] = None,
                       data_dir: Optional[str] = None) -> list[dict]:
  """Word-sorting problems over BBH's vocabulary; splits as in `last_letter_problems`.

  'bbh' is BBH's own 250 examples (2-20 words), with their targets as references.
  """
  if split == 'bbh':
    problems = []
    for index, example in enumerate(_bbh_examples(resolve_data_dir(data_dir))):
      words = example['input'][len(_BBH_PREFIX):].split()
      problems.append({
          'problem_id': f'word_sort/bbh/{index}', 'task': 'word_sort', 'split': split,
          'question': example['input'], 'reference': example['target'],
          'solution': rationales.solve_word_sort(words),
          'words': words, 'num_words': len(words),
      })
    return problems
  vocabulary = word_sort_vocabulary(data_dir)
  lengths, size = _generated_split(split, 'word_sort', train_lengths, test_lengths,
                                   train_size, validation_size, test_size)
  weights = train_length_weights if split in ('train', 'validation') else None
  return _generate('word_sort', split, vocabulary, lengths, size, seed, _word_sort_problem,
                   weights=weights)


# -----------------------------------------------------------------------------
# GSM8K.
# -----------------------------------------------------------------------------

# Calculator annotations of GSM8K rationales: "48/2 = <<48/2=24>>24".
_CALCULATOR_ANNOTATION = re.compile(r'<<.*?>>')


def gsm8k_solution(answer: str) -> str:
  """A GSM8K reference rationale in the paper's style.

  "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\\n...\\n#### 72" becomes
  "Natalia sold 48/2 = 24 clips in May. ... The answer is 72.": calculator
  annotations dropped, lines joined into sentences, "The answer is X." last.
  """
  rationale, _, final = answer.rpartition('####')
  lines = [line.strip() for line in _CALCULATOR_ANNOTATION.sub('', rationale).split('\n')]
  sentences = [line if line.endswith(('.', '!', '?', ':')) else line + '.'
               for line in lines if line]
  sentences.append(f'The answer is {final.strip()}.')
  return ' '.join(sentences)


@functools.lru_cache(maxsize=8)
def _gsm8k_validation_questions(root: str) -> dict[str, int]:
  return verification_data.released_validation_questions(root)


def gsm8k_validation_questions(data_dir: Optional[str] = None) -> dict[str, int]:
  """The paper's GSM8K validation questions (text -> paper question_id), from genrm-critiques."""
  return dict(_gsm8k_validation_questions(resolve_data_dir(data_dir)))


def gsm8k_problems(split: str, *, holdout_validation: bool = True,
                   data_dir: Optional[str] = None) -> list[dict]:
  """GSM8K problems.

  Args:
    split: 'train' (train.jsonl minus the validation questions), 'validation'
      (the paper's 128 held-out train questions, matched by question text) or
      'test' (test.jsonl).
    holdout_validation: For 'train': drop the validation questions (default).
    data_dir: Overrides $GENRM_DATA_DIR.

  problem_id is "gsm8k/<file>/<line index>", e.g. "gsm8k/train.jsonl/17".
  """
  if split not in SPLITS['gsm8k']:
    raise ValueError(f'gsm8k: unknown split {split!r}; known: {", ".join(SPLITS["gsm8k"])}')
  filename = 'test.jsonl' if split == 'test' else 'train.jsonl'
  path = data_path('gsm8k', filename, data_dir=data_dir)
  validation = ({} if split == 'test' or (split == 'train' and not holdout_validation)
                else gsm8k_validation_questions(data_dir))
  problems = []
  for index, row in _read_jsonl(path):
    _require(row, ('question', 'answer'), path, index)
    held_out = row['question'] in validation
    if (split == 'validation') != held_out:
      continue
    reference = grading.extract_reference('gsm8k', row['answer'])
    if reference is None:
      raise ValueError(f'{path}:{index + 1}: no final answer after "####"')
    problem = {
        'problem_id': f'gsm8k/{filename}/{index}', 'task': 'gsm8k', 'split': split,
        'question': row['question'], 'reference': reference,
        'solution': gsm8k_solution(row['answer']), 'raw_solution': row['answer'],
    }
    if held_out:
      problem['paper_question_id'] = validation[row['question']]
    problems.append(problem)
  if split == 'validation' and len(problems) != len(validation):
    logging.warning('gsm8k: %d of %d validation questions found in %s.', len(problems),
                    len(validation), path)
  return problems


# -----------------------------------------------------------------------------
# MATH.
# -----------------------------------------------------------------------------


def _math_level(level) -> Optional[int]:
  """'Level 3' or 3 -> 3; 'Level ?' (two train rows) -> None."""
  if isinstance(level, int):
    return level
  match = re.fullmatch(r'Level (\d)', str(level))
  return int(match.group(1)) if match else None


def math_problems(split: str, *, data_dir: Optional[str] = None) -> list[dict]:
  """MATH problems: 'train' (7,500), 'test' (5,000) or 'math500' (PRM800K's 500 test problems).

  reference = the last `\\boxed{}` of the reference solution; solution = the
  reference solution with "The answer is $X$." appended; metadata `level`
  (1-5, None if unknown) and `subject` (e.g. "Algebra"). problem_id is
  "math/<original path>", e.g. "math/test/precalculus/807.json" (the same
  problem has the same id in 'test' and 'math500').
  """
  if split == 'math500':
    path = data_path('math', 'math500', 'test.jsonl', data_dir=data_dir)
    id_field, subject_field = 'unique_id', 'subject'
  elif split in ('train', 'test'):
    path = data_path('math', f'{split}.jsonl', data_dir=data_dir)
    id_field, subject_field = 'id', 'type'
  else:
    raise ValueError(f'math: unknown split {split!r}; known: {", ".join(SPLITS["math"])}')
  problems = []
  unanswered = []
  for index, row in _read_jsonl(path):
    _require(row, ('problem', 'solution', id_field, subject_field), path, index)
    reference = grading.extract_reference('math', row['solution'])
    if reference is None:
      # Two train solutions end in an empty "\boxed{}" (as in the original
      # MATH release): no answer to grade against, so they cannot be used.
      unanswered.append(f'{path}:{index + 1} ({row[id_field]})')
      continue
    problems.append({
        'problem_id': f'math/{row[id_field]}', 'task': 'math', 'split': split,
        'question': row['problem'], 'reference': reference,
        'solution': f'{row["solution"].rstrip()} The answer is ${reference}$.',
        'raw_solution': row['solution'],
        'level': _math_level(row.get('level')), 'subject': row[subject_field],
    })
  if unanswered:
    logging.warning('math/%s: skipped %d problem(s) whose reference solution has no '
                    '\\boxed{} answer: %s', split, len(unanswered), ', '.join(unanswered))
  return problems


# -----------------------------------------------------------------------------
# Registry-free API.
# -----------------------------------------------------------------------------

_SOURCES = {
    'last_letter': last_letter_problems,
    'word_sort': word_sort_problems,
    'gsm8k': gsm8k_problems,
    'math': math_problems,
}


# Options of the generated tasks a config may set (`config.data.problems`);
# an empty / zero value keeps the default.
PROBLEM_OPTIONS = ('train_lengths', 'train_length_weights', 'test_lengths', 'train_size',
                   'validation_size', 'test_size', 'seed')


def problem_options(task: str, settings) -> dict:
  """`get_problems` keyword arguments from a config's `data.problems` (a
  mapping or ConfigDict), dropping empty values; sorted, hashable values."""
  settings = dict(settings.items()) if settings is not None else {}
  unknown = sorted(set(settings) - set(PROBLEM_OPTIONS))
  if unknown:
    raise ValueError(f'data.problems has unknown option(s) {unknown}; known: '
                     f'{list(PROBLEM_OPTIONS)}.')
  options = {k: (tuple(v) if isinstance(v, (list, tuple)) else v)
             for k, v in sorted(settings.items()) if v not in (None, 0, (), [], '')}
  if options and task not in ('last_letter', 'word_sort'):
    raise ValueError(f'data.problems {options} only applies to the generated tasks '
                     f'(last_letter, word_sort), not {task}.')
  return options


def get_problems(task: str, split: str, **options) -> list[dict]:
  """The problems of `task`/`split` (see SPLITS); options go to the task's source function."""
  if task not in _SOURCES:
    raise ValueError(f'Unknown task {task!r}; known tasks: {", ".join(TASKS)}')
  if split not in SPLITS[task]:
    raise ValueError(f'{task}: unknown split {split!r}; known: {", ".join(SPLITS[task])}')
  return _SOURCES[task](split, **options)
