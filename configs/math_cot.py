r"""math: GenRM-CoT (verification rationale, then Yes/No).

Trains on a store of your generator's MATH solutions, TRAIN.jsonl, and
reference-guided rationales of it (configs/common.py, MATH, says how):
  python -m genrm_jax.synthesize --candidates=TRAIN.jsonl \
      --checkpoint=$GRADER --out=RATIONALES.jsonl    # reference-guided
  python -m genrm_jax.train --config=configs/math_cot.py --workdir=/tmp/math_cot \
      --config.init_from=/ckpts/<gemma checkpoint> \
      --config.data.vocabulary=/ckpts/tokenizer.model \
      --config.data.rationales.train=RATIONALES.jsonl \
      --config.data.candidates.train=TRAIN.jsonl
Smoke test on a CPU (tiny model, about a minute):
  python -m genrm_jax.train --config=configs/math_cot.py:tiny \
      --workdir=/tmp/math_cot_tiny
"""

try:
  from configs import common
except ImportError:  # run from outside the repository root
  import os, sys  # pylint: disable=g-import-not-at-top,multiple-imports
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from configs import common


def get_config(arg=None):
  return common.get_config("math", "cot", arg)
