"""LoRA fine-tuning: which parameters train, and folding adapters into weights.

With `model.lora_rank > 0` (`gemma.TransformerConfig`) each targeted
projection carries adapters `lora_a` / `lora_b` (`gemma.lora_update`). The
trainer then splits the train state's params with `partition`: the adapters
(and a discriminative verifier's value head) are differentiated and updated
by the optimizer; the rest is frozen, so no gradient, AdamW moment or update
is ever computed for it. A 9B base model then costs its weights' memory plus
the adapters', not the four copies full fine-tuning keeps.

`merge` folds every adapter into its weight (W + scale * A B, with the
projection's own einsum, `gemma.lora_equation`) and drops the adapters: the
trainer exports that, so a LoRA-trained verifier is an ordinary bundle for
`score`, `sample` and the evaluator.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
from flax import linen as nn
from flax import traverse_util

from genrm_jax.models import gemma

_ADAPTER_LEAVES = ("lora_a", "lora_b")


def is_adapter(path: tuple[str, ...]) -> bool:
  return path[-1].endswith(_ADAPTER_LEAVES)


def is_trainable(path: tuple[str, ...]) -> bool:
  """Trained under LoRA: the adapters and any non-model param (value head)."""
  return path[0] != "model" or is_adapter(path)


def partition(params: dict[str, Any],
              trainable: Callable[[tuple[str, ...]], bool] = is_trainable
              ) -> tuple[dict[str, Any], dict[str, Any]]:
  """(trainable, frozen) nested dicts holding complementary leaves of `params`."""
  flat = traverse_util.flatten_dict(params)
  train = {k: v for k, v in flat.items() if trainable(k)}
  frozen = {k: v for k, v in flat.items() if not trainable(k)}
  return traverse_util.unflatten_dict(train), traverse_util.unflatten_dict(frozen)


def combine(trainable: dict[str, Any], frozen: dict[str, Any]) -> dict[str, Any]:
  """The inverse of `partition`."""
  flat = traverse_util.flatten_dict(frozen)
  flat.update(traverse_util.flatten_dict(trainable))
  return traverse_util.unflatten_dict(flat)


def adapters(model_params: dict[str, Any]) -> dict[str, Any]:
  """Only the adapter leaves of a model's params."""
  return partition(model_params, is_adapter)[0]


def without_adapters(model_params: dict[str, Any]) -> dict[str, Any]:
  """The base model's params (adapters dropped, weights as they are)."""
  return partition(model_params, is_adapter)[1]


def zero_adapters(params: dict[str, Any]) -> dict[str, Any]:
  """`params` with every adapter zeroed: the frozen base model's function
  (e.g. DPO's reference), without a second copy of its weights."""
  flat = traverse_util.flatten_dict(params)
  return traverse_util.unflatten_dict(
      {k: jnp.zeros_like(v) if is_adapter(k) else v for k, v in flat.items()})


def merge(config: gemma.TransformerConfig, model_params: dict[str, Any]
          ) -> dict[str, Any]:
  """The params of the base architecture computing what the adapted model
  computes: each weight W + scale * A B (in W's dtype), adapters dropped.

  Works on stacked (scanned, leading `layers` axis) and per-layer params.
  """
  flat = traverse_util.flatten_dict(model_params)
  out = {k: v for k, v in flat.items() if not is_adapter(k)}
  for path in [k for k in flat if k[-1].endswith("lora_a")]:
    prefix = path[-1][:-len("lora_a")]
    if prefix:  # a raw param of its module: `gating_einsum_lora_a`
      name = prefix.rstrip("_")
      weight_path = path[:-1] + (name,)
    else:  # an `Einsum` module's adapter, beside its `w`
      name = path[-2]
      weight_path = path[:-1] + ("w",)
    a, b = flat[path], flat[path[:-1] + (prefix + "lora_b",)]
    w = flat[weight_path]
    eqn = gemma.lora_equation(config, name)
    axes = gemma.lora_axes(eqn)
    lead = "Y" if w.ndim == len(axes.rhs) + 1 else ""  # the layers axis
    if w.ndim != len(axes.rhs) + len(lead):
      raise ValueError(f"{'/'.join(weight_path)}: shape {w.shape} does not fit "
                       f"the einsum {eqn}")
    delta = jnp.einsum(f"{lead}{axes.contracted}z,{lead}z{axes.free}->{lead}{axes.rhs}",
                       a.astype(jnp.float32), b.astype(jnp.float32))
    out[weight_path] = (w.astype(jnp.float32) +
                        config.lora_scale * delta).astype(w.dtype)
  return traverse_util.unflatten_dict(out)


TARGET_GROUPS = {
    "all": gemma.LORA_TARGETS,
    "attention": ("qkv_einsum", "q_einsum", "kv_einsum", "attn_vec_einsum"),
    "mlp": ("gating_einsum", "linear"),
}


def parse_targets(spec: str) -> tuple[str, ...]:
  """'all' | 'attention' | 'mlp' | a comma list of `gemma.LORA_TARGETS`."""
  names: list[str] = []
  for item in (x.strip() for x in spec.split(",") if x.strip()):
    group = TARGET_GROUPS.get(item, (item,))
    names += [n for n in group if n not in names]
  unknown = [n for n in names if n not in gemma.LORA_TARGETS]
  if unknown or not names:
    raise ValueError(f"model.lora_targets={spec!r}: expected {', '.join(TARGET_GROUPS)} or "
                     f"a comma list of {', '.join(gemma.LORA_TARGETS)}.")
  return tuple(names)


def base_config(config: gemma.TransformerConfig) -> gemma.TransformerConfig:
  """The same model without adapters (what `merge` returns params for)."""
  return config.replace(lora_rank=0)


def init_adapters(config: gemma.TransformerConfig, rng: jax.Array,
                  shardings: Any = None) -> dict[str, Any]:
  """Freshly initialised adapters only (B = 0), e.g. beside base weights
  loaded from a checkpoint. Under jit the base weights' initialisers are
  dead code: nothing weight-sized is allocated."""
  def fn(r):
    tokens = jnp.ones((1, 4), jnp.int32)
    return adapters(nn.unbox(gemma.Transformer(config).init(r, tokens)["params"]))
  return jax.jit(fn, out_shardings=shardings)(rng)


def count(params: dict[str, Any]) -> tuple[int, int]:
  """(trainable, total) parameter counts under `is_trainable`."""
  train, frozen = partition(params)
  size = lambda tree: sum(int(x.size) for x in jax.tree.leaves(tree))
  return size(train), size(train) + size(frozen)
