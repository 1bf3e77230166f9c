"""Losses and metrics for every training method of the paper.

* Generative (`genrm`, `genrm_cot`, `unified`, `solve`): next-token
  cross-entropy on target tokens only. The input is the full token sequence
  (each packed segment starts with BOS); `logits[:, t]` predicts
  `tokens[:, t + 1]` with weight `loss_weights[:, t + 1]`, and only inside
  one segment. Direct GenRM also reports the Yes/No accuracy: the argmax over
  {Yes, No} at each segment's last Yes/No target (the verdict; for GenRM-CoT
  the verdict after the rationale).
* Discriminative (`disc`): a value head (a Dense layer) on the final hidden
  state at each example's last valid token, trained with sigmoid BCE.
* Pairwise reward model (`bt`, Bradley-Terry, TRL's `RewardTrainer`): the
  same value head read on a correct (chosen) and an incorrect (rejected)
  solution of one problem, -log sigmoid(r_chosen - r_rejected).
* DPO (`dpo`): -log sigmoid(beta * ((pi_c - ref_c) - (pi_r - ref_r))) on
  sequence log-probs summed over target tokens; the reference is the frozen
  initial model, run in the same step, unless the batch carries precomputed
  `chosen_ref_logps` / `rejected_ref_logps`.

Every loss returns *sums and counts*, not means: `(loss_sum, loss_count,
metric_sums)` with `metric_sums[name] = (sum, count)`. The train step divides
after summing over microbatches, so gradient accumulation reproduces the
full-batch gradient exactly and the loss is a mean over the global batch's
target tokens (or examples), whatever the mesh.

Chunked cross-entropy (`loss_chunk_size=C > 0`, generative methods and
DPO): the model returns only its final hidden states, and the output
projection, log-softmax, argmax and Yes/No scores run over C positions at a
time (`jax.lax.map` over sequence chunks, each under `jax.checkpoint`), so the
fp32 [B, L, V] logits buffer is never materialised, forward or backward: the
peak is one [B, C, V] chunk. The numbers equal the unchunked path's up to
matmul rounding (tests/test_losses.py checks loss and gradients to 1e-5 in
fp32); 0 (default) keeps the unchunked path.

`auroc` (numpy, host side) handles ties like the Mann-Whitney U statistic.
"""

from __future__ import annotations

import functools
import math

from flax import linen as nn
import jax
import jax.numpy as jnp
from jax.sharding import PartitionSpec as P
import numpy as np

from genrm_jax import sharding as sharding_lib
from genrm_jax.models import gemma


GENERATIVE_METHODS = ("genrm", "genrm_cot", "unified", "solve")
METHODS = GENERATIVE_METHODS + ("disc", "bt", "dpo")
# Methods whose model has a value head (scored by `verifiers` kind 'disc').
VALUE_HEAD_METHODS = ("disc", "bt")
# Yes/No verdict accuracy is meaningful where the targets contain a verdict.
VERDICT_METHODS = ("genrm", "genrm_cot", "unified")

Sums = dict[str, tuple[jax.Array, jax.Array]]


def batch_kind(method: str) -> str:
  """'generative' | 'disc' | 'pairwise' | 'dpo': which batch fields a
  method consumes."""
  if method in GENERATIVE_METHODS:
    return "generative"
  if method in ("disc", "dpo"):
    return method
  if method == "bt":
    return "pairwise"
  raise ValueError(f"method={method!r}; expected one of {METHODS}.")


# -----------------------------------------------------------------------------
# Building blocks.
# -----------------------------------------------------------------------------


def segment_positions(segment_ids: jax.Array) -> jax.Array:
  """Positions that restart at 0 at every segment start (packed rows)."""
  seg = segment_ids.astype(jnp.int32)
  length = seg.shape[1]
  idx = jnp.broadcast_to(jnp.arange(length, dtype=jnp.int32), seg.shape)
  prev = jnp.concatenate([jnp.zeros_like(seg[:, :1]), seg[:, :-1]], axis=1)
  starts = jnp.where(seg != prev, idx, 0)
  start_of_segment = jax.lax.cummax(starts, axis=1)
  return jnp.where(seg != 0, idx - start_of_segment, 0)


def shifted_targets(tokens, loss_weights, segment_ids):
  """Targets and weights aligned with `logits[:, :-1]`.

  A target counts only if it is a target token (`loss_weights`) and lies in
  the same non-padding segment as the position predicting it, so the first
  token of a packed segment is never predicted from the previous segment.
  """
  targets = tokens[:, 1:]
  same = (segment_ids[:, 1:] == segment_ids[:, :-1]) & (segment_ids[:, 1:] != 0)
  weights = loss_weights[:, 1:].astype(jnp.float32) * same
  return targets, weights, segment_ids[:, 1:]


def _target_stats(logits: jax.Array, targets: jax.Array):
  """(log p(target), whether the target has the largest logit) from logits
  [B, T, V] and int targets [B, T], in as few passes over the logits as
  XLA will fuse (each pass reads 8 GB a Gemma-2B train step)."""
  logits = logits.astype(jnp.float32)
  top = jax.lax.stop_gradient(jnp.max(logits, axis=-1))
  # The target's logit as a masked sum, not take_along_axis: the gradient of
  # a gather is a scatter-add into a zeroed [B, T, V] buffer (two more passes
  # over the logits, 17 GB a Gemma-2B step); a select fuses into the pass
  # that makes the softmax gradient. Exact: one non-zero term per row.
  vocab = jax.lax.broadcasted_iota(jnp.int32, logits.shape, logits.ndim - 1)
  picked = jnp.sum(jnp.where(vocab == targets[..., None], logits, 0.0),
                   axis=-1)
  logz = top + jnp.log(jnp.sum(jnp.exp(logits - top[..., None]), axis=-1))
  # Argmax == target, read off the max already taken (no argmax pass); on
  # an exact tie for the top logit the target counts as right.
  return picked - logz, jax.lax.stop_gradient(picked) >= top


def token_log_probs(logits: jax.Array, targets: jax.Array) -> jax.Array:
  """log p(target) from fp32 logits [B, T, V] and int targets [B, T]."""
  return _target_stats(logits, targets)[0]


# Every verification target ends with its verdict (`prompts`; released
# critiques are cut after it): the verdict token is among the last
# VERDICT_TAIL targets of its segment: " Yes" + EOS in SentencePiece
# vocabularies, "Y", "e", "s", EOS in bytes.
VERDICT_TAIL = 4


def last_verdict_mask(targets, weights, target_segments, yes_id, no_id):
  """True at each segment's last weighted target that is Yes or No, where
  that token ends the segment's targets (within VERDICT_TAIL of its end).

  The end condition keeps what is not a verdict out of the verdict metrics:
  unified training's solution segments ("Nancy" holds a byte-vocabulary No)
  and a rationale cut before its verdict line.
  """
  length = targets.shape[1]
  weighted = weights > 0
  # A segment's targets are one run: t is in its last VERDICT_TAIL unless the
  # position VERDICT_TAIL on is a weighted target of the same segment.
  ahead = VERDICT_TAIL
  weighted_ahead = jnp.pad(weighted[:, ahead:], ((0, 0), (0, ahead)))
  segment_ahead = jnp.pad(target_segments[:, ahead:], ((0, 0), (0, ahead)))
  near_end = ~(weighted_ahead & (segment_ahead == target_segments))
  verdict = weighted & near_end & ((targets == yes_id) | (targets == no_id))
  idx = jnp.broadcast_to(jnp.arange(length), targets.shape)
  candidate = jnp.where(verdict, idx, length)
  # The next verdict position strictly after t (length if none).
  next_at_or_after = jax.lax.cummin(candidate, axis=1, reverse=True)
  next_after = jnp.concatenate(
      [next_at_or_after[:, 1:], jnp.full_like(candidate[:, :1], length)],
      axis=1)
  next_segment = jnp.take_along_axis(
      target_segments, jnp.clip(next_after, 0, length - 1), axis=1)
  return verdict & ((next_after == length) | (next_segment != target_segments))


def yes_no_scores(logits, yes_id, no_id):
  """logit(Yes) - logit(No) at every position [B, T] (the verifier score up to
  a monotone map: p(Yes) restricted to {Yes, No} = sigmoid(score))."""
  return (logits[..., yes_id] - logits[..., no_id]).astype(jnp.float32)


def _token_stats(logits, targets, yes_id=None, no_id=None):
  """log p(target), argmax == target (ties count as right) and (with yes/no
  ids) the Yes-No logit margin at every position of `logits` [B, T, V]."""
  logp, is_top = _target_stats(logits, targets)
  out = {"logp": logp, "correct": is_top.astype(jnp.float32)}
  if yes_id is not None and no_id is not None:
    out["score"] = yes_no_scores(logits, yes_id, no_id)
  return out


def _shifted_stats(logits, targets, yes_id=None, no_id=None):
  """`_token_stats` of logits [B, T, V] (position t predicting targets[:, t],
  targets [B, T - 1]) over the first T - 1 positions.

  The statistics are sliced, not the logits: slicing [B, T, V] would copy the
  logits once, and its gradient would pad the logits' gradient into a new
  [B, T, V] buffer (17 GB a Gemma-2B step). The last position's made-up
  target (0) is dropped with its statistics.
  """
  padded = jnp.pad(targets, ((0, 0), (0, 1)))
  stats = _token_stats(logits, padded, yes_id, no_id)
  return {k: v[:, :-1] for k, v in stats.items()}


def chunked_token_stats(config, model_params, hidden, targets, chunk_size: int,
                        yes_id=None, no_id=None):
  """Per-token statistics of the logits `logits_from_hidden(hidden)`, computed
  `chunk_size` positions at a time without ever building [B, T, V].

  Args:
    config: the model's `gemma.TransformerConfig` (output projection and
      final soft-cap).
    model_params: the Gemma params (`params['model']`).
    hidden: final hidden states [B, T, D] (after the final norm), position t
      predicting `targets[:, t]`.
    targets: int [B, T].
    chunk_size: positions per chunk (> 0); T is padded to a multiple of it.
    yes_id, no_id: also return logit(Yes) - logit(No) at every position.

  Returns:
    {'logp': log p(target) [B, T], 'correct': argmax == target (float32)
    [B, T]} plus 'score' [B, T] with yes_id/no_id. The chunk function is
    rematerialised, so the backward pass recomputes each chunk's logits
    instead of keeping them.

  Under a mesh of several devices (`sharding.use_mesh`) each device runs the
  loop over its own rows (`jax.shard_map`, the rows split over every mesh
  axis) against the whole table, gathered once before the loop; the
  table's gradient is summed over the loop on the device and reduced across
  devices once, after it. Left to the partitioner, the loop gathered the
  fsdp-sharded table and reduce-scattered its gradient at every chunk
  (XLA's H100 program of a Gemma-2B step at (2, 4, 1), 1024 positions in
  chunks of 32: 32 x 2.5 GB; RESULTS.md).
  """
  if chunk_size <= 0:
    raise ValueError(f"chunk_size={chunk_size} must be > 0.")
  table = model_params["embedder"]["input_embedding"]
  local = functools.partial(_chunked_local_stats, config,
                            chunk_size=int(chunk_size), yes_id=yes_id,
                            no_id=no_id)
  mesh = jax.sharding.get_abstract_mesh()
  axes = tuple(a for a in getattr(mesh, "axis_names", ())
               if mesh.shape[a] > 1)
  devices = math.prod(mesh.shape[a] for a in axes) if axes else 1
  if devices == 1 or targets.shape[0] % devices:
    # One device, or rows that do not split over the mesh: the loop as the
    # partitioner lays it out.
    return local(table, hidden, targets, constrain=True)
  rows = P(axes)
  # The table comes in as its params shard it and is gathered inside, so
  # that its gradient leaves as a reduce-scatter (the gather's transpose),
  # not an all-reduce of the whole table.
  table_spec = sharding_lib.spec_for(table.shape, ("vocab", "embed"), mesh)

  def body(table_shard, h, t):
    full = table_shard
    for dim, axis in enumerate(table_spec):
      if axis is not None:
        full = jax.lax.all_gather(full, axis, axis=dim, tiled=True)
    return local(full, h, t)

  return jax.shard_map(body, mesh=mesh, in_specs=(table_spec, rows, rows),
                       out_specs=rows, check_vma=False)(table, hidden, targets)


def _projected_stats(config, model_params, hidden, targets, yes_id=None,
                     no_id=None, constrain: bool = True):
  """`_token_stats` of `logits_from_hidden(hidden)`; with `constrain`, the
  logits laid out by the logical rules (not inside a `shard_map`)."""
  logits = gemma.logits_from_hidden(config, model_params, hidden)
  if constrain:
    logits = nn.with_logical_constraint(logits, ("batch", "length", "act_vocab"))
  return _token_stats(logits, targets, yes_id, no_id)


def _chunked_local_stats(config, table, hidden, targets, *, chunk_size: int,
                         yes_id=None, no_id=None, constrain: bool = False):
  """`chunked_token_stats` on arrays one device holds whole (or, with
  `constrain`, that the partitioner lays out by the logical rules): a
  `lax.map` over chunks of positions."""
  batch, length = targets.shape
  chunk = min(chunk_size, length)
  n = -(-length // chunk)
  pad = n * chunk - length
  if pad:
    hidden = jnp.pad(hidden, ((0, 0), (0, pad), (0, 0)))
    targets = jnp.pad(targets, ((0, 0), (0, pad)))
  # [n, B, C, ...]: lax.map runs over the leading (chunk) axis.
  hs = hidden.reshape(batch, n, chunk, hidden.shape[-1]).swapaxes(0, 1)
  ts = targets.reshape(batch, n, chunk).swapaxes(0, 1)
  params = {"embedder": {"input_embedding": table}}

  @functools.partial(jax.checkpoint, prevent_cse=False)
  def one(args):
    h, t = args
    # The fp32 table cast at each chunk, as at each use elsewhere: its
    # gradient is summed over the chunks in fp32 (train._compute_params).
    return _projected_stats(config, params, h, t, yes_id, no_id, constrain)

  stats = jax.lax.map(one, (hs, ts))
  return {k: v.swapaxes(0, 1).reshape(batch, n * chunk)[:, :length]
          for k, v in stats.items()}


def target_indices(weights: jax.Array, num_positions: int) -> jax.Array:
  """Each row's first `num_positions` positions with weight > 0, in order,
  [B, K] (rows with fewer are filled with unweighted positions, which
  every statistic multiplies by their weight, 0)."""
  length = weights.shape[1]
  idx = jnp.arange(length, dtype=jnp.int32)
  # Weighted positions sort first, each group in position order.
  key = jnp.where(weights > 0, idx, length + idx)
  return jnp.sort(key, axis=1)[:, :num_positions] % length


def token_stats_from_hidden(config, model_params, hidden, targets, weights, *,
                            loss_chunk_size: int = 0, loss_positions: int = 0,
                            yes_id=None, no_id=None):
  """`_token_stats` [B, T] of the logits of final hidden states [B, T, D],
  position t predicting `targets[:, t]` with weight `weights[:, t]`.

  `loss_positions=K > 0` (and < T): where no row has more than K weighted
  positions, the output projection runs on those positions only (gathered:
  [B, K, V] logits instead of [B, T, V]) and every statistic is 0 elsewhere;
  a batch with a row of more runs the whole [B, T] (`jax.lax.cond`, decided
  on the device for the global batch, so every host takes the same branch).
  The weighted positions get the same numbers either way. Direct GenRM's
  packed rows hold a few " Yes"/" No" + EOS targets among hundreds of
  prompt positions: with Gemma's 256K vocabulary the projection is most of
  a small model's step (RESULTS.md). Without chunks each branch is
  rematerialised, so the branch not taken keeps no [B, T, V] residuals for
  the backward pass; with chunks each chunk already is.
  """
  def project(h, t):
    if loss_chunk_size > 0:
      return chunked_token_stats(config, model_params, h, t, loss_chunk_size,
                                 yes_id, no_id)
    return _projected_stats(config, model_params, h, t, yes_id, no_id)

  batch, length = targets.shape
  if not 0 < loss_positions < length:
    return project(hidden, targets)

  def dense(h, t, w):
    del w
    return project(h, t)

  def sparse(h, t, w):
    idx = target_indices(w, loss_positions)
    picked = jnp.take_along_axis(h, idx[..., None], axis=1)
    stats = project(picked, jnp.take_along_axis(t, idx, axis=1))
    kept = jnp.take_along_axis(w, idx, axis=1) > 0  # False: a row's filler
    # Row by row (vmap: a scatter whose batch dimension the SPMD partitioner
    # keeps on each row's device; explicit row indices made it gather the
    # indices and sum the [B, T] result over every device). Distinct indices
    # per row: a set, whose gradient is a gather.
    place = jax.vmap(lambda i, v: jnp.zeros((length,), v.dtype).at[i].set(v))
    return {k: place(idx, jnp.where(kept, v, jnp.zeros((), v.dtype)))
            for k, v in stats.items()}

  fits = jnp.max(jnp.sum(weights > 0, axis=1)) <= loss_positions
  if loss_chunk_size > 0:
    # Each chunk is rematerialised already: the branches keep no logits,
    # and remat around them would run every chunk's forward a third time.
    return jax.lax.cond(fits, sparse, dense, hidden, targets, weights)
  remat = functools.partial(jax.checkpoint, prevent_cse=False)
  return jax.lax.cond(fits, remat(sparse), remat(dense), hidden, targets,
                      weights)


def _apply(model, params, tokens, positions, segment_ids, return_logits=True):
  return model.apply({"params": params["model"]}, tokens, positions=positions,
                     segment_ids=segment_ids, return_logits=return_logits)


# -----------------------------------------------------------------------------
# Generative methods.
# -----------------------------------------------------------------------------


def generative_loss(model, params, batch, *, yes_id=None, no_id=None,
                    with_eval_outputs=False, loss_chunk_size: int = 0,
                    loss_positions: int = 0):
  """Next-token CE on target tokens. Returns (loss_sum, count, sums[, eval]).

  `loss_chunk_size > 0`: logits in sequence chunks of that many positions
  (`chunked_token_stats`), never the whole fp32 [B, L, V] buffer.
  `loss_positions > 0`: logits at target positions only, when every row
  has at most that many (`token_stats_from_hidden`).
  """
  tokens = batch["decoder_target_tokens"]
  segment_ids = batch["decoder_segment_ids"]
  positions = batch.get("decoder_positions")
  if positions is None:
    positions = segment_positions(segment_ids)
  targets, weights, target_segments = shifted_targets(
      tokens, batch["decoder_loss_weights"], segment_ids)
  with_verdict = yes_id is not None and no_id is not None
  if loss_chunk_size > 0 or loss_positions > 0:
    out = _apply(model, params, tokens, positions, segment_ids,
                 return_logits=False)
    stats = token_stats_from_hidden(
        model.config, params["model"], out.hidden_states[:, :-1], targets,
        weights, loss_chunk_size=loss_chunk_size,
        loss_positions=loss_positions, yes_id=yes_id, no_id=no_id)
  else:
    out = _apply(model, params, tokens, positions, segment_ids)
    stats = _shifted_stats(out.logits, targets, yes_id, no_id)
  logp, correct, score = stats["logp"], stats["correct"], stats.get("score")
  count = jnp.sum(weights)
  loss_sum = -jnp.sum(logp * weights)
  sums = {
      "token_accuracy": (jnp.sum(correct * weights), count),
      "target_tokens": (count, jnp.ones(())),
  }
  eval_outputs = {}
  if with_verdict:
    verdict = last_verdict_mask(targets, weights, target_segments, yes_id,
                                no_id).astype(jnp.float32)
    is_yes = targets == yes_id
    hit = ((score > 0) == is_yes).astype(jnp.float32)
    sums["yes_no_accuracy"] = (jnp.sum(hit * verdict), jnp.sum(verdict))
    if with_eval_outputs:
      eval_outputs = {"score": score, "label": is_yes, "mask": verdict > 0}
  if with_eval_outputs:
    return loss_sum, count, sums, eval_outputs
  return loss_sum, count, sums


# -----------------------------------------------------------------------------
# Discriminative reward model.
# -----------------------------------------------------------------------------


def init_value_head(embed_dim: int, dtype=jnp.float32) -> dict[str, jax.Array]:
  """Zero-initialised Dense(embed_dim -> 1): the RM starts at p = 0.5 for
  every input (BCE = log 2), so early steps do not push the LM around with a
  random head."""
  return {"kernel": jnp.zeros((embed_dim, 1), dtype),
          "bias": jnp.zeros((1,), dtype)}


def last_token_index(segment_ids: jax.Array) -> jax.Array:
  """Index of each row's last valid (non-padding) token [B]."""
  idx = jnp.arange(segment_ids.shape[1])
  return jnp.max(jnp.where(segment_ids != 0, idx, 0), axis=1)


def value_logits(model, params, tokens, segment_ids):
  """The value head's logit [B] at each example's last valid token."""
  out = _apply(model, params, tokens, segment_positions(segment_ids),
               segment_ids, return_logits=False)
  last = last_token_index(segment_ids)
  hidden = jnp.take_along_axis(out.hidden_states, last[:, None, None],
                               axis=1)[:, 0].astype(jnp.float32)
  head = params["value_head"]
  return hidden @ head["kernel"][:, 0].astype(jnp.float32) + head["bias"][0]


def bce_with_logits(logits, labels):
  """Numerically stable sigmoid BCE, elementwise."""
  labels = labels.astype(jnp.float32)
  return (jnp.maximum(logits, 0) - logits * labels
          + jnp.log1p(jnp.exp(-jnp.abs(logits))))


def disc_loss(model, params, batch, *, with_eval_outputs=False):
  logits = value_logits(model, params, batch["tokens"], batch["segment_ids"])
  labels = batch["label"].astype(jnp.float32)
  losses = bce_with_logits(logits, labels)
  n = jnp.asarray(labels.shape[0], jnp.float32)
  hit = ((logits > 0) == (labels > 0.5)).astype(jnp.float32)
  sums = {"accuracy": (jnp.sum(hit), n),
          "mean_prob": (jnp.sum(jax.nn.sigmoid(logits)), n)}
  if with_eval_outputs:
    return jnp.sum(losses), n, sums, {"score": logits, "label": labels > 0.5}
  return jnp.sum(losses), n, sums


def bt_loss(model, params, batch, *, with_eval_outputs=False, center_rewards=0.0):
  """Bradley-Terry: chosen and rejected rows (each BOS + solution prompt +
  solution, as `disc` reads them) in one forward pass over [2B, L].
  `center_rewards` > 0 adds that times (r_c + r_r)^2 (TRL's
  `center_rewards_coefficient`, Eisenstein et al. 2023): rewards centred
  on 0, which the pairwise loss alone leaves free."""
  cat = lambda a, b: jnp.concatenate([a, b], axis=0)
  rewards = value_logits(model, params,
                         cat(batch["chosen_tokens"], batch["rejected_tokens"]),
                         cat(batch["chosen_segment_ids"], batch["rejected_segment_ids"]))
  b = batch["chosen_tokens"].shape[0]
  reward_c, reward_r = rewards[:b], rewards[b:]
  margin = reward_c - reward_r
  losses = -jax.nn.log_sigmoid(margin)
  if center_rewards:
    losses = losses + center_rewards * (reward_c + reward_r) ** 2
  n = jnp.asarray(b, jnp.float32)
  sums = {"accuracy": (jnp.sum((margin > 0).astype(jnp.float32)), n),
          "margin": (jnp.sum(margin), n),
          "reward_chosen": (jnp.sum(reward_c), n),
          "reward_rejected": (jnp.sum(reward_r), n)}
  if with_eval_outputs:  # AUROC of every row's reward: chosen 1, rejected 0
    labels = cat(jnp.ones((b,), bool), jnp.zeros((b,), bool))
    return jnp.sum(losses), n, sums, {"score": rewards, "label": labels}
  return jnp.sum(losses), n, sums


# -----------------------------------------------------------------------------
# DPO.
# -----------------------------------------------------------------------------


def sequence_log_probs(model, model_params, tokens, loss_weights, segment_ids,
                       loss_chunk_size: int = 0, loss_positions: int = 0):
  """Sum over target tokens of log p(token | prefix) [B]."""
  from_hidden = loss_chunk_size > 0 or loss_positions > 0
  out = _apply(model, model_params, tokens, segment_positions(segment_ids),
               segment_ids, return_logits=not from_hidden)
  targets, weights, _ = shifted_targets(tokens, loss_weights, segment_ids)
  if from_hidden:
    logp = token_stats_from_hidden(
        model.config, model_params["model"], out.hidden_states[:, :-1],
        targets, weights, loss_chunk_size=loss_chunk_size,
        loss_positions=loss_positions)["logp"]
  else:
    logp = _shifted_stats(out.logits, targets)["logp"]
  return jnp.sum(logp * weights, axis=1)


def _pair_log_probs(model, params, batch, loss_chunk_size: int = 0,
                    loss_positions: int = 0):
  """Chosen and rejected log-probs in one forward pass over [2B, L]."""
  cat = lambda a, b: jnp.concatenate([a, b], axis=0)
  logps = sequence_log_probs(
      model, params,
      cat(batch["chosen_tokens"], batch["rejected_tokens"]),
      cat(batch["chosen_loss_weights"], batch["rejected_loss_weights"]),
      cat(batch["chosen_segment_ids"], batch["rejected_segment_ids"]),
      loss_chunk_size, loss_positions)
  b = batch["chosen_tokens"].shape[0]
  return logps[:b], logps[b:]


def dpo_from_log_probs(pi_c, pi_r, ref_c, ref_r, beta):
  """Per-example DPO losses and implicit rewards."""
  reward_c = beta * (pi_c - ref_c)
  reward_r = beta * (pi_r - ref_r)
  margin = reward_c - reward_r
  return -jax.nn.log_sigmoid(margin), reward_c, reward_r


def dpo_loss(model, params, batch, *, ref_params=None, beta=0.1,
             with_eval_outputs=False, loss_chunk_size: int = 0,
             loss_positions: int = 0):
  pi_c, pi_r = _pair_log_probs(model, params, batch, loss_chunk_size,
                               loss_positions)
  if "chosen_ref_logps" in batch:  # precomputed (genrm_jax/dpo_reference.py)
    ref_c = batch["chosen_ref_logps"].astype(jnp.float32)
    ref_r = batch["rejected_ref_logps"].astype(jnp.float32)
  else:
    if ref_params is None:
      raise ValueError("DPO needs reference params or precomputed "
                       "chosen_ref_logps/rejected_ref_logps in the batch.")
    # `ref_params` is a Gemma param tree (no value head): the frozen start.
    ref_c, ref_r = _pair_log_probs(
        model, {"model": jax.lax.stop_gradient(ref_params)}, batch,
        loss_chunk_size, loss_positions)
  losses, reward_c, reward_r = dpo_from_log_probs(pi_c, pi_r, ref_c, ref_r,
                                                  beta)
  margin = reward_c - reward_r
  n = jnp.asarray(losses.shape[0], jnp.float32)
  sums = {
      "reward_accuracy": (jnp.sum((margin > 0).astype(jnp.float32)), n),
      "reward_margin": (jnp.sum(margin), n),
      "reward_chosen": (jnp.sum(reward_c), n),
      "reward_rejected": (jnp.sum(reward_r), n),
      "logp_chosen": (jnp.sum(pi_c), n),
      "logp_rejected": (jnp.sum(pi_r), n),
  }
  if with_eval_outputs:
    return jnp.sum(losses), n, sums, {"margin": margin}
  return jnp.sum(losses), n, sums


# -----------------------------------------------------------------------------
# Dispatch and host-side metrics.
# -----------------------------------------------------------------------------


def compute_loss(method: str, model, params, batch, *, ref_params=None,
                 beta: float = 0.1, yes_id=None, no_id=None,
                 with_eval_outputs: bool = False, loss_chunk_size: int = 0,
                 loss_positions: int = 0, center_rewards: float = 0.0):
  """The loss of `method`. `loss_chunk_size > 0`: generative and DPO
  log-probs from sequence chunks of that many positions (no [B, L, V]
  logits; `chunked_token_stats`); `loss_positions > 0`: from the target
  positions only where no row has more (`token_stats_from_hidden`); `disc`
  and `bt` never build logits."""
  kind = batch_kind(method)
  if kind == "generative":
    use_verdict = method in VERDICT_METHODS
    return generative_loss(model, params, batch,
                           yes_id=yes_id if use_verdict else None,
                           no_id=no_id if use_verdict else None,
                           with_eval_outputs=with_eval_outputs,
                           loss_chunk_size=loss_chunk_size,
                           loss_positions=loss_positions)
  if kind == "disc":
    return disc_loss(model, params, batch,
                     with_eval_outputs=with_eval_outputs)
  if kind == "pairwise":
    return bt_loss(model, params, batch, with_eval_outputs=with_eval_outputs,
                   center_rewards=center_rewards)
  return dpo_loss(model, params, batch, ref_params=ref_params, beta=beta,
                  with_eval_outputs=with_eval_outputs,
                  loss_chunk_size=loss_chunk_size,
                  loss_positions=loss_positions)


def finalize(sums: Sums) -> dict[str, jax.Array]:
  """sum / count for every metric (0 where nothing was counted)."""
  return {k: s / jnp.maximum(c, 1e-9) for k, (s, c) in sums.items()}


def auroc(scores, labels) -> float:
  """Area under the ROC curve, ties counted as 1/2 (Mann-Whitney U).

  NaN when only one class is present.
  """
  scores = np.asarray(scores, np.float64).ravel()
  labels = np.asarray(labels).ravel().astype(bool)
  n_pos, n_neg = int(labels.sum()), int((~labels).sum())
  if n_pos == 0 or n_neg == 0:
    return float("nan")
  order = np.argsort(scores, kind="mergesort")
  sorted_scores = scores[order]
  # Average ranks (1-based) over tied groups.
  ranks = np.empty(len(scores), np.float64)
  _, first, counts = np.unique(sorted_scores, return_index=True,
                               return_counts=True)
  avg = first + (counts + 1) / 2.0
  ranks[order] = np.repeat(avg, counts)
  u = ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0
  return float(u / (n_pos * n_neg))
