"""Transfer to generation: solve accuracy of several models' samples."""

import json

import numpy as np
import pytest

from configs.pipeline import paper_270m
from configs.pipeline import quickstart
from genrm_jax import pipeline
from genrm_jax import transfer


def _store(path, correct_by_problem, answers_by_problem):
  with open(path, 'w') as f:
    for p, (correct, answers) in enumerate(zip(correct_by_problem, answers_by_problem)):
      for c, (ok, answer) in enumerate(zip(correct, answers)):
        f.write(json.dumps(dict(problem_id=f'q{p}', candidate_id=c, question='Q?',
                                solution='...', answer=answer, reference='ab',
                                correct=bool(ok), task='last_letter')) + '\n')
  return str(path)


def test_report_by_hand(tmp_path):
  # Two problems, 4 samples each. Model b is right more often.
  a = _store(tmp_path / 'a.jsonl', [[1, 0, 0, 0], [0, 0, 0, 0]],
             [['ab', 'x', 'x', 'y'], ['x', 'x', 'y', 'z']])
  b = _store(tmp_path / 'b.jsonl', [[1, 1, 1, 0], [1, 0, 0, 0]],
             [['ab', 'ab', 'ab', 'y'], ['ab', 'x', 'y', 'z']])
  result = transfer.report({'a': a, 'b': b}, num_bootstrap=200)
  models = result['models']
  assert models['a']['accuracy']['value'] == pytest.approx(1 / 8)
  assert models['b']['accuracy']['value'] == pytest.approx(4 / 8)
  # Majority of 4: a picks x in both (wrong); b picks ab in q0, a 4-way tie
  # in q1 (1 of 4 answers right).
  assert models['a']['majority_at_n']['value'] == pytest.approx(0.0)
  assert models['b']['majority_at_n']['value'] == pytest.approx((1 + 0.25) / 2)
  assert models['a']['pass_at_n']['value'] == pytest.approx(0.5)
  assert models['b']['pass_at_n']['value'] == pytest.approx(1.0)
  diff = result['differences']['b - a']
  assert diff['accuracy']['diff'] == pytest.approx(3 / 8)
  lo, hi = diff['accuracy']['ci95']
  assert lo <= 3 / 8 <= hi
  assert result['n_problems'] == 2 and result['n_samples'] == {'a': 4, 'b': 4}
  text = transfer.format_report(result)
  assert 'majority@4' in text and 'b - a: accuracy +37.5' in text
  # Any model name: 'runs/b' is one name, not a model and a metric.
  renamed = transfer.report({'a': a, 'runs/b': b}, num_bootstrap=200)
  assert renamed['differences']['runs/b - a'] == result['differences']['b - a']


def test_report_uses_the_problems_all_stores_share(tmp_path):
  a = _store(tmp_path / 'a.jsonl', [[1, 0], [0, 0], [1, 1]],
             [['ab', 'x'], ['x', 'x'], ['ab', 'ab']])
  b = _store(tmp_path / 'b.jsonl', [[1, 1], [0, 1]], [['ab', 'ab'], ['x', 'ab']])
  result = transfer.report({'a': a, 'b': b}, num_bootstrap=0)
  assert result['n_problems'] == 2
  assert result['models']['a']['accuracy'] == {'value': pytest.approx(0.25), 'ci95': None}


def test_transfer_configs():
  config = quickstart.get_config('transfer')
  assert config.generation_transfer and 'genrm_cot_unified' in config.verifiers
  # The control: the unified run's schedule on the solution data alone.
  c = pipeline.train_config(config, 'solve', vocabulary='byte', init_from='/g',
                            candidates={'train': '/c.jsonl'}, run='solve_correct')
  u = pipeline.train_config(config, 'unified', vocabulary='byte', init_from='/g',
                            candidates={'train': '/c.jsonl'})
  assert c.data.task == 'last_letter_solve' and u.data.task == 'last_letter_genrm_cot_unified'
  assert (c.total_steps, c.batch_size, c.lr) == (u.total_steps, u.batch_size, u.lr)
  assert c.data.seq_len == config.runs.solve.data.seq_len
  assert c.data.candidates.train == '/c.jsonl'
  assert not quickstart.get_config('').generation_transfer
  assert paper_270m.get_config('task=word_sort,transfer').generation_transfer
  with pytest.raises(ValueError, match='transfer: gsm8k'):
    paper_270m.get_config('task=gsm8k,transfer')
  smoke = quickstart.get_config('smoke,transfer')
  assert smoke.runs.solve_correct.total_steps == 4


def test_cli(tmp_path):
  import os  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  a = _store(tmp_path / 'a.jsonl', [[1, 0], [0, 0]], [['ab', 'x'], ['x', 'x']])
  b = _store(tmp_path / 'b.jsonl', [[1, 1], [0, 1]], [['ab', 'ab'], ['x', 'ab']])
  run = lambda *args: subprocess.run([sys.executable, '-m', 'genrm_jax.transfer', *args],
                                     cwd=repo, capture_output=True, text=True, timeout=120)
  proc = run(f'--candidates=base={a},tuned={b}', f'--out={tmp_path / "out"}',
             '--bootstrap=50')
  assert proc.returncode == 0, proc.stderr
  assert 'tuned - base: accuracy +50.0' in proc.stdout
  saved = json.load(open(tmp_path / 'out' / 'generation.json'))
  assert saved['stores'] == {'base': a, 'tuned': b}
  assert saved['models']['tuned']['accuracy']['value'] == pytest.approx(0.75)
  proc = run(f'--candidates=base={a}')
  assert proc.returncode == 1 and 'two or more' in proc.stderr
