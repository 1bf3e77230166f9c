r"""math: DPO verifier (chosen correct / rejected incorrect solutions).

MATH has no released verification data: train on a candidate store of your
generator's graded solutions to MATH training problems:
  python -m genrm_jax.generate --checkpoint=$GEN --task=math --split=train \
      --num_samples=16 --temperature=0.7 --max_new_tokens=1024 --out=$OUT/train.jsonl
  python -m genrm_jax.train --config=configs/math_dpo.py --workdir=/tmp/math_dpo \
      --config.init_from=/ckpts/<gemma checkpoint> \
      --config.data.vocabulary=/ckpts/tokenizer.model \
      --config.data.candidates.train=$OUT/train.jsonl
Periodic eval needs held-out *training* problems (MATH has no validation
split; test and MATH-500 are for Best-of-N): add
`--config.data.candidates.validation=V.jsonl --config.data.eval_split=validation`.
Evaluate on MATH-500: configs/eval/math.py.
Smoke test on a CPU (tiny model, about a minute):
  python -m genrm_jax.train --config=configs/math_dpo.py:tiny \
      --workdir=/tmp/math_dpo_tiny
"""

try:
  from configs import common
except ImportError:  # run from outside the repository root
  import os, sys  # pylint: disable=g-import-not-at-top,multiple-imports
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  from configs import common


def get_config(arg=None):
  return common.get_config("math", "dpo", arg)
