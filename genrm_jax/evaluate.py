r"""Best-of-N evaluation of verifiers from a candidate store and score files.

  python -m genrm_jax.evaluate --candidates=C.jsonl \
      --scores=genrm.jsonl,disc.jsonl --out=DIR [--n_max=N] [--bootstrap=1000]

Works from files alone (no model, accelerator or TensorFlow), so any external
verifier's scores can be compared. Writes:

* `DIR/results.json`: `curves[method][str(n)]` = accuracy for every verifier
  name, `majority_vote` and `pass_at_n`, n = 1..N; `ci95[method][str(n)]` =
  [lo, hi] (95% bootstrap over problems; absent with --bootstrap=0);
  `n_problems`; `n_candidates` (candidates evaluated, all problems together);
  `n_max` (N); `candidates_per_problem` {min, max}; `first_sample` {accuracy,
  ci95} (each problem's first candidate in store order, e.g. a greedy sample
  written first; one *random* sample's expected accuracy is n = 1 of any
  curve); `auroc` (pooled over problems), `pair_accuracy` (P(a correct
  candidate outscores an incorrect one of the same problem): the ranking
  Best-of-N uses, which pooled AUROC mixes with problem difficulty), `ece`
  and `brier` (scores in [0, 1] only) per verifier; and the arguments.
* `DIR/curves.csv`: one row per (method, n): accuracy, ci95_lo, ci95_hi.
* `DIR/selections.jsonl`: one line per problem, what each method picks
  from the whole pool (`selections`): the majority vote's answer and each
  verifier's top-scored candidate (id, score, answer, correct, solution,
  GenRM-CoT's rationales), with ties counted; `pass_at_n`. For reading a run problem by problem,
  e.g. where GenRM-CoT and the discriminative verifier disagree.
* `DIR/best_of_n.png`: accuracy vs n (log2 axis), 95% bands, first-sample
  accuracy dotted.
* For verifiers scored rationale by rationale (every row has a `k`:
  GenRM-CoT, LLM-judge), accuracy vs K: `curves_vs_k[verifier][str(K)]
  [str(n)]` = Best-of-n when a candidate's score is the mean of its first K
  rationale scores (by k), K = 1, 2, 4, ... up to the fewest rationales of
  any candidate (`rationales_per_candidate[verifier]` {min, max}), n = 1, 2,
  4, ..., N; `ci95_vs_k` alike; and `DIR/best_of_n_vs_k.png` (per verifier:
  accuracy vs n with one line per K, and accuracy vs K at n = N).
* `differences["A - B"][str(n)]` = {diff, ci95}: Best-of-n of A minus B
  for each verifier against `majority_vote` and each pair of verifiers, with
  a paired interval (the per-problem differences resampled: two methods'
  own intervals overlap when they share hard problems, even if one wins on
  nearly all of them); the table is followed by these at n = N.
* Calibration: `reliability[verifier]` {num_bins, edges, count, mean_score,
  accuracy (null in empty bins), ece, brier} over 10 equal-width bins of the pooled
  scores, and `DIR/reliability.png` (the diagonal, ECE in the legend), for
  verifiers whose scores are probabilities in [0, 1]; the others (dpo,
  likelihood log-ratios, ...) are listed in `reliability_skipped` with why.
* With `--ensemble=NAME=A+B`, a verifier ensemble as one more verifier:
  the sum of its members' normalized ranks within each problem
  (`best_of_n.add_ensemble`; ranks, since the members' scales differ).
* With `--weighted_vote`, each verifier's weighted vote as one more method,
  `VERIFIER:weighted_vote` (in `curves`, `ci95`, the CSV, plots and table):
  the answer with the largest summed score wins (`best_of_n.weighted_vote`),
  compared with majority voting and with the verifier's own Best-of-n in
  `differences`; verifiers with negative scores are listed in
  `weighted_vote_skipped`.
* `score_histograms[verifier]` {edges, correct, incorrect, mean}: the
  scores of correct and of incorrect candidates over 20 shared bins ([0, 1]
  for probabilities, [min, max] otherwise), and `DIR/score_histograms.png`.
* Compute-matched (`genrm_jax.compute_matched`), for verifiers scored
  rationale by rationale: `compute_matched` {verification_cost (one
  rationale in solutions: measured from the stored rationale and solution
  texts, or `--verification_cost`), points[method] = [{n, k, cost,
  accuracy}] with cost n (1 + cost x K) for the rationale verifiers and n for
  the others, frontier[method], budgets[str(C)][method] (the best point
  costing <= C solutions)}, `DIR/compute_matched.png` and a table: is a
  budget better spent on more solutions or on more rationales? Without
  rationale texts or a given cost, `compute_matched_skipped` says so.
  `mean_chars` {solution, rationale[verifier]}: the texts' mean lengths.
and prints a table (methods x n = 1, 2, 4, ..., N).

Statistics are exact expectations over random size-n subsets of each pool
(see `genrm_jax.best_of_n`). Input rules:

* Pools of different sizes: each problem uses its whole pool; curves run to
  N = the smallest pool (a warning says so). `--n_max` may lower N, not raise
  it.
* A verifier with several rows per candidate (GenRM-CoT's K rationales, `k`)
  scores the candidate by their mean (the paper's MajV@K average of p(Yes)).
  A repeated (candidate, verifier, k) row is ignored if its score is equal (a
  resumed writer) and an error otherwise.
* Majority voting (and weighted voting) groups answers by
  `grading.normalize_answer` of the candidate's `task` (or `--task`), then
  (`--vote_by=equivalence`, the default) merges a problem's keys that are
  equivalent (`grading.merge_equivalent`: MATH's `0.5`, `\\frac{1}{2}` and
  `2^{-1}` vote together; `merged_answer_keys` counts the merges); without a
  known task, by the answer text with whitespace collapsed.
* Errors name the file and line: malformed rows, a score for a candidate the
  store does not have, duplicate candidates. Candidates a verifier did not
  score are an error listing some. `--allow_missing` instead skips unknown
  score rows and drops problems not fully scored by every verifier (every
  method is then evaluated on the same problems), and reports the counts.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import time
from typing import Iterator, Optional, Sequence

from absl import app
from absl import flags
from absl import logging
import numpy as np

from genrm_jax import best_of_n
from genrm_jax import candidates as candidates_lib
from genrm_jax import compute_matched
from genrm_jax import grading
from genrm_jax import text_table
from genrm_jax import wandb_logging


_WANDB: dict = {}  # --wandb_<key> flags (define_flags)


def define_flags() -> None:
  """Defines the CLI flags (only when run as a program: importing this
  module next to other absl programs, e.g. in tests, must not clash)."""
  global _CANDIDATES, _SCORES, _OUT, _N_MAX, _BOOTSTRAP, _SEED, _ALLOW_MISSING, _TASK, _CONFIG
  global _WEIGHTED_VOTE, _VERIFICATION_COST, _VOTE_BY, _ENSEMBLE
  _CANDIDATES = flags.DEFINE_string('candidates', None, 'Candidate store (JSON lines).')
  _SCORES = flags.DEFINE_list('scores', [], 'Verifier-score files (JSON lines), comma-separated.')
  _OUT = flags.DEFINE_string('out', None, 'Output directory.')
  _N_MAX = flags.DEFINE_integer('n_max', None, 'Largest n (default: the smallest pool).')
  _BOOTSTRAP = flags.DEFINE_integer('bootstrap', 1000,
                                    'Bootstrap resamples for 95% intervals (0: none).')
  _SEED = flags.DEFINE_integer('seed', 0, 'Seed of the bootstrap (and Monte-Carlo votes).')
  _ALLOW_MISSING = flags.DEFINE_bool(
      'allow_missing', False, 'Skip scores of unknown candidates and drop problems '
      'some verifier did not fully score, instead of failing.')
  _WEIGHTED_VOTE = flags.DEFINE_bool(
      'weighted_vote', False, 'Also each verifier\'s weighted vote (VERIFIER:weighted_vote): '
      'the answer whose candidates\' summed scores is largest wins.')
  _VERIFICATION_COST = flags.DEFINE_list(
      'verification_cost', [], 'Compute-matched curves: the cost of one rationale in '
      'solutions, NAME=X per verifier or X for all (default: measured from the stored '
      'rationale and solution texts).')
  _ENSEMBLE = flags.DEFINE_multi_string(
      'ensemble', [], 'A verifier ensemble, NAME=A+B[+...] (or A+B): the sum of its '
      'members\' within-problem normalized ranks, evaluated as one more verifier; '
      'repeat the flag for several.')
  _VOTE_BY = flags.DEFINE_enum(
      'vote_by', 'equivalence', VOTE_BY, 'Votes (majority, weighted) group a problem\'s '
      'answers by equivalence (MATH: 0.5 and \\frac{1}{2} vote together; bounded-time '
      'symbolic checks) or by canonical string only.')
  _TASK = flags.DEFINE_string(
      'task', None, f'Grading task ({", ".join(grading.TASKS)}) for normalizing answers '
      'of candidates without a "task" field.')
  for key, help_ in (('project', 'Weights & Biases project: the results also go to one '
                                 'W&B run (curves with step = n, table, plots); '
                                 "'' = off (pip install -e .[wandb])."),
                     ('entity', 'W&B entity (team or user); default: yours.'),
                     ('name', 'W&B run name; default: the --out folder name.'),
                     ('group', 'W&B group, e.g. the training runs\' group.'),
                     ('mode', "W&B mode: '' (online), 'offline' (wandb sync later).")):
    _WANDB[key] = flags.DEFINE_string(f'wandb_{key}', '', help_)
  _CONFIG = flags.DEFINE_string(
      'config', None, 'Evaluation config (configs/eval/<name>.py[:arg]): score the '
      'candidates with its verifiers into OUT/scores/<name>.jsonl (resumable) first; '
      'see genrm_jax/eval_config.py.')


_MAX_LISTED = 5  # problems/candidates listed in an error message


class InputError(ValueError):
  """Input files that cannot be evaluated as they are; the message says why."""


# -----------------------------------------------------------------------------
# Reading.
# -----------------------------------------------------------------------------


def _read_rows(path: str, parse) -> Iterator[tuple[int, object]]:
  """Yields (line number, parsed row); malformed rows raise MalformedRowError."""
  if not os.path.isfile(path):
    raise InputError(f'{path}: no such file')
  yield from candidates_lib.iter_json_rows(path, parse)


def _answer_key(candidate: candidates_lib.Candidate, default_task: Optional[str],
                unknown_tasks: set) -> Optional[str]:
  if candidate.answer is None:
    return None
  task = candidate.task or default_task
  if task in grading.TASKS:
    key = grading.normalize_answer(task, candidate.answer)
    if key is not None:
      # '' (MATH's `\boxed{.}` or `$$` normalise to nothing) is no answer,
      # as below: such junk must not form a voting bloc of its own.
      return key or None
  elif task is not None:
    unknown_tasks.add(task)
  # No canonical form: vote on the text itself (what self-consistency does).
  return ' '.join(candidate.answer.split()) or None


VOTE_BY = ('equivalence', 'string')


def load_pools(candidates_path: str, score_paths: Sequence[str], *,
               task: Optional[str] = None, allow_missing: bool = False,
               vote_by: str = 'equivalence'):
  """Reads and checks the inputs.

  `vote_by`: 'equivalence' (default) gives a problem's equivalent answers
  one voting key (`grading.merge_equivalent`: MATH's `0.5` and
  `\\frac{1}{2}`); 'string' votes on canonical strings alone.

  Returns:
    (pools, verifiers, notes): `best_of_n.Pool`s in store order, verifier
    names in order of first appearance, and a dict of what was skipped.
  """
  if task is not None and task not in grading.TASKS:
    raise InputError(f'--task={task!r} is not one of {", ".join(grading.TASKS)}')
  if vote_by not in VOTE_BY:
    raise InputError(f'--vote_by={vote_by!r} is not one of {", ".join(VOTE_BY)}')
  problems: dict[str, list[candidates_lib.Candidate]] = {}
  where: dict[tuple[str, str], int] = {}  # (problem, candidate) -> line
  # Characters of the decoded texts (compute_matched's cost model): the
  # solutions, and each verifier's rationales where rows carry them.
  solution_chars, rationale_chars = [0, 0], {}
  for line, cand in _read_rows(candidates_path, candidates_lib.Candidate.from_dict):
    solution_chars[0] += len(cand.solution)
    solution_chars[1] += 1
    key = (cand.problem_id, str(cand.candidate_id))
    if key in where:
      raise InputError(f'{candidates_path}:{line}: candidate {cand.candidate_id!r} of problem '
                       f'{cand.problem_id!r} repeats line {where[key]}')
    where[key] = line
    problems.setdefault(cand.problem_id, []).append(cand)
  if not problems:
    raise InputError(f'{candidates_path}: no candidates')

  # verifier -> (problem, candidate) -> k -> (score, path, line)
  scores: dict[str, dict[tuple[str, str], dict]] = {}
  unknown_rows = 0
  for path in score_paths:
    for line, row in _read_rows(path, candidates_lib.VerifierScore.from_dict):
      key = (row.problem_id, str(row.candidate_id))
      if key not in where:
        if allow_missing:
          unknown_rows += 1
          continue
        raise InputError(
            f'{path}:{line}: candidate {row.candidate_id!r} of problem {row.problem_id!r} '
            f'is not in {candidates_path} (scores of another store? --allow_missing '
            'skips such rows)')
      if row.verifier in best_of_n.RESERVED_METHODS:
        raise InputError(f'{path}:{line}: verifier name {row.verifier!r} is reserved for a '
                         'built-in method; rename the verifier')
      per_k = scores.setdefault(row.verifier, {}).setdefault(key, {})
      if row.k in per_k:
        score, first_path, first_line = per_k[row.k]
        if score != row.score:
          raise InputError(
              f'{path}:{line}: verifier {row.verifier!r} scores candidate {row.candidate_id!r} '
              f'of problem {row.problem_id!r} (k={row.k}) {row.score}, but '
              f'{first_path}:{first_line} says {score}')
        continue  # the same row again (a resumed writer): harmless
      per_k[row.k] = (row.score, path, line)
      if row.rationale is not None:
        total = rationale_chars.setdefault(row.verifier, [0, 0])
        total[0] += len(row.rationale)
        total[1] += 1
  verifiers = list(scores)

  # Problems some verifier did not fully score.
  unscored = {}  # problem -> (verifier, candidate) examples
  for problem_id, cands in problems.items():
    for name in verifiers:
      for cand in cands:
        if (problem_id, str(cand.candidate_id)) not in scores[name]:
          unscored.setdefault(problem_id, (name, cand.candidate_id))
  if unscored and not allow_missing:
    examples = '; '.join(f'problem {p!r} candidate {c!r} (verifier {v!r})'
                         for p, (v, c) in list(unscored.items())[:_MAX_LISTED])
    raise InputError(
        f'{len(unscored)} of {len(problems)} problems have candidates without a score from '
        f'some verifier, e.g. {examples}. Score them, or pass --allow_missing to evaluate '
        'only the fully scored problems.')

  # Verifiers scored rationale by rationale (every row has a `k`): GenRM-CoT.
  per_rationale = [name for name in verifiers
                   if all(None not in per_k for per_k in scores[name].values())]
  unknown_tasks: set = set()
  pools = []
  merged_answers = 0
  for problem_id, cands in problems.items():
    if problem_id in unscored:
      continue
    answer_keys = [_answer_key(c, task, unknown_tasks) for c in cands]
    vote_task = cands[0].task or task
    if vote_by == 'equivalence' and vote_task in grading.TASKS and all(
        (c.task or task) == vote_task for c in cands):
      answer_keys, merged = grading.merge_equivalent(vote_task, answer_keys)
      merged_answers += merged
    pool_scores, pool_rationales = {}, {}
    for name in verifiers:
      ordered = [_in_k_order(scores[name][(problem_id, str(c.candidate_id))]) for c in cands]
      # The same reduction as `best_of_n.best_of_n_vs_k` at the full K, so
      # the vs-K curve's last point reproduces this curve bit for bit.
      pool_scores[name] = [best_of_n.mean_score(r) for r in ordered]
      if name in per_rationale:
        pool_rationales[name] = ordered
    pools.append(best_of_n.Pool(
        problem_id, [c.correct for c in cands], answer_keys, pool_scores, pool_rationales))
  if not pools:
    raise InputError('no problem is scored by every verifier; nothing to evaluate')
  if unknown_tasks:
    logging.warning('Unknown task(s) %s: majority vote groups their answers by text.',
                    sorted(unknown_tasks))
  notes = {'skipped_score_rows': unknown_rows, 'dropped_problems': len(unscored),
           'dropped_problem_ids': list(unscored)[:_MAX_LISTED],
           'vote_by': vote_by, 'merged_answer_keys': merged_answers,
           'mean_chars': {'solution': solution_chars[0] / max(solution_chars[1], 1),
                          'rationale': {name: chars / count
                                        for name, (chars, count) in rationale_chars.items()}}}
  return pools, verifiers, notes


def _in_k_order(per_k: dict) -> np.ndarray:
  """One candidate's scores of one verifier, by rationale index k (None first)."""
  order = sorted(per_k, key=lambda k: (k is not None, k or 0))
  return np.array([per_k[k][0] for k in order], dtype=np.float64)


# -----------------------------------------------------------------------------
# Writing.
# -----------------------------------------------------------------------------


def _by_n(values) -> dict:
  return {str(n): v for n, v in enumerate(values, start=1)}


def _results_json(stats: dict, pools, verifiers, n_max: int, notes: dict, args: dict) -> dict:
  methods = stats['methods']
  sizes = [pool.size for pool in pools]
  first_acc, first_ci = stats['first_sample']
  results = {
      'curves': {m: _by_n(float(v) for v in stats['curves'][m]) for m in methods},
      'ci95': {m: _by_n([float(a), float(b)] for a, b in zip(*stats['ci95'][m]))
               for m in methods if m in stats['ci95']},
      'n_problems': len(pools),
      'n_candidates': int(sum(sizes)),
      'n_max': n_max,
      'candidates_per_problem': {'min': min(sizes), 'max': max(sizes)},
      'first_sample': {'accuracy': first_acc, 'ci95': list(first_ci) if first_ci else None},
      'auroc': stats['auroc'],
      'pair_accuracy': stats['pair_accuracy'],
      'ece': stats['ece'],
      'brier': stats['brier'],
      **_vs_k_json(stats['vs_k'], n_max),
      'differences': _differences_json(stats['differences']),
      **_reliability_json(stats['reliability']),
      'score_histograms': {name: _histogram_json(h) for name, h in stats['histograms'].items()
                           if h is not None},
      'verifiers': list(verifiers),
      'methods': methods,
      **({'weighted_vote': stats['weighted'], 'weighted_vote_skipped': stats['weighted_skipped']}
         if args.get('weighted_vote') else {}),
      **notes,
      'args': args,
  }
  return results


def _differences_json(differences: dict) -> dict:
  """`differences["A - B"][str(n)]` = {'diff', 'ci95': [lo, hi] or None}."""
  out, pairs = {}, {}
  for (a, b), value in differences.items():
    lo, hi = value['ci95'] if value['ci95'] is not None else (None, None)
    key = f'{a} - {b}'
    if key in pairs:
      raise InputError(f'the comparisons {pairs[key]} and {(a, b)} would both be written as '
                       f'{key!r} in results.json; rename a verifier so that its name has '
                       "no ' - '")
    pairs[key] = (a, b)
    out[key] = _by_n(
        {'diff': float(d), 'ci95': None if lo is None else [float(lo[i]), float(hi[i])]}
        for i, d in enumerate(value['diff']))
  return out


def format_differences(results: dict) -> str:
  """One line per comparison at n = N: the difference in points, its paired
  95% interval, and '*' where the interval excludes 0."""
  n = str(results['n_max'])
  lines = []
  for pair, by_n in results['differences'].items():
    value = by_n[n]
    line = f'  {pair}: {value["diff"] * 100:+.1f}'
    if value['ci95'] is not None:
      lo, hi = value['ci95']
      # (At n = 1 every verifier's Best-of-1 is the pool's mean accuracy: the
      # difference is 0 up to rounding, which must not read as significant.)
      line += f' [{lo * 100:+.1f}, {hi * 100:+.1f}]' + (
          ' *' if lo > 1e-9 or hi < -1e-9 else '')
    lines.append(line)
  return '\n'.join(lines)


def _vs_k_json(vs_k: dict, n_max: int) -> dict:
  """`curves_vs_k[verifier][str(K)][str(n)]` (and `ci95_vs_k`) for n = 1, 2, 4,
  ..., N; `rationales_per_candidate[verifier]` {min, max} (K stops at min)."""
  grid = best_of_n.log2_grid(n_max)
  curves, ci95, counts = {}, {}, {}
  for name, value in vs_k.items():
    curves[name] = {str(k): {str(n): float(row[n - 1]) for n in grid}
                    for k, row in zip(value['k'], value['curves'])}
    if 'ci95' in value:
      lo, hi = value['ci95']
      ci95[name] = {str(k): {str(n): [float(lo[j, n - 1]), float(hi[j, n - 1])] for n in grid}
                    for j, k in enumerate(value['k'])}
    counts[name] = dict(zip(('min', 'max'), value['rationales']))
  return {'curves_vs_k': curves, 'ci95_vs_k': ci95, 'rationales_per_candidate': counts}


NOT_PROBABILITIES = 'scores outside [0, 1] (not probabilities, e.g. log-ratios): no reliability'


def _reliability_json(reliability: dict) -> dict:
  """`reliability[verifier]` bins for probability scores; `reliability_skipped`
  [verifier] = why, for the others."""
  out, skipped = {}, {}
  for name, bins in reliability.items():
    if bins is None:
      skipped[name] = NOT_PROBABILITIES
      continue
    nan_to_none = lambda values: [None if np.isnan(v) else float(v) for v in values]
    out[name] = {'num_bins': int(bins['count'].size),
                 'edges': [float(e) for e in bins['edges']],
                 'count': [int(c) for c in bins['count']],
                 'mean_score': nan_to_none(bins['mean_score']),
                 'accuracy': nan_to_none(bins['accuracy']),
                 'ece': bins['ece'],
                 'brier': bins['brier']}
  return {'reliability': out, 'reliability_skipped': skipped}


def _histogram_json(histogram: dict) -> dict:
  return {'edges': [float(e) for e in histogram['edges']],
          'correct': [int(c) for c in histogram['correct']],
          'incorrect': [int(c) for c in histogram['incorrect']],
          'mean': histogram['mean']}


BREAKDOWN_FIELDS = ('level', 'subject')
UNKNOWN = 'unknown'


def _candidates_by_problem(candidates_path: str) -> dict[str, list[candidates_lib.Candidate]]:
  """The store's candidates per problem, in store order (the pools' order)."""
  by_problem: dict[str, list[candidates_lib.Candidate]] = {}
  for cand in candidates_lib.iter_candidates(candidates_path):
    by_problem.setdefault(cand.problem_id, []).append(cand)
  return by_problem


def _breakdown(by_problem: dict, pools, per_problem: dict) -> dict:
  """Accuracy per value of the candidates' `level` / `subject` fields (e.g.
  MATH): `breakdown[field][value]` = {n_problems, curves[method][str(n)]};
  problems without the field form the group 'unknown' (MATH has 'Level ?'
  rows), so each field's groups add up to every problem."""
  meta: dict[str, dict] = {}
  for cand in (c for cands in by_problem.values() for c in cands):
    for field in BREAKDOWN_FIELDS:
      if cand.extra.get(field) is not None:
        meta.setdefault(cand.problem_id, {}).setdefault(field, str(cand.extra[field]))
  if not meta:
    return {}
  out = {}
  for field in BREAKDOWN_FIELDS:
    groups: dict[str, list[int]] = {}
    for i, pool in enumerate(pools):
      value = meta.get(pool.problem_id, {}).get(field)
      groups.setdefault(UNKNOWN if value is None else value, []).append(i)
    if set(groups) != {UNKNOWN}:
      out[field] = {value: {'n_problems': len(rows), 'curves': {
          method: _by_n(float(v) for v in values[rows].mean(axis=0))
          for method, values in per_problem.items()}}
                    for value, rows in sorted(groups.items())}
  return out


def selections(by_problem: dict, pools, verifiers: Sequence[str],
               score_paths: Sequence[str] = ()) -> list[dict]:
  """What each method picks from each problem's whole pool (n = its size),
  for reading a run problem by problem: per problem its question and
  reference, `pass_at_n`, the majority vote's answer (`tied`: how many
  answers share the most votes; `answer` the first of them in store order)
  and, per verifier, the top-scored candidate (`tied`: how many candidates
  share its score; the first in store order is shown, while the curves
  count a tie as a random pick) with, for verifiers that write rationales
  (GenRM-CoT), the pick's `rationales` in k order, read from
  `score_paths` (only the picks' rows are kept: all rationales at once
  could be gigabytes). `by_problem`: `_candidates_by_problem`."""
  out = []
  for pool in pools:
    cands = by_problem[pool.problem_id]
    votes: dict = {}
    for i, key in enumerate(pool.answer_keys):
      if key is not None:
        votes.setdefault(key, []).append(i)
    row = {'problem_id': pool.problem_id, 'question': cands[0].question,
           'reference': cands[0].reference, 'n': pool.size,
           'pass_at_n': bool(pool.correct.any())}
    if votes:
      most = max(len(members) for members in votes.values())
      winners = [members for members in votes.values() if len(members) == most]
      first = winners[0][0]  # dicts keep first-appearance order
      # `correct`: the shown candidate's label; `frac_correct`: its answer
      # group's (a merged class, 0.5 and \frac12, may hold both labels:
      # the curve counts the fraction).
      row['majority_vote'] = {'answer': cands[first].answer, 'votes': most,
                              'tied': len(winners), 'correct': bool(pool.correct[first]),
                              'frac_correct': float(pool.correct[winners[0]].mean())}
    else:
      row['majority_vote'] = None
    row['picks'] = {}
    for name in verifiers:
      scores = pool.scores[name]
      best = int(np.argmax(scores))
      cand = cands[best]
      row['picks'][name] = {
          'candidate_id': cand.candidate_id, 'score': float(scores[best]),
          'answer': cand.answer, 'correct': bool(pool.correct[best]),
          'tied': int(np.sum(scores == scores[best])), 'solution': cand.solution}
    out.append(row)
  picked = {(name, row['problem_id'], str(pick['candidate_id'])): pick
            for row in out for name, pick in row['picks'].items()}
  rationales: dict = {}
  for path in score_paths:
    for _, score in _read_rows(path, candidates_lib.VerifierScore.from_dict):
      key = (score.verifier, score.problem_id, str(score.candidate_id))
      if score.rationale is not None and key in picked:
        rationales.setdefault(key, {})[score.k] = score.rationale
  for key, by_k in rationales.items():
    picked[key]['rationales'] = [by_k[k] for k in sorted(by_k, key=lambda k: (k is None, k))]
  return out


def parse_ensembles(entries: Sequence[str]) -> dict[str, list[str]]:
  """`NAME=A+B` (or `A+B`, named so) -> {NAME: [A, B]}."""
  out = {}
  for entry in entries:
    name, eq, spec = entry.partition('=')
    members = [m.strip() for m in (spec if eq else name).split('+') if m.strip()]
    name = name.strip() if eq else '+'.join(members)
    if len(members) < 2 or not name:
      raise InputError(f'--ensemble={entry!r}: expected NAME=A+B (two verifiers or more).')
    out[name] = members
  return out


def parse_verification_costs(entries: Sequence[str]) -> dict[str, float]:
  """`--verification_cost` entries, NAME=X or X (every verifier: key '*')."""
  out = {}
  for entry in entries:
    name, _, value = entry.rpartition('=')
    try:
      cost = float(value)
    except ValueError:
      cost = -1.0
    if not cost >= 0:
      raise InputError(f'--verification_cost entry {entry!r}: expected NAME=X or X, X a '
                       'non-negative number (one rationale\'s cost in solutions)')
    out[name or '*'] = cost
  return out


def _compute_matched_json(stats: dict, pools, mean_chars: dict,
                          given: dict[str, float], ensembles: Sequence[str] = ()) -> dict:
  """`compute_matched` (and `compute_matched_skipped`) for `results.json`.
  Ensembles are left out: what they cost is their members' together."""
  left_out = set(ensembles) | {stats.get('weighted', {}).get(name) for name in ensembles}
  stats = dict(stats, methods=[m for m in stats['methods'] if m not in left_out])
  rationale_verifiers = list(stats['vs_k'])
  unknown = sorted(set(given) - set(rationale_verifiers) - {'*'})
  if unknown:
    raise InputError(f'--verification_cost names {unknown}, not verifiers scored rationale '
                     f'by rationale ({rationale_verifiers or "none here"})')
  costs, sources = {}, {}
  skipped = {name: "an ensemble: its cost is its members' together" for name in ensembles}
  for name in rationale_verifiers:
    if name in given or '*' in given:
      costs[name], sources[name] = given.get(name, given.get('*')), 'given'
    elif name in mean_chars['rationale'] and mean_chars['solution'] > 0:
      costs[name] = compute_matched.verification_cost(mean_chars['rationale'][name],
                                                      mean_chars['solution'])
      sources[name] = 'measured'
    else:
      skipped[name] = ('its score rows carry no rationale text: give '
                       f'--verification_cost={name}=X')
  out = {'compute_matched_skipped': skipped} if skipped else {}
  if not costs:
    return out
  mean_rationales = {name: float(np.mean([r.size for pool in pools
                                          for r in pool.rationale_scores[name]]))
                     for name in costs}
  out['compute_matched'] = {
      'unit': f'one solution (mean {mean_chars["solution"]:.0f} characters)',
      'verification_cost': costs,
      'verification_cost_source': sources,
      'mean_rationales': mean_rationales,
      **compute_matched.compute_matched(stats, costs, mean_rationales),
  }
  return out


CURVE_COLUMNS = ['method', 'n', 'accuracy', 'ci95_lo', 'ci95_hi']


def curve_rows(results: dict) -> list[list]:
  """One row (CURVE_COLUMNS) per method and n of `curves`; the interval is
  None without bootstrap. curves.csv's rows and the W&B table's."""
  return [[method, int(n), acc, *results['ci95'].get(method, {}).get(n, (None, None))]
          for method in results['methods']
          for n, acc in results['curves'][method].items()]


def _write_csv(path: str, results: dict) -> None:
  with open(path, 'w', newline='') as f:
    writer = csv.writer(f)  # writes None as an empty cell
    writer.writerow(CURVE_COLUMNS)
    writer.writerows(curve_rows(results))
    first = results['first_sample']
    lo, hi = first['ci95'] or ('', '')
    writer.writerow([best_of_n.FIRST_SAMPLE, 1, first['accuracy'], lo, hi])


def _plot(path: str, results: dict) -> None:
  plt = _pyplot()
  n_max = results['n_max']
  ticks = best_of_n.log2_grid(n_max)  # markers here; the lines show every n
  fig, ax = plt.subplots(figsize=(7, 4.5))
  styles = {best_of_n.PASS_AT_N: dict(color='0.35', linestyle='--'),
            best_of_n.MAJORITY_VOTE: dict(color='black')}
  colors = {}
  for method in results['methods']:
    n = np.array([int(k) for k in results['curves'][method]])
    acc = np.array(list(results['curves'][method].values())) * 100
    style = styles.get(method, {})
    verifier = method[:-len(best_of_n.WEIGHTED_VOTE_SUFFIX)]
    if method.endswith(best_of_n.WEIGHTED_VOTE_SUFFIX) and verifier in colors:
      style = dict(color=colors[verifier], linestyle='-.')  # beside its verifier
    line, = ax.plot(n, acc, marker='o', markersize=3, markevery=[t - 1 for t in ticks],
                    label=method, **style)
    colors[method] = line.get_color()
    if method in results['ci95']:
      lo, hi = np.array(list(results['ci95'][method].values())).T * 100
      ax.fill_between(n, lo, hi, color=line.get_color(), alpha=0.15, linewidth=0)
  first = results['first_sample']
  ax.axhline(first['accuracy'] * 100, color='0.5', linestyle=':', label='first sample')
  ax.set_xscale('log', base=2)
  ax.set_xticks(ticks, [str(t) for t in ticks])
  ax.set_xlim(1, max(n_max, 2))
  ax.set_xlabel('number of candidates n')
  ax.set_ylabel('accuracy (%)')
  ax.set_title(f'Best-of-n, {results["n_problems"]} problems (95% bootstrap bands)')
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8, loc='best')
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')  # files only; never needs a display
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def _plot_vs_k(path: str, results: dict) -> None:
  """Per CoT verifier: Best-of-n vs n, one line per K; accuracy vs K at n = N."""
  plt = _pyplot()
  names = list(results['curves_vs_k'])
  n_max = results['n_max']
  fig, axes = plt.subplots(len(names), 2, figsize=(10, 3.8 * len(names)), squeeze=False)
  for (ax_n, ax_k), name in zip(axes, names):
    curves = results['curves_vs_k'][name]
    ci95 = results['ci95_vs_k'].get(name, {})
    ks = [int(k) for k in curves]
    for k in ks:
      n = [int(m) for m in curves[str(k)]]
      ax_n.plot(n, np.array(list(curves[str(k)].values())) * 100, marker='o', markersize=3,
                label=f'K={k}')
    ax_n.set_xscale('log', base=2)
    ax_n.set_xticks(n, [str(m) for m in n])
    ax_n.set_xlabel('number of candidates n')
    ax_n.set_ylabel('accuracy (%)')
    ax_n.set_title(f'{name}: Best-of-n, score = mean p(Yes) of the first K rationales',
                   fontsize=9)
    ax_n.legend(fontsize=8, loc='best')
    acc = np.array([curves[str(k)][str(n_max)] for k in ks]) * 100
    line, = ax_k.plot(ks, acc, marker='o', label=f'{name}, n={n_max}')
    if ci95:
      lo, hi = np.array([ci95[str(k)][str(n_max)] for k in ks]).T * 100
      ax_k.fill_between(ks, lo, hi, color=line.get_color(), alpha=0.15, linewidth=0)
    ax_k.set_xscale('log', base=2)
    ax_k.set_xticks(ks, [str(k) for k in ks])
    ax_k.set_xlabel('rationales per candidate K')
    ax_k.set_ylabel(f'Best-of-{n_max} accuracy (%)')
    ax_k.set_title(f'{name}: accuracy vs K at n = {n_max}' + (' (95% band)' if ci95 else ''),
                   fontsize=9)
    for ax in (ax_n, ax_k):
      ax.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _plot_reliability(path: str, results: dict) -> None:
  """Mean predicted score vs empirical accuracy per bin, with the diagonal."""
  plt = _pyplot()
  fig, (ax, ax_count) = plt.subplots(
      2, 1, figsize=(5.5, 6.5), sharex=True, gridspec_kw=dict(height_ratios=[3, 1]))
  ax.plot([0, 1], [0, 1], color='0.5', linestyle='--', label='perfectly calibrated')
  names = list(results['reliability'])
  width = 0.1 / max(len(names), 1)
  for i, name in enumerate(names):
    bins = results['reliability'][name]
    filled = [j for j, c in enumerate(bins['count']) if c > 0]
    line, = ax.plot([bins['mean_score'][j] for j in filled], [bins['accuracy'][j] for j in filled],
                    marker='o', label=f'{name} (ECE {bins["ece"]:.3f}, Brier {bins["brier"]:.3f})')
    left = np.array(bins['edges'][:-1])
    ax_count.bar(left + i * width, bins['count'], width=width, align='edge',
                 color=line.get_color())
  ax.set_xlim(0, 1)
  ax.set_ylim(-0.02, 1.02)
  ax.set_ylabel('empirical accuracy')
  ax.set_title(f'Reliability, {results["n_problems"]} problems, '
               f'{results["n_candidates"]} candidates', fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8, loc='upper left')
  ax_count.set_xlabel('mean predicted score (10 equal-width bins)')
  ax_count.set_ylabel('candidates')
  ax_count.grid(alpha=0.3)
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _plot_histograms(path: str, results: dict) -> None:
  """Per verifier: its scores of correct and of incorrect candidates (each
  class normalized to sum to 1; the counts are in the legend)."""
  plt = _pyplot()
  names = list(results['score_histograms'])
  cols = min(len(names), 3)
  rows = -(-len(names) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
  for ax, name in zip(axes.ravel(), names):
    hist = results['score_histograms'][name]
    edges = np.array(hist['edges'])
    for label, color in (('correct', 'tab:green'), ('incorrect', 'tab:red')):
      mean = hist['mean'][label]
      counts = np.array(hist[label], dtype=np.float64)
      # Each class as fractions of itself: incorrect candidates often
      # outnumber correct ones several times.
      ax.stairs(counts / max(counts.sum(), 1.0), edges, color=color, fill=True, alpha=0.35,
                label=f'{label} ({sum(hist[label])}' +
                ('' if mean is None else f', mean {mean:.3g}') + ')')
    auc = results['auroc'].get(name)
    ax.set_title(name + ('' if auc is None else f' (AUROC {auc:.3f})'), fontsize=9)
    ax.set_xlabel('score', fontsize=8)
    ax.set_ylabel('fraction of its class', fontsize=8)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
  for ax in axes.ravel()[len(names):]:
    ax.axis('off')
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def _plot_compute_matched(path: str, results: dict) -> None:
  """Accuracy vs decoded compute (solutions): per rationale verifier, its
  (n, K) points, one thin line per K and the frontier; the others' curves."""
  plt = _pyplot()
  matched = results['compute_matched']
  fig, ax = plt.subplots(figsize=(7.5, 4.8))
  styles = {best_of_n.PASS_AT_N: dict(color='0.35', linestyle='--'),
            best_of_n.MAJORITY_VOTE: dict(color='black')}
  for method, points in matched['points'].items():
    if any(p['k'] is not None for p in points):
      cost = matched['verification_cost'][method]
      line, = ax.plot([p['cost'] for p in matched['frontier'][method]],
                      [p['accuracy'] * 100 for p in matched['frontier'][method]],
                      linewidth=2.2,
                      label=f'{method}: best over n, K (a rationale = {cost:.2f} solutions)')
      for k in sorted({p['k'] for p in points}):
        along = [p for p in points if p['k'] == k]
        ax.plot([p['cost'] for p in along], [p['accuracy'] * 100 for p in along],
                color=line.get_color(), linewidth=0.7, alpha=0.5, marker='.', markersize=3)
      continue
    ax.plot([p['cost'] for p in points], [p['accuracy'] * 100 for p in points],
            label=method, **styles.get(method, {}))
  ax.set_xscale('log', base=2)
  ax.set_xlabel('decoded compute per problem (solutions: n (1 + cost of a rationale x K))')
  ax.set_ylabel('accuracy (%)')
  ax.set_title(f'Accuracy at matched compute, {results["n_problems"]} problems '
               '(thin lines: one K each)', fontsize=9)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, loc='lower right')
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def format_table(results: dict) -> str:
  """Methods x n = 1, 2, 4, ..., N: accuracy (%) [95% CI], AUROC (pooled)
  and pair accuracy (within problems)."""
  columns = best_of_n.log2_grid(results['n_max'])
  header = ['method'] + [f'n={n}' for n in columns] + ['AUROC', 'pairs']
  rows = []
  for method in results['methods']:
    cells = [method]
    for n in columns:
      acc = results['curves'][method][str(n)] * 100
      ci = results['ci95'].get(method, {}).get(str(n))
      cells.append(f'{acc:.1f}' + (f' [{ci[0] * 100:.1f},{ci[1] * 100:.1f}]' if ci else ''))
    for metric in ('auroc', 'pair_accuracy'):
      value = results.get(metric, {}).get(method)
      cells.append('' if value is None else f'{value:.3f}')
    rows.append(cells)
  first = results['first_sample']
  ci = first['ci95']
  rows.append([best_of_n.FIRST_SAMPLE, f'{first["accuracy"] * 100:.1f}' +
               (f' [{ci[0] * 100:.1f},{ci[1] * 100:.1f}]' if ci else '')] +
              [''] * (len(columns) - 1) + ['', ''])
  return '\n'.join(text_table.lines(header, rows))


# -----------------------------------------------------------------------------
# Running.
# -----------------------------------------------------------------------------


def run(candidates_path: str, score_paths: Sequence[str], out_dir: str, *,
        n_max: Optional[int] = None, num_bootstrap: int = 1000, seed: int = 0,
        allow_missing: bool = False, task: Optional[str] = None,
        weighted_vote: bool = False, verification_costs: Optional[dict] = None,
        vote_by: str = 'equivalence', ensembles: Optional[dict] = None,
        wandb: Optional[dict] = None, verbose: bool = True) -> dict:
  """The file-only evaluation: reads, computes, writes `out_dir`; returns results.

  `verification_costs`: see `parse_verification_costs` (default: measured).
  `ensembles`: {name: member verifiers} (`parse_ensembles`), each evaluated
  as one more verifier (`best_of_n.add_ensemble`). `wandb`: `config.wandb`'s
  keys (`wandb_logging.FIELDS`); with a project, the results also go to W&B.
  """
  start = time.time()
  wandb_logging.check(wandb)  # before the work, not after it
  pools, verifiers, notes = load_pools(candidates_path, score_paths, task=task,
                                       allow_missing=allow_missing, vote_by=vote_by)
  for name, members in (ensembles or {}).items():
    unknown = [m for m in members if m not in verifiers]
    if unknown or name in verifiers or name in best_of_n.RESERVED_METHODS:
      raise InputError(
          f'--ensemble {name}={"+".join(members)}: ' +
          (f'no scores of {unknown} (verifiers: {verifiers})' if unknown else
           f'{name!r} is taken; name it NAME=...'))
    best_of_n.add_ensemble(pools, name, members)
    verifiers = verifiers + [name]
  sizes = [pool.size for pool in pools]
  smallest = min(sizes)
  if min(sizes) != max(sizes):
    logging.warning('Pools differ in size (%d to %d candidates per problem): each problem '
                    'uses its whole pool; curves stop at the smallest, n = %d.',
                    smallest, max(sizes), smallest)
  if n_max is None:
    n_max = smallest
  elif not 1 <= n_max <= smallest:
    smallest_id = pools[sizes.index(smallest)].problem_id
    raise InputError(f'--n_max={n_max} must be in [1, {smallest}]: problem {smallest_id!r} '
                     f'has only {smallest} candidates')
  if notes['skipped_score_rows'] or notes['dropped_problems']:
    logging.warning('--allow_missing: skipped %d score rows of unknown candidates; dropped %d '
                    'problems not fully scored (e.g. %s).', notes['skipped_score_rows'],
                    notes['dropped_problems'], notes['dropped_problem_ids'])
  if not verifiers:
    logging.warning('No verifier scores given: only majority vote and pass@n.')
  clash = [v for v in verifiers
           if weighted_vote and best_of_n.weighted_vote_method(v) in verifiers]
  if clash:
    raise InputError(f'--weighted_vote names its methods VERIFIER{best_of_n.WEIGHTED_VOTE_SUFFIX}, '
                     f'but verifier(s) {[best_of_n.weighted_vote_method(v) for v in clash]} '
                     'already have scores under those names: rename them, or leave out '
                     '--weighted_vote')
  stats = best_of_n.evaluate_pools(pools, verifiers, n_max, num_bootstrap=num_bootstrap,
                                   seed=seed, weighted=weighted_vote,
                                   not_probabilities=tuple(ensembles or ()))
  args = {'candidates': candidates_path, 'scores': list(score_paths), 'n_max': n_max,
          'bootstrap': num_bootstrap, 'seed': seed, 'allow_missing': allow_missing,
          'task': task, 'ensembles': dict(ensembles or {}),
          'majority_vote': ('exact' if max(sizes) <= best_of_n.EXACT_MAJORITY_MAX_N else
                            f'monte_carlo_{best_of_n.DEFAULT_MAJORITY_SAMPLES}')}
  if weighted_vote:
    args['weighted_vote'] = ('exact' if max(sizes) <= best_of_n.EXACT_WEIGHTED_MAX_N else
                             f'monte_carlo_{best_of_n.DEFAULT_MAJORITY_SAMPLES}')
  results = _results_json(stats, pools, verifiers, n_max, notes, args)
  # The texts and metadata the pools leave out, read once for both uses.
  by_problem = _candidates_by_problem(candidates_path)
  breakdown = _breakdown(by_problem, pools, stats['per_problem'])
  if breakdown:
    results['breakdown'] = breakdown
  results.update(_compute_matched_json(stats, pools, notes['mean_chars'],
                                       dict(verification_costs or {}), list(ensembles or {})))

  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, 'results.json'), 'w') as f:
    json.dump(results, f, indent=1)
  _write_csv(os.path.join(out_dir, 'curves.csv'), results)
  with open(os.path.join(out_dir, 'selections.jsonl'), 'w') as f:
    for row in selections(by_problem, pools, verifiers, score_paths):
      f.write(json.dumps(row) + '\n')
  written = ['results.json', 'curves.csv', 'selections.jsonl', 'best_of_n.png']
  _plot(os.path.join(out_dir, written[-1]), results)
  if results['curves_vs_k']:
    written.append('best_of_n_vs_k.png')
    _plot_vs_k(os.path.join(out_dir, written[-1]), results)
  if results['reliability']:
    written.append('reliability.png')
    _plot_reliability(os.path.join(out_dir, written[-1]), results)
  if results['score_histograms']:
    written.append('score_histograms.png')
    _plot_histograms(os.path.join(out_dir, written[-1]), results)
  if 'compute_matched' in results:
    written.append('compute_matched.png')
    _plot_compute_matched(os.path.join(out_dir, written[-1]), results)
  if wandb_logging.enabled(wandb):
    wandb_logging.log_evaluation(
        wandb, out_dir, results, (CURVE_COLUMNS, curve_rows(results)),
        [os.path.join(out_dir, w) for w in written if w.endswith('.png')])
  if verbose:
    print(f'{len(pools)} problems, {results["n_candidates"]} candidates '
          f'({smallest}-{max(sizes)} per problem), n = 1..{n_max}; accuracy %' +
          (f' [95% CI, {num_bootstrap} bootstrap resamples]:' if num_bootstrap else ':'))
    print(format_table(results))
    if results['differences']:
      print(f'Differences at n = {n_max}, points [paired 95% CI; * = excludes 0]:')
      print(format_differences(results))
    for name, curves in results['curves_vs_k'].items():
      print(f'{name} Best-of-{n_max} vs K rationales: ' + ', '.join(
          f'K={k} {curve[str(n_max)] * 100:.1f}' for k, curve in curves.items()))
    for name in results['reliability_skipped']:
      print(f'{name}: no reliability plot (scores are not probabilities)')
    for name in results.get('weighted_vote_skipped', {}):
      print(f'{name}: no weighted vote (negative scores cannot weight votes)')
    if 'compute_matched' in results:
      print(compute_matched.format_budgets(results['compute_matched']))
    for name, why in results.get('compute_matched_skipped', {}).items():
      print(f'{name}: not in the compute-matched table ({why})')
    print(f'Wrote {out_dir}/{", ".join(written)} ({time.time() - start:.1f}s)')
  return results


def score_with_config(config_path: str, candidates_path: Optional[str],
                      out_dir: str) -> tuple[str, list[str], dict]:
  """Scores the candidates with the config's verifiers (genrm_jax.eval_config).

  Returns:
    (candidate-store path, score files, the config's evaluation settings).
  """
  from genrm_jax import eval_config  # pylint: disable=g-import-not-at-top
  try:
    config = eval_config.load(config_path)
    candidates_path = eval_config.resolve_candidates(config, out_dir, candidates_path)
    paths = eval_config.run_scorers(config, candidates_path, out_dir, log=print)
  except (FileNotFoundError, ValueError) as e:
    if isinstance(e, (InputError, candidates_lib.MalformedRowError)):
      raise
    raise InputError(f'{config_path}: {e}') from None
  settings = {k: config.get(k) for k in ('task', 'n_max', 'bootstrap', 'weighted_vote')}
  return candidates_path, paths, settings


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if not _CANDIDATES.value and not _CONFIG.value:
    raise app.UsageError('--candidates=C.jsonl (or --config=FILE) is required.')
  if not _OUT.value:
    raise app.UsageError('--out=DIR is required.')
  try:
    candidates = _CANDIDATES.value
    score_paths = list(_SCORES.value)
    task, n_max, num_bootstrap = _TASK.value, _N_MAX.value, _BOOTSTRAP.value
    weighted = _WEIGHTED_VOTE.value
    verification_costs = parse_verification_costs(_VERIFICATION_COST.value)
    wandb = {k: flag.value for k, flag in _WANDB.items()}
    try:  # before any scoring, which --config may start: hours of it
      wandb_logging.check(wandb)
    except (ValueError, ImportError) as e:
      raise InputError(str(e)) from None
    if _SEED.value < 0 or num_bootstrap < 0:
      raise InputError(f'--seed={_SEED.value} and --bootstrap={num_bootstrap} must be >= 0 '
                       '(--bootstrap=0: no intervals).')
    if os.path.exists(_OUT.value) and not os.path.isdir(_OUT.value):
      raise InputError(f'--out={_OUT.value} is a file: give a directory.')
    if _CONFIG.value:
      candidates, paths, settings = score_with_config(_CONFIG.value, candidates, _OUT.value)
      score_paths += paths
      task = task or settings['task'] or None
      n_max = n_max or settings['n_max'] or None
      if settings['bootstrap'] is not None and not _flag_present('bootstrap'):
        num_bootstrap = settings['bootstrap']
      weighted = weighted or bool(settings['weighted_vote'])
    run(candidates, score_paths, _OUT.value, n_max=n_max,
        num_bootstrap=num_bootstrap, seed=_SEED.value,
        allow_missing=_ALLOW_MISSING.value, task=task, weighted_vote=weighted,
        verification_costs=verification_costs, vote_by=_VOTE_BY.value,
        ensembles=parse_ensembles(_ENSEMBLE.value), wandb=wandb)
  except (InputError, candidates_lib.MalformedRowError) as e:
    # The message names the file and line; a traceback would bury it.
    sys.exit(f'error: {e}')


def _flag_present(name: str) -> bool:
  return flags.FLAGS[name].present


if __name__ == '__main__':
  define_flags()
  app.run(main)
