r"""Best-of-N on last-letter concatenation (OOD test lengths), every verifier.

  python -m genrm_jax.generate --checkpoint=$GEN --task=last_letter \
      --split=test --num_samples=16 --temperature=0.7 --out=$OUT/candidates.jsonl
  python -m genrm_jax.evaluate \
      --config=configs/eval/last_letter.py:root=$RUNS,candidates=$OUT/candidates.jsonl \
      --out=$OUT

Placeholder checkpoints: `ROOT/<run>/export`, the bundles `genrm_jax.train`
writes for configs/last_letter_<method>.py (ROOT defaults to `runs`; override
with `:root=DIR`): `last_letter_genrm`, `last_letter_cot`, `last_letter_disc`,
`last_letter_dpo` (reference: `last_letter_solve`, the generator DPO started
from). Drop verifiers you did not train with `:only=genrm+disc`.
"""

import ml_collections as mlc

TASK = 'last_letter'


def get_config(arg=None):
  args = dict(item.split('=', 1) for item in (arg or '').split(',') if '=' in item)
  root = args.get('root', 'runs')
  ckpt = lambda run: f'{root}/{TASK}_{run}/export'
  c = mlc.ConfigDict()
  c.task = TASK
  c.candidates = args.get('candidates', f'{root}/{TASK}_test_candidates.jsonl')
  c.out = ''
  c.n_max = 0  # 0: the smallest pool
  c.bootstrap = 1000
  verifiers = [
      dict(name='genrm', kind='genrm', checkpoint=ckpt('genrm'), options={}),
      dict(name='genrm_cot', kind='genrm_cot', checkpoint=ckpt('cot'),
           options=dict(num_rationales=8, temperature=0.7, max_new_tokens=256)),
      dict(name='disc', kind='disc', checkpoint=ckpt('disc'), options={}),
      dict(name='dpo', kind='dpo', checkpoint=ckpt('dpo'),
           options=dict(reference_checkpoint=ckpt('solve'), beta=0.1)),
  ]
  only = [v for v in args.get('only', '').split('+') if v]
  c.verifiers = [v for v in verifiers if not only or v['name'] in only]
  return c
