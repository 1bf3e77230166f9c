"""Problem sources: counts, determinism, OOD lengths, held-out GSM8K validation, missing data."""

import collections
import os
import subprocess
import sys

import pytest

from genrm_jax import grading
from tasks import sources

SMALL = dict(train_size=300, validation_size=100, test_size=100)


@pytest.fixture(scope='module')
def data_dir():
  root = os.environ.get('GENRM_DATA_DIR')
  if not root:
    pytest.skip('Set GENRM_DATA_DIR to the data directory (e.g. ../shared/data) to run data tests.')
  return root


def test_missing_data_error_says_how_to_get_it(tmp_path, monkeypatch):
  monkeypatch.setenv('GENRM_DATA_DIR', str(tmp_path))
  with pytest.raises(sources.DataNotFoundError) as info:
    sources.get_problems('gsm8k', 'test')
  message = str(info.value)
  assert os.path.join(str(tmp_path), 'gsm8k', 'test.jsonl') in message
  assert 'launch/download_data.sh' in message and 'GENRM_DATA_DIR' in message
  monkeypatch.delenv('GENRM_DATA_DIR')
  monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'cache'))
  assert sources.resolve_data_dir() == str(tmp_path / 'cache' / 'genrm_jax' / 'data')


def test_unknown_task_and_split():
  with pytest.raises(ValueError, match='known tasks'):
    sources.get_problems('gsm9k', 'train')
  with pytest.raises(ValueError, match='kojima'):
    sources.get_problems('last_letter', 'dev')


def test_importable_without_tensorflow():
  code = ('import sys, tasks, tasks.sources, genrm_jax.verification_data, genrm_jax.candidates; '
          'assert "tensorflow" not in sys.modules and "seqio" not in sys.modules')
  subprocess.run([sys.executable, '-c', code], check=True,
                 cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize('task', ['last_letter', 'word_sort'])
def test_generated_tasks(data_dir, task):
  train = sources.get_problems(task, 'train', seed=1, **SMALL)
  validation = sources.get_problems(task, 'validation', seed=1, **SMALL)
  test = sources.get_problems(task, 'test', seed=1, **SMALL)
  assert (len(train), len(validation), len(test)) == (300, 100, 100)
  # Default lengths: train 2-4 words, out-of-distribution test 6.
  assert {p['num_words'] for p in train} == {2, 3, 4}
  assert {p['num_words'] for p in validation} <= {2, 3, 4}
  assert {p['num_words'] for p in test} == {6}
  # Splits never share a word list, and a split has no duplicates.
  keys = [tuple(p['words']) for p in train + validation + test]
  assert len(set(keys)) == len(keys)
  # Deterministic under a seed; another seed gives other problems; the split
  # does not depend on the other splits' sizes.
  assert sources.get_problems(task, 'train', seed=1, **SMALL) == train
  assert sources.get_problems(task, 'train', seed=2, **SMALL)[0] != train[0]
  assert sources.get_problems(task, 'train', seed=1, train_size=10)[:10] == train[:10]
  assert sources.get_problems(task, 'validation', seed=1, **dict(SMALL, train_size=5)) == validation
  for p in train[:50] + test[:50]:
    assert p['problem_id'].startswith(f'{task}/')
    assert grading.grade(task, p['solution'], p['reference'])
  custom = sources.get_problems(task, 'test', test_lengths=(8, 9), test_size=20)
  assert {p['num_words'] for p in custom} <= {8, 9}
  with pytest.raises(ValueError, match='lengths'):
    sources.get_problems(task, 'train', train_lengths=(0,))


def test_last_letter_names_and_kojima(data_dir):
  names = sources._census_first_names(data_dir, 1000)
  assert len(names) == len(set(names)) == 1000
  assert names[:3] == ('James', 'John', 'Robert')
  train = sources.get_problems('last_letter', 'train', **SMALL)
  assert all(word in names for p in train for word in p['words'])
  p = train[0]
  assert p['question'] == ('Take the last letters of each words in "' + ' '.join(p['words']) +
                           '" and concatenate them.')
  assert p['reference'] == ''.join(w[-1] for w in p['words'])
  kojima = sources.get_problems('last_letter', 'kojima')
  assert len(kojima) == 500 and kojima[0]['reference'] == 'yajo'
  assert kojima[0]['question'] == ('Take the last letters of each words in '
                                   '"Whitney Erika Tj Benito" and concatenate them.')
  assert all(p['num_words'] == 4 for p in kojima)  # "Jose Antonio" counts as one name
  assert all(grading.grade('last_letter', p['solution'], p['reference']) for p in kojima)


def test_word_sort_vocabulary_and_bbh(data_dir):
  assert len(sources.word_sort_vocabulary()) == 2741
  bbh = sources.get_problems('word_sort', 'bbh')
  assert len(bbh) == 250
  assert bbh[0]['question'] == 'Sort the following words alphabetically: List: syndrome therefrom'
  assert bbh[0]['reference'] == 'syndrome therefrom'
  assert {p['num_words'] for p in bbh} == set(range(2, 21))
  assert all(grading.grade('word_sort', p['solution'], p['reference']) for p in bbh)


def test_gsm8k_splits_hold_out_the_papers_validation_questions(data_dir):
  validation = sources.get_problems('gsm8k', 'validation')
  train = sources.get_problems('gsm8k', 'train')
  test = sources.get_problems('gsm8k', 'test')
  matched = len(sources.gsm8k_validation_questions())
  assert matched == len(validation) == 128
  assert len(train) == 7473 - matched == 7345
  assert len(test) == 1319
  assert not {p['question'] for p in validation} & {p['question'] for p in train}
  assert len(sources.get_problems('gsm8k', 'train', holdout_validation=False)) == 7473
  first = train[0]
  assert first['problem_id'] == 'gsm8k/train.jsonl/0'
  assert first['reference'] == '72'
  assert first['solution'] == ('Natalia sold 48/2 = 24 clips in May. Natalia sold 48+24 = 72 '
                               'clips altogether in April and May. The answer is 72.')
  assert all('<<' not in p['solution'] for p in train)
  assert all(isinstance(p['paper_question_id'], int) for p in validation)


def test_math_splits(data_dir):
  train = sources.get_problems('math', 'train')  # 2 rows with an empty \boxed{} are skipped
  test = sources.get_problems('math', 'test')
  math500 = sources.get_problems('math', 'math500')
  assert (len(train), len(test), len(math500)) == (7498, 5000, 500)
  assert train[0]['problem_id'] == 'math/train/algebra/0.json'
  assert train[0]['reference'] == '0' and train[0]['level'] == 5
  assert train[0]['subject'] == 'Algebra'
  assert sum(p['level'] is None for p in train) == 2  # "Level ?" as in the original
  assert {p['subject'] for p in test} == {
      'Algebra', 'Counting & Probability', 'Geometry', 'Intermediate Algebra',
      'Number Theory', 'Prealgebra', 'Precalculus'}
  assert {p['problem_id'] for p in math500} <= {p['problem_id'] for p in test}
  assert math500[0]['reference'] == '\\left( 3, \\frac{\\pi}{2} \\right)'
  assert math500[0]['solution'].endswith(' The answer is $\\left( 3, \\frac{\\pi}{2} \\right)$.')


def test_train_length_weights_and_config_options(data_dir):
  # (32, 32, 32, 3): 5-name lists are rare in train and validation, absent in test.
  options = sources.problem_options('last_letter', {
      'train_lengths': [2, 3, 4, 5], 'train_length_weights': (32, 32, 32, 3),
      'train_size': 2000, 'test_size': 0, 'seed': 0})
  assert options == {'train_lengths': (2, 3, 4, 5), 'train_length_weights': (32, 32, 32, 3),
                     'train_size': 2000}  # empty / zero values keep the defaults
  train = sources.get_problems('last_letter', 'train', **options)
  counts = collections.Counter(p['num_words'] for p in train)
  assert set(counts) == {2, 3, 4, 5}
  assert 0.015 < counts[5] / len(train) < 0.05, counts
  assert {p['num_words'] for p in sources.get_problems('last_letter', 'test', **options)} == {6}
  # Without weights the problems are exactly the unweighted ones.
  unweighted = sources.get_problems('last_letter', 'train', train_size=50)
  assert unweighted == sources.get_problems('last_letter', 'train', train_size=50,
                                            train_length_weights=None)
  with pytest.raises(ValueError, match='one non-negative number per length'):
    sources.get_problems('last_letter', 'train', train_lengths=(2, 3), train_length_weights=(1,))
  with pytest.raises(ValueError, match='unknown option'):
    sources.problem_options('last_letter', {'train_length': (2,)})
  with pytest.raises(ValueError, match='only applies to the generated tasks'):
    sources.problem_options('gsm8k', {'train_size': 5})


def test_malformed_rows_name_the_file(tmp_path):
  """A row that is not an object, or an example missing a field, says where."""
  (tmp_path / 'gsm8k').mkdir()
  (tmp_path / 'gsm8k' / 'test.jsonl').write_text('["not", "a", "row"]\n')
  with pytest.raises(ValueError, match=r'test.jsonl:1: expected a JSON object, got list'):
    sources.get_problems('gsm8k', 'test', data_dir=str(tmp_path))
  (tmp_path / 'bbh').mkdir()
  (tmp_path / 'bbh' / 'word_sorting.json').write_text(
      '{"examples": [{"input": "Sort the following words alphabetically: List: b a"}]}')
  with pytest.raises(ValueError, match=r'word_sorting.json: example 0 needs string field\(s\) '
                     r'input, target'):
    sources.get_problems('word_sort', 'bbh', data_dir=str(tmp_path))
