"""Verification training data: from candidate stores, and from the paper's released GSM8K data.

From candidate stores (`genrm_jax.candidates.Candidate`), one function per
training format, each returning plain dicts (the seqio registry tokenises
them):

  direct_examples   GenRM: inputs ending "Is the answer correct (Yes/No)?" -> " Yes"/" No"
  cot_examples      GenRM-CoT: inputs ending "Let's verify step by step.\\n" -> rationale
  disc_examples     discriminative RM: question + solution -> label, classes balanced
  dpo_pairs         DPO: solution prompt -> (chosen correct, rejected incorrect), one problem
  solve_examples    solution SFT: solution prompt -> correct solution

All apply the paper's per-problem cap (at most 16 correct + 16 incorrect
candidates; configurable) after dropping duplicate solutions, and are
deterministic given `seed` (each problem's choice depends only on the seed and
its problem_id, so adding problems does not reshuffle the others).

From the released genrm-critiques files (GSM8K train questions only), streamed
lazily:

  released_direct_examples(split)   the `rm_*` zips (train = batches 00-07, validation = 08_val)
  released_cot_examples(split)      train: built from the raw round-0 critiques, keeping
                                    those whose verdict agrees with the label and
                                    formatting them like the validation rows;
                                    validation: the `critiques_*_batch_16_val` zips.
"""

from __future__ import annotations

import collections
import dataclasses
import glob
import gzip
import json
import os
import random
import re
import zipfile
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence, Union

from genrm_jax import data_files
from genrm_jax import prompts
from genrm_jax import rationales
from genrm_jax.candidates import Candidate

DEFAULT_MAX_CORRECT = 16
DEFAULT_MAX_INCORRECT = 16

RationaleFn = Callable[[Candidate], Union[str, Sequence[str], None]]
Cap = Optional[int]  # a per-problem cap; None: no cap


# -----------------------------------------------------------------------------
# Per-problem selection.
# -----------------------------------------------------------------------------


def select_candidates(candidates: Iterable[Candidate], *,
                      max_correct: Cap = DEFAULT_MAX_CORRECT,
                      max_incorrect: Cap = DEFAULT_MAX_INCORRECT, seed: int = 0,
                      dedupe: bool = True, balance_by: str = ''
                      ) -> dict[str, tuple[list[Candidate], list[Candidate]]]:
  """Per problem: (correct, incorrect) candidates, deduplicated, shuffled and capped.

  Args:
    candidates: Candidates of any number of problems.
    max_correct, max_incorrect: Caps per problem (None: no cap).
    seed: Selection seed.
    dedupe: Drop candidates whose solution text repeats an earlier one of the
      same problem (the paper deduplicates its data).
    balance_by: Keep as many correct as incorrect candidates within each
      group, so that what defines a group cannot predict the label: 'problem'
      (each problem; problems with one kind only give nothing), 'length'
      (the problems with the same number of words, algorithmic tasks; the
      majority class is subsampled, seeded), '' = no balancing.

  Returns:
    problem_id -> (correct, incorrect), problems in first-seen order.
  """
  groups: dict[str, list[Candidate]] = collections.defaultdict(list)
  for candidate in candidates:
    groups[candidate.problem_id].append(candidate)
  selected = {}
  for problem_id, group in groups.items():
    if dedupe:
      seen = set()
      unique = []
      for candidate in group:
        if candidate.solution not in seen:
          seen.add(candidate.solution)
          unique.append(candidate)
      group = unique
    rng = _problem_rng(seed, problem_id)
    correct = [c for c in group if c.correct]
    incorrect = [c for c in group if not c.correct]
    rng.shuffle(correct)
    rng.shuffle(incorrect)
    correct, incorrect = correct[:max_correct], incorrect[:max_incorrect]
    if balance_by == 'problem':
      n = min(len(correct), len(incorrect))
      correct, incorrect = correct[:n], incorrect[:n]
    selected[problem_id] = (correct, incorrect)
  if balance_by == 'length':
    _balance_within(selected, _length_key, seed)
  elif balance_by not in ('', 'problem'):
    raise ValueError(f"balance_by={balance_by!r}; expected '', 'problem' or 'length'.")
  return selected


def _length_key(candidate: Candidate) -> int:
  task = candidate.task or candidate.problem_id.split('/')[0]
  if task not in rationales.ALGORITHMIC_TASKS:
    raise ValueError(f"balance_by='length' needs an algorithmic task "
                     f"({', '.join(rationales.ALGORITHMIC_TASKS)}), not {task!r}.")
  return len(rationales.question_words(task, candidate.question))


def _balance_within(selected: dict, key: Callable[[Candidate], Any], seed: int) -> None:
  """Subsamples, in place, the majority label of each group of problems."""
  groups: dict[Any, list[str]] = collections.defaultdict(list)
  for problem_id, (correct, incorrect) in selected.items():
    if correct or incorrect:
      groups[key((correct + incorrect)[0])].append(problem_id)
  for group_key, problem_ids in groups.items():
    pos = [(p, i) for p in problem_ids for i in range(len(selected[p][0]))]
    neg = [(p, i) for p in problem_ids for i in range(len(selected[p][1]))]
    n = min(len(pos), len(neg))
    rng = random.Random(f'{seed}/balance/{group_key}')
    keep_pos = set(rng.sample(pos, n))
    keep_neg = set(rng.sample(neg, n))
    for p in problem_ids:
      correct, incorrect = selected[p]
      selected[p] = ([c for i, c in enumerate(correct) if (p, i) in keep_pos],
                     [c for i, c in enumerate(incorrect) if (p, i) in keep_neg])


def _problem_rng(seed: int, problem_id: str) -> random.Random:
  # A string seed is hashed deterministically (sha512), across runs and machines.
  return random.Random(f'{seed}/{problem_id}')


def _metadata(candidate: Candidate) -> dict:
  return {'problem_id': candidate.problem_id, 'candidate_id': candidate.candidate_id,
          'correct': candidate.correct}


# -----------------------------------------------------------------------------
# Formats.
# -----------------------------------------------------------------------------


def direct_examples(candidates: Iterable[Candidate], *,
    max_correct: Cap = DEFAULT_MAX_CORRECT,
                    max_incorrect: Cap = DEFAULT_MAX_INCORRECT, seed: int = 0,
                    dedupe: bool = True, header: str = prompts.HEADER,
                    balance_by: str = '') -> list[dict]:
  """Direct GenRM examples: {inputs, targets: ' Yes'|' No', problem_id, candidate_id, correct}."""
  examples = []
  for correct, incorrect in select_candidates(candidates, max_correct=max_correct,
                                              max_incorrect=max_incorrect, seed=seed,
                                              dedupe=dedupe, balance_by=balance_by).values():
    for candidate in correct + incorrect:
      example = prompts.direct_verification_example(candidate.question, candidate.solution,
                                                    candidate.correct, header)
      examples.append({**example, **_metadata(candidate)})
  return examples


@dataclasses.dataclass
class RationaleStats:
  """How many rationales a CoT build kept, and why it dropped the others."""

  candidates: int = 0
  rationales: int = 0
  kept: int = 0
  no_verdict: int = 0  # the rationale states no "Is the answer correct (Yes/No)? X"
  disagree: int = 0  # its verdict contradicts the candidate's label


def oracle_rationale_fn(candidate: Candidate) -> str:
  """The programmatic oracle rationale of an algorithmic-task candidate."""
  if candidate.task not in rationales.ALGORITHMIC_TASKS:
    raise ValueError(
        f'No oracle rationale for candidate {candidate.problem_id}/{candidate.candidate_id} '
        f'of task {candidate.task!r}: oracles exist for {rationales.ALGORITHMIC_TASKS} '
        '(set `task` in the candidate store), other tasks need a rationale_fn '
        '(e.g. reference-guided synthetic rationales).')
  return rationales.oracle_rationale(candidate.task, candidate.question, candidate.solution,
                                     candidate.reference)


def cot_examples(candidates: Iterable[Candidate], rationale_fn: RationaleFn = oracle_rationale_fn,
                 *, max_correct: Cap = DEFAULT_MAX_CORRECT,
                 max_incorrect: Cap = DEFAULT_MAX_INCORRECT, seed: int = 0,
                 dedupe: bool = True, header: str = prompts.HEADER,
                 stats: Optional[RationaleStats] = None, balance_by: str = '') -> list[dict]:
  """GenRM-CoT examples: {inputs, targets: rationale, k, problem_id, candidate_id, correct}.

  Args:
    candidates: Graded candidates.
    rationale_fn: Candidate -> rationale, list of rationales (k = index), or
      None. Default: the oracle (algorithmic tasks).
    max_correct, max_incorrect, seed, dedupe, balance_by: Selection, see
      `select_candidates`.
    header: The instruction header.
    stats: Filled in with counts of kept and dropped rationales.

  Rationales whose verdict (`prompts.parse_verdict`) is missing or disagrees
  with the candidate's label are dropped (as the paper filters its synthetic
  rationales) and counted in `stats`.
  """
  stats = stats if stats is not None else RationaleStats()
  examples = []
  for correct, incorrect in select_candidates(candidates, max_correct=max_correct,
                                              max_incorrect=max_incorrect, seed=seed,
                                              dedupe=dedupe, balance_by=balance_by).values():
    for candidate in correct + incorrect:
      stats.candidates += 1
      produced = rationale_fn(candidate)
      if produced is None:
        continue
      if isinstance(produced, str):
        produced = [produced]
      inputs = prompts.cot_verification_prompt(candidate.question, candidate.solution, header)
      for k, rationale in enumerate(produced):
        stats.rationales += 1
        verdict = prompts.parse_verdict(rationale)
        if verdict is None:
          stats.no_verdict += 1
        elif verdict != candidate.correct:
          stats.disagree += 1
        else:
          stats.kept += 1
          examples.append({'inputs': inputs, 'targets': rationale, 'k': k,
                           **_metadata(candidate)})
  return examples


def disc_examples(candidates: Iterable[Candidate], *,
    max_correct: Cap = DEFAULT_MAX_CORRECT,
                  max_incorrect: Cap = DEFAULT_MAX_INCORRECT, seed: int = 0,
                  dedupe: bool = True, balance: bool = True,
                  header: str = prompts.HEADER, balance_by: str = '') -> list[dict]:
  """Discriminative-RM examples: {inputs: prompt + solution, label: 1|0, ids, correct}.

  With `balance` (default) the majority class is subsampled (seeded) to the
  size of the minority class, so labels are exactly balanced (the paper trains
  on "a balanced mixture of correct and incorrect" solutions); `balance_by`
  balances within problems or lengths first (`select_candidates`).
  """
  positives, negatives = [], []
  for correct, incorrect in select_candidates(candidates, max_correct=max_correct,
                                              max_incorrect=max_incorrect, seed=seed,
                                              dedupe=dedupe, balance_by=balance_by).values():
    positives += correct
    negatives += incorrect
  if balance:
    n = min(len(positives), len(negatives))
    rng = random.Random(f'{seed}/balance')
    # Subsample by index so kept examples stay in problem order.
    if len(positives) > n:
      positives = [positives[i] for i in sorted(rng.sample(range(len(positives)), n))]
    if len(negatives) > n:
      negatives = [negatives[i] for i in sorted(rng.sample(range(len(negatives)), n))]
  return [{'inputs': prompts.solution_prompt(c.question, header) + c.solution,
           'label': int(c.correct), **_metadata(c)} for c in positives + negatives]


def dpo_pairs(candidates: Iterable[Candidate], *,
    max_correct: Cap = DEFAULT_MAX_CORRECT,
              max_incorrect: Cap = DEFAULT_MAX_INCORRECT,
              max_pairs_per_problem: Cap = None, seed: int = 0, dedupe: bool = True,
              header: str = prompts.HEADER) -> list[dict]:
  """DPO pairs of one problem: {prompt, chosen, rejected, problem_id, chosen_id, rejected_id}.

  Each problem's (shuffled, capped) correct and incorrect solutions are paired
  up one to one, so a problem gives min(#correct, #incorrect) pairs (at most
  `max_pairs_per_problem`) and each solution is used once.
  """
  pairs = []
  for problem_id, (correct, incorrect) in select_candidates(
      candidates, max_correct=max_correct, max_incorrect=max_incorrect, seed=seed,
      dedupe=dedupe).items():
    for chosen, rejected in list(zip(correct, incorrect))[:max_pairs_per_problem]:
      pairs.append({'prompt': prompts.solution_prompt(chosen.question, header),
                    'chosen': chosen.solution, 'rejected': rejected.solution,
                    'problem_id': problem_id, 'chosen_id': chosen.candidate_id,
                    'rejected_id': rejected.candidate_id})
  return pairs


def solve_examples(candidates: Iterable[Candidate], *,
    max_correct: Cap = DEFAULT_MAX_CORRECT,
                   seed: int = 0, dedupe: bool = True,
                   header: str = prompts.HEADER) -> list[dict]:
  """Solution SFT examples from correct candidates: {inputs: prompt, targets: solution, ...}."""
  examples = []
  for correct, _ in select_candidates(candidates, max_correct=max_correct, max_incorrect=0,
                                      seed=seed, dedupe=dedupe).values():
    for candidate in correct:
      examples.append({'inputs': prompts.solution_prompt(candidate.question, header),
                       'targets': candidate.solution, **_metadata(candidate)})
  return examples


def solve_examples_from_problems(problems: Iterable[dict],
                                 header: str = prompts.HEADER) -> list[dict]:
  """Solution SFT examples from problem sources' reference solutions (to train a generator)."""
  return [{'inputs': prompts.solution_prompt(p['question'], header), 'targets': p['solution'],
           'problem_id': p['problem_id']} for p in problems]


# -----------------------------------------------------------------------------
# The paper's released GSM8K data (genrm-critiques).
# -----------------------------------------------------------------------------

CRITIQUES_DIR = os.path.join('genrm_critiques', 'critiques')
RAW_CRITIQUES_DIR = os.path.join(CRITIQUES_DIR, 'data_collection')
TRAIN = 'train'
VALIDATION = 'validation'
RELEASED_SPLITS = (TRAIN, VALIDATION)
_DIRECT_TRAIN_BATCHES = tuple(f'{b:02d}' for b in range(8))
_DIRECT_VALIDATION_BATCH = '08_val'
_COT_VALIDATION_BATCH = '16_val'
_LABELS = ('correct', 'incorrect')
_RAW_SHARD = re.compile(r'critique_gen_(correct|incorrect)_solutions_round_0_shard_(\d+)\.jsonl\.gz$')


def _check_split(split: str) -> None:
  if split not in RELEASED_SPLITS:
    raise ValueError(f'split must be one of {RELEASED_SPLITS}, got {split!r}')


def iter_zip_jsonl(path: str) -> Iterator[dict]:
  """Rows of a released zip (one .jsonl inside), streamed; bad rows name file and line."""
  with zipfile.ZipFile(path) as archive:
    member = archive.namelist()[0]
    with archive.open(member) as f:
      for line_number, line in enumerate(f, start=1):
        try:
          yield json.loads(line)
        except json.JSONDecodeError as e:
          raise ValueError(f'{path}!{member}:{line_number}: invalid JSON ({e.msg})') from None


def _released_row(row: dict, correct: bool) -> dict:
  return {'inputs': row['inputs'], 'targets': row['targets'],
          'question_id': row['question_id'], 'model_output_id': row['model_output_id'],
          'correct': correct}


def _interleave_limited(streams: Iterable[Iterator[dict]], limit: Optional[int],
                        limit_per_file: Optional[int]) -> Iterator[dict]:
  produced = 0
  for stream in streams:
    for i, row in enumerate(stream):
      if limit is not None and produced >= limit:
        return
      if limit_per_file is not None and i >= limit_per_file:
        break
      produced += 1
      yield row
  return


def released_direct_examples(split: str, *, data_dir: Optional[str] = None,
                             limit: Optional[int] = None,
                             limit_per_file: Optional[int] = None) -> Iterator[dict]:
  """The paper's direct GenRM data: {inputs, targets, question_id, model_output_id, correct}.

  Args:
    split: 'train' (rm_* batches 00-07: 113,262 Yes + 52,390 No) or
      'validation' (batch 08_val: 125 Yes + 87 No).
    data_dir: Overrides $GENRM_DATA_DIR.
    limit: Stop after this many examples.
    limit_per_file: Read at most this many rows of each zip (correct and
      incorrect files alternate, so small reads still see both labels).
  """
  _check_split(split)
  batches = _DIRECT_TRAIN_BATCHES if split == TRAIN else (_DIRECT_VALIDATION_BATCH,)
  # Resolve every path first: a missing file fails before anything is yielded.
  files = [(data_files.data_path(CRITIQUES_DIR, f'rm_{label}_solutions_batch_{batch}.zip',
                                 data_dir=data_dir), label == 'correct')
           for batch in batches for label in _LABELS]
  streams = ((_released_row(row, correct) for row in iter_zip_jsonl(path))
             for path, correct in files)
  return _interleave_limited(streams, limit, limit_per_file)


def _validation_cot_files(data_dir: Optional[str]) -> list[tuple[str, bool]]:
  return [(data_files.data_path(CRITIQUES_DIR,
                                f'critiques_{label}_solutions_batch_{_COT_VALIDATION_BATCH}.zip',
                                data_dir=data_dir), label == 'correct')
          for label in _LABELS]


def released_validation_questions(data_dir: Optional[str] = None) -> dict[str, int]:
  """The paper's 128 GSM8K validation questions: question text -> paper question_id.

  Read from the four validation zips (direct and CoT).
  """
  files = [data_files.data_path(CRITIQUES_DIR, f'rm_{label}_solutions_batch_'
                                f'{_DIRECT_VALIDATION_BATCH}.zip', data_dir=data_dir)
           for label in _LABELS]
  files += [path for path, _ in _validation_cot_files(data_dir)]
  questions = {}
  for path in files:
    for row in iter_zip_jsonl(path):
      question, _ = prompts.parse_verification_inputs(row['inputs'])
      questions[question] = row['question_id']
  return questions


# What precedes "Is the answer correct" on the verdict's line and belongs to it:
# "**Verification: ", "**Verification:** ", "<b>Verification:</b> ", "**".
_VERDICT_LINE_PREFIX = re.compile(
    r'\s*(?:(?:\*\*|<b>)?Verification:?\s*(?:\*\*|</b>)?)?\s*(?:\*\*|<b>)?\s*$')


# A heading line the raw critiques open with ("**Verification:**"): the
# released targets have it removed, its newline kept (183 of 259 start "\n").
_HEADING_LINE = re.compile(r'^(?:\*\*)?(?:Solution )?Verification:(?:\*\*)?[ \t]*(?=\n)')


def clean_critique(critique: str, lenient: bool = False) -> Optional[str]:
  """A raw released critique as a training target: cut at its verdict, which becomes the last line.

  The raw Gemini critiques often decorate the verdict ("**Verification: Is the
  answer correct (Yes/No)? Yes**") or keep writing after it; the formatted
  released targets always end with exactly the verdict line. Text after the
  last verdict is dropped, as is "Verification:" and markup on the verdict's
  own line, and an opening "**Verification:**" heading line (its newline
  kept, as in the released targets); the body is kept as written (including
  its "Expected Answer" mentions, paper.md §2).

  Returns:
    body + blank line + `Verification: Is the answer correct (Yes/No)? X`,
    or None if the critique has no verdict.
  """
  match = prompts.find_verdict(critique, lenient)
  if match is None:
    return None
  body = _HEADING_LINE.sub('', critique[:match.start()], count=1)
  line_start = body.rfind('\n') + 1
  last_line = _VERDICT_LINE_PREFIX.sub('', body[line_start:])
  body = (body[:line_start] + last_line).rstrip()
  line = prompts.verdict_line(match.group(1) == 'Yes')
  return f'{body}\n\n{line}' if body else line


@dataclasses.dataclass
class ReleasedCotStats:
  """Per raw shard: rows read, and how many were kept or dropped why."""

  files: dict = dataclasses.field(default_factory=dict)  # file name -> Counter

  def total(self) -> collections.Counter:
    total = collections.Counter()
    for counter in self.files.values():
      total.update(counter)
    return total


def _raw_critique_files(data_dir: Optional[str]) -> list[tuple[str, bool]]:
  directory = data_files.data_path(RAW_CRITIQUES_DIR, data_dir=data_dir)
  shards = {}
  for path in glob.glob(os.path.join(directory, '*.jsonl.gz')):
    match = _RAW_SHARD.search(os.path.basename(path))
    if match:
      shards[(int(match.group(2)), match.group(1) == 'incorrect')] = path
  if not shards:
    raise data_files.DataNotFoundError(
        f'No critique_gen_*_round_0_shard_*.jsonl.gz files in {directory}; run '
        '`bash launch/download_data.sh` or set GENRM_DATA_DIR.')
  # Shard by shard, correct before incorrect, so a limited read sees both labels.
  return [(shards[key], not key[1]) for key in sorted(shards)]


def _raw_cot_rows(path: str, correct_file: bool, lenient: bool, held_out: set,
                  counter: collections.Counter) -> Iterator[dict]:
  with gzip.open(path, 'rt', encoding='utf-8') as f:
    for line_number, line in enumerate(f, start=1):
      try:
        row = json.loads(line)
        question, solution = row['question'], row['model_output']
        critique, correct = row['verifier_output'], bool(row['correctness'])
      except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f'{path}:{line_number}: malformed raw critique row ({e!r})') from None
      counter['rows'] += 1
      if correct != correct_file:
        raise ValueError(f'{path}:{line_number}: correctness={row["correctness"]} in a '
                         f'{"correct" if correct_file else "incorrect"}-solutions file')
      if row.get('question_id') in held_out:
        counter['held_out'] += 1  # a validation question: never train on it
        continue
      verdict = prompts.parse_verdict(critique, lenient)
      if verdict is None:
        counter['no_verdict'] += 1
        continue
      if verdict != correct:
        counter['disagree'] += 1
        continue
      counter['kept'] += 1
      yield {'inputs': prompts.cot_verification_prompt(question, solution),
             'targets': clean_critique(critique, lenient),
             'question_id': row['question_id'], 'model_output_id': row['model_output_id'],
             'correct': correct}


def cap_released_cot_rows(rows: Iterable[dict], *, max_correct: Cap = DEFAULT_MAX_CORRECT,
                          max_incorrect: Cap = DEFAULT_MAX_INCORRECT,
                          seed: int = 0) -> list[dict]:
  """The rows of at most `max_correct` correct and `max_incorrect` incorrect
  distinct solutions per question (chosen as `select_candidates` chooses,
  seeded per problem), in their order: the raw critiques cover up to 32 + 32
  solutions a question, the paper trained on at most 16 + 16."""
  rows = list(rows)
  solutions = collections.defaultdict(lambda: ([], []))  # question -> (correct, incorrect)
  for row in rows:
    texts = solutions[row['question_id']][0 if row['correct'] else 1]
    if row['inputs'] not in texts:
      texts.append(row['inputs'])
  keep = set()
  for question_id, (correct, incorrect) in solutions.items():
    rng = _problem_rng(seed, f'gsm8k/{question_id}')
    for texts, cap in ((correct, max_correct), (incorrect, max_incorrect)):
      rng.shuffle(texts)
      keep.update((question_id, text) for text in texts[:cap])
  return [row for row in rows if (row['question_id'], row['inputs']) in keep]


def released_cot_examples(split: str, *, data_dir: Optional[str] = None,
                          limit: Optional[int] = None, limit_per_file: Optional[int] = None,
                          lenient: bool = False,
                          stats: Optional[ReleasedCotStats] = None) -> Iterator[dict]:
  """The paper's GenRM-CoT data: {inputs, targets, question_id, model_output_id, correct}.

  Args:
    split: 'validation': the released `critiques_*_batch_16_val` rows as they
      are (125 Yes + 134 No). 'train': a stand-in for the unreleased formatted
      training batches, built from the raw round-0 critiques
      (`data_collection/critique_gen_*_round_0_shard_*.jsonl.gz`): rows of the
      128 validation questions are dropped, critiques whose final verdict is
      missing or disagrees with `correctness` are dropped, the rest are cut
      at their verdict (`clean_critique`) and paired with the CoT prompt.
    data_dir: Overrides $GENRM_DATA_DIR.
    limit: Stop after this many examples.
    limit_per_file: Yield at most this many examples per file.
    lenient: Also accept decorated verdicts ("**Yes**", "correct? (Yes/No)")
      in raw critiques (keeps more of them; default: the exact form only).
    stats: Filled in per raw shard: rows, held_out, no_verdict, disagree, kept.
  """
  _check_split(split)
  if split == VALIDATION:
    streams = ((_released_row(row, correct) for row in iter_zip_jsonl(path))
               for path, correct in _validation_cot_files(data_dir))
    return _interleave_limited(streams, limit, limit_per_file)
  files = _raw_critique_files(data_dir)
  held_out = set(released_validation_questions(data_dir).values())
  stats = stats if stats is not None else ReleasedCotStats()

  def streams():
    for path, correct in files:
      counter = stats.files.setdefault(os.path.basename(path), collections.Counter())
      yield _raw_cot_rows(path, correct, lenient, held_out, counter)

  return _interleave_limited(streams(), limit, limit_per_file)
