"""AdamW with the paper's schedule: linear warmup, cosine decay, then held.

GenRM (Zhang et al., 2025, appendix) fine-tunes with AdamW, peak LR 2e-6,
weight decay 1e-2, global-norm gradient clipping at 1.0, 1000 linear warmup
steps and a cosine decay to 10% of the peak over 200K steps, after which the
LR stays at 10%. Every number is a config field (`config.lr` and
`config.optimizer.*`).

Weight-decay masking (`config.optimizer.weight_decay_mask`):
  * 'no_norms' (default): decay every weight matrix, including the embedding
    table, but not norm scales. This is what a t5x/big_vision user expects
    (big_vision decays kernels only; t5x's Adafactor/AdamW setups skip
    scales), and Gemma's RMSNorm stores `scale` as an offset from 1
    (`x * (1 + scale)`), so decaying it would pull towards a *different*
    function than decaying a kernel does. With lr 2e-6 and wd 1e-2 the
    difference is numerically tiny either way.
  * 'all': decay everything (plain `optax.adamw`).
  * 'no_norms_no_embed': also leave the (tied) embedding table undecayed.

Decay is decoupled and scaled by the LR, as in `optax.adamw` / PyTorch AdamW.

Gradient accumulation is *not* an optax wrapper here: `train.py` splits the
global batch into `grad_accum_steps` microbatches inside the jitted step and
sums token-level loss numerators/denominators, so the accumulated gradient
equals the full-batch gradient exactly (optax.MultiSteps would average
per-microbatch means and change the optimizer-state structure).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import traverse_util

WEIGHT_DECAY_MASKS = ("no_norms", "all", "no_norms_no_embed")


def make_schedule(peak_lr: float, warmup_steps: int, decay_steps: int,
                  min_lr_ratio: float) -> optax.Schedule:
  """Linear warmup 0 -> peak over `warmup_steps`, cosine to
  `min_lr_ratio * peak` at step `decay_steps` (counted from step 0, warmup
  included, as in `optax.warmup_cosine_decay_schedule`), constant after."""
  if decay_steps <= warmup_steps:
    # Degenerate but legal (e.g. tiny runs): warm up, then hold the peak.
    return optax.linear_schedule(0.0, peak_lr, max(warmup_steps, 1))
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=peak_lr, warmup_steps=warmup_steps,
      decay_steps=decay_steps, end_value=peak_lr * min_lr_ratio)


def schedule_from_config(config) -> optax.Schedule:
  o = config.optimizer
  return make_schedule(config.lr, o.warmup_steps, o.decay_steps,
                       o.min_lr_ratio)


def weight_decay_mask(params: Any, mode: str = "no_norms") -> Any:
  """A tree of bools (True = decay) matching `params`.

  Norm scales are leaves named `scale`; the embedding table is
  `input_embedding`; value-head bias is `bias` (never decayed unless 'all').
  """
  if mode not in WEIGHT_DECAY_MASKS:
    raise ValueError(f"optimizer.weight_decay_mask={mode!r}; expected one of "
                     f"{WEIGHT_DECAY_MASKS}.")
  flat = traverse_util.flatten_dict(params)

  def decay(path):
    name = path[-1]
    if mode == "all":
      return True
    if name in ("scale", "bias"):
      return False
    if mode == "no_norms_no_embed" and name == "input_embedding":
      return False
    return True

  return traverse_util.unflatten_dict({k: decay(k) for k in flat})


def make_optimizer(config) -> tuple[optax.GradientTransformation,
                                    optax.Schedule]:
  """The optax transformation and its LR schedule, from the config."""
  o = config.optimizer
  schedule = schedule_from_config(config)
  mu_dtype = jnp.dtype(o.mu_dtype) if o.mu_dtype else None
  mode = o.weight_decay_mask
  tx = optax.chain(
      # Clip first: the paper clips the raw gradient's global norm.
      optax.clip_by_global_norm(o.grad_clip_norm) if o.grad_clip_norm
      else optax.identity(),
      optax.adamw(learning_rate=schedule, b1=o.b1, b2=o.b2, eps=o.eps,
                  weight_decay=o.weight_decay, mu_dtype=mu_dtype,
                  mask=lambda p: weight_decay_mask(p, mode)),
  )
  return tx, schedule


def global_norm(tree: Any) -> jax.Array:
  return optax.tree.norm(tree)
