"""Accuracy at matched inference compute: more solutions, or more verification?

A Best-of-N curve puts every method on the same x-axis, n candidates, though
GenRM-CoT also decodes K rationales per candidate. Singhi et al. 2025 ("When
To Solve, When To Verify") compare the methods at equal compute instead: is
a budget better spent on more solutions (self-consistency) or on verifying
fewer of them?

Cost model (decoded text; prompts and teacher-forced passes are free):

* the unit is one solution (the candidate store's mean solution length);
* one rationale of a verifier scored rationale by rationale (GenRM-CoT,
  LLM-judge) costs lambda units: its mean rationale length over the mean
  solution length, in characters of the stored texts (the same tokenizer
  writes both), or given (`--verification_cost`);
* Best-of-n with the first K rationales per candidate costs n (1 + lambda K);
  majority voting, pass@n and direct verifiers (one forward pass, nothing
  decoded) cost n; a weighted vote of a rationale verifier costs
  n (1 + lambda K-bar), K-bar its mean rationales per candidate.

Lengths in characters are a proxy: a prefill-heavy verifier (long prompts,
short rationales) is cheaper than it says on an accelerator, and a decode
step's cost grows with its context. The per-(n, K) accuracies come from
`best_of_n.vs_k_curves`, so every point is an exact expectation like the
main curves.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence

import numpy as np

from genrm_jax import best_of_n
from genrm_jax import text_table


def verification_cost(mean_rationale_chars: float, mean_solution_chars: float) -> float:
  """lambda: one rationale's cost in solutions."""
  if mean_solution_chars <= 0:
    raise ValueError('the candidates\' solutions are empty: give --verification_cost')
  return mean_rationale_chars / mean_solution_chars


def frontier(points: Sequence[dict]) -> list[dict]:
  """The points no cheaper (or equally cheap) point matches: accuracy rises
  strictly along it. Points are dicts with 'cost' and 'accuracy'."""
  out, best = [], -np.inf
  for point in sorted(points, key=lambda p: (p['cost'], -p['accuracy'])):
    if point['accuracy'] > best + 1e-12:
      out.append(point)
      best = point['accuracy']
  return out


def best_within(points: Sequence[dict], budget: float) -> Optional[dict]:
  """The most accurate point costing at most `budget` (the cheapest of equals)."""
  affordable = [p for p in points if p['cost'] <= budget * (1 + 1e-9)]
  if not affordable:
    return None
  top = max(p['accuracy'] for p in affordable)
  # Equal accuracies (to rounding: every n = 1 point is the pool's mean)
  # go to the cheapest.
  return min((p for p in affordable if p['accuracy'] >= top - 1e-12), key=lambda p: p['cost'])


def budgets(max_cost: float) -> list[float]:
  """1, 2, 4, ... up to the first power of two covering `max_cost`."""
  grid = [1.0]
  while grid[-1] < max_cost * (1 - 1e-9):
    grid.append(grid[-1] * 2)
  return grid


def method_points(stats: dict, costs: Mapping[str, float],
                  mean_rationales: Mapping[str, float]) -> dict[str, list[dict]]:
  """Every method's (n, K, cost, accuracy) points.

  Args:
    stats: `best_of_n.evaluate_pools`'s output.
    costs: lambda per rationale verifier (those missing are left out, with
      their weighted votes).
    mean_rationales: K-bar per rationale verifier (for its weighted vote).
  """
  weighted_of = {method: name for name, method in stats.get('weighted', {}).items()}
  out = {}
  for method in stats['methods']:
    curve = stats['curves'][method]
    n = np.arange(1, curve.size + 1)
    if method in stats['vs_k']:  # rationale by rationale: every (n, K)
      if method not in costs:
        continue
      vs_k = stats['vs_k'][method]
      out[method] = [
          dict(n=int(m), k=int(k), cost=float(m * (1 + costs[method] * k)),
               accuracy=float(row[m - 1]))
          for k, row in zip(vs_k['k'], vs_k['curves']) for m in n]
      continue
    per_candidate = 1.0
    if method in weighted_of and weighted_of[method] in stats['vs_k']:
      name = weighted_of[method]
      if name not in costs:
        continue
      per_candidate = 1 + costs[name] * mean_rationales[name]
    out[method] = [dict(n=int(m), k=None, cost=float(m * per_candidate),
                        accuracy=float(a)) for m, a in zip(n, curve)]
  return out


def compute_matched(stats: dict, costs: Mapping[str, float],
                    mean_rationales: Mapping[str, float]) -> dict:
  """`results.json`'s `compute_matched`: points, frontiers, and the best of
  each method within budgets 1, 2, 4, ... solutions."""
  points = method_points(stats, costs, mean_rationales)
  max_cost = max(p['cost'] for values in points.values() for p in values)
  return {
      'points': points,
      'frontier': {method: frontier(values) for method, values in points.items()},
      'budgets': {_budget_key(b): {method: best_within(values, b)
                                   for method, values in points.items()}
                  for b in budgets(max_cost)},
  }


def _budget_key(budget: float) -> str:
  return str(int(budget)) if float(budget).is_integer() else f'{budget:g}'


def format_budgets(matched: dict) -> str:
  """Methods x budgets: the accuracy (%) of each method's best point within
  each budget, '@n' (and 'xK' rationales) where it is; '-' where even its
  cheapest point costs more."""
  methods = list(matched['points'])
  header = ['method'] + [f'<={budget}' for budget in matched['budgets']]
  rows = []
  for method in methods:
    cells = [method]
    for best in matched['budgets'].values():
      point = best[method]
      cells.append('-' if point is None else
                    f'{point["accuracy"] * 100:.1f}@{point["n"]}' +
                    (f'x{point["k"]}' if point['k'] is not None else ''))
    rows.append(cells)
  costs = ', '.join(f'a {name} rationale = {cost:.2f}'
                    for name, cost in matched['verification_cost'].items())
  return '\n'.join([f'Compute-matched accuracy %, budget in solutions decoded per problem '
                    f'({costs}); @n candidates, xK rationales each:',
                    *text_table.lines(header, rows)])
