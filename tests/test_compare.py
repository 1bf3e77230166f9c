"""`genrm_jax.compare`: one Best-of-n table and plot across evaluations."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from genrm_jax import compare
from genrm_jax import evaluate

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _evaluation(directory, quality, pool=8, num_problems=10, seed=0):
  """An evaluate --out directory whose verifier separates correct from
  incorrect candidates by `quality`."""
  rng = np.random.default_rng(seed)
  cands, scores = [], []
  for p in range(num_problems):
    for c in range(pool):
      correct = bool(rng.random() < 0.3)
      cands.append(dict(problem_id=f'q{p}', candidate_id=c, question='Q?', solution='s',
                        answer='42' if correct else str(c), reference='42', correct=correct,
                        task='gsm8k'))
      scores.append(dict(problem_id=f'q{p}', candidate_id=c, verifier='genrm',
                         score=float(np.clip(quality * correct + rng.random() * 0.5, 0, 1))))
  os.makedirs(directory, exist_ok=True)
  for name, rows in (('c.jsonl', cands), ('s.jsonl', scores)):
    with open(os.path.join(directory, name), 'w') as f:
      f.writelines(json.dumps(r) + '\n' for r in rows)
  out = os.path.join(directory, 'eval')
  evaluate.run(os.path.join(directory, 'c.jsonl'), [os.path.join(directory, 's.jsonl')],
               out, num_bootstrap=50, verbose=False)
  return out


def test_compare_reads_each_runs_curve_at_n(tmp_path, capsys):
  dirs = [_evaluation(str(tmp_path / f'r{q}'), q, pool=8 if q < 0.5 else 16)
          for q in (0.0, 0.3, 0.6)]
  out = str(tmp_path / 'cmp')
  table = compare.run(dirs, out, labels=['500', '1000', '2000'],
                      x_label='training problems')
  assert table['n'] == 8  # the smallest n_max of the runs
  assert list(table['accuracy']) == ['genrm', 'majority_vote', 'pass_at_n']
  for i, path in enumerate(dirs):
    results = json.load(open(os.path.join(path, 'results.json')))
    for method in table['accuracy']:
      assert table['accuracy'][method][i] == results['curves'][method]['8']
      assert table['ci95'][method][i] == results['ci95'][method]['8']
  # A better verifier ranks higher, the run-to-run ordering the plot shows.
  assert table['accuracy']['genrm'][2] > table['accuracy']['genrm'][0]
  saved = json.load(open(os.path.join(out, 'compare.json')))
  assert saved['x_label'] == 'training problems' and saved['runs'][1]['label'] == '1000'
  assert saved['runs'][0]['n_problems'] == 10
  rows = open(os.path.join(out, 'compare.csv')).read().splitlines()
  assert rows[0] == 'method,run,n,accuracy,ci95_lo,ci95_hi' and len(rows) == 1 + 3 * 3
  png = open(os.path.join(out, 'compare.png'), 'rb').read()
  assert png.startswith(b'\x89PNG') and len(png) > 1000
  assert 'Best-of-8 accuracy' in capsys.readouterr().out
  # One method, at another n; labels default to the directory names.
  only = compare.run(dirs, out, n=2, methods=['genrm'], verbose=False)
  assert list(only['accuracy']) == ['genrm'] and only['n'] == 2
  assert [r['label'] for r in only['runs']] == ['r0.0', 'r0.3', 'r0.6']


def test_default_labels_and_plot_order(tmp_path):
  # Results files of one directory: their names, not '' for every run.
  assert compare.default_labels([str(tmp_path / 'same' / 'a.json'),
                                 str(tmp_path / 'same' / 'b.json')]) == ['a', 'b']
  assert compare.default_labels([str(tmp_path / 'x' / 'r.json'),
                                 str(tmp_path / 'y' / 'r.json')]) == ['x', 'y']
  # Numeric labels: the line visits them in increasing order on a log axis.
  assert compare.plot_positions(['500', '2000', '1000']) == (
      [500.0, 2000.0, 1000.0], [0, 2, 1], True)
  assert compare.plot_positions(['b', 'a']) == ([0.0, 1.0], [0, 1], False)


def test_errors_say_what_is_wrong(tmp_path):
  run = _evaluation(str(tmp_path / 'a'), 0.5)
  out = str(tmp_path / 'out')
  with pytest.raises(compare.InputError, match=r'--n=9 must be in \[1, 8\]'):
    compare.run([run], out, n=9)
  with pytest.raises(compare.InputError, match='2 labels for 1 runs'):
    compare.run([run], out, labels=['a', 'b'])
  with pytest.raises(compare.InputError, match='not in every run'):
    compare.run([run], out, methods=['disc'])
  bad = tmp_path / 'bad.json'
  bad.write_text('{"x": 1}')
  with pytest.raises(compare.InputError, match='not a genrm_jax.evaluate results.json'):
    compare.run([str(bad)], out)
  proc = subprocess.run([sys.executable, '-m', 'genrm_jax.compare', f'--results={run},{tmp_path}/none',
                         f'--out={out}'], cwd=_REPO, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 1 and 'none: no such file' in proc.stderr
