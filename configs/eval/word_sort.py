r"""Best-of-N on word sorting (OOD test lengths), every verifier.

  python -m genrm_jax.generate --checkpoint=$GEN --task=word_sort \
      --split=test --num_samples=16 --temperature=0.7 --out=$OUT/candidates.jsonl
  python -m genrm_jax.evaluate \
      --config=configs/eval/word_sort.py:root=$RUNS,candidates=$OUT/candidates.jsonl \
      --out=$OUT

Placeholder checkpoints: `ROOT/<run>/export`, the bundles `genrm_jax.train`
writes for configs/word_sort_<method>.py (ROOT defaults to `runs`; override
with `:root=DIR`): `word_sort_genrm`, `word_sort_cot`, `word_sort_disc`,
`word_sort_dpo` (its reference: the model DPO started from, its `init_from`,
which its export records). Drop verifiers you did not train with `:only=genrm+disc`.
"""

try:
  from configs.eval import common
except ImportError:  # run from outside the repository root
  import os, sys  # pylint: disable=g-import-not-at-top,multiple-imports
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__)))))
  from configs.eval import common

TASK = 'word_sort'


def get_config(arg=None):
  return common.generated_task_config(TASK, arg, cot_max_new_tokens=256)
