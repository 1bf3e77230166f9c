r"""Best-of-N on MATH-500 with MATH-trained verifiers (configs/math_<method>.py).

  python -m genrm_jax.generate --checkpoint=$GEN --task=math --split=math500 \
      --num_samples=32 --temperature=0.7 --max_new_tokens=1024 \
      --out=$RUNS/math500_candidates.jsonl
  python -m genrm_jax.evaluate --config=configs/eval/math.py:root=$RUNS --out=$OUT

As configs/eval/math500_transfer.py (MATH's symbolic grader, votes grouped by
equivalent answers, accuracy per level and subject), with the verifiers of
the MATH runs: placeholders `ROOT/math_<method>/export` (ROOT defaulting to
`runs`): `math_genrm`, `math_cot` (MajV@8, 1024-token rationales),
`math_disc` and `math_dpo` (reference: its recorded `init_from`). `:candidates=C.jsonl`
for another store, `:only=genrm+genrm_cot` to select.
"""

try:
  from configs.eval import common
except ImportError:  # run from outside the repository root
  import os, sys  # pylint: disable=g-import-not-at-top,multiple-imports
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__)))))
  from configs.eval import common

TASK = 'math'


def get_config(arg=None):
  return common.generated_task_config(TASK, arg, cot_max_new_tokens=1024,
                                      candidates_file='math500_candidates.jsonl')
