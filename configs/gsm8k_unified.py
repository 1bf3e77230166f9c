r"""gsm8k: unified GenRM-CoT + solution SFT (lambda = data.unified_lambda).

Train (paper settings):
  python -m genrm_jax.train --config=configs/gsm8k_unified.py \
      --workdir=/tmp/gsm8k_unified --config.init_from=/ckpts/<gemma checkpoint> \
      --config.data.vocabulary=/ckpts/tokenizer.model
Smoke test on a CPU (tiny model, about a minute):
  python -m genrm_jax.train --config=configs/gsm8k_unified.py:tiny \
      --workdir=/tmp/gsm8k_unified_tiny
"""

try:
  from configs import common
except ImportError:  # run from outside the repository root
  import os, sys  # pylint: disable=g-import-not-at-top,multiple-imports
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from configs import common


def get_config(arg=None):
  return common.get_config("gsm8k", "unified", arg)
