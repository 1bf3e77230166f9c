"""Compute-matched curves: the cost model, frontiers, budgets, and the CLI."""

import json
import os

import numpy as np
import pytest

from genrm_jax import best_of_n
from genrm_jax import compute_matched
from genrm_jax import evaluate


def _point(cost, accuracy, n=1, k=None):
  return dict(n=n, k=k, cost=cost, accuracy=accuracy)


def test_frontier_and_best_within():
  points = [_point(1, 0.2), _point(2, 0.1), _point(2, 0.3), _point(3, 0.3), _point(4, 0.5),
            _point(4, 0.4)]
  assert [(p['cost'], p['accuracy']) for p in compute_matched.frontier(points)] == [
      (1, 0.2), (2, 0.3), (4, 0.5)]
  assert compute_matched.best_within(points, 0.5) is None
  assert compute_matched.best_within(points, 3)['cost'] == 2  # 0.3 at 2, not at 3
  assert compute_matched.best_within(points, 4)['accuracy'] == 0.5
  assert compute_matched.budgets(1) == [1]
  assert compute_matched.budgets(9.5) == [1, 2, 4, 8, 16]
  assert compute_matched.verification_cost(300, 100) == 3
  with pytest.raises(ValueError, match='verification_cost'):
    compute_matched.verification_cost(300, 0)


def _pools(num_problems=6, size=4, k=4, seed=0):
  rng = np.random.default_rng(seed)
  pools = []
  for p in range(num_problems):
    correct = rng.random(size) < 0.4
    keys = ['42' if c else str(rng.integers(3)) for c in correct]
    rationales = [np.clip(0.5 * c + 0.6 * rng.random(k), 0, 1) for c in correct]
    pools.append(best_of_n.Pool(
        f'q{p}', correct, keys,
        {'cot': [r.mean() for r in rationales], 'direct': rng.random(size) + correct},
        {'cot': rationales}))
  return pools


def test_method_points_follow_the_cost_model():
  pools = _pools()
  stats = best_of_n.evaluate_pools(pools, ['cot', 'direct'], 4, num_bootstrap=0,
                                   weighted=True)
  matched = compute_matched.compute_matched(stats, {'cot': 2.5}, {'cot': 4.0})
  points = matched['points']
  assert set(points) == {'cot', 'direct', 'cot:weighted_vote', 'direct:weighted_vote',
                         'majority_vote', 'pass_at_n'}
  # A rationale verifier: every (n, K) of its vs-K curves at n (1 + 2.5 K).
  vs_k = stats['vs_k']['cot']
  assert len(points['cot']) == len(vs_k['k']) * 4
  for p in points['cot']:
    row = vs_k['k'].index(p['k'])
    assert p['cost'] == pytest.approx(p['n'] * (1 + 2.5 * p['k']))
    assert p['accuracy'] == pytest.approx(vs_k['curves'][row, p['n'] - 1])
  # The others cost n; the CoT verifier's weighted vote n (1 + 2.5 * 4).
  for method in ('direct', 'direct:weighted_vote', 'majority_vote', 'pass_at_n'):
    assert [p['cost'] for p in points[method]] == [1, 2, 3, 4]
    np.testing.assert_allclose([p['accuracy'] for p in points[method]],
                               stats['curves'][method])
  assert [p['cost'] for p in points['cot:weighted_vote']] == [11, 22, 33, 44]
  # Budgets: the best affordable point; CoT's cheapest costs 3.5.
  assert list(matched['budgets']) == ['1', '2', '4', '8', '16', '32', '64']
  assert matched['budgets']['2']['cot'] is None
  assert matched['budgets']['4']['cot']['n'] == 1
  best = matched['budgets']['64']['cot']
  assert best['accuracy'] == pytest.approx(max(p['accuracy'] for p in points['cot']))
  table = compute_matched.format_budgets({**matched, 'verification_cost': {'cot': 2.5}})
  assert 'a cot rationale = 2.50' in table and '<=64' in table
  # Without a cost a rationale verifier (and its weighted vote) is left out.
  assert set(compute_matched.method_points(stats, {}, {})) == {
      'direct', 'direct:weighted_vote', 'majority_vote', 'pass_at_n'}


def _write(tmp_path, with_rationales):
  rng = np.random.default_rng(1)
  cands, cot = [], []
  for p in range(5):
    for c in range(4):
      correct = bool(rng.random() < 0.5)
      cands.append(dict(problem_id=f'q{p}', candidate_id=c, question='Q?',
                        solution='x' * 40, answer='42' if correct else '7', reference='42',
                        correct=correct, task='gsm8k'))
      for k in range(2):
        row = dict(problem_id=f'q{p}', candidate_id=c, verifier='genrm_cot', k=k,
                   score=float(np.clip(0.5 * correct + 0.5 * rng.random(), 0, 1)))
        if with_rationales:
          row['rationale'] = 'y' * (100 if k == 0 else 140)  # mean 120 = 3 solutions
        cot.append(row)
  paths = [str(tmp_path / 'c.jsonl'), str(tmp_path / 's.jsonl')]
  for path, rows in zip(paths, (cands, cot)):
    with open(path, 'w') as f:
      f.writelines(json.dumps(r) + '\n' for r in rows)
  return paths


def test_evaluate_measures_the_cost_and_writes_the_plot(tmp_path, capsys):
  cand, scores = _write(tmp_path, with_rationales=True)
  out = str(tmp_path / 'out')
  results = evaluate.run(cand, [scores], out, num_bootstrap=0)
  matched = results['compute_matched']
  assert matched['verification_cost'] == {'genrm_cot': pytest.approx(3.0)}
  assert matched['verification_cost_source'] == {'genrm_cot': 'measured'}
  assert results['mean_chars'] == {'solution': 40.0, 'rationale': {'genrm_cot': 120.0}}
  # K = 2, n = 4: the main curve's last point, at 4 (1 + 3 * 2) = 28 solutions.
  last = [p for p in matched['points']['genrm_cot'] if p['n'] == 4 and p['k'] == 2][0]
  assert last['cost'] == pytest.approx(28)
  assert last['accuracy'] == pytest.approx(results['curves']['genrm_cot']['4'])
  assert os.path.getsize(os.path.join(out, 'compute_matched.png')) > 1000
  assert json.load(open(os.path.join(out, 'results.json')))['compute_matched']['budgets']
  assert 'Compute-matched accuracy' in capsys.readouterr().out
  # Given instead of measured.
  given = evaluate.run(cand, [scores], out, num_bootstrap=0, verbose=False,
                       verification_costs=evaluate.parse_verification_costs(['genrm_cot=0.5']))
  assert given['compute_matched']['verification_cost_source'] == {'genrm_cot': 'given'}
  assert [p['cost'] for p in given['compute_matched']['points']['genrm_cot']][:4] == [
      1.5, 3, 4.5, 6]


def test_without_rationale_texts_it_says_how_to_give_the_cost(tmp_path):
  cand, scores = _write(tmp_path, with_rationales=False)
  results = evaluate.run(cand, [scores], str(tmp_path / 'out'), num_bootstrap=0,
                         verbose=False)
  assert 'compute_matched' not in results
  assert '--verification_cost=genrm_cot=X' in results['compute_matched_skipped']['genrm_cot']
  results = evaluate.run(cand, [scores], str(tmp_path / 'out'), num_bootstrap=0,
                         verbose=False, verification_costs=evaluate.parse_verification_costs(['2']))
  assert results['compute_matched']['verification_cost'] == {'genrm_cot': 2.0}
  with pytest.raises(evaluate.InputError, match='not verifiers scored rationale'):
    evaluate.run(cand, [scores], str(tmp_path / 'out'), num_bootstrap=0, verbose=False,
                 verification_costs={'genrm': 1.0})
  for bad in ('genrm_cot=abc', '-1', 'x=nan'):
    with pytest.raises(evaluate.InputError, match='NAME=X or X'):
      evaluate.parse_verification_costs([bad])
