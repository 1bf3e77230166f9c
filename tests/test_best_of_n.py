"""Best-of-N statistics against brute-force enumeration, golden values, and the CLI."""

import fractions
import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from genrm_jax import best_of_n
from genrm_jax import candidates as candidates_lib
from genrm_jax import evaluate

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# -----------------------------------------------------------------------------
# Brute force: average over every size-n subset, straight from the definitions.
# -----------------------------------------------------------------------------


def _subsets(total, n):
  return list(itertools.combinations(range(total), n))


def _brute_pass(correct, n):
  subsets = _subsets(len(correct), n)
  return np.mean([any(correct[i] for i in s) for s in subsets])


def _brute_best(scores, correct, n):
  values = []
  for s in _subsets(len(correct), n):
    top = max(scores[i] for i in s)
    chosen = [i for i in s if scores[i] == top]  # ties: each equally likely
    values.append(np.mean([correct[i] for i in chosen]))
  return np.mean(values)


def _brute_weighted(scores, keys, correct, n):
  """The answer with the largest summed score wins (ties: a random one), then
  a random candidate of the subset giving it."""
  values = []
  for s in _subsets(len(correct), n):
    totals = {}
    for i in s:
      if keys[i] is not None:
        totals.setdefault(keys[i], []).append(i)
    if not totals:
      values.append(0.0)
      continue
    top = max(sum(scores[i] for i in v) for v in totals.values())
    winners = [v for v in totals.values() if sum(scores[i] for i in v) == top]
    values.append(np.mean([np.mean([correct[i] for i in v]) for v in winners]))
  return np.mean(values)


def _brute_majority(keys, correct, n):
  return _brute_weighted([1] * len(keys), keys, correct, n)  # a vote each


def _random_pool(rng, total, num_answers, none_rate=0.2, score_levels=4):
  keys = [None if rng.random() < none_rate else f'a{rng.integers(num_answers)}'
          for _ in range(total)]
  correct_answer = 'a0'
  # Mostly consistent with the key, sometimes not (grader finer than the key).
  correct = [k == correct_answer if rng.random() < 0.9 else bool(rng.integers(2))
             for k in keys]
  scores = rng.integers(score_levels, size=total) / score_levels  # many ties
  return keys, correct, scores


@pytest.mark.parametrize('seed', range(8))
def test_best_of_n_equals_brute_force_with_ties(seed):
  rng = np.random.default_rng(seed)
  total = int(rng.integers(1, 10))
  _, correct, scores = _random_pool(rng, total, 3)
  got = best_of_n.best_of_n(scores, correct, total)
  want = [_brute_best(scores, correct, n) for n in range(1, total + 1)]
  np.testing.assert_allclose(got, want, atol=1e-12)


@pytest.mark.parametrize('seed', range(8))
def test_pass_at_n_equals_brute_force(seed):
  rng = np.random.default_rng(100 + seed)
  total = int(rng.integers(1, 11))
  correct = list(rng.random(total) < rng.random())
  got = best_of_n.pass_at_n(correct, total)
  want = [_brute_pass(correct, n) for n in range(1, total + 1)]
  np.testing.assert_allclose(got, want, atol=1e-12)


@pytest.mark.parametrize('seed', range(12))
def test_majority_vote_equals_brute_force(seed):
  rng = np.random.default_rng(200 + seed)
  total = int(rng.integers(1, 11))
  keys, correct, _ = _random_pool(rng, total, int(rng.integers(1, 5)), none_rate=0.3)
  got = best_of_n.majority_vote(keys, correct, total, exact=True)
  want = [_brute_majority(keys, correct, n) for n in range(1, total + 1)]
  np.testing.assert_allclose(got, want, atol=1e-12)


def test_majority_vote_ties_and_unanswered():
  # Two answers tied 2-2 plus an unanswered candidate: the tie is worth 1/2.
  keys = ['x', 'y', 'x', 'y', None]
  correct = [True, False, True, False, False]
  got = best_of_n.majority_vote(keys, correct, 5, exact=True)
  assert got[0] == pytest.approx(0.4)  # one random candidate
  assert got[4] == pytest.approx(0.5)  # everything: x and y tie
  # Only unanswered candidates: nobody wins.
  np.testing.assert_array_equal(best_of_n.majority_vote([None] * 3, [False] * 3, 3), 0)


def test_majority_vote_monte_carlo_is_close_to_exact():
  rng = np.random.default_rng(7)
  keys, correct, _ = _random_pool(rng, 14, 4)
  exact = best_of_n.majority_vote(keys, correct, 14, exact=True)
  sampled = best_of_n.majority_vote(keys, correct, 14, exact=False, num_samples=4000,
                                    rng=np.random.default_rng(0))
  np.testing.assert_allclose(sampled, exact, atol=0.03)
  again = best_of_n.majority_vote(keys, correct, 14, exact=False, num_samples=4000,
                                  rng=np.random.default_rng(0))
  np.testing.assert_array_equal(sampled, again)  # seeded: reproducible


@pytest.mark.parametrize('seed', range(12))
def test_weighted_vote_equals_brute_force(seed):
  rng = np.random.default_rng(300 + seed)
  total = int(rng.integers(1, 11))
  # Quarters: sums are exact in floating point, so ties are real ties.
  keys, correct, scores = _random_pool(rng, total, int(rng.integers(1, 5)), none_rate=0.3)
  got = best_of_n.weighted_vote(scores, keys, correct, total, exact=True)
  want = [_brute_weighted(scores, keys, correct, n) for n in range(1, total + 1)]
  np.testing.assert_allclose(got, want, atol=1e-12)


def test_weighted_vote_by_hand():
  keys, correct = ['a', 'a', 'b'], [True, True, False]
  # One confident wrong candidate outweighs two unsure right ones; n = 2:
  # {0,1} a, {0,2} b, {1,2} b.
  np.testing.assert_allclose(best_of_n.weighted_vote([0.2, 0.2, 0.5], keys, correct, 3),
                             [2 / 3, 1 / 3, 0.0], atol=1e-12)
  # Two agreeing candidates pool their scores: 0.8 > 0.5 wins where Best-of-3
  # picks the single top score (wrong).
  np.testing.assert_allclose(best_of_n.weighted_vote([0.4, 0.4, 0.5], keys, correct, 3),
                             [2 / 3, 1 / 3, 1.0], atol=1e-12)
  assert best_of_n.best_of_n([0.4, 0.4, 0.5], correct, 3)[2] == 0.0
  # 0.1 + 0.2 != 0.3 in floating point, yet the totals tie: a coin flip.
  assert best_of_n.weighted_vote([0.1, 0.2, 0.3], keys, correct, 3)[2] == pytest.approx(0.5)
  # Zero weights: every answer present ties; unanswered candidates never win.
  np.testing.assert_allclose(
      best_of_n.weighted_vote([0, 0, 0, 0.9], ['a', 'a', 'b', None], [1, 1, 0, 0], 4)[3], 0.5)
  np.testing.assert_array_equal(best_of_n.weighted_vote([1, 1], [None, None], [0, 0], 2), 0)
  with pytest.raises(ValueError, match='non-negative'):
    best_of_n.weighted_vote([0.5, -0.1, 0.2], keys, correct, 3)


def test_weighted_vote_with_equal_weights_is_majority_vote():
  rng = np.random.default_rng(11)
  for _ in range(10):
    total = int(rng.integers(1, 15))
    keys, correct, _ = _random_pool(rng, total, int(rng.integers(1, 5)))
    np.testing.assert_allclose(
        best_of_n.weighted_vote(np.full(total, 0.7), keys, correct, total),
        best_of_n.majority_vote(keys, correct, total, exact=True), atol=1e-12)


def test_weighted_vote_monte_carlo_is_close_to_exact():
  rng = np.random.default_rng(8)
  keys, correct, _ = _random_pool(rng, 14, 4)
  scores = rng.random(14)
  exact = best_of_n.weighted_vote(scores, keys, correct, 14, exact=True)
  sampled = [best_of_n.weighted_vote(scores, keys, correct, 14, exact=False,
                                     rng=np.random.default_rng(0)) for _ in range(2)]
  np.testing.assert_allclose(sampled[0], exact, atol=0.03)
  np.testing.assert_array_equal(sampled[0], sampled[1])  # seeded: reproducible
  # Past EXACT_WEIGHTED_MAX_N the default is Monte-Carlo.
  big = 40
  keys, correct, _ = _random_pool(rng, big, 4)
  curve = best_of_n.weighted_vote(rng.random(big), keys, correct, 8, num_samples=500)
  assert curve.shape == (8,) and curve[0] == pytest.approx(
      np.mean([c and k is not None for c, k in zip(correct, keys)]), abs=0.06)


def test_evaluate_pools_weighted_methods():
  pools = _GOLDEN_POOLS + [best_of_n.Pool('p4', [1, 1, 0, 0], ['5', '5', '7', '7'],
                                          {'v': [0.4, 0.4, 0.5, 0.1]})]
  for pool, dpo in zip(pools, ([1.0, -2.0, 0.5, 0.0], [0.0] * 4, [1.0] * 4, [2.0] * 4)):
    pool.scores['dpo'] = np.array(dpo)
  stats = best_of_n.evaluate_pools(pools, ['v', 'dpo'], 4, num_bootstrap=100, weighted=True)
  assert stats['methods'] == ['v', 'dpo', 'v:weighted_vote', 'majority_vote', 'pass_at_n']
  assert stats['weighted'] == {'v': 'v:weighted_vote'}
  assert 'negative' in stats['weighted_skipped']['dpo']
  want = np.mean([best_of_n.weighted_vote(p.scores['v'], p.answer_keys, p.correct, 4)
                  for p in pools], axis=0)
  np.testing.assert_allclose(stats['curves']['v:weighted_vote'], want, atol=1e-12)
  # p4 at n = 4: answer 5 totals 0.8 > 0.6, right where Best-of-4 is wrong.
  assert stats['per_problem']['v:weighted_vote'][3, 3] == 1.0
  assert stats['per_problem']['v'][3, 3] == 0.0
  assert ('v:weighted_vote', 'majority_vote') in stats['differences']
  assert ('v:weighted_vote', 'v') in stats['differences']
  lo, hi = stats['ci95']['v:weighted_vote']
  assert np.all(lo <= want + 1e-12) and np.all(want <= hi + 1e-12)
  # Off by default: the table is the one it always was.
  assert best_of_n.evaluate_pools(pools, ['v'], 4, num_bootstrap=0)['methods'] == [
      'v', 'majority_vote', 'pass_at_n']


def test_perfect_verifier_equals_pass_at_n():
  rng = np.random.default_rng(3)
  for _ in range(20):
    total = int(rng.integers(1, 33))
    correct = rng.random(total) < rng.random()
    np.testing.assert_allclose(
        best_of_n.best_of_n(correct.astype(float), correct, total),
        best_of_n.pass_at_n(correct, total), atol=1e-12)


def test_uninformative_verifier_is_flat_at_mean_accuracy():
  correct = np.array([1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1, 0], dtype=bool)
  total = correct.size
  # All scores tied: ties split evenly, so every n gives the mean, exactly.
  np.testing.assert_allclose(best_of_n.best_of_n(np.zeros(total), correct, total),
                             correct.mean(), atol=1e-12)
  # Random scores: flat in expectation over the scores.
  rng = np.random.default_rng(0)
  curves = [best_of_n.best_of_n(rng.random(total), correct, total) for _ in range(3000)]
  np.testing.assert_allclose(np.mean(curves, axis=0), correct.mean(), atol=0.02)


def test_pools_of_hundreds_of_candidates():
  rng = np.random.default_rng(1)
  total = 300  # past the exact majority-vote limit: Monte-Carlo
  correct = rng.random(total) < 0.3
  scores = rng.random(total) + correct  # a good verifier
  keys = [f'a{int(c)}' if rng.random() < 0.5 else f'w{rng.integers(50)}' for c in correct]
  bon = best_of_n.best_of_n(scores, correct, total)
  assert bon[0] == pytest.approx(correct.mean())
  assert bon[-1] == pytest.approx(1.0)
  assert np.all(np.isfinite(best_of_n.pass_at_n(correct, total)))
  maj = best_of_n.majority_vote(keys, correct, 64, num_samples=200)
  assert maj[0] == pytest.approx(correct.mean(), abs=0.05)


def test_auroc_and_ece():
  assert best_of_n.auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == pytest.approx(0.75)
  assert best_of_n.auroc([0.5, 0.5], [0, 1]) == pytest.approx(0.5)  # tie counts 1/2
  assert best_of_n.auroc([0.2, 0.3], [1, 1]) is None
  assert best_of_n.expected_calibration_error([0.0, 1.0], [0, 1]) == pytest.approx(0.0)
  assert best_of_n.expected_calibration_error([0.9, 0.9], [0, 1]) == pytest.approx(0.4)
  assert best_of_n.expected_calibration_error([-3.0, 2.0], [0, 1]) is None  # not probabilities


def test_pair_accuracy_is_within_problems():
  """A verifier that ranks every problem's candidates right but scores the
  easy problem's all above the hard one's: pair accuracy 1, as its
  Best-of-N; pooled AUROC is lower. Ties count 1/2; one-label problems
  have no pairs."""
  easy = best_of_n.Pool('easy', [True, True, False], ['1', '1', '2'],
                        {'v': [0.95, 0.9, 0.8]})
  hard = best_of_n.Pool('hard', [True, False, False], ['1', '2', '3'],
                        {'v': [0.3, 0.1, 0.3]})
  solved = best_of_n.Pool('solved', [True, True], ['1', '1'], {'v': [0.5, 0.2]})
  pools = [easy, hard, solved]
  # easy: 2 pairs, both right; hard: 2 pairs, one right, one tie (1/2).
  assert best_of_n.pair_accuracy(pools, 'v') == pytest.approx((2 + 1.5) / 4)
  assert best_of_n.pair_accuracy([easy], 'v') == 1.0
  assert best_of_n.pair_accuracy([solved], 'v') is None
  stats = best_of_n.evaluate_pools([easy], ['v'], 3, num_bootstrap=0)
  assert stats['pair_accuracy'] == {'v': 1.0} and stats['curves']['v'][-1] == 1.0
  everything = np.concatenate([easy.scores['v'], hard.scores['v']])
  labels = np.concatenate([easy.correct, hard.correct])
  assert best_of_n.auroc(everything, labels) < best_of_n.pair_accuracy([easy, hard], 'v')


def test_normalized_ranks_and_ensembles():
  np.testing.assert_allclose(best_of_n.normalized_ranks([3.0, 1.0, 2.0]), [1.0, 0.0, 0.5])
  np.testing.assert_allclose(best_of_n.normalized_ranks([1.0, 1.0, 2.0]), [0.25, 0.25, 1.0])
  np.testing.assert_allclose(best_of_n.normalized_ranks([7.0]), [0.5])
  rng = np.random.default_rng(0)
  pools = [best_of_n.Pool(f'p{i}', rng.random(6) < 0.4, [str(j) for j in range(6)],
                          {'v': rng.random(6) * 10}) for i in range(30)]
  for pool in pools:
    pool.scores['minus_v'] = -pool.scores['v']
  # A verifier with itself ranks as it does; with its own negation, every
  # candidate ties: Best-of-n is then the pool's mean accuracy at every n.
  best_of_n.add_ensemble(pools, 'twice', ['v', 'v'])
  best_of_n.add_ensemble(pools, 'cancel', ['v', 'minus_v'])
  stats = best_of_n.evaluate_pools(pools, ['v', 'twice', 'cancel'], 6, num_bootstrap=0)
  np.testing.assert_allclose(stats['curves']['twice'], stats['curves']['v'])
  mean = np.mean([pool.correct.mean() for pool in pools])
  np.testing.assert_allclose(stats['curves']['cancel'], [mean] * 6)
  assert all(pool.scores['twice'].max() <= 2.0 for pool in pools)
  assert stats['reliability']['twice'] is None  # ranks summed: not probabilities


def test_cli_ensemble(tmp_path):
  """--ensemble=NAME=A+B: one more verifier everywhere (curves, differences,
  selections); unknown members, taken names and bad specs are errors."""
  cand, s1, s2 = _write_inputs(str(tmp_path))
  out = tmp_path / 'out'
  proc = _cli(f'--candidates={cand}', f'--scores={s1},{s2}', f'--out={out}',
              '--bootstrap=20', '--ensemble=both=genrm_cot+disc',
              '--verification_cost=genrm_cot=2')
  assert proc.returncode == 0, proc.stderr
  results = json.loads((out / 'results.json').read_text())
  assert 'both' in results['curves'] and 'both - majority_vote' in results['differences']
  assert results['args']['ensembles'] == {'both': ['genrm_cot', 'disc']}
  rows = [json.loads(l) for l in (out / 'selections.jsonl').read_text().splitlines()]
  assert all('both' in row['picks'] for row in rows)
  # Not in the compute-matched table: an ensemble costs its members together.
  assert 'both' not in results['compute_matched']['points']
  assert 'members' in results['compute_matched_skipped']['both']
  # Rank sums are no probabilities, even where they fall in [0, 1].
  assert 'both' in results['reliability_skipped'] and results['ece']['both'] is None
  assert evaluate.parse_ensembles(['a+b', 'x=a+b+c']) == {'a+b': ['a', 'b'], 'x': ['a', 'b', 'c']}
  with pytest.raises(evaluate.InputError, match='two verifiers or more'):
    evaluate.parse_ensembles(['x=a'])
  for spec, message in (('x=genrm_cot+nope', "no scores of \\['nope'\\]"),
                        ('disc=genrm_cot+disc', "'disc' is taken")):
    with pytest.raises(evaluate.InputError, match=message):
      evaluate.run(cand, [s1, s2], str(tmp_path / 'bad'), num_bootstrap=0, verbose=False,
                   ensembles=evaluate.parse_ensembles([spec]))


def test_score_histogram():
  # Probabilities: bins of [0, 1]; 1.0 joins the last bin.
  hist = best_of_n.score_histogram([0.0, 0.1, 0.55, 1.0, 0.95], [0, 0, 1, 1, 0], num_bins=4)
  np.testing.assert_allclose(hist['edges'], [0, 0.25, 0.5, 0.75, 1])
  assert list(hist['correct']) == [0, 0, 1, 1] and list(hist['incorrect']) == [2, 0, 0, 1]
  assert hist['mean'] == {'correct': pytest.approx(0.775), 'incorrect': pytest.approx(0.35)}
  # Log-ratios: bins of [min, max]; one class empty.
  hist = best_of_n.score_histogram([-3.0, -1.0, 1.0], [0, 0, 0], num_bins=2)
  np.testing.assert_allclose(hist['edges'], [-3, -1, 1])
  assert list(hist['incorrect']) == [1, 2] and list(hist['correct']) == [0, 0]
  assert hist['mean']['correct'] is None
  # All equal outside [0, 1]: one bin's worth of width, nothing lost.
  assert best_of_n.score_histogram([5.0, 5.0], [1, 0], num_bins=3)['correct'].sum() == 1
  assert best_of_n.score_histogram([], []) is None
  # A range as wide as float64's: finite edges, every score in a bin.
  hist = best_of_n.score_histogram([-1e308, 0.0, 1e308], [0, 1, 1], num_bins=4)
  assert np.all(np.isfinite(hist['edges'])) and hist['edges'][[0, -1]].tolist() == [-1e308, 1e308]
  assert list(hist['incorrect']) == [1, 0, 0, 0] and list(hist['correct']) == [0, 0, 1, 1]


def test_reliability_bins_hand_made():
  scores = [0.05, 0.15, 0.12, 0.95, 1.0, 0.55]
  labels = [0, 1, 0, 1, 1, 0]
  bins = best_of_n.reliability_bins(scores, labels)
  np.testing.assert_allclose(bins['edges'], np.arange(11) / 10)
  np.testing.assert_array_equal(bins['count'], [1, 2, 0, 0, 0, 1, 0, 0, 0, 2])
  nan = np.nan
  np.testing.assert_allclose(bins['mean_score'],
                             [0.05, 0.135, nan, nan, nan, 0.55, nan, nan, nan, 0.975])
  np.testing.assert_allclose(bins['accuracy'], [0, 0.5, nan, nan, nan, 0, nan, nan, nan, 1])
  # (1 * 0.05 + 2 * 0.365 + 1 * 0.55 + 2 * 0.025) / 6
  assert bins['ece'] == pytest.approx(0.23)
  assert best_of_n.expected_calibration_error(scores, labels) == pytest.approx(0.23)
  # (0.05^2 + 0.85^2 + 0.12^2 + 0.05^2 + 0 + 0.55^2) / 6
  assert bins['brier'] == pytest.approx((0.0025 + 0.7225 + 0.0144 + 0.0025 + 0.3025) / 6)
  assert best_of_n.reliability_bins([0.5, 1.5], [0, 1]) is None  # not probabilities
  assert best_of_n.reliability_bins([-0.1, 0.5], [0, 1]) is None


def test_bootstrap_ci_paired_and_seeded():
  rng = np.random.default_rng(0)
  values = {'a': rng.random((50, 3)), 'b': np.full((50, 3), 0.25)}
  ci = best_of_n.bootstrap_ci(values, 500, seed=1)
  lo, hi = ci['a']
  mean = values['a'].mean(axis=0)
  assert np.all(lo < mean) and np.all(mean < hi)
  np.testing.assert_allclose(ci['b'][0], 0.25)  # no spread, no interval
  np.testing.assert_allclose(ci['b'][1], 0.25)
  again = best_of_n.bootstrap_ci(values, 500, seed=1)
  np.testing.assert_array_equal(again['a'][0], lo)


def test_paired_difference_sees_what_overlapping_intervals_hide():
  # 60 problems of very different difficulty; B wins by 0.05 on every one
  # of them: the two methods' own intervals overlap, their difference's
  # interval is the constant itself.
  rng = np.random.default_rng(0)
  base = rng.random((60, 2))
  per_problem = {'a': base, 'b': base + 0.05, 'c': base + rng.normal(0, 0.2, (60, 2))}
  ci = best_of_n.bootstrap_ci(per_problem, 500, seed=3)
  assert ci['b'][0][1] < ci['a'][1][1]  # overlap
  diffs = best_of_n.paired_differences(per_problem, [('b', 'a'), ('c', 'a')], 500, seed=3)
  np.testing.assert_allclose(diffs[('b', 'a')]['diff'], 0.05)
  np.testing.assert_allclose(diffs[('b', 'a')]['ci95'], [[0.05, 0.05], [0.05, 0.05]])
  # Noise around the same level: an interval that straddles 0, and exactly
  # the bootstrap of the per-problem differences with the same seed.
  lo, hi = diffs[('c', 'a')]['ci95']
  assert np.all(lo < 0) and np.all(hi > 0)
  want = best_of_n.bootstrap_ci({'d': per_problem['c'] - base}, 500, seed=3)['d']
  np.testing.assert_array_equal(lo, want[0])
  assert best_of_n.paired_differences(per_problem, [('b', 'a')], 0, 3)[('b', 'a')]['ci95'] is None
  assert best_of_n.comparison_pairs(['x', 'y', 'z']) == [
      ('x', 'majority_vote'), ('y', 'majority_vote'), ('z', 'majority_vote'),
      ('x', 'y'), ('x', 'z'), ('y', 'z')]


# -----------------------------------------------------------------------------
# Golden values on a hand-made pool: 3 problems x 4 candidates.
# -----------------------------------------------------------------------------

F = fractions.Fraction
_GOLDEN_POOLS = [
    # The verifier ranks the only correct candidate first: Best-of-n = pass@n.
    best_of_n.Pool('p1', [1, 0, 0, 0], ['1', '2', '2', '3'], {'v': [0.9, 0.1, 0.2, 0.3]}),
    # A three-way tie at the top (two correct, one wrong); an unanswered candidate.
    best_of_n.Pool('p2', [1, 1, 0, 0], ['4', '4', '9', None], {'v': [0.5, 0.5, 0.5, 0.1]}),
    # Nothing correct.
    best_of_n.Pool('p3', [0, 0, 0, 0], ['8', '8', '6', '6'], {'v': [0.3, 0.3, 0.3, 0.3]}),
]
# Worked out by hand, per problem then averaged (see the comments above):
#   pass@n:  p1 1/4, 1/2, 3/4, 1   p2 1/2, 5/6, 1, 1
#   v:       p1 = pass@n           p2 3/4*2/3 = 1/2, then 2/3, 2/3, 2/3
#   majority p1 1/4, 1/4, 1/6, 0   p2 1/2, 2/3, 3/4, 1
_GOLDEN = {
    'pass_at_n': [F(1, 4), F(4, 9), F(7, 12), F(2, 3)],
    'v': [F(1, 4), F(7, 18), F(17, 36), F(5, 9)],
    'majority_vote': [F(1, 4), F(11, 36), F(11, 36), F(1, 3)],
}


def test_golden_values():
  stats = best_of_n.evaluate_pools(_GOLDEN_POOLS, ['v'], 4, num_bootstrap=200, seed=0)
  for method, want in _GOLDEN.items():
    np.testing.assert_allclose(stats['curves'][method], [float(w) for w in want],
                               atol=1e-12, err_msg=method)
  assert stats['first_sample'][0] == pytest.approx(2 / 3)
  # Positives 0.9, 0.5, 0.5 against 9 negatives (one 0.5): (9 + 8.5 + 8.5) / 27.
  assert stats['auroc']['v'] == pytest.approx(26 / 27)
  for method in _GOLDEN:
    lo, hi = stats['ci95'][method]
    assert np.all(lo <= stats['curves'][method] + 1e-12)
    assert np.all(stats['curves'][method] <= hi + 1e-12)
  assert list(stats['differences']) == [('v', 'majority_vote')]
  np.testing.assert_allclose(stats['differences'][('v', 'majority_vote')]['diff'],
                             [float(v - m) for v, m in zip(_GOLDEN['v'], _GOLDEN['majority_vote'])],
                             atol=1e-12)


# -----------------------------------------------------------------------------
# Files and the CLI.
# -----------------------------------------------------------------------------


def _write_inputs(directory, num_problems=12, pool_sizes=(8,), seed=0):
  """A gsm8k-like store and two score files (one CoT-style with k=0,1)."""
  rng = np.random.default_rng(seed)
  cands, genrm, disc = [], [], []
  for p in range(num_problems):
    size = pool_sizes[p % len(pool_sizes)]
    for c in range(size):
      correct = bool(rng.random() < 0.4)
      answer = '42' if correct else (None if rng.random() < 0.1 else str(rng.integers(3)))
      cands.append(dict(problem_id=f'q{p}', candidate_id=c, question='Q?', solution='...',
                        answer=answer, reference='42', correct=correct, task='gsm8k'))
      for k in range(2):
        genrm.append(dict(problem_id=f'q{p}', candidate_id=c, verifier='genrm_cot', k=k,
                          score=float(np.clip(0.6 * correct + 0.5 * rng.random(), 0, 1))))
      disc.append(dict(problem_id=f'q{p}', candidate_id=c, verifier='disc',
                       score=float(rng.normal() + correct)))
  paths = [os.path.join(directory, name) for name in ('c.jsonl', 's1.jsonl', 's2.jsonl')]
  for path, rows in zip(paths, (cands, genrm, disc)):
    with open(path, 'w') as f:
      f.writelines(json.dumps(row) + '\n' for row in rows)
  return paths


def _cli(*args):
  return subprocess.run([sys.executable, '-m', 'genrm_jax.evaluate', *args], cwd=_REPO,
                        capture_output=True, text=True, timeout=120)


def test_cli_end_to_end(tmp_path):
  cand, s1, s2 = _write_inputs(str(tmp_path))
  out = tmp_path / 'out'
  proc = _cli(f'--candidates={cand}', f'--scores={s1},{s2}', f'--out={out}',
              '--bootstrap=200')
  assert proc.returncode == 0, proc.stderr
  results = json.loads((out / 'results.json').read_text())
  methods = ['genrm_cot', 'disc', 'majority_vote', 'pass_at_n']
  assert set(results['curves']) == set(methods)
  for method in methods:
    assert list(results['curves'][method]) == [str(n) for n in range(1, 9)]
    for n, (lo, hi) in results['ci95'][method].items():
      assert lo <= results['curves'][method][n] <= hi
  assert results['n_problems'] == 12 and results['n_candidates'] == 96
  assert results['n_max'] == 8
  assert set(results['auroc']) == {'genrm_cot', 'disc'}
  assert results['ece']['disc'] is None  # not probabilities
  assert results['brier']['disc'] is None and 0 < results['brier']['genrm_cot'] < 1
  # Score histograms of every verifier, logits included.
  assert set(results['score_histograms']) == {'genrm_cot', 'disc'}
  for hist in results['score_histograms'].values():
    assert sum(hist['correct']) + sum(hist['incorrect']) == 96
  for name in ('best_of_n.png', 'best_of_n_vs_k.png', 'reliability.png', 'score_histograms.png'):
    png = (out / name).read_bytes()
    assert png.startswith(b'\x89PNG') and len(png) > 1000, name
  # Accuracy vs K for the CoT verifier (rows with k = 0, 1), n = 1, 2, 4, 8.
  assert set(results['curves_vs_k']) == {'genrm_cot'}
  assert list(results['curves_vs_k']['genrm_cot']) == ['1', '2']
  for k in ('1', '2'):
    assert list(results['curves_vs_k']['genrm_cot'][k]) == ['1', '2', '4', '8']
    for n, (lo, hi) in results['ci95_vs_k']['genrm_cot'][k].items():
      assert lo <= results['curves_vs_k']['genrm_cot'][k][n] <= hi
  assert results['rationales_per_candidate'] == {'genrm_cot': {'min': 2, 'max': 2}}
  # Reliability: genrm_cot's p(Yes) only; disc's logits are skipped, saying so.
  assert set(results['reliability']) == {'genrm_cot'}
  bins = results['reliability']['genrm_cot']
  assert bins['num_bins'] == 10 and sum(bins['count']) == 96
  assert bins['ece'] == pytest.approx(results['ece']['genrm_cot'])
  assert set(results['reliability_skipped']) == {'disc'}
  assert 'not probabilities' in results['reliability_skipped']['disc']
  assert (out / 'curves.csv').read_text().startswith('method,n,accuracy,ci95_lo,ci95_hi')
  assert 'majority_vote' in proc.stdout and 'n=8' in proc.stdout
  # Paired differences: each verifier vs majority voting, then the pair.
  assert list(results['differences']) == [
      'genrm_cot - majority_vote', 'disc - majority_vote', 'genrm_cot - disc']
  for pair, by_n in results['differences'].items():
    a, b = pair.split(' - ')
    assert list(by_n) == [str(n) for n in range(1, 9)]
    for n, value in by_n.items():
      assert value['diff'] == pytest.approx(results['curves'][a][n] - results['curves'][b][n])
      assert value['ci95'][0] <= value['diff'] <= value['ci95'][1]
    d = by_n['8']
    assert (f"  {pair}: {d['diff'] * 100:+.1f} [{d['ci95'][0] * 100:+.1f}, "
            f"{d['ci95'][1] * 100:+.1f}]") in proc.stdout
  # Files alone: neither JAX nor TensorFlow comes with the evaluator.
  probe = subprocess.run(
      [sys.executable, '-c', 'import sys, genrm_jax.evaluate; '
       'print(sorted(m for m in ("jax", "tensorflow", "flax") if m in sys.modules))'],
      cwd=_REPO, capture_output=True, text=True, timeout=60)
  assert probe.stdout.strip() == '[]', probe.stdout + probe.stderr


def test_selections_are_each_methods_pick_from_the_whole_pool(tmp_path):
  """selections.jsonl: per problem, each verifier's top-scored candidate and
  the majority vote's answer, ties counted; where no verifier ties, their
  picks' accuracy is the Best-of-N curve's last point."""
  cand, s1, s2 = _write_inputs(str(tmp_path))
  # GenRM-CoT's rows carry their rationales (written in reverse k order).
  rows = [json.loads(l) for l in open(s1)][::-1]
  with open(s1, 'w') as f:
    f.writelines(json.dumps(dict(r, rationale=f"r{r['problem_id']}/{r['candidate_id']}/{r['k']}"))
                 + '\n' for r in rows)
  out = str(tmp_path / 'out')
  results = evaluate.run(cand, [s1, s2], out, num_bootstrap=0, verbose=False)
  rows = [json.loads(l) for l in open(os.path.join(out, 'selections.jsonl'))]
  cands = [json.loads(l) for l in open(cand)]
  scores = {}
  for path in (s1, s2):
    for r in map(json.loads, open(path)):
      scores.setdefault((r['verifier'], r['problem_id'], r['candidate_id']), []).append(r['score'])
  assert [r['problem_id'] for r in rows] == [f'q{p}' for p in range(12)]
  for row in rows:
    pool = [c for c in cands if c['problem_id'] == row['problem_id']]
    assert row['n'] == len(pool) and row['pass_at_n'] == any(c['correct'] for c in pool)
    for name, pick in row['picks'].items():
      assert ('rationales' in pick) == (name == 'genrm_cot')
      if name == 'genrm_cot':  # the pick's own, in k order
        assert pick['rationales'] == [f"r{row['problem_id']}/{pick['candidate_id']}/{k}"
                                      for k in range(2)]
      mean = [np.mean(scores[(name, row['problem_id'], c['candidate_id'])]) for c in pool]
      best = int(np.argmax(mean))
      assert pick['candidate_id'] == pool[best]['candidate_id']
      assert pick['correct'] == pool[best]['correct'] and pick['score'] == pytest.approx(mean[best])
      assert pick['tied'] == int(np.sum(np.isclose(mean, mean[best])))
    answers = [c['answer'] for c in pool if c['answer'] is not None]
    counts = {a: answers.count(a) for a in answers}
    most = max(counts.values())
    vote = row['majority_vote']
    assert vote['votes'] == most and vote['tied'] == list(counts.values()).count(most)
    assert vote['answer'] == next(a for a in answers if counts[a] == most)
    group = [c['correct'] for c in pool if c['answer'] == vote['answer']]
    assert vote['frac_correct'] == pytest.approx(np.mean(group))
  n = str(results['n_max'])
  assert all(r['n'] == int(n) for r in rows)  # equal pools: n = N is the whole pool
  for name in ('genrm_cot', 'disc'):
    assert all(r['picks'][name]['tied'] == 1 for r in rows)  # continuous scores
    assert np.mean([r['picks'][name]['correct'] for r in rows]) == pytest.approx(
        results['curves'][name][n])


def test_cli_weighted_vote(tmp_path):
  cand, s1, s2 = _write_inputs(str(tmp_path))
  out = tmp_path / 'out'
  proc = _cli(f'--candidates={cand}', f'--scores={s1},{s2}', f'--out={out}',
              '--bootstrap=50', '--weighted_vote')
  assert proc.returncode == 0, proc.stderr
  results = json.loads((out / 'results.json').read_text())
  # disc's scores are logits (negative too): skipped, saying why.
  assert results['methods'] == ['genrm_cot', 'disc', 'genrm_cot:weighted_vote',
                                'majority_vote', 'pass_at_n']
  assert results['weighted_vote'] == {'genrm_cot': 'genrm_cot:weighted_vote'}
  assert set(results['weighted_vote_skipped']) == {'disc'}
  assert results['args']['weighted_vote'] == 'exact'
  pools, _, _ = evaluate.load_pools(cand, [s1, s2])
  want = np.mean([best_of_n.weighted_vote(p.scores['genrm_cot'], p.answer_keys, p.correct, 8)
                  for p in pools], axis=0)
  np.testing.assert_allclose(list(results['curves']['genrm_cot:weighted_vote'].values()),
                             want, atol=1e-12)
  assert {'genrm_cot:weighted_vote - majority_vote',
          'genrm_cot:weighted_vote - genrm_cot'} <= set(results['differences'])
  assert 'genrm_cot:weighted_vote' in proc.stdout
  assert 'disc: no weighted vote' in proc.stdout
  assert 'genrm_cot:weighted_vote,8,' in (out / 'curves.csv').read_text()


def test_cli_errors_name_file_and_line(tmp_path):
  cand, s1, _ = _write_inputs(str(tmp_path), num_problems=2, pool_sizes=(3,))
  with open(s1, 'a') as f:
    f.write('{"problem_id": "q0", "candidate_id": 0, "verifier": "genrm_cot", "score": \n')
  proc = _cli(f'--candidates={cand}', f'--scores={s1}', f'--out={tmp_path / "out"}')
  assert proc.returncode == 1
  assert f'error: {s1}:13: invalid JSON' in proc.stderr
  proc = _cli(f'--candidates={cand}', f'--out={tmp_path / "out"}', '--config=eval.py')
  assert proc.returncode == 1 and 'No eval config eval.py' in proc.stderr


def test_cli_bad_settings_are_clean_errors_before_any_work(tmp_path):
  """W&B settings (before --config's scoring), a negative seed, an --out
  that is a file: 'error: ...', exit 1, no traceback."""
  cand, s1, _ = _write_inputs(str(tmp_path), num_problems=2, pool_sizes=(3,))
  a_file = tmp_path / 'a_file'
  a_file.write_text('')
  for extra, message in ((['--wandb_project=x', '--wandb_mode=offlin'], "W&B mode 'offlin'"),
                         (['--seed=-1'], '--seed=-1 and --bootstrap=1000 must be >= 0'),
                         ([f'--out={a_file}'], 'is a file: give a directory')):
    proc = _cli(f'--candidates={cand}', f'--scores={s1}', f'--out={tmp_path / "out"}', *extra)
    assert proc.returncode == 1 and 'Traceback' not in proc.stderr, proc.stderr
    assert f'error: ' in proc.stderr and message in proc.stderr, proc.stderr


def _run(tmp_path, cand, scores, **kwargs):
  return evaluate.run(cand, scores, str(tmp_path / 'out'), num_bootstrap=20, verbose=False,
                      **kwargs)


def test_malformed_candidate_row(tmp_path):
  cand, s1, _ = _write_inputs(str(tmp_path), num_problems=2, pool_sizes=(3,))
  lines = open(cand).read().splitlines()
  lines[3] = lines[3].replace('"correct": false', '"correct": "no"').replace(
      '"correct": true', '"correct": "yes"')
  open(cand, 'w').write('\n'.join(lines) + '\n')
  with pytest.raises(candidates_lib.MalformedRowError, match=f'{cand}:4: field .correct'):
    _run(tmp_path, cand, [s1])


def test_score_of_unknown_candidate(tmp_path):
  cand, s1, s2 = _write_inputs(str(tmp_path), num_problems=2, pool_sizes=(3,))
  with open(s2, 'a') as f:
    f.write(json.dumps(dict(problem_id='q9', candidate_id=0, verifier='disc', score=1.0)) + '\n')
  with pytest.raises(evaluate.InputError, match=f"{s2}:7: candidate 0 of problem 'q9' is not"):
    _run(tmp_path, cand, [s1, s2])
  results = _run(tmp_path, cand, [s1, s2], allow_missing=True)
  assert results['skipped_score_rows'] == 1 and results['n_problems'] == 2


def test_missing_scores(tmp_path):
  cand, s1, s2 = _write_inputs(str(tmp_path), num_problems=3, pool_sizes=(3,))
  lines = open(s2).read().splitlines()
  del lines[4]  # q1, candidate 1
  open(s2, 'w').write('\n'.join(lines) + '\n')
  with pytest.raises(evaluate.InputError, match="1 of 3 problems .* problem 'q1' candidate 1"):
    _run(tmp_path, cand, [s1, s2])
  results = _run(tmp_path, cand, [s1, s2], allow_missing=True)
  assert results['n_problems'] == 2 and results['dropped_problems'] == 1


def test_conflicting_duplicate_scores(tmp_path):
  cand, s1, s2 = _write_inputs(str(tmp_path), num_problems=2, pool_sizes=(3,))
  row = json.loads(open(s2).readline())
  with open(s2, 'a') as f:
    f.write(json.dumps(row) + '\n')  # the same row again: ignored
    f.write(json.dumps({**row, 'score': row['score'] + 1}) + '\n')
  with pytest.raises(evaluate.InputError, match=f'{s2}:8: .* but {s2}:1 says'):
    _run(tmp_path, cand, [s1, s2])


def test_unequal_pools_stop_at_the_smallest(tmp_path):
  cand, s1, s2 = _write_inputs(str(tmp_path), num_problems=4, pool_sizes=(4, 6))
  results = _run(tmp_path, cand, [s1, s2])
  assert results['n_max'] == 4
  assert results['candidates_per_problem'] == {'min': 4, 'max': 6}
  assert results['n_candidates'] == 20
  assert list(results['curves']['pass_at_n']) == ['1', '2', '3', '4']
  with pytest.raises(evaluate.InputError, match='--n_max=5 must be in .1, 4.'):
    _run(tmp_path, cand, [s1, s2], n_max=5)


def test_no_bootstrap_and_single_n(tmp_path):
  cand, s1, s2 = _write_inputs(str(tmp_path), num_problems=3, pool_sizes=(5,))
  results = evaluate.run(cand, [s1, s2], str(tmp_path / 'out'), n_max=1, num_bootstrap=0,
                         verbose=False)
  assert results['ci95'] == {} and results['first_sample']['ci95'] is None
  assert list(results['curves']['disc']) == ['1']
  assert (tmp_path / 'out' / 'best_of_n.png').stat().st_size > 1000
  assert 'n=1' in evaluate.format_table(results)
  assert results['differences']['disc - majority_vote']['1']['ci95'] is None
  assert ' [' not in evaluate.format_differences(results)
  # At n = 1 two verifiers differ only by rounding: never marked significant;
  # a real difference is.
  fake = {'n_max': 1, 'differences': {
      'a - b': {'1': {'diff': 1e-16, 'ci95': [1e-17, 2e-16]}},
      'c - b': {'1': {'diff': 0.05, 'ci95': [0.01, 0.09]}}}}
  assert evaluate.format_differences(fake).splitlines() == [
      '  a - b: +0.0 [+0.0, +0.0]', '  c - b: +5.0 [+1.0, +9.0] *']


# -----------------------------------------------------------------------------
# Accuracy vs K (GenRM-CoT rationales).
# -----------------------------------------------------------------------------


def _write_cot_inputs(directory, num_problems=10, size=6, num_rationales=4, seed=0):
  """A store; `cot` scores with `num_rationales` noisy rows per candidate
  (written in shuffled k order), and `k0`: the same k = 0 scores without k."""
  rng = np.random.default_rng(seed)
  cands, cot, first = [], [], []
  for p in range(num_problems):
    for c in range(size):
      correct = bool(rng.random() < 0.4)
      cands.append(dict(problem_id=f'q{p}', candidate_id=c, question='Q?', solution='...',
                        answer='42' if correct else str(c), reference='42', correct=correct,
                        task='gsm8k'))
      # Noisy per rationale, so K changes the ranking; coarse, so scores tie.
      p_yes = np.round(np.clip(0.3 * correct + 0.7 * rng.random(num_rationales), 0, 1), 1)
      for k in rng.permutation(num_rationales):
        cot.append(dict(problem_id=f'q{p}', candidate_id=c, verifier='cot', k=int(k),
                        score=float(p_yes[k])))
      first.append(dict(problem_id=f'q{p}', candidate_id=c, verifier='k0',
                        score=float(p_yes[0])))
  paths = [os.path.join(directory, name) for name in ('c.jsonl', 'cot.jsonl', 'k0.jsonl')]
  for path, rows in zip(paths, (cands, cot, first)):
    with open(path, 'w') as f:
      f.writelines(json.dumps(row) + '\n' for row in rows)
  return paths


def test_vs_k_full_k_is_main_curve_and_k1_is_first_rationale(tmp_path):
  cand, cot, first = _write_cot_inputs(str(tmp_path))
  results = _run(tmp_path, cand, [cot, first])
  vs_k = results['curves_vs_k']['cot']
  assert list(vs_k) == ['1', '2', '4'] and set(results['curves_vs_k']) == {'cot'}
  grid = ['1', '2', '4', '6']
  for k in vs_k:
    assert list(vs_k[k]) == grid
  for n in grid:
    # K = 4 (all rationales): exactly the verifier's main curve.
    assert vs_k['4'][n] == results['curves']['cot'][n]
    # K = 1: Best-of-n from the k = 0 scores alone.
    assert vs_k['1'][n] == pytest.approx(results['curves']['k0'][n], abs=1e-12)
  assert vs_k['1']['4'] < vs_k['2']['4'] < vs_k['4']['4']  # K matters in this data
  assert results['rationales_per_candidate'] == {'cot': {'min': 4, 'max': 4}}
  assert set(results['reliability']) == {'cot', 'k0'} and not results['reliability_skipped']


def test_vs_k_stops_at_the_fewest_rationales(tmp_path):
  cand, cot, _ = _write_cot_inputs(str(tmp_path), num_problems=3, num_rationales=3)
  with open(cot, 'a') as f:  # one candidate gets a 4th rationale
    f.write(json.dumps(dict(problem_id='q0', candidate_id=0, verifier='cot', k=3,
                            score=0.5)) + '\n')
  results = _run(tmp_path, cand, [cot])
  assert results['rationales_per_candidate'] == {'cot': {'min': 3, 'max': 4}}
  assert list(results['curves_vs_k']['cot']) == ['1', '2', '3']


def test_best_of_n_vs_k_pool_level():
  rng = np.random.default_rng(5)
  correct = rng.random(7) < 0.5
  rationales = [rng.random(4) for _ in correct]
  got = best_of_n.best_of_n_vs_k(rationales, correct, 7, [1, 2, 4])
  for row, k in zip(got, [1, 2, 4]):
    np.testing.assert_allclose(
        row, best_of_n.best_of_n([r[:k].mean() for r in rationales], correct, 7), atol=0)
  with pytest.raises(ValueError, match='must be in .1, 4.'):
    best_of_n.best_of_n_vs_k(rationales, correct, 7, [8])


def test_math_votes_group_equivalent_answers(tmp_path):
  """0.5, \\frac{1}{2} and 1/2 are one answer: 3 votes beat 3's 2."""
  answers = ['\\frac{1}{2}', '0.5', '1/2', '3', '3']
  path = tmp_path / 'c.jsonl'
  with open(path, 'w') as f:
    for c, answer in enumerate(answers):
      f.write(json.dumps(dict(problem_id='p', candidate_id=c, question='Q?', solution='...',
                              answer=answer, reference='\\frac12', correct=c < 3,
                              task='math')) + '\n')
  by_class = evaluate.run(str(path), [], str(tmp_path / 'a'), num_bootstrap=0, verbose=False)
  assert by_class['curves']['majority_vote']['5'] == 1.0
  assert by_class['merged_answer_keys'] == 1 and by_class['vote_by'] == 'equivalence'
  # By canonical string: \frac{1}{2} (twice, with 1/2) ties 3: a coin flip.
  by_string = evaluate.run(str(path), [], str(tmp_path / 'b'), num_bootstrap=0,
                           verbose=False, vote_by='string')
  assert by_string['curves']['majority_vote']['5'] == 0.5
  assert by_string['merged_answer_keys'] == 0
  with pytest.raises(evaluate.InputError, match='vote_by'):
    evaluate.run(str(path), [], str(tmp_path / 'c'), vote_by='exact')
  # A merged class holding both labels: selections.jsonl shows the first
  # member's label and the class's fraction, which the curve counts.
  mixed = _write_rows(tmp_path / 'mixed.jsonl', [
      dict(problem_id='p', candidate_id=c, question='Q?', solution='...', answer=a,
           reference='\\frac12', correct=ok, task='math')
      for c, (a, ok) in enumerate([('0.5', True), ('\\frac{1}{2}', False), ('3', False)])])
  results = evaluate.run(mixed, [], str(tmp_path / 'd'), num_bootstrap=0, verbose=False)
  assert results['curves']['majority_vote']['3'] == 0.5
  vote = json.loads((tmp_path / 'd' / 'selections.jsonl').read_text())['majority_vote']
  assert vote['correct'] is True and vote['frac_correct'] == 0.5 and vote['votes'] == 2


# -----------------------------------------------------------------------------
# Edge cases of names, answers and score values.
# -----------------------------------------------------------------------------


def _write_rows(path, rows):
  with open(path, 'w') as f:
    f.writelines(json.dumps(row) + '\n' for row in rows)
  return str(path)


def _candidate_rows(answers, correct, task='math'):
  return [dict(problem_id='p', candidate_id=c, question='Q?', solution='...', answer=a,
               reference='5', correct=ok, task=task)
          for c, (a, ok) in enumerate(zip(answers, correct))]


def test_answers_that_normalise_to_nothing_do_not_vote_together(tmp_path):
  """`\\boxed{.}`, `$$` and `\\,` are no answer, not one shared answer that
  outvotes the two 5s."""
  cand = _write_rows(tmp_path / 'c.jsonl', _candidate_rows(
      ['.', '$$', '\\,', '5', '5'], [False, False, False, True, True]))
  results = evaluate.run(cand, [], str(tmp_path / 'out'), num_bootstrap=0, verbose=False)
  assert results['curves']['majority_vote']['5'] == 1.0


def test_rationale_order_does_not_break_ties(tmp_path):
  """Two candidates with the same rationale scores in another order tie: a
  plain mean gives 0.20000000000000004 and 0.19999999999999998."""
  assert np.mean([0.1, 0.2, 0.3]) != np.mean([0.3, 0.2, 0.1])  # the trap
  assert best_of_n.mean_score([0.1, 0.2, 0.3]) == best_of_n.mean_score([0.3, 0.2, 0.1])
  cand = _write_rows(tmp_path / 'c.jsonl', _candidate_rows(['5', '4'], [True, False]))
  scores = _write_rows(tmp_path / 's.jsonl', [
      dict(problem_id='p', candidate_id=c, verifier='cot', score=s, k=k)
      for c, order in ((0, (0.1, 0.2, 0.3)), (1, (0.3, 0.2, 0.1)))
      for k, s in enumerate(order)])
  results = evaluate.run(cand, [scores], str(tmp_path / 'out'), num_bootstrap=0,
                         verbose=False)
  assert results['curves']['cot']['2'] == 0.5
  assert results['curves_vs_k']['cot']['3']['2'] == 0.5  # the vs-K curve agrees


def test_score_values_past_float_range(tmp_path):
  cand = _write_rows(tmp_path / 'c.jsonl', _candidate_rows(['5', '4'], [True, False]))
  huge = tmp_path / 'huge.jsonl'
  huge.write_text('{"problem_id": "p", "candidate_id": 0, "verifier": "v", "score": 1%s}\n'
                  % ('0' * 400))
  with pytest.raises(candidates_lib.MalformedRowError, match=f'{huge}:1: field .score.'):
    _run(tmp_path, cand, [str(huge)])
  # Finite rationale scores whose sum is not: their mean still is.
  assert best_of_n.mean_score([1.7e308, 1.7e308]) == 1.7e308


def test_verifier_names_that_clash_with_derived_names(tmp_path):
  cand = _write_rows(tmp_path / 'c.jsonl', _candidate_rows(['5', '4', '5'],
                                                            [True, False, True]))
  def scores(names):
    return _write_rows(tmp_path / 's.jsonl', [
        dict(problem_id='p', candidate_id=c, verifier=name, score=(c + i) % 3 / 3)
        for i, name in enumerate(names) for c in range(3)])
  # 'x:weighted_vote' is the name --weighted_vote gives x's vote.
  path = scores(['x', 'x:weighted_vote'])
  with pytest.raises(evaluate.InputError, match="'x:weighted_vote'.* leave out --weighted_vote"):
    _run(tmp_path, cand, [path], weighted_vote=True)
  assert 'x:weighted_vote' in _run(tmp_path, cand, [path])['curves']
  # ('a', 'b - c') and ('a - b', 'c') are both "a - b - c" in results.json.
  path = scores(['a', 'b - c', 'a - b', 'c'])
  with pytest.raises(evaluate.InputError, match="both be written as 'a - b - c'"):
    _run(tmp_path, cand, [path])


def test_paired_differences_key_by_pair_not_by_text():
  rng = np.random.default_rng(0)
  per_problem = {name: rng.random((30, 2)) for name in ('a', 'b - c', 'a - b', 'c')}
  pairs = [('a', 'b - c'), ('a - b', 'c')]
  got = best_of_n.paired_differences(per_problem, pairs, num_bootstrap=200, seed=3)
  for a, b in pairs:
    want = best_of_n.bootstrap_ci({0: per_problem[a] - per_problem[b]}, 200, 3)[0]
    np.testing.assert_array_equal(got[(a, b)]['ci95'][0], want[0])
    np.testing.assert_array_equal(got[(a, b)]['ci95'][1], want[1])
