"""Data statistics: problems per task and split, and the paper's released
GSM8K verification data per split and label.

  python -m tasks.stats              # problem counts (seconds)
  python -m tasks.stats --released   # + released GSM8K data (about a minute)
"""

from __future__ import annotations

import argparse
import collections

from genrm_jax import verification_data as vd
from tasks import sources


def problem_counts() -> list[tuple[str, str, int]]:
  return [(task, split, len(sources.get_problems(task, split)))
          for task in sources.TASKS for split in sources.SPLITS[task]]


def released_counts() -> list[tuple[str, str, str, int]]:
  rows = []
  for name, reader in (("direct", vd.released_direct_examples),
                       ("cot", vd.released_cot_examples)):
    for split in vd.RELEASED_SPLITS:
      labels = collections.Counter(
          "correct" if ex["correct"] else "incorrect" for ex in reader(split))
      rows += [(name, split, label, labels[label])
               for label in ("correct", "incorrect")]
  return rows


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--released", action="store_true",
                      help="also count the released GSM8K verification data")
  args = parser.parse_args()
  print(f"{'task':<12} {'split':<11} {'problems':>9}")
  for task, split, n in problem_counts():
    print(f"{task:<12} {split:<11} {n:>9,}")
  if args.released:
    print(f"\n{'gsm8k data':<12} {'split':<11} {'label':<10} {'examples':>9}")
    for kind, split, label, n in released_counts():
      print(f"{kind:<12} {split:<11} {label:<10} {n:>9,}")


if __name__ == "__main__":
  main()
