r"""math: discriminative reward model (value head, BCE).

Trains on a store of your generator's MATH solutions, TRAIN.jsonl
(configs/common.py, MATH, says how, and why no periodic eval by default):
  python -m genrm_jax.train --config=configs/math_disc.py --workdir=/tmp/math_disc \
      --config.init_from=/ckpts/<gemma checkpoint> \
      --config.data.vocabulary=/ckpts/tokenizer.model \
      --config.data.candidates.train=TRAIN.jsonl
Smoke test on a CPU (tiny model, about a minute):
  python -m genrm_jax.train --config=configs/math_disc.py:tiny \
      --workdir=/tmp/math_disc_tiny
"""

try:
  from configs import common
except ImportError:  # run from outside the repository root
  import os, sys  # pylint: disable=g-import-not-at-top,multiple-imports
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from configs import common


def get_config(arg=None):
  return common.get_config("math", "disc", arg)
