r"""Easy-to-hard transfer: GSM8K-trained verifiers scoring MATH-500 candidates.

  python -m genrm_jax.generate --checkpoint=$GEN --task=math --split=math500 \
      --num_samples=32 --temperature=0.7 --max_new_tokens=1024 \
      --out=$OUT/candidates.jsonl
  python -m genrm_jax.evaluate \
      --config=configs/eval/math500_transfer.py:root=$RUNS,candidates=$OUT/candidates.jsonl \
      --out=$OUT

The candidates are graded with MATH's grader (`task=math`: symbolic
equivalence; majority vote groups answers by `grading.normalize_answer('math',
...)`) and carry each problem's `level` and `subject`, so results.json also
breaks accuracy down per level and per subject. The verifiers are the GSM8K
runs' bundles (placeholders `ROOT/gsm8k_<method>/export`, ROOT defaulting to
`runs`), used unchanged: the paper's Figure on transfer to harder problems.
"""

try:
  from configs.eval import common
except ImportError:  # run from outside the repository root
  import os, sys  # pylint: disable=g-import-not-at-top,multiple-imports
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__)))))
  from configs.eval import common


def get_config(arg=None):
  args = common.parse_args(arg)
  root = args.get('root', 'runs')
  verifiers = common.trained_verifiers(
      lambda run: f'{root}/gsm8k_{run}/export', cot_max_new_tokens=1024,
      with_dpo=False, with_bt=common.flag(args, 'bt'))
  return common.make_config('math', f'{root}/math500_candidates.jsonl',
                            verifiers, args)
