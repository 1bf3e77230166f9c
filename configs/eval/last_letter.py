r"""Best-of-N on last-letter concatenation (OOD test lengths), every verifier.

  python -m genrm_jax.generate --checkpoint=$GEN --task=last_letter \
      --split=test --num_samples=16 --temperature=0.7 --out=$OUT/candidates.jsonl
  python -m genrm_jax.evaluate \
      --config=configs/eval/last_letter.py:root=$RUNS,candidates=$OUT/candidates.jsonl \
      --out=$OUT

Placeholder checkpoints: `ROOT/<run>/export`, the bundles `genrm_jax.train`
writes for configs/last_letter_<method>.py (ROOT defaults to `runs`; override
with `:root=DIR`): `last_letter_genrm`, `last_letter_cot`, `last_letter_disc`,
`last_letter_dpo` (its reference: the model DPO started from, its `init_from`,
which its export records). Drop verifiers you did not train with `:only=genrm+disc`.
"""

try:
  from configs.eval import common
except ImportError:  # run from outside the repository root
  import os, sys  # pylint: disable=g-import-not-at-top,multiple-imports
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__)))))
  from configs.eval import common

TASK = 'last_letter'


def get_config(arg=None):
  return common.generated_task_config(TASK, arg, cot_max_new_tokens=256)
