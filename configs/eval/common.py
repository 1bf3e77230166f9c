"""Shared pieces of the evaluation configs (`configs/eval/<name>.py`).

Arguments after the file name are `key=value` pairs separated by commas:
`root=DIR` (where the training runs' exported bundles live, default `runs`),
`candidates=C.jsonl`, `only=genrm+disc` (keep those verifiers),
`weighted_vote=true` (also each verifier's weighted vote), `bt=true` (also
the Bradley-Terry reward model of `configs/<task>_bt.py`, scored as a disc
verifier), and config specific ones such as `base=DIR`.
"""

import ml_collections as mlc


def parse_args(arg):
  return dict(item.split('=', 1) for item in (arg or '').split(',')
              if '=' in item)


def flag(args, key):
  """A `key=true` argument (1 / yes too); false when absent."""
  return args.get(key, 'false').lower() in ('1', 'true', 'yes')


def trained_verifiers(checkpoint, cot_max_new_tokens, with_dpo=True, with_bt=False):
  """GenRM, GenRM-CoT (MajV@8), discriminative, (optionally) DPO and
  (optionally) the Bradley-Terry RM, from `checkpoint(run)` -> the bundle of
  `configs/<task>_<run>.py`."""
  verifiers = [
      dict(name='genrm', kind='genrm', checkpoint=checkpoint('genrm'),
           options={}),
      dict(name='genrm_cot', kind='genrm_cot', checkpoint=checkpoint('cot'),
           options=dict(num_rationales=8, temperature=0.7,
                        max_new_tokens=cot_max_new_tokens)),
      dict(name='disc', kind='disc', checkpoint=checkpoint('disc'),
           options={}),
  ]
  if with_bt:  # its value head reads what disc's does (scored as disc)
    verifiers.append(dict(name='bt', kind='disc', checkpoint=checkpoint('bt'),
                          options={}))
  if with_dpo:  # its reference: the model DPO started from, which its export
    # records (its init_from); `reference_checkpoint` would name another
    verifiers.append(dict(name='dpo', kind='dpo', checkpoint=checkpoint('dpo'),
                          options=dict(beta=0.1)))
  return verifiers


def make_config(task, candidates, verifiers, args):
  c = mlc.ConfigDict()
  c.task = task
  c.candidates = args.get('candidates', candidates)
  c.out = ''
  c.n_max = 0  # 0: the smallest pool
  c.bootstrap = 1000
  # `:weighted_vote=true`: also each verifier's weighted vote (evaluate --weighted_vote).
  c.weighted_vote = flag(args, 'weighted_vote')
  only = [v for v in args.get('only', '').split('+') if v]
  unknown = sorted(set(only) - {v['name'] for v in verifiers})
  if unknown:
    raise ValueError(f':only={args["only"]}: no verifier {unknown}; these configs have '
                     f'{[v["name"] for v in verifiers]}')
  c.verifiers = [v for v in verifiers if not only or v['name'] in only]
  return c


def generated_task_config(task, arg, cot_max_new_tokens, candidates_file=None):
  """A generated task's config: every trained verifier of `ROOT/<task>_<run>/
  export` on the candidates `ROOT/<candidates_file>` (default
  `<task>_test_candidates.jsonl`)."""
  args = parse_args(arg)
  root = args.get('root', 'runs')
  verifiers = trained_verifiers(lambda run: f'{root}/{task}_{run}/export',
                                cot_max_new_tokens=cot_max_new_tokens,
                                with_bt=flag(args, 'bt'))
  candidates_file = candidates_file or f'{task}_test_candidates.jsonl'
  return make_config(task, f'{root}/{candidates_file}', verifiers, args)
