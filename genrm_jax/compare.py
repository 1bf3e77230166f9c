r"""Compare evaluations across runs: data scaling, model scaling, any sweep.

  python -m genrm_jax.compare --results=runs/n500/eval,runs/n1000/eval,runs/n2000/eval \
      --labels=500,1000,2000 --x_label="training problems" --out=DIR [--n=16]

Each `--results` entry is an evaluation directory (or its `results.json`)
written by `genrm_jax.evaluate`. For every method present in all of them
(verifiers, majority vote, pass@n, ...), reads Best-of-n at one n (default:
the largest n every run has) with its 95% interval, and writes:

* `DIR/compare.json`: {runs: [{label, path, n_problems}], n, x_label,
  accuracy[method] = [per run], ci95[method] = [[lo, hi] or null per run]};
* `DIR/compare.csv`: one row per (method, run);
* `DIR/compare.png`: accuracy against the runs (a log2 axis when every
  label is a positive number, e.g. training-set or model sizes; else the
  labels in order), 95% intervals as error bars;

and prints the table (methods x runs). Files alone: no model, no JAX.
Runs evaluated on different problems are compared as they are; the table
says how many problems each had, so that a mismatch is visible.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from typing import Optional, Sequence

from absl import app
from absl import flags

from genrm_jax import text_table


class InputError(ValueError):
  """Inputs that cannot be compared; the message says why."""


def _results_path(path: str) -> str:
  return os.path.join(path, 'results.json') if os.path.isdir(path) else path


def load_runs(paths: Sequence[str]) -> list[dict]:
  runs = []
  for path in paths:
    file = _results_path(path)
    try:
      with open(file) as f:
        results = json.load(f)
    except FileNotFoundError:
      raise InputError(f'{file}: no such file (an evaluate --out directory, or its '
                       'results.json)') from None
    except json.JSONDecodeError as e:
      raise InputError(f'{file}: not JSON ({e.msg} at line {e.lineno})') from None
    if 'curves' not in results or 'n_max' not in results:
      raise InputError(f'{file}: not a genrm_jax.evaluate results.json (no curves / n_max)')
    runs.append(results)
  return runs


def default_labels(paths: Sequence[str]) -> list[str]:
  """Each run's directory name, after the trailing names all runs share
  (`runs/n500/eval`, `runs/n1000/eval` -> `n500`, `n1000`); results files of
  one directory by their names (`a.json`, `b.json` -> `a`, `b`)."""
  files = [_results_path(p) for p in paths]
  parts = [os.path.abspath(os.path.dirname(f)).split(os.sep) for f in files]
  while len(parts) > 1 and all(len(p) > 1 for p in parts) and len(
      {p[-1] for p in parts}) == 1:
    parts = [p[:-1] for p in parts]
  labels = [p[-1] for p in parts]
  if len(set(labels)) < len(labels) or not all(labels):
    names = [os.path.splitext(os.path.basename(f))[0] for f in files]
    labels = names if len(set(names)) == len(names) else [os.path.abspath(f) for f in files]
  return labels


def _as_number(label: str) -> Optional[float]:
  try:
    value = float(label)
  except ValueError:
    return None
  return value if math.isfinite(value) else None


def compare(runs: Sequence[dict], labels: Sequence[str], n: Optional[int] = None,
            methods: Optional[Sequence[str]] = None) -> dict:
  """Best-of-n of each shared method in each run (see the module docstring)."""
  if len(labels) != len(runs):
    raise InputError(f'{len(labels)} labels for {len(runs)} runs')
  smallest = min(int(r['n_max']) for r in runs)
  n = smallest if n is None else n
  if not 1 <= n <= smallest:
    raise InputError(f'--n={n} must be in [1, {smallest}] (the smallest n_max of the runs)')
  shared = [m for m in runs[0].get('methods', runs[0]['curves'])
            if all(m in r['curves'] for r in runs)]
  if methods:
    missing = [m for m in methods if m not in shared]
    if missing:
      raise InputError(f'methods {missing} are not in every run; shared: {shared}')
    shared = list(methods)
  if not shared:
    raise InputError('the runs share no method')
  accuracy = {m: [float(r['curves'][m][str(n)]) for r in runs] for m in shared}
  ci95 = {m: [r.get('ci95', {}).get(m, {}).get(str(n)) for r in runs] for m in shared}
  return {
      'runs': [{'label': label, 'n_problems': r.get('n_problems')}
               for label, r in zip(labels, runs)],
      'n': n,
      'accuracy': accuracy,
      'ci95': ci95,
  }


def format_table(table: dict) -> str:
  header = ['method'] + [f'{run["label"]} ({run["n_problems"]})' for run in table['runs']]
  rows = []
  for method, values in table['accuracy'].items():
    cells = [method]
    for value, ci in zip(values, table['ci95'][method]):
      cells.append(f'{value * 100:.1f}' + (f' [{ci[0] * 100:.1f},{ci[1] * 100:.1f}]'
                                           if ci else ''))
    rows.append(cells)
  return '\n'.join([f'Best-of-{table["n"]} accuracy % [95% CI] (runs: label (problems)):',
                    *text_table.lines(header, rows)])


def plot_positions(labels: Sequence[str]) -> tuple[list[float], list[int], bool]:
  """(x of each run, the order its line visits the runs, numeric?): positive
  numeric labels sit at their values (log axis), visited in increasing
  order (the table keeps the runs' order); others at 0, 1, ... as given."""
  numbers = [_as_number(label) for label in labels]
  if all(v is not None and v > 0 for v in numbers):
    return numbers, sorted(range(len(numbers)), key=lambda j: numbers[j]), True
  return [float(j) for j in range(len(labels))], list(range(len(labels))), False


def _plot(path: str, table: dict, x_label: str) -> None:
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  labels = [run['label'] for run in table['runs']]
  x, order, numeric = plot_positions(labels)
  fig, ax = plt.subplots(figsize=(7, 4.5))
  styles = {'pass_at_n': dict(color='0.35', linestyle='--'),
            'majority_vote': dict(color='black')}
  count = len(table['accuracy'])
  for i, (method, values) in enumerate(table['accuracy'].items()):
    values = [values[j] for j in order]
    cis = [table['ci95'][method][j] for j in order]
    acc = [v * 100 for v in values]
    # Methods side by side around each run, so that intervals do not hide
    # each other.
    shift = (i - (count - 1) / 2) * 0.04
    xs = [x[j] * 2**shift if numeric else x[j] + shift for j in order]
    err = [[(v - ci[0]) * 100 if ci else 0 for v, ci in zip(values, cis)],
           [(ci[1] - v) * 100 if ci else 0 for v, ci in zip(values, cis)]]
    ax.errorbar(xs, acc, yerr=err, marker='o', markersize=4, capsize=3, label=method,
                **styles.get(method, {}))
  if numeric:
    ax.set_xscale('log', base=2)
  ax.set_xticks(x, labels)
  ax.set_xlabel(x_label)
  ax.set_ylabel(f'Best-of-{table["n"]} accuracy (%)')
  ax.set_title(f'Best-of-{table["n"]} across runs (95% intervals)', fontsize=10)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8, loc='best')
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)


def run(paths: Sequence[str], out_dir: str, *, labels: Optional[Sequence[str]] = None,
        n: Optional[int] = None, methods: Optional[Sequence[str]] = None,
        x_label: str = 'run', verbose: bool = True) -> dict:
  """Reads, compares, writes `out_dir`; returns the table."""
  if not paths:
    raise InputError('--results names no run')
  runs = load_runs(paths)
  labels = list(labels) if labels else default_labels(paths)
  table = compare(runs, labels, n, methods)
  for entry, path in zip(table['runs'], paths):
    entry['path'] = _results_path(path)
  table['x_label'] = x_label
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, 'compare.json'), 'w') as f:
    json.dump(table, f, indent=1)
  with open(os.path.join(out_dir, 'compare.csv'), 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['method', 'run', 'n', 'accuracy', 'ci95_lo', 'ci95_hi'])
    for method, values in table['accuracy'].items():
      for entry, value, ci in zip(table['runs'], values, table['ci95'][method]):
        writer.writerow([method, entry['label'], table['n'], value,
                         *(ci if ci else ('', ''))])
  _plot(os.path.join(out_dir, 'compare.png'), table, x_label)
  if verbose:
    print(format_table(table))
    print(f'Wrote {out_dir}/compare.json, compare.csv, compare.png')
  return table


def define_flags() -> None:
  """CLI flags (defined only when run as a program)."""
  global _RESULTS, _LABELS, _OUT, _N, _METHODS, _X_LABEL
  _RESULTS = flags.DEFINE_list('results', [], 'Evaluation directories (or results.json '
                               'files).')
  _LABELS = flags.DEFINE_list('labels', [], 'One label per run (default: directory '
                              'names); numbers get a log2 axis.')
  _OUT = flags.DEFINE_string('out', None, 'Output directory.')
  _N = flags.DEFINE_integer('n', None, 'Best-of-n to compare (default: the smallest n_max).')
  _METHODS = flags.DEFINE_list('methods', [], 'Methods to show (default: every shared '
                               'one).')
  _X_LABEL = flags.DEFINE_string('x_label', 'run', 'The x axis\'s name.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if not _OUT.value:
    raise app.UsageError('--out=DIR is required.')
  try:
    run(_RESULTS.value, _OUT.value, labels=_LABELS.value, n=_N.value,
        methods=_METHODS.value, x_label=_X_LABEL.value)
  except InputError as e:
    sys.exit(f'error: {e}')


if __name__ == '__main__':
  define_flags()
  app.run(main)
