"""Shared defaults for every experiment config, and `parse_arg`.

Each `configs/<task>_<method>.py` calls `get_config(task, method, arg)`; the
paper's hyperparameters (Zhang et al., 2025, experiment setup) are the
defaults: AdamW, peak LR 2e-6, weight decay 1e-2, grad-norm clip 1.0, 1000
linear warmup steps, cosine decay to 10% of peak over 200K steps, 300K steps,
batch 64. Arguments after the file name (`file.py:tiny,seed=3`) are parsed by
`parse_arg` as in big_vision: `tiny` shrinks model, data, batch and steps so
any config runs on a 2-core CPU in about a minute.
"""

from __future__ import annotations

import ml_collections as mlc

TASKS = ("last_letter", "word_sort", "gsm8k", "math")
# File-name method -> `config.method`.
METHODS = {"genrm": "genrm", "cot": "genrm_cot", "unified": "unified",
           "disc": "disc", "bt": "bt", "dpo": "dpo", "solve": "solve"}
# `config.method` -> seqio task / mixture suffix (tasks/registry.py).
TASK_SUFFIX = {"genrm": "genrm", "genrm_cot": "genrm_cot",
               "unified": "genrm_cot_unified", "disc": "disc", "bt": "bt", "dpo": "dpo",
               "solve": "solve"}

# Paper: Gemma-2B for the algorithmic tasks; Gemma 2B/7B and Gemma-2 9B for
# GSM8K, the headline verifier being Gemma-2 9B (MATH: as GSM8K).
MODEL_PRESETS = {"last_letter": "gemma_2b", "word_sort": "gemma_2b",
                 "gsm8k": "gemma2_9b", "math": "gemma2_9b"}
# Not given in the paper: long enough for the prompt, solution and (CoT)
# verification rationale of each task. MATH's question + reference solution
# is 2,777 characters at the 99th percentile of its training set (GSM8K's
# whole example fits 1024 tokens), so twice GSM8K's; `train` checks the cut
# fraction before it starts.
SEQ_LEN = {"last_letter": 512, "word_sort": 512, "gsm8k": 1024, "math": 2048}


def parse_arg(arg: str | None, lazy: bool = False, **spec) -> mlc.ConfigDict:
  """Parses `'tiny,key=value,...'` (big_vision's `bvcc.parse_arg`).

  `spec` gives the known keys and their defaults; a value is converted to the
  default's type (bools accept true/false/1/0), a bare key means True. With
  `lazy=False` an unknown key is an error naming the known ones.
  """
  result = mlc.ConfigDict(dict(spec))
  for item in (arg or "").split(","):
    item = item.strip()
    if not item:
      continue
    key, eq, value = item.partition("=")
    key = key.strip()
    if key not in spec and not lazy:
      raise ValueError(f"Unknown config argument {key!r} in {arg!r}; known: "
                       f"{sorted(spec)}.")
    if not eq:
      result[key] = True
      continue
    default = spec.get(key)
    if isinstance(default, bool):
      if value.lower() not in ("true", "false", "1", "0"):
        raise ValueError(f"{key}={value!r}: expected true/false.")
      result[key] = value.lower() in ("true", "1")
    elif isinstance(default, int):
      result[key] = int(value)
    elif isinstance(default, float):
      result[key] = float(value)
    elif key in spec:
      result[key] = value
    else:
      with result.unlocked():
        result[key] = value
  return result


def get_config(task: str, method: str, arg: str | None = None
               ) -> mlc.ConfigDict:
  """The config for `task` x `method` (file-name method: genrm, cot, ...)."""
  if task not in TASKS:
    raise ValueError(f"task={task!r}; expected one of {TASKS}.")
  if method not in METHODS:
    raise ValueError(f"method={method!r}; expected one of {sorted(METHODS)}.")
  args = parse_arg(arg, tiny=False)
  c = mlc.ConfigDict()
  c.method = METHODS[method]

  # --- keys every training config has (DESIGN.md) ---------------------------
  c.total_steps = 300_000
  c.checkpoint_every = 1000  # 0: no checkpoints at all (benchmarks)
  c.log_every = 100
  c.seed = 0
  c.batch_size = 64  # global, over all hosts
  c.lr = 2e-6  # peak; the paper swept {2e-6, 1e-6, 5e-7}

  c.eval_every = 1000  # 0: never
  c.eval_steps = 16  # eval batches per evaluation

  # --- model ----------------------------------------------------------------
  # `preset` is a `gemma.get_config` name; every other non-None field is an
  # override with the official TransformerConfig field name.
  c.model = mlc.ConfigDict()
  c.model.preset = MODEL_PRESETS[task]
  c.model.dtype = "bfloat16"
  c.model.param_dtype = "float32"
  c.model.remat_policy = "full"
  # einsum (fp32 scores, any backend) | cudnn (fused flash attention on NVIDIA
  # GPUs: no [B, N, T, S] scores in memory) | xla (cudnn's portable twin).
  c.model.attention_impl = "einsum"
  c.model.scan_unroll = 1
  c.model.num_layers = mlc.config_dict.placeholder(int)
  # LoRA: > 0 trains rank-`lora_rank` adapters (scale lora_alpha / lora_rank)
  # on `lora_targets` ('all', 'attention', 'mlp' or a comma list of
  # gemma.LORA_TARGETS) with the rest frozen; the export folds them in.
  c.model.lora_rank = 0
  c.model.lora_alpha = 16.0
  c.model.lora_targets = "all"
  # An official Gemma checkpoint (Kaggle/orbax layout) to start from; params
  # only. Used when the workdir has no checkpoint yet. '' = random init.
  c.init_from = ""

  # --- data -----------------------------------------------------------------
  c.data = mlc.ConfigDict()
  # 'synthetic' (no TF; genrm_jax/data_synthetic.py), 'seqio', or 'python'
  # (the seqio tasks' examples, tokenised and packed without TF:
  # genrm_jax/data_python.py, for GPU images without TensorFlow).
  c.data.source = "seqio"
  c.data.task_module = "tasks.registry"  # imported for seqio (t5x-style)
  # seqio task / mixture name (tasks/registry.py); unified = GenRM-CoT +
  # lambda x solution SFT, as in the paper's unified runs.
  c.data.task = f"{task}_{TASK_SUFFIX[c.method]}"
  # 'byte' (tiny runs) or the SentencePiece tokenizer.model of the model.
  c.data.vocabulary = ""
  # Candidate stores {split: path} the verification tasks are built from
  # (python -m genrm_jax.generate); GSM8K works without (released data).
  c.data.candidates = mlc.ConfigDict({"train": "", "validation": ""})
  # GenRM-CoT rationales for GSM8K/MATH stores {split: path}
  # (python -m genrm_jax.synthesize); algorithmic tasks use the oracle.
  c.data.rationales = mlc.ConfigDict({"train": "", "validation": ""})
  # Prompt tokens of seq_len; 0: half, or all but 8 for direct GenRM (whose
  # target is only the verdict; input_pipeline.default_inputs_len).
  c.data.inputs_len = 0
  # Training stops before it starts when the lengths would cut more than
  # this fraction of the examples (a sample of 2,000, tokenised;
  # data_python.check_example_lengths): a cut CoT target loses its verdict.
  c.data.max_truncated_fraction = 0.01
  # > 0: train on the verification examples of this many training problems
  # only (a seeded subset; smaller subsets nested in larger ones), for
  # data-scaling curves like the paper's. 0: all.
  c.data.train_problems = 0
  # > 0: each training solution keeps its first that many synthesised
  # rationales that agree with its label (`synthesize --num_rationales=K`
  # writes K); the paper's "more rationales per solution" ablation. 0: all.
  c.data.rationales_per_solution = 0
  c.data.max_correct = 16  # per problem, as in the paper
  c.data.max_incorrect = 16
  # Keep as many correct as incorrect candidates within each group, so that
  # what defines a group cannot give the label away: 'problem', 'length'
  # (number of words; algorithmic tasks) or '' (no balancing).
  c.data.balance_by = ""
  # The generated tasks' problems (tasks/sources.py; empty = the defaults):
  # e.g. train_lengths=(2, 3, 4, 5), train_length_weights=(32, 32, 32, 3).
  c.data.problems = mlc.ConfigDict({
      "train_lengths": (), "train_length_weights": (), "test_lengths": (),
      "train_size": 0, "validation_size": 0, "test_size": 0, "seed": 0})
  c.data.eval_task = ""  # '' = the same task's eval split
  c.data.eval_split = "validation"  # '' = no periodic eval
  if task == "math":
    # MATH has no released verification data: the configs/math_*.py runs
    # train on a store of your generator's graded solutions to MATH's
    # training problems,
    #   python -m genrm_jax.generate --checkpoint=$GEN --task=math \
    #       --split=train --num_samples=16 --max_new_tokens=1024 --out=TRAIN.jsonl
    # (CoT runs also on `python -m genrm_jax.synthesize` rationales of it:
    # data.rationales.train), and are evaluated on MATH-500 by
    # configs/eval/math.py. MATH has no validation split (train / test /
    # math500), so no periodic eval by default: give a store of held-out
    # *training* problems (data.candidates.validation=V.jsonl with
    # eval_split=validation); never test / MATH-500 problems.
    c.data.eval_split = ""
  c.data.seq_len = SEQ_LEN[task]
  c.data.pack = c.method not in ("disc", "bt", "dpo")
  # Unified GenRM: solution-SFT examples per verification example (the
  # paper's lambda, realised as a mixing rate lambda / (1 + lambda)).
  c.data.unified_lambda = 1.0
  c.data.synthetic_min_digits = 3
  c.data.synthetic_max_digits = 12

  # --- method-specific ------------------------------------------------------
  # Yes/No token ids of the verdict (GenRM accuracy/AUROC); -1 = ask the data
  # source (the synthetic source knows its ids; seqio reads the vocabulary).
  c.yes_token_id = -1
  c.no_token_id = -1
  # > 0: the loss reads log-probs from the final hidden states in chunks of
  # this many positions, never building the fp32 [B, L, V] logits (Gemma's
  # 256K vocabulary); 0 = the plain full-logits loss. Same values either way.
  c.loss_chunk_size = 0
  # The output projection only at target positions, up to K a row, in any
  # batch where no row has more (others project every position: the same
  # numbers either way; losses.token_stats_from_hidden). With Gemma's 256K
  # vocabulary the projection is most of a small model's step, and a
  # prompt's positions need none (benchmarks/verifier_step.py). -1 = for a
  # vocabulary of 32K+ entries (every Gemma tokenizer; train.loss_positions),
  # by method: 16 for `genrm` (packed rows, two targets an example: verdict
  # + EOS); the targets' share of seq_len (seq_len - inputs_len) for the
  # other generative methods and `dpo`; 0 otherwise, and for byte or
  # character vocabularies (the tiny models), whose projection is cheap.
  c.loss_positions = -1
  # Cast the weights to the compute dtype once a step (a microbatch, with
  # grad accumulation), outside the layer scan, rather than at each use,
  # forward and backward: the same values and gradients (the embedding table
  # stays fp32, so its gradient sums in fp32: train._compute_params);
  # XLA's H100 program of the Gemma-2B step moves 4% fewer bytes for one
  # compute-dtype copy of the weights in memory (benchmarks/RESULTS.md).
  c.cast_params_once = True
  c.dpo = mlc.ConfigDict()
  c.dpo.beta = 0.1  # not given in the paper; the DPO paper's default
  # True: the frozen reference's log-probs of every train/eval row are
  # computed once before the loop (WORKDIR/reference_logps.npz, reused on
  # resume; genrm_jax/dpo_reference.py), so the reference's params leave the
  # device and each step drops the reference forward pass, about a quarter
  # of a DPO step's compute. False: the reference runs in every step.
  c.dpo.precompute_reference = False
  c.bt = mlc.ConfigDict()
  # > 0: + coefficient * (r_chosen + r_rejected)^2, TRL's
  # center_rewards_coefficient (off there by default; its docs recommend 0.01).
  c.bt.center_rewards_coefficient = 0.0

  # --- optimizer (paper defaults) -------------------------------------------
  c.optimizer = mlc.ConfigDict()
  c.optimizer.b1 = 0.9
  c.optimizer.b2 = 0.999
  c.optimizer.eps = 1e-8
  c.optimizer.weight_decay = 1e-2
  c.optimizer.weight_decay_mask = "no_norms"  # see genrm_jax/optimizer.py
  c.optimizer.grad_clip_norm = 1.0
  c.optimizer.warmup_steps = 1000
  c.optimizer.decay_steps = 200_000
  c.optimizer.min_lr_ratio = 0.1
  c.optimizer.mu_dtype = ""  # '' = param dtype; 'bfloat16' halves the memory
  c.optimizer.grad_accum_steps = 1  # microbatches per step (exact)

  # --- scale and checkpoints ------------------------------------------------
  c.mesh = (1, -1, 1)  # (data, fsdp, tensor); one entry may be -1
  c.keep_checkpoints = 3  # the latest N (>= 1; checkpoint_every=0: none)
  # Also keep the params of the best evaluation in WORKDIR/best, by this eval
  # metric (e.g. 'eval/loss' with best_mode='min'); '' = off.
  c.best_metric = ""
  c.best_mode = "max"
  c.async_checkpointing = True
  c.export_params = True  # WORKDIR/export/params at the end (Kaggle layout)
  c.peak_tflops_per_device = 0.0  # > 0: log MFU (6 * params * tokens / s)
  # Trace steps start_step .. start_step + num_steps - 1 into WORKDIR/profile
  # (genrm_jax/profiling.py); 0 = off.
  c.profile = mlc.ConfigDict({"start_step": 0, "num_steps": 5})
  # Weights & Biases: a project mirrors metrics.jsonl into a W&B run
  # (genrm_jax/wandb_logging.py; pip install -e '.[wandb]'); '' = off.
  # --config.wandb.mode=offline writes WORKDIR/wandb/ for `wandb sync`.
  c.wandb = mlc.ConfigDict({"project": "", "entity": "", "name": "",
                            "group": "", "tags": "", "notes": "", "mode": "",
                            "id": ""})

  if args.tiny:
    # A few seconds of steps after compilation on a 2-core CPU; the loss
    # visibly falls for every method.
    c.total_steps = 100
    c.checkpoint_every = 50
    c.log_every = 10
    c.batch_size = 8
    c.lr = 3e-3
    c.eval_every = 50
    c.eval_steps = 2
    c.model.preset = "tiny"
    c.model.dtype = "float32"
    # The tiny run trains on the synthetic task (no TF, no data files); set
    # --config.data.source=seqio (with data.vocabulary=byte and candidate
    # stores) for the real tasks.
    c.data.source = "synthetic"
    c.data.eval_split = "validation"  # the synthetic task has one (MATH aside)
    c.model.remat_policy = "none"
    c.data.seq_len = 64
    c.data.synthetic_min_digits = 1
    c.data.synthetic_max_digits = 4
    c.optimizer.warmup_steps = 10
    c.optimizer.decay_steps = 1000
    c.mesh = (-1, 1, 1)
    c.export_params = False
    if c.method in ("disc", "bt"):
      # The value head must learn a comparison (is the candidate the reversed
      # problem?); the 2-layer model learns it within 100 steps only on
      # one-digit problems.
      c.batch_size = 16
      c.lr = 1e-2
      c.data.synthetic_max_digits = 1
  return c


def add_cot_variants(c: mlc.ConfigDict, *, unified: bool, greedy: bool,
                     transfer: bool = False) -> None:
  """Pipeline configs (configs/pipeline/): the paper's GenRM-CoT variants
  beside `c.verifiers.genrm_cot` and its run `c.runs.cot`.

  `c.runs.unified` is always set (the CoT run with lambda = 1 solution SFT
  mixed in); `unified` adds its verifier, `genrm_cot_unified`, scored like
  GenRM-CoT; `greedy` adds `genrm_cot_greedy`, the paper's "GenRM-CoT
  (Greedy)": GenRM-CoT's model (`run_of`, no training) scored by one
  rationale at temperature 0. `transfer` (the paper's transfer to
  generation: does verification data make a better solver?) adds the
  unified verifier if missing and `c.runs.solve_correct`, the control: the
  unified run's schedule on its solution data alone (`<task>_solve`, the
  verifier-train problems' correct candidates); the pipeline then samples
  the evaluation problems with both models (`c.generation_transfer`).
  """
  # Deep copies (`to_dict`): a nested ConfigDict assigned as is stays one
  # object, and an override of one verifier's options or one run's
  # optimizer would then change the other's too.
  cot_run, cot = c.runs.cot.to_dict(), c.verifiers.genrm_cot.to_dict()
  c.runs.unified = dict(cot_run, data=dict(cot_run["data"], unified_lambda=1.0))
  if unified or transfer:
    c.verifiers.genrm_cot_unified = dict(cot, method="unified")
  c.generation_transfer = bool(transfer)
  if transfer:
    solve_data = c.runs.solve.data.to_dict()
    c.runs.solve_correct = dict(
        {k: v for k, v in cot_run.items() if k != "data"},
        data=dict(task=f"{c.task}_solve", seq_len=solve_data["seq_len"],
                  inputs_len=solve_data.get("inputs_len", 0)))
  if greedy:
    c.verifiers.genrm_cot_greedy = dict(
        cot, run_of="genrm_cot",
        options=dict(cot["options"], num_rationales=1, temperature=0.0))


def add_bradley_terry(c: mlc.ConfigDict) -> None:
  """Pipeline configs' `bt`: the Bradley-Terry reward model (method `bt`,
  not one of the paper's verifiers) beside the discriminative one, trained
  with its run's settings (a batch of pairs: twice its rows) and scored as
  a disc verifier (the same value head and tokens)."""
  c.runs.bt = c.runs.disc.to_dict()  # a copy: overrides of one stay its own
  c.verifiers.bt = dict(c.verifiers.disc.to_dict(), method="bt")


def shrink_for_smoke(c: mlc.ConfigDict, *, rationale_tokens: int) -> None:
  """What both pipeline configs' `smoke` (a wiring check; its numbers mean
  nothing) sets alike: no length checks (short samples on purpose), the
  verifier-train problems' reference solutions as candidates (a generator of
  a few steps solves nothing), cut examples accepted (its samples are
  garbage of any length), and every GenRM-CoT verifier at K <= 2 rationales
  of `rationale_tokens`."""
  c.check_lengths = False
  c.reference_candidates = True
  c.train.data.max_truncated_fraction = 1.0
  for name in c.verifiers:
    if c.verifiers[name].kind == "genrm_cot":
      c.verifiers[name].options.update(
          num_rationales=min(2, c.verifiers[name].options.num_rationales),
          max_new_tokens=rationale_tokens)
