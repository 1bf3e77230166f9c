r"""Fine-tunes Gemma as a verifier (GenRM, GenRM-CoT, unified, disc RM, DPO) or
as a generator (solution SFT), in the style of big_vision's `train.py`.

  python -m genrm_jax.train --config=configs/gsm8k_cot.py --workdir=DIR
  python -m genrm_jax.train --config=configs/last_letter_genrm.py:tiny \
      --workdir=/tmp/ll --config.total_steps=50

One readable `train_and_evaluate` in phases: mesh -> data -> shapes ->
shardings -> state (created sharded) -> restore -> jitted update -> loop.
Configs are locked (a mistyped `--config.key` is an error). The workdir gets
`metrics.jsonl`, TensorBoard events, orbax checkpoints in `checkpoints/`
(DPO with `dpo.precompute_reference`: `reference_logps.npz`, the reference's
log-probs of every row, genrm_jax/dpo_reference.py), and
(if `config.export_params`) the final params in the official Gemma layout in
`export/params`. Running again with the same workdir resumes from the latest
checkpoint and continues exactly as an uninterrupted run would: the state
holds params, optimizer state and step; batches are a function of the step;
the per-step RNG is `fold_in(rng, step)`.

WORKDIR may be a URL (`--workdir=gs://bucket/run`, as launch/tpu_pod.sh
passes): files go through `etils.epath`, checkpoints through orbax; see
metric_writers.py for how metrics.jsonl is kept where files cannot be
appended to.

Several hosts: set `GENRM_JAX_INIT=1` (or `--jax_distributed`) so
`jax.distributed.initialize()` runs; each host reads its own rows; only
process 0 logs and writes metrics.

Nothing here imports TensorFlow: `data.source='synthetic'` trains without it,
and the seqio source lives in `genrm_jax/input_pipeline.py`. (A gs:// workdir
is the exception: where TF is installed, epath reaches GCS through
`tf.io.gfile`.)
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging as std_logging
import math
import os
import signal
import time
from typing import Any, Iterator

from absl import app
from absl import flags
from absl import logging
from etils import epath
import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec as P
from ml_collections import config_flags
import numpy as np
import optax

from genrm_jax import checkpointing
from genrm_jax import data_synthetic
from genrm_jax import dpo_reference
from genrm_jax import lora
from genrm_jax import losses
from genrm_jax import metric_writers
from genrm_jax import optimizer as optimizer_lib
from genrm_jax import paths
from genrm_jax import profiling
from genrm_jax import sharding as sharding_lib
from genrm_jax import wandb_logging
from genrm_jax.models import bundle
from genrm_jax.models import checkpoints as model_checkpoints
from genrm_jax.models import gemma

FLAGS = flags.FLAGS


def define_flags() -> None:
  """The CLI flags. Defined only when run as a program, so that importing
  this module (tests, notebooks, other CLIs with their own `--config`) never
  collides in absl's global flag registry."""
  config_flags.DEFINE_config_file(
      "config", None, "Experiment config file, e.g. configs/gsm8k_cot.py:tiny",
      lock_config=True)
  flags.DEFINE_string("workdir", None, "Where to write checkpoints, "
                      "metrics.jsonl and TensorBoard events.")
  flags.DEFINE_bool(
      "jax_distributed",
      os.environ.get("GENRM_JAX_INIT", "") not in ("", "0"),
      "Call jax.distributed.initialize() (multi-host; default from "
      "$GENRM_JAX_INIT).")
  # Offline compile check (genrm_jax/compile_check.py): no training, no data.
  flags.DEFINE_bool(
      "compile_only", False, "AOT-compile the train step for --topology and "
      "report per-device memory; trains nothing (--workdir not needed).")
  flags.DEFINE_string(
      "topology", "v5p-32", "With --compile_only: a TPU accelerator type "
      "(v5p-32, v6e-16, v4-8, ...), a libtpu topology (v5p:2x2x4), a GPU "
      "(h100, h100:8, h200, a100; needs the gpu_aot extra) or cpu:N.")


# Test hook: SIGKILL this process right after step N (a save may be in
# flight), to prove that a kill -9 loses nothing but the steps since the last
# finished checkpoint.
KILL_AT_STEP_ENV = "GENRM_TEST_KILL_AT_STEP"


def _log(msg: str, *args) -> None:
  if jax.process_index() == 0:
    logging.info(msg, *args)


# -----------------------------------------------------------------------------
# Data hooks: the one place that knows where batches come from.
# -----------------------------------------------------------------------------


def _local_batches(config, *, split: str, start_step: int,
                   num_steps: int | None, process_index: int,
                   process_count: int) -> Iterator[dict[str, np.ndarray]]:
  """This host's rows of every global batch from `start_step` on (numpy)."""
  source = config.data.source
  if source == "synthetic":
    return data_synthetic.SyntheticSource(config).iterate(
        config.batch_size, split="train" if split == "train" else "eval",
        start_step=start_step, num_steps=num_steps,
        process_index=process_index, process_count=process_count)
  if source == "seqio":
    # Contract for the seqio pipeline (genrm_jax/input_pipeline.py): the same
    # arguments, yielding numpy dicts with the fields of `losses.batch_kind`,
    # deterministic in (config.seed, step) so that resume is exact.
    from genrm_jax import input_pipeline  # pylint: disable=g-import-not-at-top
    return input_pipeline.make_local_iterator(
        config, split=split, start_step=start_step, num_steps=num_steps,
        process_index=process_index, process_count=process_count)
  if source == "python":  # the same tasks without seqio/TensorFlow
    from genrm_jax import data_python  # pylint: disable=g-import-not-at-top
    return data_python.make_local_iterator(
        config, split=split, start_step=start_step, num_steps=num_steps,
        process_index=process_index, process_count=process_count)
  raise ValueError(f"config.data.source={source!r}; expected 'synthetic', "
                   "'seqio' or 'python'.")


def make_global_batch(local: dict[str, np.ndarray],
                      mesh: jax.sharding.Mesh) -> dict[str, jax.Array]:
  """Assembles host-local rows into global arrays sharded over the batch."""
  return {
      k: jax.make_array_from_process_local_data(
          sharding_lib.batch_sharding(mesh, np.ndim(v)), np.asarray(v))
      for k, v in local.items()
  }


def make_data_iterator(config, mesh, process_index: int | None = None,
                       process_count: int | None = None, start_step: int = 0,
                       *, split: str = "train",
                       num_steps: int | None = None,
                       ref_table: dpo_reference.ReferenceTable | None = None
                       ) -> Iterator[dict[str, jax.Array]]:
  """Global batches for steps `start_step, start_step + 1, ...`.

  Dispatches on `config.data.source`; each host reads only its rows.
  `split` is 'train' or the eval split (`config.data.eval_split`).
  `ref_table` (DPO, `config.dpo.precompute_reference`): each host's rows
  get their precomputed `chosen_ref_logps` / `rejected_ref_logps`.
  """
  process_index = (jax.process_index() if process_index is None
                   else process_index)
  process_count = (jax.process_count() if process_count is None
                   else process_count)
  batches = _local_batches(config, split=split, start_step=start_step,
                           num_steps=num_steps, process_index=process_index,
                           process_count=process_count)
  if ref_table is not None:
    batches = ref_table.attach(batches, split=split, start_step=start_step)
  for local in batches:
    yield make_global_batch(local, mesh)


def verdict_token_ids(config) -> tuple[int | None, int | None]:
  """The Yes/No token ids of the verdict (None if the method has none)."""
  if config.method not in losses.VERDICT_METHODS:
    return None, None
  if config.yes_token_id >= 0 and config.no_token_id >= 0:
    return int(config.yes_token_id), int(config.no_token_id)
  if config.data.source == "synthetic":
    return data_synthetic.YES, data_synthetic.NO
  # seqio and python sources: the vocabulary's own ids (the SentencePiece
  # model, or bytes, as the data is tokenised; no seqio/TF needed to read it).
  from genrm_jax import input_pipeline  # pylint: disable=g-import-not-at-top
  from genrm_jax.models import tokenizer  # pylint: disable=g-import-not-at-top
  return input_pipeline.verdict_ids(
      tokenizer.from_spec(config.data.vocabulary or "byte"))


# -----------------------------------------------------------------------------
# Model, state and step functions (pure; jitted in `train_and_evaluate`).
# -----------------------------------------------------------------------------


def model_config(config, platform: str | None = None
                 ) -> gemma.TransformerConfig:
  """The model of `config`, for `platform` (default: jax's backend; the
  compile check passes the platform it compiles for)."""
  fields = config.model.to_dict()
  preset = fields.pop("preset")
  if isinstance(fields.get("lora_targets"), str):
    fields["lora_targets"] = lora.parse_targets(fields["lora_targets"])
  mcfg = gemma.get_config(preset, **{k: v for k, v in fields.items()
                                     if v is not None})
  platform = platform or jax.default_backend()
  if mcfg.attention_impl == "cudnn" and platform != "gpu":
    # Else JAX fails deep inside the first step ("cuDNN is not detected").
    raise ValueError(
        f"model.attention_impl='cudnn' needs an NVIDIA GPU, and this run's "
        f"JAX backend is {platform!r}: set "
        "--config.model.attention_impl=einsum (or xla).")
  return mcfg


def trainable_params(params, mcfg):
  """The params the optimizer updates: all of them, or under LoRA
  (`mcfg.lora_rank`) the adapters and the value head (`lora.partition`)."""
  return lora.partition(params)[0] if mcfg.lora_rank else params


def _state_from_model_params(model_params, mcfg, tx, method):
  params = {"model": model_params}
  if method in losses.VALUE_HEAD_METHODS:
    params["value_head"] = losses.init_value_head(mcfg.embed_dim)
  return {"params": params, "opt_state": tx.init(trainable_params(params, mcfg)),
          "step": jnp.zeros((), jnp.int32)}


def _input_tokens(batch) -> jax.Array:
  """Non-padding input tokens in the batch (for tokens/s and MFU)."""
  return sum(jnp.sum(v != 0) for k, v in batch.items()
             if k.endswith("segment_ids"))


def _microbatches(batch, n: int):
  """[B, ...] -> [n, B/n, ...], microbatch i = rows i, i + n, ...: each device
  keeps its own rows (a batch-sharded array needs no communication)."""
  def split(x):
    if x.shape[0] % n:
      raise ValueError(f"batch of {x.shape[0]} rows does not split into "
                       f"optimizer.grad_accum_steps={n} microbatches.")
    return x.reshape(x.shape[0] // n, n, *x.shape[1:]).swapaxes(0, 1)
  return jax.tree.map(split, batch)


def step_kwargs(config, model, yes_id, no_id) -> dict[str, Any]:
  """What `train_step` and `eval_step` take from `config` besides the model
  and the verdict ids (the trainer and the compile check build it alike)."""
  return dict(model=model, method=config.method, beta=float(config.dpo.beta),
              center_rewards=float(config.get("bt", {}).get("center_rewards_coefficient",
                                                            0.0)),
              yes_id=yes_id, no_id=no_id,
              loss_chunk_size=int(config.get("loss_chunk_size", 0)),
              loss_positions=loss_positions(config, model.config.num_embed),
              cast_params_once=bool(config.get("cast_params_once", False)),
              lora_reference=lora_reference(config, model.config))


# Direct GenRM's targets a packed row can hold before a step projects every
# position: two an example (" Yes"/" No" + EOS).
GENRM_LOSS_POSITIONS = 16
# The vocabulary size from which -1 turns the target-positions projection on:
# every Gemma tokenizer (256K, 262K). A byte or character vocabulary's
# projection is a small share of the step (the tiny models': a tenth).
LARGE_VOCAB = 32768


def loss_positions(config, num_embed: int) -> int:
  """`config.loss_positions`, with -1 resolved (configs/common.py) for a
  model of `num_embed` vocabulary entries: 0 below LARGE_VOCAB; else direct
  GenRM's few targets a packed row; for the other generative methods and
  DPO, the targets' share of `seq_len` (what is left after
  `data.inputs_len`), which an example's targets fit unless its prompt is
  shorter than its share; 0 for the value-head methods (no logits)."""
  k = int(config.get("loss_positions", 0))
  if k != -1:
    return k
  if num_embed < LARGE_VOCAB or config.method in losses.VALUE_HEAD_METHODS:
    return 0
  if config.method == "genrm":
    return GENRM_LOSS_POSITIONS
  from genrm_jax import input_pipeline  # pylint: disable=g-import-not-at-top
  if config.method == "dpo":
    return input_pipeline.feature_lengths(config.data, input_pipeline.DPO)["chosen"]
  return input_pipeline.feature_lengths(config.data,
                                        input_pipeline.GENERATIVE)["targets"]


def lora_reference(config, mcfg) -> bool:
  """DPO under LoRA: the reference is the frozen base, i.e. the model with
  its adapters zeroed, so it needs no copy of its own (unless its log-probs
  are precomputed: `dpo.precompute_reference`)."""
  return (config.method == "dpo" and bool(mcfg.lora_rank) and
          not dpo_reference.enabled(config))


def _compute_params(params, model, cast_params_once: bool):
  """`params` for the loss: with `cast_params_once`, the model's weights in
  the compute dtype, cast here once per forward/backward pass (once a step;
  once a microbatch with grad accumulation), outside the layer scan, the
  gradient flowing back through the cast, instead of at each use, forward
  and backward: the same values.

  The embedding table stays as it is (fp32): gathered in bf16, its gradient
  would be a bf16 scatter-add over every repeat of a token (BOS, template
  tokens, " Yes": thousands a step), and its encode and decode gradients,
  and the chunked loss's chunks, would be summed in bf16 too, all losing
  most of their digits. Its casts stay at each use, as without this
  option."""
  if not cast_params_once:
    return params
  return dict(params, model=gemma.cast_for_compute(
      model.config, params["model"], keep=("input_embedding",)))


def train_step(state, batch, ref_params, rng, *, model, tx, schedule, method,
               beta, yes_id, no_id, accum_steps, loss_chunk_size=0,
               loss_positions=0, cast_params_once=False, lora_reference=False,
               center_rewards=0.0):
  """One optimizer update. Returns (new state, metrics)."""
  step = state["step"]
  if lora_reference:
    ref_params = lora.zero_adapters(state["params"])["model"]
  # Gemma fine-tuning uses no dropout; the key is there for stochastic
  # extensions and is a pure function of the step, so resume is exact.
  del rng  # = jax.random.fold_in(rng, step) when needed

  # Under LoRA only the adapters (and value head) are differentiated: the
  # frozen weights enter the loss as constants, so no weight-sized gradient,
  # moment or update exists for them.
  params, frozen = state["params"], None
  if model.config.lora_rank:
    params, frozen = lora.partition(params)

  def loss_fn(params, mb):
    if frozen is not None:
      params = lora.combine(params, frozen)
    params = _compute_params(params, model, cast_params_once)
    loss_sum, count, sums = losses.compute_loss(
        method, model, params, mb, ref_params=ref_params, beta=beta,
        yes_id=yes_id, no_id=no_id, loss_chunk_size=loss_chunk_size,
        loss_positions=loss_positions, center_rewards=center_rewards)
    return loss_sum, (count, sums)

  grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
  if accum_steps == 1:
    (loss_sum, (count, sums)), grads = grad_fn(params, batch)
  else:
    micro = _microbatches(batch, accum_steps)
    first = jax.tree.map(lambda x: x[0], micro)
    zeros = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                         jax.eval_shape(grad_fn, params, first))

    def body(acc, mb):
      out = grad_fn(params, mb)
      return jax.tree.map(jnp.add, acc, out), None

    ((loss_sum, (count, sums)), grads), _ = jax.lax.scan(body, zeros, micro)
    if "target_tokens" in sums:  # a total per batch: its count of 1 was summed too
      sums = {**sums, "target_tokens": (sums["target_tokens"][0], jnp.ones(()))}

  # Sums over the whole global batch divided once: the mean over target
  # tokens (or examples), identical for any mesh or accumulation.
  norm = jnp.maximum(count, 1.0)
  grads = jax.tree.map(lambda g: g / norm, grads)
  updates, opt_state = tx.update(grads, state["opt_state"], params)
  new_params = optax.apply_updates(params, updates)
  metrics = {
      "loss": loss_sum / norm,
      "lr": schedule(step),
      "l2_grads": optax.tree.norm(grads),
      # The parameters this step started from: the norm of `new_params`
      # splits XLA's one AdamW pass over the weights into several (25 of a
      # Gemma-2B step's 396 GB by XLA's H100 cost model, RESULTS.md).
      "l2_params": optax.tree.norm(params),
      "l2_updates": optax.tree.norm(updates),
      "input_tokens": _input_tokens(batch),
      **losses.finalize(sums),
  }
  if frozen is not None:
    new_params = lora.combine(new_params, frozen)
  new_state = {"params": new_params, "opt_state": opt_state, "step": step + 1}
  return new_state, metrics


def eval_step(params, batch, ref_params, *, model, method, beta, yes_id,
              no_id, loss_chunk_size=0, loss_positions=0,
              cast_params_once=False, lora_reference=False,
              center_rewards=0.0):
  if lora_reference:
    ref_params = lora.zero_adapters(params)["model"]
  loss_sum, count, sums, outputs = losses.compute_loss(
      method, model, _compute_params(params, model, cast_params_once), batch,
      ref_params=ref_params, beta=beta, yes_id=yes_id, no_id=no_id,
      center_rewards=center_rewards,
      with_eval_outputs=True,
      loss_chunk_size=loss_chunk_size, loss_positions=loss_positions)
  sums = dict(sums, loss=(loss_sum, count))
  return sums, outputs


def _check_loop_config(config) -> None:
  """Values that would otherwise fail only after steps of training, or
  silently train the wrong thing."""
  if (config.data.source in ("seqio", "python") and not config.data.vocabulary
      and config.model.preset != "tiny"):
    # '' reads as bytes (the tiny runs' vocabulary): a real Gemma would
    # train on byte ids, with no error anywhere.
    raise ValueError(
        f"config.data.vocabulary is empty for model.preset={config.model.preset!r}: set "
        "--config.data.vocabulary=/ckpts/tokenizer.model (the model's SentencePiece "
        "model), or 'byte' for a byte-level vocabulary.")
  if config.log_every < 1:
    raise ValueError(f"config.log_every={config.log_every}: log every N >= 1 steps.")
  if config.eval_every > 0 and config.data.eval_split and config.eval_steps < 1:
    raise ValueError(f"config.eval_steps={config.eval_steps}: an evaluation needs "
                     ">= 1 batch (or config.eval_every=0: no evaluation).")
  profile = config.get("profile") or {}
  if profile:  # StepProfiler's own check, before init and restore
    profiling.check_window(int(profile["start_step"]), int(profile["num_steps"]))
  if int(config.get("loss_positions", 0)) < -1:
    raise ValueError(f"config.loss_positions={config.loss_positions}: K > 0 target "
                     "positions a row, 0 for every position, or -1 (by method).")
  if config.checkpoint_every > 0 and config.keep_checkpoints < 1:
    raise ValueError(f"config.keep_checkpoints={config.keep_checkpoints} would delete "
                     "every checkpoint, the latest too: keep >= 1 (or "
                     "config.checkpoint_every=0: no checkpoints).")


def _auroc_metric(method, outputs) -> str | None:
  """The eval AUROC's name for `method` ('eval/auroc' of the value head,
  'eval/yes_no_auroc' of the verdicts), None if it has none."""
  if method in losses.VALUE_HEAD_METHODS:
    return "eval/auroc"
  return "eval/yes_no_auroc" if "mask" in outputs else None


def eval_metric_names(method, sums, outputs) -> set[str]:
  """The names `_summarize_eval` gives (from `eval_step`'s outputs or
  their shapes): `config.best_metric` must be one."""
  auroc = _auroc_metric(method, outputs)
  return {f"eval/{k}" for k in sums} | ({auroc} if auroc else set())


def _summarize_eval(method, all_sums, all_outputs) -> dict[str, float]:
  """Host side: means over all eval batches, plus AUROC where it applies."""
  total = {k: [0.0, 0.0] for k in all_sums[0]}
  for sums in all_sums:
    for k, (s, c) in sums.items():
      total[k][0] += float(s)
      total[k][1] += float(c)
  out = {f"eval/{k}": s / max(c, 1e-9) for k, (s, c) in total.items()}
  cat = lambda key: np.concatenate(
      [np.asarray(o[key]).ravel() for o in all_outputs])
  auroc = _auroc_metric(method, all_outputs[0] if all_outputs else {})
  if auroc:
    mask = cat("mask") if "mask" in all_outputs[0] else slice(None)
    out[auroc] = losses.auroc(cat("score")[mask], cat("label")[mask])
  return out


@contextlib.contextmanager
def _finish_on_error(ckpt, profiler):
  """An error (or Ctrl-C) in the loop still lets an async save in flight
  finish (left to interpreter shutdown, orbax leaves a
  *.orbax-checkpoint-tmp directory and the run resumes from the checkpoint
  before), and stops a trace in progress (kept, and the next run in the
  process, e.g. a pipeline's next stage, can trace again)."""
  try:
    yield
  except BaseException:
    try:
      profiler.finish()
    finally:
      ckpt.wait_until_finished()
    raise


def _fmt_duration(seconds: float) -> str:
  if not math.isfinite(seconds):
    return "?"
  seconds = int(seconds)
  d, rem = divmod(seconds, 86400)
  h, rem = divmod(rem, 3600)
  m, s = divmod(rem, 60)
  return (f"{d}d{h:02d}h" if d else f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s")


def state_shardings_for(state_shapes, mcfg, tx, mesh, method):
  """NamedShardings of the train state `{params, opt_state, step}`.

  Model params follow the logical-axis rules; optimizer moments mirror their
  params' shardings; counts, the step and the value head are replicated.
  """
  fsdp = mesh.shape["fsdp"]
  if mcfg.embed_dim % fsdp:
    # Every weight reaches fsdp only through its embed dimension (the
    # logical-axis rules): a size that does not divide it would replicate
    # the whole state on every device, silently.
    divisors = [d for d in range(1, fsdp + 1) if mcfg.embed_dim % d == 0 and fsdp % d == 0]
    raise ValueError(
        f"the fsdp mesh axis ({fsdp}) does not divide embed_dim={mcfg.embed_dim}: every "
        f"parameter and optimizer moment would be replicated on all devices. Use an fsdp "
        f"size that divides it (e.g. {divisors[-1]}) and put the other factor on data: "
        f"config.mesh=(data, fsdp, tensor).")
  replicated = NamedSharding(mesh, P())
  param_shardings = {"model": sharding_lib.logical_shardings(
      gemma.abstract_params(mcfg), mesh)}
  if method in losses.VALUE_HEAD_METHODS:
    param_shardings["value_head"] = jax.tree.map(
        lambda _: replicated, state_shapes["params"]["value_head"])
  opt_shardings = optax.tree_map_params(
      tx, lambda _, s: s, state_shapes["opt_state"],
      trainable_params(param_shardings, mcfg),
      transform_non_params=lambda _: replicated,
      is_leaf=lambda x: isinstance(x, NamedSharding))
  return {"params": param_shardings, "opt_state": opt_shardings,
          "step": replicated}


def jit_train_step(config, *, tx, schedule, step_kw, state_shardings,
                   batch_shardings, ref_shardings, mesh):
  """`train_step` jitted with explicit shardings, the state donated.

  Called as `fn(state, batch, ref_params, rng)`; the offline compile check
  (`compile_check.py`) lowers this same function for a TPU topology.
  `ref_params` (and `ref_shardings`) are None unless the method is DPO
  without `dpo.precompute_reference` (then the batch carries the
  reference's log-probs).
  """
  replicated = NamedSharding(mesh, P())
  return jax.jit(
      functools.partial(train_step, tx=tx, schedule=schedule,
                        accum_steps=int(config.optimizer.grad_accum_steps),
                        **step_kw),
      in_shardings=(state_shardings, batch_shardings, ref_shardings,
                    replicated),
      out_shardings=(state_shardings, replicated),
      donate_argnums=(0,))


# -----------------------------------------------------------------------------
# Main.
# -----------------------------------------------------------------------------


def train_and_evaluate(config, workdir: str, *,
                       devices: list[jax.Device] | None = None
                       ) -> dict[str, Any]:
  """Trains to `config.total_steps` (resuming from `workdir` if possible).

  Returns the last logged metrics. `devices` restricts the mesh (tests).
  """
  workdir = paths.absolute(workdir)
  method = config.method
  losses.batch_kind(method)  # validates the method name
  _check_loop_config(config)
  wandb_logging.check(config.get("wandb"))  # before minutes of init and compile
  if jax.process_index() == 0:
    epath.Path(workdir).mkdir(parents=True, exist_ok=True)

  # ---------------------------------------------------------------------------
  # Mesh. (data, fsdp, tensor) over all devices of all hosts.
  # ---------------------------------------------------------------------------
  mesh = sharding_lib.make_mesh(tuple(config.mesh), devices)
  _log("Mesh %s over %d devices (%d processes).", dict(mesh.shape),
       mesh.devices.size, jax.process_count())
  data_parallel = mesh.shape["data"] * mesh.shape["fsdp"]
  if config.batch_size % data_parallel:
    raise ValueError(f"batch_size={config.batch_size} is not divisible by the "
                     f"data x fsdp mesh size {data_parallel}.")
  accum = int(config.optimizer.grad_accum_steps)
  if (config.batch_size // max(accum, 1)) % data_parallel:
    raise ValueError(f"a microbatch of batch_size / grad_accum_steps = {config.batch_size} / "
                     f"{accum} rows does not split over the data x fsdp mesh size "
                     f"{data_parallel}: lower grad_accum_steps or raise batch_size.")
  if data_parallel % jax.process_count():
    # Each host reads its own rows (make_global_batch): hosts that shared a
    # data shard (a tensor axis across hosts) would feed it different rows.
    raise ValueError(f"the data x fsdp mesh size {data_parallel} is not a multiple of the "
                     f"{jax.process_count()} hosts: every host must hold whole data shards "
                     f"(config.mesh={tuple(config.mesh)}; keep the tensor axis within a host).")

  # ---------------------------------------------------------------------------
  # Data lengths: fail now, not after the run, when seq_len cuts the
  # examples (a CoT rationale cut before its verdict trains on nothing).
  # ---------------------------------------------------------------------------
  if config.data.source in ("seqio", "python"):
    from genrm_jax import data_python  # pylint: disable=g-import-not-at-top
    data_python.check_example_lengths(config, log=lambda m: _log("%s", m))

  # ---------------------------------------------------------------------------
  # Model, optimizer and step functions.
  # ---------------------------------------------------------------------------
  mcfg = model_config(config)
  model = gemma.Transformer(mcfg)
  tx, schedule = optimizer_lib.make_optimizer(config)
  yes_id, no_id = verdict_token_ids(config)
  rng_init, rng_loop = jax.random.split(jax.random.PRNGKey(config.seed))
  step_kw = step_kwargs(config, model, yes_id, no_id)
  needs_ref = method == "dpo"

  def init_model_params(rng):
    return gemma.init_params(mcfg, rng)

  def init_state(rng):
    return _state_from_model_params(init_model_params(rng), mcfg, tx, method)

  # ---------------------------------------------------------------------------
  # Shapes and shardings: nothing is allocated until the state is created
  # directly in its sharding.
  # ---------------------------------------------------------------------------
  state_shapes = jax.eval_shape(init_state, rng_init)
  state_shardings = state_shardings_for(state_shapes, mcfg, tx, mesh, method)
  model_shardings = state_shardings["params"]["model"]
  replicated = NamedSharding(mesh, P())
  n_params = sum(int(np.prod(x.shape))
                 for x in jax.tree.leaves(state_shapes["params"]))
  _log("Model %s: %.1fM params; method %s.", config.model.preset,
       n_params / 1e6, method)
  if mcfg.lora_rank:
    n_train, _ = lora.count(state_shapes["params"])
    _log("LoRA rank %d (alpha %g) on %s: %.2fM trainable params (%.2f%%), the "
         "rest frozen.", mcfg.lora_rank, mcfg.lora_alpha,
         ", ".join(mcfg.lora_targets), n_train / 1e6, 100 * n_train / n_params)

  # ---------------------------------------------------------------------------
  # Checkpoints and restore: workdir latest -> init_from -> scratch.
  # ---------------------------------------------------------------------------
  ckpt = checkpointing.Checkpointer(
      os.path.join(workdir, "checkpoints"), save_every=config.checkpoint_every,
      max_to_keep=config.keep_checkpoints,
      async_save=config.async_checkpointing)

  def initial_model_params():
    """The model params training starts from (also DPO's reference)."""
    if config.init_from and mcfg.lora_rank:
      # A checkpoint holds the base model: fresh adapters (B = 0) beside it.
      base = model_checkpoints.load_params(config.init_from,
                                           lora.base_config(mcfg), mesh=mesh)
      fresh = lora.init_adapters(mcfg, rng_init,
                                 lora.adapters(model_shardings))
      return lora.combine(fresh, base)
    if config.init_from:
      return model_checkpoints.load_params(config.init_from, mcfg, mesh=mesh)
    return jax.jit(init_model_params, out_shardings=model_shardings)(rng_init)

  def saved(state):
    """What a checkpoint holds: the state, or under LoRA all of it but the
    frozen weights (PEFT's adapter-only checkpoints: a 27B base would be 54
    GB a save). Those are `initial_model_params()`'s, rebuilt on resume as
    DPO's reference is."""
    return dict(state, params=trainable_params(state["params"], mcfg))

  latest = ckpt.latest_step()
  if latest is not None:
    abstract = checkpointing.abstract_like(saved(state_shapes),
                                           saved(state_shardings))
    state = ckpt.restore(latest, abstract)
    if mcfg.lora_rank:
      _, frozen = lora.partition({"model": initial_model_params()})
      state = dict(state, params=lora.combine(state["params"], frozen))
    _log("Resumed from %s at step %d.", ckpt.directory, latest)
  elif config.init_from:
    _log("Initialising from %s.", config.init_from)
    state = jax.jit(
        lambda p: _state_from_model_params(p, mcfg, tx, method),
        in_shardings=(model_shardings,), out_shardings=state_shardings,
        donate_argnums=(0,))(initial_model_params())
  else:
    state = jax.jit(init_state, out_shardings=state_shardings)(rng_init)
  start_step = int(jax.device_get(state["step"]))
  # DPO's reference is the frozen *initial* model: rebuilt the same way on
  # every (re)start rather than stored in each checkpoint. With
  # `dpo.precompute_reference`, its log-probs of every row are computed once
  # (or loaded from WORKDIR/reference_logps.npz) and its params freed: the
  # batches carry the log-probs and the step runs no reference forward pass.
  ref_params = ref_shardings = ref_table = None
  if needs_ref and dpo_reference.enabled(config):
    ref_table = dpo_reference.load_or_compute(
        config, workdir, mesh=mesh, model=model,
        model_shardings=model_shardings,
        reference_params=initial_model_params,
        loss_chunk_size=step_kw["loss_chunk_size"],
        loss_positions=step_kw["loss_positions"],
        log=lambda m: _log("%s", m))
  elif needs_ref and not step_kw["lora_reference"]:
    ref_params = initial_model_params()
    ref_shardings = model_shardings

  # ---------------------------------------------------------------------------
  # Data: batches for steps start_step, start_step + 1, ... .
  # ---------------------------------------------------------------------------
  train_iter = make_data_iterator(config, mesh, start_step=start_step,
                                  ref_table=ref_table)
  eval_enabled = config.eval_every > 0 and bool(config.data.eval_split)
  best = None  # keeps the best eval's params, if configured
  if config.best_metric and eval_enabled:
    best = checkpointing.BestCheckpointer(
        os.path.join(workdir, "best"), config.best_metric, config.best_mode)

  # ---------------------------------------------------------------------------
  # Jitted update: state donated, shardings explicit.
  # ---------------------------------------------------------------------------
  update_fn = None
  eval_fn = None

  def compile_update(batch):
    return jit_train_step(
        config, tx=tx, schedule=schedule, step_kw=step_kw,
        state_shardings=state_shardings,
        batch_shardings=jax.tree.map(lambda x: x.sharding, batch),
        ref_shardings=ref_shardings, mesh=mesh)

  def run_eval(state):
    nonlocal eval_fn
    all_sums, all_outputs = [], []
    for batch in make_data_iterator(config, mesh, split=config.data.eval_split,
                                    num_steps=config.eval_steps,
                                    ref_table=ref_table):
      if eval_fn is None:
        eval_fn = jax.jit(functools.partial(eval_step, **step_kw),
                          out_shardings=replicated)
      sums, outputs = jax.device_get(
          eval_fn(state["params"], batch, ref_params))
      all_sums.append(sums)
      all_outputs.append(outputs)
    return _summarize_eval(method, all_sums, all_outputs)

  # ---------------------------------------------------------------------------
  # Loop.
  # ---------------------------------------------------------------------------
  writer = metric_writers.MetricWriter(
      workdir, resume_step=start_step, wandb=config.get("wandb"),
      run_config=config.to_dict())
  total = int(config.total_steps)
  kill_at = int(os.environ.get(KILL_AT_STEP_ENV, "0") or 0)
  last_metrics: dict[str, Any] = {}
  t_last, step_last = time.perf_counter(), start_step
  first_log = True
  if start_step >= total:
    _log("Nothing to do: step %d >= total_steps %d.", start_step, total)
  profile = config.get("profile") or {"start_step": 0, "num_steps": 0}
  profiler = profiling.StepProfiler(
      os.path.join(workdir, "profile"), int(profile["start_step"]),
      int(profile["num_steps"]), first_step=start_step + 1, total_steps=total,
      log=lambda m: _log("%s", m))

  with sharding_lib.use_mesh(mesh), _finish_on_error(ckpt, profiler):
    for step in range(start_step + 1, total + 1):
      batch = next(train_iter)  # the batch of update number `step`
      if update_fn is None:
        update_fn = compile_update(batch)
        if best is not None:  # a typo'd best_metric fails now, not at the first eval
          best.check_metric(eval_metric_names(method, *jax.eval_shape(
              functools.partial(eval_step, **step_kw), state["params"], batch,
              ref_params)))
      profiler.before(step)
      with jax.profiler.StepTraceAnnotation("train", step_num=step):
        state, metrics = update_fn(state, batch, ref_params, rng_loop)
      profiler.after(step, metrics)

      log_now = step % config.log_every == 0 or step == total
      preempted = ckpt.reached_preemption(step)
      save_now = ckpt.should_save(step, total) or preempted
      if log_now or save_now:
        m = jax.device_get(metrics)
        # Checked before any save: a checkpoint never holds non-finite params.
        bad = [k for k in ("loss", "l2_grads", "l2_params")
               if not np.isfinite(m[k])]
        if bad:
          ckpt.wait_until_finished()
          writer.close()
          raise FloatingPointError(
              f"Non-finite {', '.join(bad)} at step {step} (loss={m['loss']}, "
              f"l2_grads={m['l2_grads']}). Training stopped; the last good "
              f"checkpoint is step {ckpt.latest_step()} in {ckpt.directory}. "
              "Lower config.lr, check the data, or resume from it.")
      if log_now:
        now = time.perf_counter()
        steps_per_s = (step - step_last) / max(now - t_last, 1e-9)
        t_last, step_last = now, step
        m = {k: v for k, v in m.items()}
        m["steps_per_sec"] = steps_per_s
        m["tokens_per_sec"] = float(m["input_tokens"]) * steps_per_s
        if config.peak_tflops_per_device > 0:
          # 6 * params * tokens: weights only, attention FLOPs not counted;
          # 4 under LoRA (no weight gradients for the frozen weights).
          m["mfu"] = ((4 if mcfg.lora_rank else 6) * n_params * m["tokens_per_sec"] /
                      (config.peak_tflops_per_device * 1e12 * mesh.devices.size))
        eta = (total - step) / steps_per_s if steps_per_s > 0 else math.inf
        _log("step %d/%d | loss %.4f | lr %.3g | %.2f steps/s%s | ETA %s",
             step, total, m["loss"], m["lr"], steps_per_s,
             " (incl. compile)" if first_log else "", _fmt_duration(eta))
        first_log = False
        writer.write(step, m)
        last_metrics = m

      # The eval before the checkpoint: a run killed during the eval resumes
      # from the previous checkpoint and evaluates this step again (saved
      # first, the step's eval would be lost for good). Preempted, the save
      # goes first: the grace period may not last an eval.
      def save():
        # On a URL workdir metrics are buffered: stored (this step's eval
        # included) before each checkpoint, so a resumed run has every
        # record up to its step (later ones it truncates).
        writer.flush()
        ckpt.save(step, saved(state))

      if save_now and preempted:
        save()
      if eval_enabled and (step % config.eval_every == 0 or step == total):
        em = run_eval(state)
        _log("eval at step %d: %s", step,
             ", ".join(f"{k}={v:.4f}" for k, v in sorted(em.items())))
        writer.write(step, em)
        last_metrics = {**last_metrics, **em}
        if best is not None:
          best.save(step, state["params"], em)
        t_last = time.perf_counter()  # keep eval time out of steps/s

      if save_now and not preempted:
        save()

      if kill_at and step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
      if preempted:
        _log("Preemption at step %d: checkpoint saved, exiting.", step)
        break

  profiler.finish(state)
  ckpt.wait_until_finished()
  final_step = int(jax.device_get(state["step"]))
  if config.export_params and final_step >= total:
    export_dir = os.path.join(workdir, "export")
    export_cfg = model_config(config)
    model_params = state["params"]["model"]
    if mcfg.lora_rank:  # an ordinary bundle: the adapters folded in
      model_params = jax.jit(functools.partial(lora.merge, mcfg),
                             out_shardings=lora.without_adapters(model_shardings)
                             )(model_params)
      export_cfg = lora.base_config(export_cfg)
    checkpointing.export_params(model_params, os.path.join(export_dir, "params"))
    if method in losses.VALUE_HEAD_METHODS and jax.process_index() == 0:
      head = jax.device_get(state["params"]["value_head"])
      buf = io.BytesIO()
      np.savez(buf, **head)
      paths.write_atomic(os.path.join(export_dir, bundle.VALUE_HEAD),
                         buf.getvalue())
    if jax.process_index() == 0:  # model.json: loadable from its path alone
      bundle.write_model_json(export_dir, export_cfg,
                              config.data.vocabulary or None,
                              has_value_head=method in losses.VALUE_HEAD_METHODS,
                              # a DPO verifier's reference, found by its scorer
                              init_from=(paths.absolute(config.init_from)
                                         if config.init_from else ""))
    _log("Exported params to %s.", export_dir)
  ckpt.close()
  if best is not None:
    best.close()
  writer.close()
  return last_metrics


def write_config(config, workdir: str) -> None:
  """WORKDIR/config.json: the run's whole config (process 0)."""
  if jax.process_index() == 0:
    epath.Path(workdir).mkdir(parents=True, exist_ok=True)
    paths.write_atomic(os.path.join(workdir, "config.json"),
                       config.to_json_best_effort(indent=2))


class _QuietLibraries(std_logging.Filter):

  def filter(self, record):
    return record.levelno >= std_logging.WARNING or (
        "/orbax/" not in record.pathname)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  if FLAGS.compile_only:  # offline: compile for --topology, train nothing
    from genrm_jax import compile_check  # pylint: disable=g-import-not-at-top
    if FLAGS.config is None:
      raise app.UsageError("--config=configs/<experiment>.py is required.")
    compile_check.main(FLAGS.config, FLAGS.topology)
    return
  if FLAGS.jax_distributed:
    jax.distributed.initialize()
  config = FLAGS.config
  if config is None:
    raise app.UsageError("--config=configs/<experiment>.py[:args] is required.")
  if not FLAGS.workdir:
    raise app.UsageError("--workdir=DIR is required.")
  logging.set_verbosity(logging.INFO)
  # Orbax logs every save at INFO; keep the console to our progress lines.
  logging.get_absl_handler().addFilter(_QuietLibraries())
  write_config(config, FLAGS.workdir)
  train_and_evaluate(config, FLAGS.workdir)


if __name__ == "__main__":
  define_flags()
  app.run(main)
