r"""The quickstart: the paper's pipeline on last-letter concatenation, tiny
models, CPU, about 14 minutes on 2 cores (`bash launch/quickstart.sh`).

  python -m genrm_jax.pipeline --config=configs/pipeline/quickstart.py \
      --workdir=runs/quickstart

Why these choices (what makes the table informative in minutes):
* A SentencePiece vocabulary of characters plus the prompt template's phrases
  as single tokens: sequences ~3x shorter than bytes, and a name's last
  letter is a token the model can copy.
* The generator trains on 2-4 names plus ~1% 5-name problems, and is
  evaluated on 5 names: out of distribution enough that its first sample is
  usually wrong (it tends to leave a name out: a systematic error, which
  majority voting cannot vote away), close enough that one of 16 is often
  right. (With ~3% it gets 70% of them right and errs by miscopying names,
  which majority voting fixes; with none, or on 6 names, it gets none.)
* Verifiers start from the generator's weights (GenRM is the same LM
  fine-tuned) and train on the generator's own candidates for 1,000 4- and
  5-name train problems, balanced within each list length (as many correct as
  incorrect solutions), so "5 names" does not give the label away. Each
  problem gives at most one correct row (its correct solution is one text,
  deduplicated): 300 problems gave 480 rows, which GenRM-CoT memorised
  (training loss 0.03; it copied the word list right for 80% of its own
  5-name problems, 37% of the evaluation ones; AUROC 0.57); 1,000 give
  ~1,450 and lift every verifier's AUROC (0.57 -> 0.85 for GenRM-CoT).
* GenRM-CoT averages K=8 sampled rationales per candidate; its rationales
  re-derive all 5 steps, as long as 320 tokens. The tiny model miscopies
  names in many of them and the average over K is what makes its verdicts
  good: Best-of-16 with K=1, 2, 4, 8 was 24%, 25%, 37%, 42% (last at K=2,
  tied with the best at K=8). Its 12,800 rationales are about 4 minutes of
  the run on 2 cores, p(Yes) read off the sampler's own step after each
  rationale's verification question (`fused_readout`; a second pass over
  prompt + rationale, as before, took 7.5 minutes). K=2
  (`--config.verifiers.genrm_cot.options.num_rationales=2`) saves about 3.
* Every verifier type of the paper's comparison: GenRM-CoT, direct GenRM,
  discriminative and DPO (about 2 minutes of the run on 2 cores).
"""

import ml_collections as mlc

try:
  from configs import common
except ImportError:  # run from outside the repository root
  import os, sys  # pylint: disable=g-import-not-at-top,multiple-imports
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__)))))
  from configs import common


def get_config(arg=None):
  """`:smoke` shrinks every stage to seconds (tests; checks the wiring only);
  `:unified` adds the paper's unified GenRM-CoT (`genrm_cot_unified`:
  verification + lambda x solution SFT on the correct candidates);
  `:greedy` adds the paper's "GenRM-CoT (Greedy)": the same GenRM-CoT model
  scored by one greedy rationale (`genrm_cot_greedy`, no training);
  `:transfer` asks whether the unified model is also a better solver: a
  control trained on its solution data alone, and both models' samples of
  the evaluation problems (WORKDIR/eval/generation.json); `:bt` adds a
  Bradley-Terry reward model (TRL's pairwise loss, not the paper's), trained
  as the discriminative one and scored like it."""
  args = common.parse_arg(arg, smoke=False, unified=False, greedy=False, transfer=False,
                          bt=False)
  c = mlc.ConfigDict()
  c.task = 'last_letter'
  c.seed = 0
  # Fail before training when a reference solution or oracle rationale of
  # the evaluation problems would not fit its max_new_tokens.
  c.check_lengths = True
  # True (`smoke`): each verifier-train problem's reference solution joins
  # its candidates, so that a generator of a few steps, which solves
  # nothing, still gives the verifiers correct and incorrect candidates.
  c.reference_candidates = False
  # A bundle directory (e.g. from genrm_jax.models.import_gguf) to start the
  # generator from; '' = a fresh tiny model with a trained vocabulary.
  c.base_model = ''

  # --- problems (tasks.sources.get_problems options) ------------------------
  c.problems = mlc.ConfigDict()
  c.problems.vocab = dict(split='train', train_lengths=(2, 3, 4, 5, 6),
                          train_size=3000)
  c.problems.generator = dict(split='train', train_lengths=(2, 3, 4, 5),
                              train_length_weights=(32, 32, 32, 1))
  c.problems.verifier_train = dict(split='train', train_lengths=(4, 5),
                                   train_size=1000, seed=1)
  c.problems.eval = dict(split='test', test_lengths=(5,), test_size=100)

  c.vocab = mlc.ConfigDict(dict(size=400, model_type='char'))

  # --- model: 2 layers, d=128 -----------------------------------------------
  c.model = mlc.ConfigDict()
  c.model.preset = 'tiny'
  c.model.overrides = dict(
      embed_dim=128, hidden_dim=512, num_heads=4, head_dim=32,
      num_kv_heads=1, sliding_window_size=512, dtype='float32')

  # --- training: every run, then per method ----------------------------------
  # Both layers unrolled (scan_unroll >= num_layers): on the 2-core CPU the
  # layer scan's stacked activations (zero-filled, then copied into) made
  # the generator's step 4.4 -> 3.5 steps/s (benchmarks/RESULTS.md).
  c.train = dict(
      batch_size=32, lr=3e-3, log_every=50, checkpoint_every=200, eval_every=0,
      mesh=(-1, 1, 1), async_checkpointing=False,
      optimizer=dict(warmup_steps=50, weight_decay=0.0),
      data=dict(eval_split=''), model=dict(remat_policy='none', scan_unroll=2),
      # --config.train.wandb.project=NAME: every run to W&B, grouped by the
      # pipeline's workdir name (genrm_jax/wandb_logging.py).
      wandb=dict(project='', group='', mode=''))
  c.runs = mlc.ConfigDict()
  # Prompts <= 48 tokens, solutions <= 80 (5 names: 77): none is cut.
  c.runs.solve = dict(total_steps=600, optimizer=dict(decay_steps=600),
                      data=dict(seq_len=128, inputs_len=48))
  # A few hundred balanced examples per verifier: a few epochs each.
  verifier = dict(total_steps=150, batch_size=16, lr=1e-3,
                  optimizer=dict(decay_steps=150, warmup_steps=20))
  c.runs.genrm = dict(verifier, data=dict(seq_len=192, balance_by='length'))
  # GenRM-CoT writes ~200-token rationales (5 names: up to ~290 with this
  # vocabulary; data_python.check_example_lengths stops a run that would cut
  # them before the verdict): 336 target tokens after a 144-token prompt
  # (the longest verifier-train prompt: 129); and 600 steps at the
  # generator's rate (200 at 1e-3 ended with the loss at 0.30, still falling).
  c.runs.cot = dict(verifier, total_steps=600, batch_size=8, lr=3e-3,
                    optimizer=dict(decay_steps=600, warmup_steps=50),
                    data=dict(seq_len=480, inputs_len=144, balance_by='length'))
  c.runs.disc = dict(verifier, data=dict(seq_len=192, balance_by='length'))
  # DPO pairs a problem's correct and incorrect solutions (at most one pair
  # a problem: its correct solution is one text), ~550 pairs; a row is the
  # prompt (<= 48 tokens) and one sampled solution (<= 96).
  c.runs.dpo = dict(verifier, data=dict(seq_len=144))

  # --- candidates -------------------------------------------------------------
  c.sampling = mlc.ConfigDict(dict(
      num_samples=16, temperature=0.8, max_new_tokens=96, batch_size=256,
      dtype=''))

  # --- verifiers (genrm_jax.verifiers kinds and options) ----------------------
  c.verifiers = mlc.ConfigDict()
  c.verifiers.genrm_cot = dict(method='cot', kind='genrm_cot', options=dict(
      num_rationales=8, temperature=0.7, max_new_tokens=320, batch_size=256))
  c.verifiers.genrm = dict(method='genrm', kind='genrm', options=dict(batch_size=256))
  c.verifiers.disc = dict(method='disc', kind='disc', options=dict(batch_size=256))
  # Scored by beta * (log p_policy - log p_reference) of the solution, the
  # reference being the generator it started from.
  c.verifiers.dpo = dict(method='dpo', kind='dpo', options=dict(batch_size=256, beta=0.1))

  # Unified GenRM-CoT (its run: the CoT run's settings, half of its rows
  # solution SFT on the correct candidates) and greedy GenRM-CoT.
  common.add_cot_variants(c, unified=args.unified, greedy=args.greedy,
                          transfer=args.transfer)
  if args.bt:
    common.add_bradley_terry(c)

  # weighted_vote: also each verifier's weighted vote (README, "Candidates,
  # scores, evaluation"; off here: it helped none of these verifiers).
  c.eval = mlc.ConfigDict(dict(n_max=16, bootstrap=1000, weighted_vote=False))

  if args.smoke:
    common.shrink_for_smoke(c, rationale_tokens=48)
    c.problems.vocab.train_size = 200
    c.problems.verifier_train.train_size = 6
    c.problems.eval.test_size = 4
    c.model.overrides = dict(c.model.overrides, embed_dim=32,
                             hidden_dim=64, num_heads=2, head_dim=16, num_kv_heads=1)
    c.train.batch_size = 4
    c.train.checkpoint_every = 5
    c.train.log_every = 5
    c.runs.solve.total_steps = 10
    for method in ('genrm', 'cot', 'unified', 'disc', 'bt', 'dpo', 'solve_correct'):
      if method in c.runs:
        c.runs[method].total_steps = 4
        c.runs[method].batch_size = 4
    c.sampling.num_samples = 4
    c.sampling.max_new_tokens = 48
    c.eval.n_max = 4
    c.eval.bootstrap = 20
  return c
