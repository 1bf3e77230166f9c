r"""last_letter: pairwise (Bradley-Terry) reward model, TRL's RewardTrainer loss.

Not one of the paper's verifiers: the value head of `last_letter_disc` trained on
pairs (a correct and an incorrect solution of one problem, DPO's pairs),
-log sigmoid(r_chosen - r_rejected). Score it as a disc verifier
(`genrm_jax.score --verifier=disc`: the sigmoid of the same value).

Train (the paper's optimizer settings):
  python -m genrm_jax.train --config=configs/last_letter_bt.py \
      --workdir=/tmp/last_letter_bt --config.init_from=/ckpts/<gemma checkpoint> \
      --config.data.vocabulary=/ckpts/tokenizer.model \
      --config.data.candidates.train=TRAIN.jsonl
Smoke test on a CPU (tiny model, about a minute):
  python -m genrm_jax.train --config=configs/last_letter_bt.py:tiny \
      --workdir=/tmp/last_letter_bt_tiny
"""

try:
  from configs import common
except ImportError:  # run from outside the repository root
  import os, sys  # pylint: disable=g-import-not-at-top,multiple-imports
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from configs import common


def get_config(arg=None):
  return common.get_config("last_letter", "bt", arg)
