r"""Best-of-N on the paper's released GSM8K validation solutions.

  python -m genrm_jax.evaluate --config=configs/eval/gsm8k.py:root=$RUNS --out=$OUT

Candidates: `released:gsm8k/validation`, the paper's `rm_*_batch_08_val`
solutions (128 held-out GSM8K train questions, 125 correct + 87 incorrect;
pools of uneven size, so curves stop at the smallest pool), written to
OUT/candidates.jsonl from `$GENRM_DATA_DIR/genrm_critiques`. Pass
`:candidates=C.jsonl` for your own store (e.g. `genrm_jax.generate
--task=gsm8k --split=test`).

Placeholder checkpoints: `ROOT/<run>/export`, the bundles `genrm_jax.train`
writes for configs/gsm8k_<method>.py (ROOT defaults to `runs`): `gsm8k_genrm`,
`gsm8k_cot` (the paper's headline GenRM-CoT, MajV@8 here; the paper goes to
32), `gsm8k_disc`, `gsm8k_dpo` (reference: its recorded `init_from`), and an LLM-as-a-judge
baseline from the un-fine-tuned model (`:base=DIR`, default
`checkpoints/gemma2_9b` with its tokenizer.model in the directory: give the
bundle, or a bare Kaggle checkpoint plus `preset`/`tokenizer` options). Select
with `:only=genrm+genrm_cot`.
"""

try:
  from configs.eval import common
except ImportError:  # run from outside the repository root
  import os, sys  # pylint: disable=g-import-not-at-top,multiple-imports
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__)))))
  from configs.eval import common

TASK = 'gsm8k'


def get_config(arg=None):
  args = common.parse_args(arg)
  root = args.get('root', 'runs')
  verifiers = common.trained_verifiers(
      lambda run: f'{root}/{TASK}_{run}/export', cot_max_new_tokens=512,
      with_bt=common.flag(args, 'bt'))
  verifiers.append(dict(  # LLM-as-a-judge: the un-fine-tuned base model
      name='llm_judge', kind='llm_judge',
      checkpoint=args.get('base', 'checkpoints/gemma2_9b'),
      options=dict(num_rationales=8, temperature=0.7, max_new_tokens=512)))
  return common.make_config(TASK, 'released:gsm8k/validation', verifiers,
                            args)
