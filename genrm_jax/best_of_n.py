"""Best-of-N statistics: verifier Best-of-n, majority vote, pass@n (pure numpy).

Every curve point is the *expected* accuracy when a problem's pool of N
candidates is replaced by a uniformly random size-n subset of it, averaged over
problems. Using every subset rather than the first n candidates removes the
noise of one arbitrary ordering (and any bias of the generator's ordering) at
no cost in data: each estimate uses the whole pool.

Per problem (N candidates, c of them correct):

* pass@n: P(a random n-subset holds a correct candidate) = 1 - C(N-c, n)/C(N, n)
  (the standard unbiased estimator, Chen et al. 2021).
* Best-of-n (a verifier's scores): the subset's highest-scored candidate is
  chosen. Ties in score are split evenly: when several candidates of the subset
  share the top score, each is chosen with equal probability. Closed form:
  group candidates by distinct score s (g_s of them, L_s scoring strictly
  lower); the subset's maximum is s with probability
  [C(L_s + g_s, n) - C(L_s, n)] / C(N, n), and given that, every candidate of
  group s is equally likely to be the chosen one (the subset is exchangeable
  within the group), so it contributes the group's fraction correct. Without
  ties this is the familiar C(L_i, n-1)/C(N, n) for candidate i. Scores tie
  only when exactly equal as floats.
* Majority vote (self-consistency): the most frequent answer of the subset
  wins; candidates without an answer (key None) never win. A tie between
  answers is broken uniformly at random, i.e. counts as the fraction of tied
  answers that are correct; a subset with no answer at all is wrong. An answer
  group whose candidates disagree on `correct` (the grader's equivalence is
  finer than the voting key) is correct with the group's fraction correct (a
  random member of the group stands for it). Computed exactly by dynamic
  programming over answer groups (pools up to `EXACT_MAJORITY_MAX_N`
  candidates), else by Monte-Carlo over random subsets with a fixed seed.

* Verifier-weighted voting (`weighted_vote`; "weighted Best-of-N" in Snell et
  al. 2024, "verifier-weighted majority" in Uesato et al. 2022): the answer
  whose candidates' summed verifier scores is largest wins, so a verifier's
  scores pool over candidates that agree instead of crowning one. Scores must
  be non-negative (probabilities, e.g. GenRM's p(Yes)); unanswered candidates
  never win; a winning answer whose candidates disagree on `correct` counts
  the fraction correct of its candidates *in the subset* (their scores decide
  whether it wins, so the pool's fraction would be biased); answers whose
  totals tie (within a relative 1e-9, so that sums
  equal in exact arithmetic tie in floating point too) split as in majority
  voting. No closed form: exact by enumerating every subset for pools up to
  `EXACT_WEIGHTED_MAX_N` candidates (2^N subsets), else Monte-Carlo as for
  majority voting.

GenRM-CoT's accuracy vs K (`best_of_n_vs_k`, `vs_k_curves`) is Best-of-n with
each candidate scored by the mean of its first K rationale scores only.
`reliability_bins` gives a reliability diagram's data (equal-width bins) and
the ECE, for scores that are probabilities.

`bootstrap_ci` resamples problems (the unit that varies between benchmarks)
with replacement, the same resamples for every method so intervals are paired;
`paired_differences` gives the interval of one method's accuracy minus
another's (each verifier vs majority voting, and each pair of verifiers).
"""

from __future__ import annotations

import functools
import math
from typing import Hashable, Mapping, Optional, Sequence

import numpy as np

# Beyond this many candidates per problem the exact majority-vote DP gets slow
# (cubic in N) and binomials approach float64 range; Monte-Carlo takes over.
EXACT_MAJORITY_MAX_N = 256
DEFAULT_MAJORITY_SAMPLES = 4000
# Weighted voting enumerates all 2^N subsets of a pool: 65,536 at N = 16 (the
# paper's GSM8K pools), a few milliseconds; beyond, Monte-Carlo.
EXACT_WEIGHTED_MAX_N = 16
# Ties between weighted totals: relative tolerance (see the module docstring).
_TOTALS_RTOL = 1e-9


def _log_factorials(n: int) -> np.ndarray:
  return np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, n + 1)))])


def _comb_ratio(k, n, total: int, log_fact: np.ndarray) -> np.ndarray:
  """C(k, n) / C(total, n), broadcast over integer arrays k and n (0 if k < n).

  Computed as k!/(k-n)! * (total-n)!/total! in log space (n! cancels), which
  stays accurate for pools far larger than float64 binomials allow.
  """
  k, n = np.broadcast_arrays(np.asarray(k), np.asarray(n))
  valid = (k >= n) & (n >= 0)
  kk, nn = np.where(valid, k, 0), np.where(valid, n, 0)
  log_ratio = (log_fact[kk] - log_fact[kk - nn] + log_fact[total - nn] -
               log_fact[total])
  return np.where(valid, np.exp(log_ratio), 0.0)


def _check_pool(correct, n_max: int) -> np.ndarray:
  correct = np.asarray(correct, dtype=np.float64)
  if correct.ndim != 1 or correct.size == 0:
    raise ValueError(f'a pool needs a non-empty 1-D `correct`, got shape {correct.shape}')
  if not 1 <= n_max <= correct.size:
    raise ValueError(f'n_max={n_max} must be in [1, N={correct.size}]')
  return correct


def pass_at_n(correct: Sequence[bool], n_max: int) -> np.ndarray:
  """pass@n for n = 1..n_max of one problem's pool (index n-1)."""
  correct = _check_pool(correct, n_max)
  total = correct.size
  num_correct = int(correct.sum())
  n = np.arange(1, n_max + 1)
  return 1.0 - _comb_ratio(total - num_correct, n, total, _log_factorials(total))


def best_of_n(scores: Sequence[float], correct: Sequence[bool], n_max: int) -> np.ndarray:
  """Expected Best-of-n accuracy for n = 1..n_max of one pool (ties split evenly)."""
  correct = _check_pool(correct, n_max)
  scores = np.asarray(scores, dtype=np.float64)
  if scores.shape != correct.shape:
    raise ValueError(f'scores {scores.shape} and correct {correct.shape} differ in shape')
  if not np.all(np.isfinite(scores)):
    raise ValueError('scores must be finite')
  total = correct.size
  _, group, sizes = np.unique(scores, return_inverse=True, return_counts=True)
  group_correct = np.bincount(group, weights=correct) / sizes
  upper = np.cumsum(sizes)  # candidates scoring <= this group's score
  lower = upper - sizes     # candidates scoring strictly lower
  n = np.arange(1, n_max + 1)[:, None]
  log_fact = _log_factorials(total)
  p_top = _comb_ratio(upper, n, total, log_fact) - _comb_ratio(lower, n, total, log_fact)
  return p_top @ group_correct


def _answer_groups(keys: Sequence[Optional[Hashable]], correct: np.ndarray):
  """Sizes and fraction correct of each non-None answer group, and #None."""
  index = {}
  for key in keys:
    if key is not None and key not in index:
      index[key] = len(index)
  gid = np.array([-1 if key is None else index[key] for key in keys], dtype=np.int64)
  answered = gid >= 0
  sizes = np.bincount(gid[answered], minlength=len(index))
  frac_correct = np.bincount(gid[answered], weights=correct[answered],
                             minlength=len(index)) / np.maximum(sizes, 1)
  return gid, sizes, frac_correct


def _majority_exact(sizes: np.ndarray, frac_correct: np.ndarray, total: int,
                    n_max: int) -> np.ndarray:
  """Exact expected majority-vote accuracy by DP over answer groups.

  For each possible winning count k, only groups with >= k members can reach
  k; the rest (and unanswered candidates) are free, and together they choose
  c of their F members in C(F, c) ways (Vandermonde). Over the constrained
  groups a DP tracks, per (subset size x, number t of groups at exactly k):
  `ways` = the number of subsets with every group <= k, and `weighted` = the
  same subsets weighted by the summed fraction correct of the groups at k.
  Winning at k contributes weighted / t (uniform tie-break); dividing by
  C(N, n) turns counts into expectations. Work: one DP step per (group, k <=
  group size), i.e. at most N steps of an (n_max+1)^2 matrix product.
  """
  width = n_max + 1
  log_fact = _log_factorials(total)
  # binom[a, c] = C(a, c) for a <= total, c <= n_max (0 where c > a).
  a, c = np.arange(total + 1)[:, None], np.arange(width)[None, :]
  cc = np.minimum(a, c)
  binom = np.where(c <= a, np.exp(log_fact[a] - log_fact[cc] - log_fact[a - cc]), 0.0)
  # shift[i, j] = i - j: polynomial products as Toeplitz matrices.
  shift = np.arange(width)[:, None] - np.arange(width)[None, :]
  lower_tri = shift >= 0
  shift = np.maximum(shift, 0)
  expected = np.zeros(width)
  for k in range(1, min(int(sizes.max(initial=0)), n_max) + 1):
    constrained = np.flatnonzero(sizes >= k)
    num_free = total - int(sizes[constrained].sum())
    t_max = len(constrained)
    ways = np.zeros((width, t_max + 1))
    weighted = np.zeros_like(ways)
    ways[0, 0] = 1.0
    for g in constrained:
      # Choose c < k members of group g: multiply by the polynomial sum_c C(a, c) x^c.
      below = np.where(lower_tri & (shift < k), binom[sizes[g]][shift], 0.0)
      new_ways, new_weighted = below @ ways, below @ weighted
      # Choose exactly k: one more group at the top count.
      at_k = binom[sizes[g], k]  # k <= n_max, so the slices below are non-empty
      new_ways[k:, 1:] += at_k * ways[:-k, :-1]
      new_weighted[k:, 1:] += at_k * (weighted[:-k, :-1] + frac_correct[g] * ways[:-k, :-1])
      ways, weighted = new_ways, new_weighted
    free = np.where(lower_tri, binom[num_free][shift], 0.0)
    weighted = free @ weighted
    expected += (weighted[:, 1:] / np.arange(1, t_max + 1)).sum(axis=1)
  n = np.arange(1, width)
  return expected[1:] / np.exp(log_fact[total] - log_fact[n] - log_fact[total - n])


def _majority_monte_carlo(gid: np.ndarray, frac_correct: np.ndarray, n_max: int,
                          num_samples: int, rng: np.random.Generator) -> np.ndarray:
  """Majority vote over random subsets: prefixes of random permutations."""
  num_groups = frac_correct.size
  total = gid.size
  # Each row's first n entries are a uniform random n-subset, for every n.
  perms = np.argsort(rng.random((num_samples, total)), axis=1)[:, :n_max]
  column = np.where(gid < 0, num_groups, gid)  # unanswered go to a dummy column
  counts = np.zeros((num_samples, num_groups + 1), dtype=np.int64)
  rows = np.arange(num_samples)
  out = np.zeros(n_max)
  for j in range(n_max):
    counts[rows, column[perms[:, j]]] += 1
    votes = counts[:, :num_groups]
    top = votes.max(axis=1, initial=0)
    winners = (votes == top[:, None]) & (top[:, None] > 0)
    num_winners = winners.sum(axis=1)
    value = (winners @ frac_correct) / np.maximum(num_winners, 1)
    out[j] = value.mean()
  return out


def majority_vote(answer_keys: Sequence[Optional[Hashable]], correct: Sequence[bool],
                  n_max: int, *, exact: Optional[bool] = None,
                  num_samples: int = DEFAULT_MAJORITY_SAMPLES,
                  rng: Optional[np.random.Generator] = None) -> np.ndarray:
  """Expected majority-vote accuracy for n = 1..n_max of one pool.

  Args:
    answer_keys: Per candidate, its normalized answer (equal keys vote
      together) or None (no answer: never wins).
    correct: Per candidate, whether it is correct.
    n_max: Largest subset size.
    exact: True: dynamic programming; False: Monte-Carlo; None (default):
      exact for pools up to `EXACT_MAJORITY_MAX_N` candidates.
    num_samples: Monte-Carlo subsets per n.
    rng: Monte-Carlo generator (default: seeded with 0, reproducible).
  """
  correct = _check_pool(correct, n_max)
  if len(answer_keys) != correct.size:
    raise ValueError(f'{len(answer_keys)} answer keys for {correct.size} candidates')
  gid, sizes, frac_correct = _answer_groups(answer_keys, correct)
  if sizes.size == 0:
    return np.zeros(n_max)  # nothing to vote for
  if exact is None:
    exact = correct.size <= EXACT_MAJORITY_MAX_N
  if exact:
    return _majority_exact(sizes, frac_correct, correct.size, n_max)
  rng = rng if rng is not None else np.random.default_rng(0)
  return _majority_monte_carlo(gid, frac_correct, n_max, num_samples, rng)


def _vote_value(totals: np.ndarray, counts: np.ndarray, num_correct: np.ndarray) -> np.ndarray:
  """Per subset (row): the winning answers' mean fraction correct (0: no answer).

  totals: float [S, G] summed weights per answer group in the subset; counts,
  num_correct [S, G]: its candidates in the subset, and how many of them are
  correct. A present group of zero-score candidates can still win (when every
  present total is 0). A winning group stands for a random one of *its
  subset's* candidates: unlike majority voting, which members are drawn
  changes the totals, so the group's fraction over the whole pool would be
  biased where the grader splits a voting key.
  """
  present = counts > 0
  top = np.where(present, totals, -np.inf).max(axis=1, initial=-np.inf)
  tolerance = _TOTALS_RTOL * np.maximum(np.abs(top), 1e-300)
  winners = present & (totals >= (top - tolerance)[:, None])
  num_winners = winners.sum(axis=1)
  fraction = np.where(winners, num_correct / np.maximum(counts, 1), 0.0)
  return fraction.sum(axis=1) / np.maximum(num_winners, 1)


@functools.lru_cache(maxsize=4)
def _all_subsets(total: int) -> tuple[np.ndarray, np.ndarray]:
  """Membership float [2^total - 1, total] of every non-empty subset, and sizes."""
  bits = np.arange(1, 1 << total, dtype=np.int64)
  member = ((bits[:, None] >> np.arange(total)) & 1).astype(np.float64)
  return member, member.sum(axis=1).astype(np.int64)


def _weighted_exact(gid: np.ndarray, weights: np.ndarray, correct: np.ndarray,
                    num_groups: int, n_max: int) -> np.ndarray:
  total = gid.size
  member, size = _all_subsets(total)
  keep = size <= n_max
  member, size = member[keep], size[keep]
  answered = np.flatnonzero(gid >= 0)
  onehot = np.zeros((total, num_groups))
  onehot[answered, gid[answered]] = 1.0
  value = _vote_value(member @ (onehot * weights[:, None]), member @ onehot,
                      member @ (onehot * correct[:, None]))
  return (np.bincount(size, weights=value, minlength=n_max + 1)[1:] /
          np.bincount(size, minlength=n_max + 1)[1:])


def _weighted_monte_carlo(gid: np.ndarray, weights: np.ndarray, correct: np.ndarray,
                          num_groups: int, n_max: int, num_samples: int,
                          rng: np.random.Generator) -> np.ndarray:
  """Weighted vote over random subsets: prefixes of random permutations."""
  perms = np.argsort(rng.random((num_samples, gid.size)), axis=1)[:, :n_max]
  column = np.where(gid < 0, num_groups, gid)  # unanswered go to a dummy column
  totals = np.zeros((num_samples, num_groups + 1))
  counts = np.zeros_like(totals)
  num_correct = np.zeros_like(totals)
  rows = np.arange(num_samples)
  out = np.zeros(n_max)
  for j in range(n_max):
    drawn = perms[:, j]
    totals[rows, column[drawn]] += weights[drawn]
    counts[rows, column[drawn]] += 1
    num_correct[rows, column[drawn]] += correct[drawn]
    out[j] = _vote_value(totals[:, :num_groups], counts[:, :num_groups],
                         num_correct[:, :num_groups]).mean()
  return out


def weighted_vote(scores: Sequence[float], answer_keys: Sequence[Optional[Hashable]],
                  correct: Sequence[bool], n_max: int, *, exact: Optional[bool] = None,
                  num_samples: int = DEFAULT_MAJORITY_SAMPLES,
                  rng: Optional[np.random.Generator] = None) -> np.ndarray:
  """Expected verifier-weighted vote accuracy for n = 1..n_max of one pool.

  Args:
    scores: Per candidate, its verifier score: the weight of its vote (finite,
      >= 0).
    answer_keys: As for `majority_vote`.
    correct: Per candidate, whether it is correct.
    n_max: Largest subset size.
    exact: True: every subset (2^N of them); False: Monte-Carlo; None
      (default): exact for pools up to `EXACT_WEIGHTED_MAX_N` candidates.
    num_samples: Monte-Carlo subsets per n.
    rng: Monte-Carlo generator (default: seeded with 0, reproducible).
  """
  correct = _check_pool(correct, n_max)
  weights = np.asarray(scores, dtype=np.float64)
  if weights.shape != correct.shape or len(answer_keys) != correct.size:
    raise ValueError(f'{weights.size} scores and {len(answer_keys)} answer keys for '
                     f'{correct.size} candidates')
  if not np.all(np.isfinite(weights)) or np.any(weights < 0):
    raise ValueError('weighted voting needs finite, non-negative scores (e.g. probabilities)')
  gid, sizes, _ = _answer_groups(answer_keys, correct)
  if sizes.size == 0:
    return np.zeros(n_max)  # nothing to vote for
  if exact is None:
    exact = correct.size <= EXACT_WEIGHTED_MAX_N
  correct = correct.astype(np.float64)
  if exact:
    if correct.size > 24:
      raise ValueError(f'exact weighted voting enumerates 2^{correct.size} subsets; use '
                       'exact=False (Monte-Carlo) for pools this large')
    return _weighted_exact(gid, weights, correct, sizes.size, n_max)
  rng = rng if rng is not None else np.random.default_rng(0)
  return _weighted_monte_carlo(gid, weights, correct, sizes.size, n_max, num_samples, rng)


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> Optional[float]:
  """Area under the ROC curve (ties count 1/2); None if only one class is present."""
  scores = np.asarray(scores, dtype=np.float64)
  labels = np.asarray(labels, dtype=bool)
  num_pos = int(labels.sum())
  num_neg = labels.size - num_pos
  if num_pos == 0 or num_neg == 0:
    return None
  # Mann-Whitney U with mid-ranks for tied scores.
  _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
  mid_rank = np.cumsum(counts) - (counts - 1) / 2.0
  rank_sum = mid_rank[inverse][labels].sum()
  return float((rank_sum - num_pos * (num_pos + 1) / 2.0) / (num_pos * num_neg))


def normalized_ranks(scores: Sequence[float]) -> np.ndarray:
  """Each score's rank among `scores` scaled to [0, 1] (0 the lowest; ties
  share their mean rank; a single score is 0.5)."""
  x = np.asarray(scores, dtype=np.float64)
  if x.size == 1:
    return np.array([0.5])
  ranks = np.empty(x.size)
  ranks[np.argsort(x, kind='stable')] = np.arange(x.size)
  _, tie_group = np.unique(x, return_inverse=True)
  mean_rank = np.bincount(tie_group, ranks) / np.bincount(tie_group)
  return mean_rank[tie_group] / (x.size - 1)


def add_ensemble(pools: Sequence['Pool'], name: str, members: Sequence[str]) -> None:
  """Adds verifier `name` to every pool: the sum of its `members`'
  normalized ranks within the problem. Ranks, because the members' scores
  live on different scales (p(Yes), logits, DPO log-ratios); a sum, so
  the scores (in [0, len(members)]) are not mistaken for probabilities."""
  for pool in pools:
    pool.scores[name] = np.sum([normalized_ranks(pool.scores[m]) for m in members], axis=0)


def pair_accuracy(pools: Sequence['Pool'], name: str) -> Optional[float]:
  """P(a correct candidate outscores an incorrect one *of the same problem*)
  under verifier `name` (ties count 1/2), over all such pairs: the ranking
  Best-of-N uses. Pooled AUROC also rewards scoring easy problems above hard
  ones, which picks nothing. None if no problem has both labels."""
  hits = pairs = 0.0
  for pool in pools:
    num_pos = int(pool.correct.sum())
    num_neg = pool.size - num_pos
    if num_pos and num_neg:
      hits += auroc(pool.scores[name], pool.correct) * num_pos * num_neg
      pairs += num_pos * num_neg
  return hits / pairs if pairs else None


def reliability_bins(scores: Sequence[float], labels: Sequence[bool],
                     num_bins: int = 10) -> Optional[dict]:
  """A reliability diagram's data: equal-width bins of [0, 1].

  A score s falls in bin min(floor(s * num_bins), num_bins - 1), so 1.0 joins
  the last bin.

  Args:
    scores: Predicted probabilities of being correct.
    labels: Whether each is correct.
    num_bins: Number of bins.

  Returns:
    None unless every score is a probability in [0, 1]; else a dict: 'edges'
    float [num_bins + 1], 'count' int [num_bins], 'mean_score' and 'accuracy'
    float [num_bins] (NaN in empty bins), 'ece' (the count-weighted mean
    |accuracy - mean_score|) and 'brier' (the mean squared error of the
    scores as probabilities, which unlike the ECE also rewards sharpness).
  """
  scores = np.asarray(scores, dtype=np.float64)
  labels = np.asarray(labels, dtype=np.float64)
  if scores.size == 0 or scores.min() < 0.0 or scores.max() > 1.0:
    return None
  bins = np.minimum((scores * num_bins).astype(np.int64), num_bins - 1)
  count = np.bincount(bins, minlength=num_bins)
  score_sum = np.bincount(bins, weights=scores, minlength=num_bins)
  label_sum = np.bincount(bins, weights=labels, minlength=num_bins)
  with np.errstate(invalid='ignore', divide='ignore'):
    mean_score = np.where(count > 0, score_sum / count, np.nan)
    accuracy = np.where(count > 0, label_sum / count, np.nan)
  return {
      'edges': np.linspace(0.0, 1.0, num_bins + 1),
      'count': count,
      'mean_score': mean_score,
      'accuracy': accuracy,
      'ece': float(np.abs(label_sum - score_sum).sum() / scores.size),
      'brier': float(np.mean((scores - labels)**2)),
  }


def score_histogram(scores: Sequence[float], labels: Sequence[bool],
                    num_bins: int = 20) -> Optional[dict]:
  """Counts of correct and of incorrect candidates' scores over shared bins.

  How far apart the two distributions sit is what ranking needs, whatever
  the scale: equal-width bins of [0, 1] for probabilities, of [min, max]
  otherwise (a score equal to the top edge joins the last bin).

  Returns:
    None without scores; else 'edges' float [num_bins + 1], 'correct' and
    'incorrect' int [num_bins], and each class's 'mean' score (None if empty).
  """
  scores = np.asarray(scores, dtype=np.float64)
  labels = np.asarray(labels, dtype=bool)
  if scores.size == 0:
    return None
  low, high = ((0.0, 1.0) if scores.min() >= 0.0 and scores.max() <= 1.0 else
               (float(scores.min()), float(scores.max())))
  if high <= low:  # one value: a bin around it (of its own scale)
    low, high = low - max(abs(low), 1.0) / 2, high + max(abs(high), 1.0) / 2
  # Halves, so that a range as wide as float64's (scores of +-1e308) does
  # not overflow to inf; edges as convex combinations of the ends likewise.
  t = np.linspace(0.0, 1.0, num_bins + 1)
  edges = low * (1.0 - t) + high * t
  width = high / 2 - low / 2
  bins = np.clip(((scores / 2 - low / 2) / width * num_bins).astype(np.int64), 0,
                 num_bins - 1)
  mean = lambda values: float(np.mean(values / 2) * 2) if values.size else None
  return {
      'edges': edges,
      'correct': np.bincount(bins[labels], minlength=num_bins),
      'incorrect': np.bincount(bins[~labels], minlength=num_bins),
      'mean': {'correct': mean(scores[labels]), 'incorrect': mean(scores[~labels])},
  }


def expected_calibration_error(scores: Sequence[float], labels: Sequence[bool],
                               num_bins: int = 10) -> Optional[float]:
  """ECE over equal-width bins; None unless all scores are probabilities in [0, 1]."""
  bins = reliability_bins(scores, labels, num_bins)
  return None if bins is None else bins['ece']


def best_of_n_vs_k(rationale_scores: Sequence[Sequence[float]], correct: Sequence[bool],
                   n_max: int, ks: Sequence[int]) -> np.ndarray:
  """Best-of-n of one pool when each candidate is scored by its first K rationales.

  Args:
    rationale_scores: Per candidate, its rationales' scores in rationale (k)
      order, e.g. GenRM-CoT's p(Yes) after each rationale.
    correct: Per candidate, whether it is correct.
    n_max: Largest n.
    ks: The K values; each must be <= every candidate's number of rationales.

  Returns:
    float [len(ks), n_max]: row j is Best-of-n (n = 1..n_max) with the score
    of a candidate = the mean of its first ks[j] rationale scores.
  """
  rationale_scores = [np.asarray(r, dtype=np.float64) for r in rationale_scores]
  fewest = min(r.size for r in rationale_scores)
  if any(not 1 <= k <= fewest for k in ks):
    raise ValueError(f'K values {list(ks)} must be in [1, {fewest}] (the fewest rationales '
                     'of a candidate)')
  return np.stack([best_of_n([mean_score(r[:k]) for r in rationale_scores], correct, n_max)
                   for k in ks])


def mean_score(rationale_scores) -> float:
  """A candidate's score from its rationales' scores: their mean, computed
  as the exactly rounded sum of score / K, which does not depend on their
  order (np.mean of [0.1, 0.2, 0.3] and of [0.3, 0.2, 0.1] differ in the last
  bit, which would turn a tie that Best-of-n splits evenly into a win) and,
  unlike the sum, cannot overflow for finite scores."""
  values = np.asarray(rationale_scores, dtype=np.float64).ravel()
  if not values.size:
    return math.nan  # as np.mean: no rationale is no score, not 0
  return math.fsum(values / values.size)


def bootstrap_ci(per_problem: Mapping[Hashable, np.ndarray], num_resamples: int, seed: int,
                 level: float = 0.95) -> dict[Hashable, tuple[np.ndarray, np.ndarray]]:
  """Percentile bootstrap intervals of the mean over problems.

  Args:
    per_problem: name -> array [num_problems, ...] of per-problem values; all
      share the same problems (rows), so one set of resamples serves every
      name (paired intervals).
    num_resamples: Bootstrap resamples (problems drawn with replacement).
    seed: Seed of the resampling.
    level: Coverage of the interval.

  Returns:
    name -> (lower, upper), each shaped like one row.
  """
  sizes = {value.shape[0] for value in per_problem.values()}
  if len(sizes) != 1:
    raise ValueError(f'per-problem arrays disagree on the number of problems: {sizes}')
  (num_problems,) = sizes
  rng = np.random.default_rng(seed)
  # How often each problem is drawn in each resample: [B, P] weights, so every
  # resampled mean is one matrix product.
  draws = rng.integers(0, num_problems, size=(num_resamples, num_problems))
  offsets = (np.arange(num_resamples) * num_problems)[:, None]
  weights = np.bincount((draws + offsets).ravel(),
                        minlength=num_resamples * num_problems).reshape(
                            num_resamples, num_problems) / num_problems
  tail = (1.0 - level) / 2.0 * 100.0
  out = {}
  for name, value in per_problem.items():
    value = np.asarray(value, dtype=np.float64)
    means = weights @ value.reshape(num_problems, -1)
    lo, hi = np.percentile(means, [tail, 100.0 - tail], axis=0)
    out[name] = (lo.reshape(value.shape[1:]), hi.reshape(value.shape[1:]))
  return out


def log2_grid(n_max: int) -> list[int]:
  """1, 2, 4, ... up to n_max, plus n_max itself: the table's columns."""
  grid = [2**i for i in range(int(math.log2(n_max)) + 1)]
  return grid if grid[-1] == n_max else grid + [n_max]


# -----------------------------------------------------------------------------
# Across problems.
# -----------------------------------------------------------------------------

MAJORITY_VOTE = 'majority_vote'
PASS_AT_N = 'pass_at_n'
FIRST_SAMPLE = 'first_sample'
RESERVED_METHODS = (MAJORITY_VOTE, PASS_AT_N, FIRST_SAMPLE)
WEIGHTED_VOTE_SUFFIX = ':weighted_vote'
NEGATIVE_SCORES = 'negative scores (e.g. log-ratios) cannot weight votes'


def weighted_vote_method(verifier: str) -> str:
  """The method name of `verifier`'s weighted vote, e.g. 'genrm:weighted_vote'."""
  return verifier + WEIGHTED_VOTE_SUFFIX


class Pool:
  """One problem's candidates: correctness, answer keys, scores per verifier.

  Attributes:
    problem_id: The problem.
    correct: bool [N], in the candidate store's order (index 0 is the first
      sample).
    answer_keys: N normalized answers (None: no answer) for majority voting.
    scores: verifier name -> float [N].
    rationale_scores: verifier name -> N float arrays, each candidate's
      per-rationale scores in rationale (k) order (GenRM-CoT; its `scores`
      are their means). Only verifiers scored rationale by rationale.
  """

  def __init__(self, problem_id: str, correct: Sequence[bool],
               answer_keys: Sequence[Optional[Hashable]],
               scores: Mapping[str, Sequence[float]],
               rationale_scores: Optional[Mapping[str, Sequence[Sequence[float]]]] = None):
    self.problem_id = problem_id
    self.correct = np.asarray(correct, dtype=bool)
    self.answer_keys = list(answer_keys)
    self.scores = {name: np.asarray(value, dtype=np.float64) for name, value in scores.items()}
    self.rationale_scores = {
        name: [np.asarray(r, dtype=np.float64).reshape(-1) for r in value]
        for name, value in (rationale_scores or {}).items()}
    if len(self.answer_keys) != self.correct.size or any(
        value.shape != self.correct.shape for value in self.scores.values()) or any(
            len(value) != self.correct.size for value in self.rationale_scores.values()):
      raise ValueError(f'problem {problem_id!r}: correct, answer_keys and scores '
                       'must all have one entry per candidate')
    if any(r.size == 0 for value in self.rationale_scores.values() for r in value):
      raise ValueError(f'problem {problem_id!r}: a candidate has no rationale scores')

  @property
  def size(self) -> int:
    return self.correct.size


def evaluate_pools(pools: Sequence[Pool], verifiers: Sequence[str], n_max: int, *,
                   num_bootstrap: int = 1000, seed: int = 0,
                   majority_exact: Optional[bool] = None,
                   majority_samples: int = DEFAULT_MAJORITY_SAMPLES,
                   weighted: bool = False, weighted_exact: Optional[bool] = None,
                   not_probabilities: Sequence[str] = ()) -> dict:
  """Best-of-n curves of every verifier, majority vote and pass@n, with CIs.

  Pools may differ in size: each problem's expectation uses its whole pool,
  so n runs up to the smallest pool (`n_max` must not exceed it).

  Args:
    pools: The problems.
    verifiers: Names to read from each pool's `scores`.
    n_max: Largest n.
    num_bootstrap: Bootstrap resamples for the 95% intervals (0: none).
    seed: Seeds the bootstrap and any Monte-Carlo majority vote.
    majority_exact: See `majority_vote`'s `exact`.
    majority_samples: Monte-Carlo subsets per n when not exact (also for
      weighted votes).
    weighted: Also each verifier's weighted vote (`weighted_vote`), as method
      `weighted_vote_method(verifier)`, for verifiers whose scores are all
      non-negative; the others are listed in 'weighted_skipped'.
    weighted_exact: See `weighted_vote`'s `exact`.
    not_probabilities: Verifiers whose scores are no probabilities even
      where they fall in [0, 1] (ensembles' rank sums): no reliability/ECE.

  Returns:
    A dict: 'methods' (verifiers, their weighted votes, majority vote,
    pass@n: the table's rows), 'weighted' {verifier: method} and
    'weighted_skipped' {verifier: why}, 'curves' {method: float [n_max]},
    'ci95' {method: (lo [n_max],
    hi [n_max])} (empty without bootstrap), 'first_sample' (accuracy, (lo,
    hi) or None), 'auroc', 'pair_accuracy' (`pair_accuracy`), 'ece' and
    'brier' {verifier: float or None}, 'histograms'
    {verifier: `score_histogram` of the pooled scores},
    'reliability' {verifier: `reliability_bins` of the pooled scores, None
    for scores that are not probabilities}, 'vs_k' (`vs_k_curves`),
    'differences' (`paired_differences` of `comparison_pairs`), and
    'per_problem' {method: float [P, n_max]}.
  """
  if not pools:
    raise ValueError('no problems to evaluate')
  smallest = min(pool.size for pool in pools)
  if not 1 <= n_max <= smallest:
    raise ValueError(f'n_max={n_max} must be in [1, {smallest}] (the smallest pool)')
  clash = sorted(set(verifiers) & set(RESERVED_METHODS))
  if clash:
    raise ValueError(f'verifier name(s) {clash} clash with built-in methods {RESERVED_METHODS}')
  weighted_methods, weighted_skipped = {}, {}
  for name in verifiers if weighted else ():
    if all(np.all(pool.scores[name] >= 0) for pool in pools):
      weighted_methods[name] = weighted_vote_method(name)
    else:
      weighted_skipped[name] = NEGATIVE_SCORES
  clash = sorted(set(verifiers) & set(weighted_methods.values()))
  if clash:
    raise ValueError(f'verifier name(s) {clash} clash with weighted-vote methods')
  methods = [*verifiers, *weighted_methods.values(), MAJORITY_VOTE, PASS_AT_N]
  per_problem = {name: np.zeros((len(pools), n_max)) for name in methods}
  first = np.zeros((len(pools), 1))
  for i, pool in enumerate(pools):
    for name in verifiers:
      per_problem[name][i] = best_of_n(pool.scores[name], pool.correct, n_max)
    for j, (name, method) in enumerate(weighted_methods.items()):
      per_problem[method][i] = weighted_vote(
          pool.scores[name], pool.answer_keys, pool.correct, n_max, exact=weighted_exact,
          num_samples=majority_samples, rng=np.random.default_rng([seed, i, j + 1]))
    per_problem[MAJORITY_VOTE][i] = majority_vote(
        pool.answer_keys, pool.correct, n_max, exact=majority_exact,
        num_samples=majority_samples,
        # One stream per problem: a problem's estimate does not depend on
        # which other problems are evaluated with it.
        rng=np.random.default_rng([seed, i]))
    per_problem[PASS_AT_N][i] = pass_at_n(pool.correct, n_max)
    first[i] = pool.correct[0]

  curves = {name: value.mean(axis=0) for name, value in per_problem.items()}
  ci95, first_ci = {}, None
  if num_bootstrap > 0:
    ci95 = bootstrap_ci({**per_problem, FIRST_SAMPLE: first}, num_bootstrap, seed)
    lo, hi = ci95.pop(FIRST_SAMPLE)
    first_ci = (float(lo[0]), float(hi[0]))
  # A weighted vote against majority voting (what the weights add) and
  # against its verifier's Best-of-n (what pooling agreeing answers adds).
  pairs = comparison_pairs(verifiers) + [
      pair for name, method in weighted_methods.items()
      for pair in ((method, MAJORITY_VOTE), (method, name))]
  differences = paired_differences(per_problem, pairs, num_bootstrap, seed)
  correct_all = np.concatenate([pool.correct for pool in pools])
  auc, pair_acc, ece, brier, reliability, histograms = {}, {}, {}, {}, {}, {}
  for name in verifiers:
    scores_all = np.concatenate([pool.scores[name] for pool in pools])
    auc[name] = auroc(scores_all, correct_all)
    pair_acc[name] = pair_accuracy(pools, name)
    histograms[name] = score_histogram(scores_all, correct_all)
    reliability[name] = (None if name in not_probabilities else
                         reliability_bins(scores_all, correct_all))
    ece[name] = None if reliability[name] is None else reliability[name]['ece']
    brier[name] = None if reliability[name] is None else reliability[name]['brier']
  return {
      'methods': methods,
      'weighted': weighted_methods,
      'weighted_skipped': weighted_skipped,
      'curves': curves,
      'ci95': ci95,
      'first_sample': (float(first.mean()), first_ci),
      'auroc': auc,
      'pair_accuracy': pair_acc,
      'ece': ece,
      'brier': brier,
      'reliability': reliability,
      'histograms': histograms,
      'vs_k': vs_k_curves(pools, verifiers, n_max, num_bootstrap=num_bootstrap, seed=seed),
      'differences': differences,
      'per_problem': per_problem,
  }


def comparison_pairs(verifiers: Sequence[str]) -> list[tuple[str, str]]:
  """Each verifier against majority voting, then each pair of verifiers (in
  the given order): the comparisons a Best-of-N table is read for."""
  pairs = [(name, MAJORITY_VOTE) for name in verifiers]
  pairs += [(a, b) for i, a in enumerate(verifiers) for b in verifiers[i + 1:]]
  return pairs


def paired_differences(per_problem: Mapping[str, np.ndarray],
                       pairs: Sequence[tuple[str, str]], num_bootstrap: int,
                       seed: int) -> dict[tuple[str, str], dict]:
  """Best-of-n of A minus B, with a paired 95% bootstrap interval.

  Two methods evaluated on the same problems share the problems' difficulty:
  their own intervals overlap even when one is better on nearly every
  problem. Resampling the per-problem differences (the same resamples as
  `bootstrap_ci` with this seed) gives the interval of the difference itself.

  Returns:
    (a, b) -> {'diff': float [n_max], 'ci95': (lo, hi) or None without
    bootstrap}.
  """
  diffs = {pair: per_problem[pair[0]] - per_problem[pair[1]] for pair in pairs}
  # Keyed by the pair itself: names may contain ' - ' ('a', 'b - c').
  intervals = (bootstrap_ci(diffs, num_bootstrap, seed)
               if num_bootstrap > 0 and diffs else {})
  return {pair: {'diff': d.mean(axis=0), 'ci95': intervals.get(pair)}
          for pair, d in diffs.items()}


def rationale_counts(pools: Sequence[Pool], verifier: str) -> Optional[tuple[int, int]]:
  """(fewest, most) rationales per candidate of `verifier`; None unless every
  pool has its per-rationale scores."""
  if not pools or any(verifier not in pool.rationale_scores for pool in pools):
    return None
  counts = [r.size for pool in pools for r in pool.rationale_scores[verifier]]
  return min(counts), max(counts)


def vs_k_curves(pools: Sequence[Pool], verifiers: Sequence[str], n_max: int, *,
                num_bootstrap: int = 1000, seed: int = 0) -> dict:
  """Best-of-n vs K (the first K rationales) for verifiers scored per rationale.

  K runs over 1, 2, 4, ... up to the fewest rationales any candidate has (and
  that number itself). If every candidate has the same number of rationales,
  the largest K reproduces the verifier's main curve exactly.

  Returns:
    verifier -> {'k': [K...], 'curves': float [len(k), n_max], 'ci95': (lo,
    hi) of that shape (absent without bootstrap; the same resamples as
    `bootstrap_ci` with this seed draws for the main curves), 'rationales':
    (fewest, most)}, for each verifier of `verifiers` that has rationale
    scores in every pool.
  """
  out = {}
  for name in verifiers:
    counts = rationale_counts(pools, name)
    if counts is None:
      continue
    ks = log2_grid(counts[0])
    per_problem = np.stack([best_of_n_vs_k(pool.rationale_scores[name], pool.correct,
                                           n_max, ks) for pool in pools])
    out[name] = {'k': ks, 'curves': per_problem.mean(axis=0), 'rationales': counts}
    if num_bootstrap > 0:
      out[name]['ci95'] = bootstrap_ci({name: per_problem}, num_bootstrap, seed)[name]
  return out
