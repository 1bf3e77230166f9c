"""Tests for genrm_jax.grading (CPU only, fast).

The data-file tests read the real datasets from $GENRM_DATA_DIR (e.g.
/work/shared/data) and are skipped when it is unset or missing.
"""

import gzip
import json
import os
import time
import zipfile

import pytest

from genrm_jax import grading
from genrm_jax.grading import latex_parser
from genrm_jax.grading import math_normalize
from genrm_jax.grading import symbolic

# Generous: this is a hang check, not a benchmark.
HANG_BOUND_S = 10.0


def _timed(fn, *args):
  start = time.monotonic()
  result = fn(*args)
  elapsed = time.monotonic() - start
  assert elapsed < HANG_BOUND_S, f'{fn.__name__}{args!r:.200} took {elapsed:.1f}s'
  return result


# Dispatch.


def test_unknown_task_raises_with_known_names():
  with pytest.raises(ValueError, match='last_letter.*word_sort.*gsm8k.*math'):
    grading.is_equivalent('mmlu', '1', '1')
  with pytest.raises(ValueError, match='known tasks'):
    grading.extract_answer('nope', 'The answer is 1.')


def test_task_names():
  assert set(grading.TASKS) == {'last_letter', 'word_sort', 'gsm8k', 'math'}


# GSM8K.


@pytest.mark.parametrize('solution, expected', [
    ('She makes 9 * 2 = $18 every day.\nThe answer is 18.', '18'),
    ('The answer is $1,000.00.', '1000'),
    ('The answer is 18 dollars.', '18'),
    ('The answer is 18.0', '18'),
    ('The answer is -3.', '-3'),
    ('The answer is 3/4.', '0.75'),
    ('The answer is 1/3', '1/3'),
    ('The answer is .5', '0.5'),
    ('The answer is: 42', '42'),
    ('So the answer is 7 apples.', '7'),
    ('Answer is 41.', '41'),
    ('The answer is 216 000.', '216000'),
    ('The answer is 30 + 10 = 40. Therefore Greg travels 40 miles.', '40'),
    ('So the answer is 100% - 25% = 75%.', '75'),
    ('Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n#### 18', '18'),
    ('#### 1,234', '1234'),
    ('The answer is 5. Wait, no. The answer is 6.', '6'),  # Last one wins.
    ('The answer is 12.\n#### 13', '13'),
    ('The answer is not determinable.', None),
    # Past the digit bounds there is no number, not the run's last digits.
    ('The answer is 1000000000000000000000000000000.', None),
    ('The answer is 0.33333333333333333333333333333333.', None),
    ('There are 5 apples.', None),  # No answer phrase: strict format.
    ('', None),
    (None, None),
])
def test_gsm8k_extract_answer(solution, expected):
  assert grading.extract_answer('gsm8k', solution) == expected


@pytest.mark.parametrize('answer, reference, expected', [
    ('18', '18', True),
    ('18.0', '18', True),
    ('$18', '18', True),
    ('18 dollars', '18', True),
    ('1,000', '1000', True),
    ('$1,000.00', '1000', True),
    ('0.75', '3/4', True),
    ('-3', '-3', True),
    ('-3', '3', False),
    ('17', '18', False),
    ('18.5', '18', False),
    ('', '18', False),
    (None, '18', False),
    ('eighteen', '18', False),
])
def test_gsm8k_is_equivalent(answer, reference, expected):
  assert grading.is_equivalent('gsm8k', answer, reference) is expected


def test_gsm8k_reference_and_grade():
  reference = grading.extract_reference('gsm8k', 'Natalia sold 48/2 = <<48/2=24>>24 clips.\n#### 72')
  assert reference == '72'
  assert grading.grade('gsm8k', 'So 48 + 24 = 72 clips. The answer is 72.', reference)
  assert not grading.grade('gsm8k', 'So 48 + 24 = 72 clips. The answer is 70.', reference)
  assert not grading.grade('gsm8k', 'I am not sure.', reference)


# Algorithmic tasks.


@pytest.mark.parametrize('solution, expected', [
    ('The last letter of "Whitney" is "y". ... The answer is yajo.', 'yajo'),
    ('The answer is "yajo".', 'yajo'),
    ('So the answer is syndrome therefrom.', 'syndrome therefrom'),
    ('The answer is   a   b\tc .', 'a b c'),
    ('The answer is x. The answer is nkay.', 'nkay'),
    ('no answer here', None),
    ('The answer is .', None),
    (None, None),
])
def test_algorithmic_extract_answer(solution, expected):
  assert grading.extract_answer('last_letter', solution) == expected
  assert grading.extract_answer('word_sort', solution) == expected


@pytest.mark.parametrize('answer, reference, expected', [
    ('yajo', 'yajo', True),
    ('YAJO', 'yajo', True),  # Case-insensitive by design.
    (' yajo. ', 'yajo', True),
    ('yaj o', 'yajo', False),
    ('yajc', 'yajo', False),
    ('', '', False),
    (None, 'yajo', False),
])
def test_last_letter_is_equivalent(answer, reference, expected):
  assert grading.is_equivalent('last_letter', answer, reference) is expected


@pytest.mark.parametrize('answer, reference, expected', [
    ('syndrome therefrom', 'syndrome therefrom', True),
    ('syndrome  therefrom.', 'syndrome therefrom', True),
    ('syndrome, therefrom', 'syndrome therefrom', True),
    ('therefrom syndrome', 'syndrome therefrom', False),
    ('Syndrome therefrom', 'syndrome therefrom', False),  # Case-sensitive.
    ('syndrome', 'syndrome therefrom', False),
    (None, 'a', False),
])
def test_word_sort_is_equivalent(answer, reference, expected):
  assert grading.is_equivalent('word_sort', answer, reference) is expected


# MATH: extraction.


@pytest.mark.parametrize('solution, expected', [
    (r'so the answer is $\boxed{\frac{1}{2}}$.', r'\frac{1}{2}'),
    (r'first $\boxed{1}$ then $\boxed{x^{2}+1}$', 'x^{2}+1'),
    (r'$\boxed 5$', '5'),
    (r'\fbox{\{1,2\}}', r'\{1,2\}'),
    (r'\boxed{\begin{pmatrix} 1 \\ 2 \end{pmatrix}}', r'\begin{pmatrix} 1 \\ 2 \end{pmatrix}'),
    (r'\boxed{', None),
    (r'\boxed{}', None),
    ('The answer is $\\frac{3}{4}$.', '$\\frac{3}{4}$'),  # Fallback format.
    ('no answer', None),
    (None, None),
])
def test_math_extract_answer(solution, expected):
  assert grading.extract_answer('math', solution) == expected


def test_math_extract_reference():
  solution = r'The roots are $x=2$ and $x=-3$, so there are $\boxed{2}$ asymptotes.'
  assert grading.extract_reference('math', solution) == '2'


# MATH: equivalence.

MATH_EQUIVALENT = [
    (r'\frac{\sqrt{3}}{2}', r'\frac{1}{2}\sqrt{3}'),
    ('0.5', r'\frac12'),
    ('0.5', r'\frac{1}{2}'),
    ('.5', r'\dfrac{1}{2}'),
    (r'\tfrac{3}{4}', '3/4'),
    (r'\pi/2', r'\frac{\pi}{2}'),
    (r'90^\circ', '90'),
    (r'90^{\circ}', '90'),
    (r'50\%', '50'),
    ('x=3', '3'),
    ('y = 2x+1', '2x+1'),
    (r'\begin{pmatrix}1\\2\end{pmatrix}', r'\begin{pmatrix}1\\2\end{pmatrix}'),
    (r'\begin{pmatrix} 1/2 \\ 2 \end{pmatrix}', r'\begin{pmatrix}\frac{1}{2}\\2\end{pmatrix}'),
    ('2x+1', '1+2x'),
    ('1,000', '1000'),
    (r'20,\!000', '20000'),
    (r'\$1.17', '1.17'),
    (r'5\text{ cm}^2', '5'),
    (r'135\text{ square feet}', '135'),
    (r'\left( \frac{17}{10}, -\frac{1}{10} \right)', '(1.7,-0.1)'),
    ('(1,2)', '(1, 2)'),
    (r'[0,1)', r'\left[0,1\right)'),
    (r'(-\infty,-4)\cup (4,\infty)', r'(-\infty, -4) \cup (4, \infty)'),
    (r'2\sqrt{2}', r'\sqrt{8}'),
    (r'\sqrt[3]{-8}', '-2'),
    (r'\sqrt[3]{27}', '3'),
    (r'2 \cdot 3', '6'),
    (r'2 \times 3', '6'),
    ('x^2-1', '(x-1)(x+1)'),
    (r'1\frac{9}{10}', r'\frac{19}{10}'),  # Mixed number.
    ('1,-1,i,-i', '-i, i, -1, 1'),  # Lists compare as unordered.
    (r'1 \pm \sqrt{19}', r'1+\sqrt{19}, 1-\sqrt{19}'),
    (r'\{1,2\}', r'\{2,1\}'),
    ('x=1, y=2', '1,2'),
    ('3+4i', '4i+3'),
    (r'\text{(C)}', 'C'),
    (r'\text{Navin}', r'\text{Navin}'),
    ('5.', '5'),
    (r'10^{3}', '1000'),
    (r'\frac{\sqrt{10}}{10}', r'\frac{1}{\sqrt{10}}'),
    (r'\sin^2 x + \cos^2 x', '1'),
    (r'\log_2 8', '3'),
    (r'\binom{5}{2}', '10'),
    ('5!', '120'),
    (r'|{-3}|', '3'),
    (r'\infty', r'\infty'),
    (r'\emptyset', r'\varnothing'),
    ('x \\in [-2,7]', '[-2,7]'),
]

MATH_EQUIVALENT += [
    # Exactly 0, though evalf cannot pin the difference down.
    (r'\sqrt{2}+\sqrt{3}-\sqrt{5+2\sqrt{6}}', '0'),
    (r'\sin^2(1)+\cos^2(1)-1', '0'),
    (r'45^\circ, 135^\circ', '135, 45'),
    ('256, 81', '81, 256'),
    ('22,500', '22500'),
    ('x=1,y=2', 'y=2,x=1'),
    ('x=1, y=2', '1, 2'),
    ('x=5', '5'),
    # A thousands comma with degrees is a number; degrees on both items a list.
    (r'1,080^\circ', r'1080^\circ'),
    (r'45^\circ,135^\circ', r'135^\circ, 45^\circ'),
    # Equal wherever both are defined as real functions (points outside a
    # root's or log's domain do not count).
    (r'\sqrt{2100x^3}', r'10x\sqrt{21x}'),
    (r'\sqrt[3]{x^3}', 'x'),
    (r'\sqrt{x}\sqrt{y}', r'\sqrt{xy}'),
    (r'\log(x^2)', r'2\log x'),
]

MATH_NOT_EQUIVALENT = [
    ('(1,2)', '(2,1)'),
    ('[0,1)', '[0,1]'),
    ('(0,1)', '[0,1]'),
    ('0.333', r'\frac{1}{3}'),
    (r'\frac{1}{2}', r'\frac{1}{3}'),
    ('2x+1', '2x-1'),
    (r'\sqrt{2}', '1.41421356'),
    (r'\pi', '3.14159'),
    ('1,2', '1,2,3'),
    ('1,2', '(1,2)'),
    (r'\begin{pmatrix}1\\2\end{pmatrix}', r'\begin{pmatrix}2\\1\end{pmatrix}'),
    (r'\begin{pmatrix}1\\2\end{pmatrix}', r'\begin{pmatrix}1&2\end{pmatrix}'),
    (r'\text{even}', r'\text{odd}'),
    (r'\text{even}', r'\text{neve}'),  # Words are not products of variables.
    ('A', 'B'),
    ('x', 'y'),
    (r'\infty', r'-\infty'),
    ('1011_2', '1011_3'),
    ('', '0'),
    ('0', ''),
    (None, '0'),
    ('-5', '5'),
    ('5', '50'),
    # Exact numbers compare exactly, not to a relative tolerance.
    ('2^{100}', '2^{100}+1'),
    ('2^{50}', '1125899906842625'),
    ('10^{10000}-1', '10^{10000}'),
    ('1' * 51 + '2', '1' * 51 + '3'),
    (r'\frac{1}{2^{50}}', '0'),
    ('10^{-13}', '0'),
    ('x^{50}', 'x^{50}+1'),
    # Undefined equals nothing; symbols take either sign.
    (r'\frac{1}{0}', r'\frac{5}{0}'),
    ('0^{-1}', r'\frac{1}{0}'),
    ('|x|', 'x'),
    (r'\sqrt{x^2}', 'x'),
    ('|a|+|b|', 'a+b'),
    # A list is not a number with thousands separators.
    ('2, 150', '2150'),
    (r'45^\circ, 135^\circ', '45135'),
    ('81, 256', '81256'),
    # Labelled values pair with their labels.
    ('x=1,y=2', 'x=2,y=1'),
    ('x=1, y=2', 'y=1, x=2'),
    ('x_1=2,x_2=3', 'x_1=3,x_2=2'),
]


@pytest.mark.parametrize('answer, reference', MATH_EQUIVALENT)
def test_math_equivalent(answer, reference):
  assert _timed(grading.is_equivalent, 'math', answer, reference) is True
  assert _timed(grading.is_equivalent, 'math', reference, answer) is True


@pytest.mark.parametrize('answer, reference', MATH_NOT_EQUIVALENT)
def test_math_not_equivalent(answer, reference):
  assert _timed(grading.is_equivalent, 'math', answer, reference) is False
  assert _timed(grading.is_equivalent, 'math', reference, answer) is False


@pytest.mark.parametrize('raw, expected', [
    (r'\left( \frac{3}{4}, 1 \right)', r'(\frac{3}{4},1)'),
    (r'\dfrac{2469}{20,\!000}', r'\frac{2469}{20000}'),
    (r'2, 3, \text{ and } 4', '2,3,4'),
    (r'\frac98', r'\frac{9}{8}'),
    (r'\text{(D)}', 'D'),
    (r'1599 \text{ dollars}', '1599'),
    (r'\pi r^2', r'\pi r^2'),  # The space keeps `\pi` and `r` apart.
])
def test_math_normalize_answer(raw, expected):
  assert math_normalize.normalize_answer(raw) == expected


def test_math_parser_trees():
  assert latex_parser.parse_latex('[0,1)') == ['seq', '[', ')', [['num', '0'], ['num', '1']]]
  assert latex_parser.parse_latex(r'\frac12') == ['div', ['num', '1'], ['num', '2']]
  assert latex_parser.parse_latex('x^23') == ['mul', [['pow', ['sym', 'x'], ['num', '2']], ['num', '3']]]
  assert latex_parser.parse_latex(r'\frac{') is None
  assert latex_parser.parse_latex('') is None


# Robustness: adversarial input must neither hang nor raise.

ADVERSARIAL = [
    r'\frac{',
    r'\boxed{',
    r'\boxed{' * 3000,
    r'10^{10^{10^{10}}}',
    r'2^{2^{2^{2^{2^{2}}}}}',
    r'x^{999999999}',
    r'\sqrt{' * 500 + '2' + '}' * 500,
    r'\sqrt{\sqrt{\sqrt{\sqrt{\sqrt{\sqrt{\sqrt{\sqrt{\sqrt{\sqrt{2}}}}}}}}}}',
    'a' * 10_000,
    '1' * 10_000,
    '{' * 10_000,
    '}' * 5_000 + '{' * 5_000,
    '(' * 300,
    '|' * 500,
    '-' * 1_999 + '1',
    r'\left(' * 600,
    r'\text{' * 1_000,
    r'\begin{pmatrix}' * 200,
    '1' + ' units' * 330 + ' x',
    '9!!!!!!',
    '(10^{10})!',
    r'\binom{10^{9}}{5\cdot 10^8}',
    '1e999999999',
    r'\frac{1}{0}',
    '0/0',
    r'\infty-\infty',
    r'x^{x^{x^{x}}}',
    'The answer is ' + '9' * 10_000,
    'The answer is ' * 2_000,
    '#### ' * 2_000,
    '\x00\x01\ufffd',
    '',
    None,
    12345,
    ['x'],
]


@pytest.mark.parametrize('task', ['last_letter', 'word_sort', 'gsm8k', 'math'])
def test_adversarial_inputs_return_quickly_and_never_raise(task):
  for text in ADVERSARIAL:
    assert isinstance(_timed(grading.is_equivalent, task, text, '1'), bool)
    assert isinstance(_timed(grading.is_equivalent, task, text, text), bool)
    assert isinstance(_timed(grading.is_equivalent, task, '1', text), bool)
    answer = _timed(grading.extract_answer, task, text)
    assert answer is None or isinstance(answer, str)
    assert isinstance(_timed(grading.grade, task, text, '1'), bool)
    _timed(grading.extract_reference, task, text)
    _timed(grading.normalize_answer, task, text)


def test_math_adversarial_pairs_are_not_equivalent():
  for answer in [r'10^{10^{10^{10}}}', r'x^{999999999}', '9!!!!!!', r'\frac{', r'\boxed{',
                 r'\sqrt{' * 200 + '2' + '}' * 200]:
    assert _timed(grading.is_equivalent, 'math', answer, '5') is False
    assert _timed(grading.is_equivalent, 'math', answer, r'\frac{1}{2}') is False


def test_symbolic_worker_is_killed_on_timeout_and_restarts():
  worker = symbolic.SymbolicWorker(timeout_s=1.0)
  try:
    # Bypasses the grader's safety checks: sympy would compute 10^8! for ages.
    hanging = ['fact', ['num', '100000000']]
    assert _timed(worker.compare, hanging, ['num', '1']) is None
    assert worker.num_timeouts == 1
    assert _timed(worker.compare, ['num', '0.5'], ['div', ['num', '1'], ['num', '2']]) is True
    assert worker.num_restarts == 2
    assert worker.compare(['bogus'], ['num', '1']) is None  # Errors are not equality.
  finally:
    worker.close()


def test_undecided_comparisons_are_not_remembered(monkeypatch):
  """A timeout (a loaded machine) is False now, not for the rest of the run."""
  worker = symbolic.default_worker()
  real_compare = worker.compare
  monkeypatch.setattr(worker, 'compare', lambda *args, **kwargs: None)
  pair = (r'\sqrt{8}', r'2\sqrt{2}+0+0')
  assert grading.is_equivalent('math', *pair) is False
  monkeypatch.setattr(worker, 'compare', real_compare)
  assert grading.is_equivalent('math', *pair) is True


def test_many_symbolic_comparisons_reuse_one_worker():
  worker = symbolic.default_worker()
  grading.is_equivalent('math', '2y+3', '3+2y')  # Make sure the worker is up.
  restarts = worker.num_restarts
  start = time.monotonic()
  for k in range(300):
    assert grading.is_equivalent('math', f'2x+{k}', f'{k}+2x')
    assert not grading.is_equivalent('math', f'2x+{k}', f'{k + 1}+2x')
  assert time.monotonic() - start < 60
  assert worker.num_restarts == restarts


# Real data (needs $GENRM_DATA_DIR).


@pytest.fixture(scope='module')
def data_dir():
  path = os.environ.get('GENRM_DATA_DIR')
  if not path or not os.path.isdir(path):
    pytest.skip('Set GENRM_DATA_DIR to the shared data directory (e.g. /work/shared/data) '
                'to run the whole-dataset grading checks.')
  return path


def _read_jsonl(path):
  opener = gzip.open if path.endswith('.gz') else open
  with opener(path, 'rt', encoding='utf-8') as f:
    return [json.loads(line) for line in f if line.strip()]


def _report(capsys, message):
  with capsys.disabled():
    print(f'\n[grading data] {message}')


@pytest.mark.parametrize('split', ['train', 'test'])
def test_gsm8k_references_extract_and_self_match(data_dir, split, capsys):
  rows = _read_jsonl(os.path.join(data_dir, 'gsm8k', f'{split}.jsonl'))
  failures = []
  for row in rows:
    reference = grading.extract_reference('gsm8k', row['answer'])
    raw = row['answer'].rsplit('#### ', 1)[-1].strip().replace(',', '')
    if reference is None or reference != raw or not grading.is_equivalent('gsm8k', reference, reference):
      failures.append(row['answer'][-40:])
  _report(capsys, f'gsm8k/{split}: {len(rows)} references, {len(failures)} failures')
  assert not failures, failures[:5]


@pytest.mark.parametrize('split', ['train', 'test'])
def test_math_references_extract_and_self_match(data_dir, split, capsys):
  rows = _read_jsonl(os.path.join(data_dir, 'math', f'{split}.jsonl'))
  no_box, not_self_equal, unparsed = [], [], 0
  for row in rows:
    reference = grading.extract_reference('math', row['solution'])
    if reference is None:
      no_box.append(row['id'])
      continue
    if not grading.is_equivalent('math', reference, reference):
      not_self_equal.append(reference)
    if latex_parser.parse_latex(math_normalize.normalize_answer(reference)) is None:
      unparsed += 1
  _report(capsys, f'math/{split}: {len(rows)} references, {len(no_box)} without a usable '
          f'\\boxed{{}} {no_box}, {len(not_self_equal)} not self-equivalent, '
          f'{unparsed} outside the LaTeX parser (string comparison only)')
  # Two train references have an empty \boxed{} in the original data.
  assert len(no_box) <= 3
  assert not not_self_equal
  assert unparsed / len(rows) < 0.01


def test_math500_answers_match_our_extraction(data_dir, capsys):
  rows = _read_jsonl(os.path.join(data_dir, 'math', 'math500', 'test.jsonl'))
  mismatches = []
  for row in rows:
    ours = grading.extract_reference('math', row['solution'])
    # PRM800K's `answer` is its own extraction, sometimes formatted differently
    # ('864 \mbox{ inches}^2' vs '864'): a real-world equivalence check.
    if not _timed(grading.is_equivalent, 'math', ours, row['answer']):
      mismatches.append((ours, row['answer']))
  _report(capsys, f'math500: {len(rows)} answers, {len(mismatches)} disagree with our extraction')
  assert len(mismatches) <= 2, mismatches


@pytest.mark.parametrize('kind', ['correct', 'incorrect'])
def test_paper_validation_solutions_extract(data_dir, kind, capsys):
  path = os.path.join(data_dir, 'genrm_critiques', 'critiques',
                      f'rm_{kind}_solutions_batch_08_val.zip')
  with zipfile.ZipFile(path) as archive:
    lines = archive.read(archive.namelist()[0]).decode('utf-8').splitlines()
  rows = [json.loads(line) for line in lines if line.strip()]
  missing = []
  for row in rows:
    solution = row['inputs'].split("A: Let's think step by step.\n")[-1].split('\nVerification:')[0]
    if grading.extract_answer('gsm8k', solution) is None:
      missing.append(solution[-80:])
  _report(capsys, f'rm_{kind}_solutions_batch_08_val: {len(rows)} solutions, '
          f'{len(missing)} without an extractable answer')
  if kind == 'correct':
    assert not missing, missing
  else:
    # A few incorrect solutions refuse to answer ("cannot be determined").
    assert len(missing) <= 0.05 * len(rows), missing


@pytest.mark.parametrize('kind', ['correct', 'incorrect'])
def test_paper_raw_collection_labels_agree_with_grading(data_dir, kind, capsys):
  path = os.path.join(data_dir, 'genrm_critiques', 'critiques', 'data_collection',
                      f'critique_gen_{kind}_solutions_round_0_shard_0.jsonl.gz')
  rows = _read_jsonl(path)
  disagreements = sum(
      grading.grade('gsm8k', row['model_output'], row['target']) != bool(row['correctness'])
      for row in rows)
  _report(capsys, f'critique_gen_{kind} shard 0: {len(rows)} solutions, {disagreements} '
          'where our grade differs from the released correctness label')
  assert disagreements <= 0.01 * len(rows)


def test_bbh_word_sorting_reproduces_reported_accuracy(data_dir, capsys):
  path = os.path.join(data_dir, 'bbh', 'code-davinci-002-outputs', 'code-davinci-002-cot',
                      'word_sorting_few_shot_template_0-255000.json')
  with open(path, encoding='utf-8') as f:
    outputs = json.load(f)['outputs']
  correct = sum(grading.grade('word_sort', o['prediction'], o['target']) for o in outputs)
  accuracy = 100.0 * correct / len(outputs)
  _report(capsys, f'bbh word_sorting davinci CoT: {correct}/{len(outputs)} = {accuracy:.1f}% '
          '(BBH reports 40.4%)')
  assert abs(accuracy - 40.4) < 0.5


def test_last_letters_references(data_dir):
  with open(os.path.join(data_dir, 'last_letters', 'last_letters.json'), encoding='utf-8') as f:
    examples = json.load(f)['examples']
  for example in examples:
    reference = grading.extract_reference('last_letter', example['answer'])
    # Not always one letter per space-separated word: Kojima et al.'s names
    # include multi-word names ("Jose Antonio"), and one answer is "yaeA".
    assert reference == example['answer'].strip()
    assert grading.grade('last_letter', f'The answer is {reference.upper()}.', reference)
    assert not grading.grade('last_letter', f'The answer is {reference}x.', reference)


def test_merge_equivalent_gives_math_answers_one_key_per_class():
  keys = [grading.normalize_answer('math', a) for a in
          ['\\frac{1}{2}', '0.5', None, '3', '2^{-1}', '3.0', 'x+1', '1+x', '1/2', '7']]
  merged, count = grading.merge_equivalent('math', keys)
  half = keys[0]
  assert merged == [half, half, None, '3', half, '3', 'x+1', 'x+1', half, '7']
  assert count == 4  # 0.5, 2^{-1}, 3.0, 1+x ('1/2' normalizes to \frac{1}{2} already)
  # Adversarial answers stay apart, in bounded time.
  hard = ['10^{10^{10}}', '(1,2)', '\\{1,2\\}', '2^{3^{4^5}}', '\\text{even}']
  merged, count = _timed(grading.merge_equivalent, 'math', hard)
  assert merged == hard and count == 0
  # Canonical strings decide the other tasks: nothing is compared.
  for task, keys in (('gsm8k', ['42', '42', '7', None]), ('last_letter', ['ab', 'ba'])):
    assert grading.merge_equivalent(task, keys) == (keys, 0)
  with pytest.raises(ValueError, match='known tasks'):
    grading.merge_equivalent('chess', ['e4'])
