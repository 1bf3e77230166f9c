r"""Easy-to-hard transfer: GSM8K-trained verifiers scoring MATH-500 candidates.

  python -m genrm_jax.generate --checkpoint=$GEN --task=math --split=math500 \
      --num_samples=32 --temperature=0.7 --max_new_tokens=1024 \
      --out=$OUT/candidates.jsonl
  python -m genrm_jax.evaluate \
      --config=configs/eval/math500_transfer.py:root=$RUNS,candidates=$OUT/candidates.jsonl \
      --out=$OUT

The candidates are graded with MATH's grader (`task=math`: symbolic
equivalence; majority vote groups answers by `grading.normalize_answer('math',
...)`) and carry each problem's `level` and `subject`, so results.json also
breaks accuracy down per level and per subject. The verifiers are the GSM8K
runs' bundles (placeholders `ROOT/gsm8k_<method>/export`, ROOT defaulting to
`runs`), used unchanged: the paper's Figure on transfer to harder problems.
"""

import ml_collections as mlc


def get_config(arg=None):
  args = dict(item.split('=', 1) for item in (arg or '').split(',') if '=' in item)
  root = args.get('root', 'runs')
  ckpt = lambda run: f'{root}/gsm8k_{run}/export'
  c = mlc.ConfigDict()
  c.task = 'math'
  c.candidates = args.get('candidates', f'{root}/math500_candidates.jsonl')
  c.out = ''
  c.n_max = 0
  c.bootstrap = 1000
  verifiers = [
      dict(name='genrm', kind='genrm', checkpoint=ckpt('genrm'), options={}),
      dict(name='genrm_cot', kind='genrm_cot', checkpoint=ckpt('cot'),
           options=dict(num_rationales=8, temperature=0.7, max_new_tokens=1024)),
      dict(name='disc', kind='disc', checkpoint=ckpt('disc'), options={}),
  ]
  only = [v for v in args.get('only', '').split('+') if v]
  c.verifiers = [v for v in verifiers if not only or v['name'] in only]
  return c
