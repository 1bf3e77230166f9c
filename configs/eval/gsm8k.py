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
32), `gsm8k_disc`, `gsm8k_dpo` (reference `gsm8k_solve`), and an LLM-as-a-judge
baseline from the un-fine-tuned model (`:base=DIR`, default
`checkpoints/gemma2_9b` with its tokenizer.model in the directory: give the
bundle, or a bare Kaggle checkpoint plus `preset`/`tokenizer` options). Select
with `:only=genrm+genrm_cot`.
"""

import ml_collections as mlc

TASK = 'gsm8k'


def get_config(arg=None):
  args = dict(item.split('=', 1) for item in (arg or '').split(',') if '=' in item)
  root = args.get('root', 'runs')
  ckpt = lambda run: f'{root}/{TASK}_{run}/export'
  c = mlc.ConfigDict()
  c.task = TASK
  c.candidates = args.get('candidates', 'released:gsm8k/validation')
  c.out = ''
  c.n_max = 0
  c.bootstrap = 1000
  verifiers = [
      dict(name='genrm', kind='genrm', checkpoint=ckpt('genrm'), options={}),
      dict(name='genrm_cot', kind='genrm_cot', checkpoint=ckpt('cot'),
           options=dict(num_rationales=8, temperature=0.7, max_new_tokens=512)),
      dict(name='disc', kind='disc', checkpoint=ckpt('disc'), options={}),
      dict(name='dpo', kind='dpo', checkpoint=ckpt('dpo'),
           options=dict(reference_checkpoint=ckpt('solve'), beta=0.1)),
      dict(name='llm_judge', kind='llm_judge',
           checkpoint=args.get('base', 'checkpoints/gemma2_9b'),
           options=dict(num_rationales=8, temperature=0.7, max_new_tokens=512)),
  ]
  only = [v for v in args.get('only', '').split('+') if v]
  c.verifiers = [v for v in verifiers if not only or v['name'] in only]
  return c
