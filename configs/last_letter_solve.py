r"""last_letter: solution SFT on the correct candidates of a store (unified training's
solution data; the generator itself is fine-tuned on reference solutions,
the `last_letter_sft` task, as `python -m genrm_jax.pipeline` does).

Train (paper settings) on a store of your generator's candidates, TRAIN.jsonl
(`python -m genrm_jax.generate`; `python -m genrm_jax.pipeline` runs every stage):
  python -m genrm_jax.train --config=configs/last_letter_solve.py \
      --workdir=/tmp/last_letter_solve --config.init_from=/ckpts/<gemma checkpoint> \
      --config.data.vocabulary=/ckpts/tokenizer.model \
      --config.data.candidates.train=TRAIN.jsonl
Smoke test on a CPU (tiny model, about a minute):
  python -m genrm_jax.train --config=configs/last_letter_solve.py:tiny \
      --workdir=/tmp/last_letter_solve_tiny
"""

try:
  from configs import common
except ImportError:  # run from outside the repository root
  import os, sys  # pylint: disable=g-import-not-at-top,multiple-imports
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from configs import common


def get_config(arg=None):
  return common.get_config("last_letter", "solve", arg)
