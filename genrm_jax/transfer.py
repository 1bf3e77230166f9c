"""Does verification training help generation? Solve accuracy across models.

The paper reports transfer both ways: unified training (verification data
plus lambda x solution SFT) makes a better verifier *and* a better solver,
more so with oracle rationales than with synthetic ones. `report` compares
candidate stores that different models sampled for the same problems (the
pipeline's `generation_transfer`: the generator, the unified GenRM-CoT
model, and a control trained the same way on the solution data alone):

* `accuracy`: a sample's mean correctness (pass@1),
* `majority_at_n`: self-consistency over each problem's N samples,
* `pass_at_n`: a correct sample among the N,

each with a 95% bootstrap interval over problems, and the paired
differences between models (the same resamples). Pure numpy, from files:

  python -m genrm_jax.transfer --candidates=generator=C0.jsonl,unified=C1.jsonl \
      [--out=DIR] [--task=last_letter]
"""

from __future__ import annotations

from typing import Mapping, Optional

import numpy as np

from genrm_jax import best_of_n
from genrm_jax import text_table

METRICS = ('accuracy', 'majority_at_n', 'pass_at_n')


def per_problem(path: str, task: Optional[str]) -> tuple[dict[str, np.ndarray], list[str], int]:
  """({metric: float [P]}, problem ids, N) of one candidate store."""
  from genrm_jax import evaluate  # pylint: disable=g-import-not-at-top
  pools, _, _ = evaluate.load_pools(path, [], task=task)
  n = min(pool.size for pool in pools)
  values = {
      'accuracy': np.array([pool.correct.mean() for pool in pools]),
      'majority_at_n': np.array([best_of_n.majority_vote(pool.answer_keys, pool.correct, n)[-1]
                                 for pool in pools]),
      'pass_at_n': np.array([best_of_n.pass_at_n(pool.correct, n)[-1] for pool in pools]),
  }
  return values, [pool.problem_id for pool in pools], n


def report(stores: Mapping[str, str], *, task: Optional[str] = None,
           num_bootstrap: int = 1000, seed: int = 0,
           pairs: Optional[list[tuple[str, str]]] = None) -> dict:
  """Each store's metrics with intervals, on the problems all stores share.

  Args:
    stores: model name -> candidate store (the same problems, N samples each).
    task: grading task for majority-vote keys (else each candidate's own).
    num_bootstrap: resamples (0: no intervals).
    seed: of the resamples.
    pairs: (a, b) differences to report (default: each later model minus
      the first).
  """
  if not stores:
    raise ValueError('no candidate stores to compare')
  loaded = {name: per_problem(path, task) for name, path in stores.items()}
  shared = set.intersection(*(set(ids) for _, ids, _ in loaded.values()))
  if not shared:
    raise ValueError('the stores share no problem')
  order = sorted(shared)
  table = {}
  for name, (values, ids, _) in loaded.items():
    index = {pid: i for i, pid in enumerate(ids)}
    rows = [index[pid] for pid in order]
    table[name] = {metric: values[metric][rows] for metric in METRICS}
  names = list(stores)
  pairs = pairs if pairs is not None else [(b, names[0]) for b in names[1:]]
  # Keyed by (model, metric): a model's name may hold any character ('runs/x').
  per = {(name, metric): table[name][metric][:, None]
         for name in names for metric in METRICS}
  ci = best_of_n.bootstrap_ci(per, num_bootstrap, seed) if num_bootstrap else {}
  out = {'n_problems': len(order), 'n_samples': {name: loaded[name][2] for name in names},
         'models': {}, 'differences': {}}
  for name in names:
    out['models'][name] = {
        metric: {'value': float(table[name][metric].mean()),
                 'ci95': ([float(ci[(name, metric)][0][0]),
                           float(ci[(name, metric)][1][0])] if ci else None)}
        for metric in METRICS}
  diffs = best_of_n.paired_differences(per, [((a, m), (b, m)) for a, b in pairs
                                             for m in METRICS], num_bootstrap, seed)
  for ((model_a, metric), (model_b, _)), value in diffs.items():
    lo_hi = value['ci95']
    out['differences'].setdefault(f'{model_a} - {model_b}', {})[metric] = {
        'diff': float(value['diff'][0]),
        'ci95': [float(lo_hi[0][0]), float(lo_hi[1][0])] if lo_hi is not None else None}
  return out


def format_report(result: dict) -> str:
  """Models x metrics (%), then the paired differences (points)."""
  cell = lambda v: f'{v["value"] * 100:.1f}' + (
      f' [{v["ci95"][0] * 100:.1f},{v["ci95"][1] * 100:.1f}]' if v['ci95'] else '')
  n = next(iter(result['n_samples'].values()))
  header = ['model', 'accuracy (pass@1)', f'majority@{n}', f'pass@{n}']
  rows = [[name] + [cell(values[m]) for m in METRICS]
          for name, values in result['models'].items()]
  lines = [f'Solving the {result["n_problems"]} evaluation problems (% [95% CI]):',
           *text_table.lines(header, rows)]
  for pair, metrics in result['differences'].items():
    parts = []
    for metric in METRICS:
      d = metrics[metric]
      parts.append(f'{metric} {d["diff"] * 100:+.1f}' + (
          f' [{d["ci95"][0] * 100:+.1f}, {d["ci95"][1] * 100:+.1f}]' if d['ci95'] else ''))
    lines.append(f'  {pair}: ' + '; '.join(parts))
  return '\n'.join(lines)


def define_flags() -> None:
  """CLI flags (defined only when run as a program)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  global _STORES, _OUT, _TASK, _BOOTSTRAP, _SEED
  _STORES = flags.DEFINE_list(
      'candidates', [], 'NAME=STORE.jsonl per model, the same problems sampled by each '
      '(differences: each later model minus the first).')
  _OUT = flags.DEFINE_string('out', None, 'Where generation.json goes (a directory).')
  _TASK = flags.DEFINE_string('task', None, 'Grading task for majority-vote keys of '
                              'candidates without a "task" field.')
  _BOOTSTRAP = flags.DEFINE_integer('bootstrap', 1000, 'Bootstrap resamples (0: none).')
  _SEED = flags.DEFINE_integer('seed', 0, 'Seed of the resamples.')


def main(argv) -> None:
  import json  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  from genrm_jax import candidates as candidates_lib  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    sys.exit(f'error: unexpected arguments {argv[1:]}')
  stores = {}
  for entry in _STORES.value:
    name, sep, path = entry.partition('=')
    if not sep or not name or not path:
      sys.exit(f'error: --candidates entry {entry!r}: expected NAME=STORE.jsonl')
    stores[name] = path
  if len(stores) < 2:
    sys.exit('error: --candidates needs two or more NAME=STORE.jsonl entries to compare')
  try:
    result = report(stores, task=_TASK.value, num_bootstrap=_BOOTSTRAP.value,
                    seed=_SEED.value)
  except (ValueError, FileNotFoundError, candidates_lib.MalformedRowError) as e:
    sys.exit(f'error: {e}')
  print(format_report(result))
  if _OUT.value:
    os.makedirs(_OUT.value, exist_ok=True)
    path = os.path.join(_OUT.value, 'generation.json')
    with open(path, 'w') as f:
      json.dump(dict(result, stores=stores), f, indent=1)
    print(f'Wrote {path}')


if __name__ == '__main__':
  from absl import app  # pylint: disable=g-import-not-at-top
  define_flags()
  app.run(main)
