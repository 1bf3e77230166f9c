"""Verification data from candidate stores and from the paper's released GSM8K files."""

import collections
import dataclasses
import os

import pytest

from genrm_jax import prompts
from genrm_jax import rationales
from genrm_jax import verification_data as vd
from genrm_jax.candidates import Candidate


def _store(num_problems=3, num_correct=20, num_incorrect=20):
  """Word-sorting candidates: correct ones are the oracle solution (made unique), incorrect ones are not sorted."""
  store = []
  for p in range(num_problems):
    words = [f'w{p}{c}' for c in 'dcba']
    question = rationales.word_sort_question(words)
    reference = rationales.word_sort_answer(words)
    solution = rationales.solve_word_sort(words)
    for i in range(num_correct):
      store.append(Candidate(problem_id=f'ws/{p}', candidate_id=i, question=question,
                             solution=f'Attempt {i}.\n{solution}', answer=reference,
                             reference=reference, correct=True, task='word_sort'))
    for i in range(num_incorrect):
      wrong = ' '.join(reversed(reference.split())) + f' w{i}'
      store.append(Candidate(problem_id=f'ws/{p}', candidate_id=100 + i, question=question,
                             solution=f'The answer is {wrong}.', answer=wrong,
                             reference=reference, correct=False, task='word_sort'))
  return store


def test_caps_dedupe_and_determinism():
  store = _store()
  store.append(Candidate(**{**store[0].__dict__, 'candidate_id': 999}))  # duplicate solution
  selected = vd.select_candidates(store, seed=0)
  assert list(selected) == ['ws/0', 'ws/1', 'ws/2']
  for correct, incorrect in selected.values():
    assert len(correct) == 16 and len(incorrect) == 16
    assert all(c.correct for c in correct) and not any(c.correct for c in incorrect)
  assert 999 not in [c.candidate_id for c in selected['ws/0'][0]]
  ids = lambda sel: {p: sorted(c.candidate_id for c in a + b) for p, (a, b) in sel.items()}
  assert ids(vd.select_candidates(store, seed=0)) == ids(selected)
  assert ids(vd.select_candidates(store, seed=1)) != ids(selected)
  # A problem's choice depends only on the seed and its own candidates.
  assert ids(vd.select_candidates(store[:40], seed=0))['ws/0'] == ids(selected)['ws/0']
  capped = vd.select_candidates(store, max_correct=2, max_incorrect=None)
  assert [len(a) for a, _ in capped.values()] == [2, 2, 2]
  assert [len(b) for _, b in capped.values()] == [20, 20, 20]


def test_direct_examples_golden():
  examples = vd.direct_examples(_store(1, 1, 1))
  assert [e['targets'] for e in examples] == [' Yes', ' No']
  first = examples[0]
  assert first['inputs'] == (
      prompts.HEADER + '\n\nQ: Sort the following words alphabetically: List: w0d w0c w0b w0a\n'
      "A: Let's think step by step.\nAttempt 0.\nThe words to sort are: w0d, w0c, w0b, w0a.\n"
      '"w0a" < "w0b" (letter 3: "a" < "b").\n"w0b" < "w0c" (letter 3: "b" < "c").\n'
      '"w0c" < "w0d" (letter 3: "c" < "d").\nThe answer is w0a w0b w0c w0d.\n'
      'Verification: Is the answer correct (Yes/No)?')
  assert (first['problem_id'], first['candidate_id'], first['correct']) == ('ws/0', 0, True)
  assert len(vd.direct_examples(_store())) == 3 * 32


def test_cot_examples_with_oracle_and_filtering():
  examples = vd.cot_examples(_store())
  assert len(examples) == 96
  for e in examples:
    assert e['inputs'].endswith("\nVerification: Let's verify step by step.\n")
    assert e['targets'].endswith('\n' + prompts.verdict_line(e['correct']))
  # A rationale function's wrong or missing verdicts are dropped and counted.
  def noisy(candidate):
    return [prompts.verdict_line(True), 'no verdict', prompts.verdict_line(candidate.correct)]
  stats = vd.RationaleStats()
  kept = vd.cot_examples(_store(1), noisy, stats=stats)
  assert (stats.candidates, stats.rationales, stats.kept) == (32, 96, 48)
  assert (stats.no_verdict, stats.disagree) == (32, 16)
  assert collections.Counter(e['k'] for e in kept) == {0: 16, 2: 32}
  gsm = Candidate('g/0', 0, 'q', 's', '1', '1', True, task='gsm8k')
  with pytest.raises(ValueError, match='rationale_fn'):
    vd.cot_examples([gsm])


def test_disc_examples_are_balanced():
  store = _store(num_problems=4, num_correct=20, num_incorrect=5)
  examples = vd.disc_examples(store, seed=3)
  labels = collections.Counter(e['label'] for e in examples)
  assert labels == {1: 20, 0: 20}
  assert examples == vd.disc_examples(store, seed=3)
  assert examples != vd.disc_examples(store, seed=4)
  by_id = {(c.problem_id, c.candidate_id): c for c in store}
  for example in examples:
    candidate = by_id[(example['problem_id'], example['candidate_id'])]
    assert example['inputs'] == prompts.solution_prompt(candidate.question) + candidate.solution
    assert example['label'] == int(candidate.correct)
  assert len(vd.disc_examples(store, balance=False)) == 4 * (16 + 5)


def test_dpo_pairs_and_solve_examples():
  store = _store(num_problems=2, num_correct=3, num_incorrect=5)
  by_id = {(c.problem_id, c.candidate_id): c for c in store}
  pairs = vd.dpo_pairs(store)
  assert len(pairs) == 2 * 3
  for pair in pairs:
    chosen = by_id[(pair['problem_id'], pair['chosen_id'])]
    rejected = by_id[(pair['problem_id'], pair['rejected_id'])]
    assert chosen.correct and not rejected.correct
    assert pair['prompt'] == prompts.solution_prompt(chosen.question)
    assert (pair['chosen'], pair['rejected']) == (chosen.solution, rejected.solution)
  assert len(vd.dpo_pairs(store, max_pairs_per_problem=1)) == 2
  solve = vd.solve_examples(store)
  assert len(solve) == 6 and all(by_id[(e['problem_id'], e['candidate_id'])].correct for e in solve)
  assert solve[0]['inputs'].endswith("\nA: Let's think step by step.\n")
  from_problems = vd.solve_examples_from_problems(
      [{'problem_id': 'p', 'question': 'Q?', 'solution': 'The answer is 1.'}])
  assert from_problems == [{'inputs': prompts.solution_prompt('Q?'),
                            'targets': 'The answer is 1.', 'problem_id': 'p'}]


@pytest.mark.parametrize('raw, expected', [
    ('Step 1 ok.\n\n**Verification: Is the answer correct (Yes/No)? Yes**\n\nMore text.',
     'Step 1 ok.\n\nVerification: Is the answer correct (Yes/No)? Yes'),
    ('**Final Grade:** Verification: Is the answer correct (Yes/No)? No',
     '**Final Grade:**\n\nVerification: Is the answer correct (Yes/No)? No'),
    ('Verification: Is the answer correct (Yes/No)? Yes', 'Verification: Is the answer correct (Yes/No)? Yes'),
    ('no verdict', None),
    # An opening heading line goes, its newline stays (as released targets).
    ('**Verification:**\nStep 1 ok.\nVerification: Is the answer correct (Yes/No)? Yes',
     '\nStep 1 ok.\n\nVerification: Is the answer correct (Yes/No)? Yes'),
    ('**Solution Verification:**\nStep 1 ok.\nVerification: Is the answer correct (Yes/No)? No',
     '\nStep 1 ok.\n\nVerification: Is the answer correct (Yes/No)? No'),
])
def test_clean_critique(raw, expected):
  assert vd.clean_critique(raw) == expected


def test_clean_critique_lenient():
  raw = 'Steps fine.\n**Verification:** Is the answer correct? (Yes/No) **No**\n\n**Final Grade: 2/5**'
  assert vd.clean_critique(raw) is None
  assert vd.clean_critique(raw, lenient=True) == (
      'Steps fine.\n\nVerification: Is the answer correct (Yes/No)? No')


# Released data (needs $GENRM_DATA_DIR).


@pytest.fixture(scope='module')
def data_dir():
  root = os.environ.get('GENRM_DATA_DIR')
  if not root:
    pytest.skip('Set GENRM_DATA_DIR to the data directory (e.g. ../shared/data) to run data tests.')
  return root


def test_released_direct_examples(data_dir):
  validation = list(vd.released_direct_examples('validation'))
  assert collections.Counter(e['targets'] for e in validation) == {' Yes': 125, ' No': 87}
  assert all((e['targets'] == ' Yes') is e['correct'] for e in validation)
  train = list(vd.released_direct_examples('train', limit_per_file=5))
  assert len(train) == 8 * 2 * 5
  assert collections.Counter(e['correct'] for e in train) == {True: 40, False: 40}
  assert all(e['inputs'].endswith(prompts.VERIFY_QUESTION) for e in train)
  assert len(list(vd.released_direct_examples('train', limit=7))) == 7
  held_out = set(vd.released_validation_questions().values())
  assert len(held_out) == 128
  assert not held_out & {e['question_id'] for e in train}
  with pytest.raises(ValueError, match='split'):
    vd.released_direct_examples('test')


def test_released_cot_rows_capped_per_question_as_the_paper():
  """Raw critiques cover up to 32 + 32 solutions a question: at most 16 + 16
  distinct solutions are kept (seeded), every row of a kept solution with it."""
  rows = [{'question_id': q, 'inputs': f'{q}/{correct}/{s}', 'targets': f'r{k}',
           'correct': correct}
          for q in ('a', 'b') for correct in (True, False)
          for s in range(20 if correct else 3) for k in range(2)]
  capped = vd.cap_released_cot_rows(rows, max_correct=16, max_incorrect=16, seed=0)
  for q in ('a', 'b'):
    kept = {(r['inputs'], r['correct']) for r in capped if r['question_id'] == q}
    assert sum(c for _, c in kept) == 16 and sum(not c for _, c in kept) == 3
  assert all(sum(r['inputs'] == x['inputs'] for r in capped) == 2 for x in capped)
  assert capped == [r for r in rows if r in capped]  # order kept
  again = vd.cap_released_cot_rows(rows, max_correct=16, max_incorrect=16, seed=0)
  assert again == capped
  assert vd.cap_released_cot_rows(rows, max_correct=16, max_incorrect=16, seed=1) != capped


def test_released_cot_examples(data_dir):
  validation = list(vd.released_cot_examples('validation'))
  assert collections.Counter(e['correct'] for e in validation) == {True: 125, False: 134}
  stats = vd.ReleasedCotStats()
  train = list(vd.released_cot_examples('train', limit_per_file=40, stats=stats))
  assert len(train) == 19 * 40  # 9 correct + 10 incorrect raw shards
  held_out = set(vd.released_validation_questions().values())
  for e in train:
    assert e['question_id'] not in held_out
    question, solution = prompts.parse_verification_inputs(e['inputs'])
    assert e['inputs'] == prompts.cot_verification_prompt(question, solution)
    assert e['targets'].endswith('\n' + prompts.verdict_line(e['correct']))
    assert e['targets'].count('Is the answer correct') >= 1
    assert prompts.parse_verdict(e['targets']) is e['correct']
  assert collections.Counter(e['correct'] for e in train) == {True: 360, False: 400}
  total = stats.total()
  assert total['kept'] >= 19 * 40
  assert total['rows'] == (total['kept'] + total['no_verdict'] + total['disagree'] +
                           total['held_out'])


def test_balance_by_problem_and_by_length():
  store = _store(num_problems=2, num_correct=5, num_incorrect=2)
  # Problem ws/2 gets only correct ones: it contributes nothing per problem.
  store += [c for c in _store(num_problems=3, num_correct=4, num_incorrect=0)
            if c.problem_id == 'ws/2']
  selected = vd.select_candidates(store, balance_by='problem')
  assert {k: (len(c), len(i)) for k, (c, i) in selected.items()} == {
      'ws/0': (2, 2), 'ws/1': (2, 2), 'ws/2': (0, 0)}
  # Unbalanced: the caps only.
  assert len(vd.select_candidates(store)['ws/0'][0]) == 5
  for build in (vd.direct_examples, vd.cot_examples, vd.disc_examples):
    examples = build(store, balance_by='problem')
    per_problem = collections.Counter((e['problem_id'], e['correct']) for e in examples)
    assert per_problem == {('ws/0', True): 2, ('ws/0', False): 2,
                           ('ws/1', True): 2, ('ws/1', False): 2}, build.__name__
  # By length: all three problems have 4 words -> 4 correct of 14 kept.
  by_length = vd.select_candidates(store, balance_by='length')
  assert sum(len(c) for c, _ in by_length.values()) == 4
  assert sum(len(i) for _, i in by_length.values()) == 4
  # Lists of another length are balanced on their own: 3-word problems with
  # only incorrect solutions take nothing from the 4-word ones.
  three = [c for c in _store(num_problems=1, num_correct=0, num_incorrect=3)]
  three = [dataclasses.replace(c, problem_id='ws3/0', question=rationales.word_sort_question(
      ['b', 'c', 'a'])) for c in three]
  by_length = vd.select_candidates(store + three, balance_by='length')
  assert by_length['ws3/0'] == ([], [])
  assert sum(len(c) for c, _ in by_length.values()) == 4
  with pytest.raises(ValueError, match='algorithmic task'):
    vd.select_candidates([dataclasses.replace(store[0], problem_id='gsm8k/1', task='gsm8k')],
                         balance_by='length')
  with pytest.raises(ValueError, match='balance_by'):
    vd.select_candidates(store, balance_by='size')
