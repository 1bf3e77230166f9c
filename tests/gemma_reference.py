"""Helpers to run the official `gemma` package (2.0.8 legacy modules) as the
reference implementation in tests."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genrm_jax.models import checkpoints
from genrm_jax.models import gemma

official_transformer = pytest.importorskip(
    "gemma.transformer", reason="the official `gemma` package is in the "
    "`test` extra: pip install -e .[test]")
official_modules = pytest.importorskip("gemma.modules")
official_params = pytest.importorskip("gemma.params")

# Tiny random configs that switch on each family's features. Sliding windows
# are shorter than the test sequences so local masking matters.
FAMILIES = {
    "gemma1_mqa": dict(attention_types=("global",) * 2, num_heads=4,
                       num_kv_heads=1),
    "gemma1_mha": dict(attention_types=("global",) * 2, num_heads=4,
                       num_kv_heads=4),
    "gemma2": dict(attention_types=("local_sliding", "global") * 2,
                   num_heads=4, num_kv_heads=2, final_logit_softcap=30.0,
                   attn_logits_soft_cap=50.0, sliding_window_size=4,
                   use_post_attn_norm=True, use_post_ffw_norm=True),
    "gemma2_27b_like": dict(
        attention_types=("local_sliding", "global"), num_heads=4,
        num_kv_heads=2, final_logit_softcap=30.0, attn_logits_soft_cap=50.0,
        sliding_window_size=3, use_post_attn_norm=True, head_dim=16,
        use_post_ffw_norm=True, transpose_gating_einsum=True,
        query_pre_attn_norm="by_one_over_sqrt_embed_dim_div_num_heads"),
    "gemma3": dict(attention_types=("local_sliding", "local_sliding", "global"),
                   num_heads=4, num_kv_heads=1, use_qk_norm=True,
                   sliding_window_size=4, use_post_attn_norm=True,
                   use_post_ffw_norm=True, transpose_gating_einsum=True,
                   local_base_frequency=10_000,
                   global_base_frequency=1_000_000),
}


def tiny_config(family: str, **overrides) -> gemma.TransformerConfig:
  fields = dict(num_embed=101, embed_dim=32, hidden_dim=48, head_dim=8,
                final_logit_softcap=None, use_post_attn_norm=False,
                use_post_ffw_norm=False, attn_logits_soft_cap=None,
                sliding_window_size=None, use_qk_norm=False,
                local_base_frequency=10_000, global_base_frequency=10_000,
                dtype="float32")
  fields.update(FAMILIES[family])
  fields.update(overrides)
  return gemma.get_config("tiny", **fields)


def random_params(config: gemma.TransformerConfig, seed: int = 0):
  """Random params with non-trivial norm scales (official init is zeros)."""
  params = gemma.init_params(config, seed)
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.PRNGKey(seed + 1), len(leaves))
  leaves = [0.5 * jax.random.normal(k, x.shape, x.dtype)
            for k, x in zip(keys, leaves)]
  return jax.tree.unflatten(treedef, leaves)


def official_config(config: gemma.TransformerConfig):
  m, t = official_modules, official_transformer
  norm = {
      "by_one_over_sqrt_head_dim":
          t.QueryPreAttentionNormalisation.BY_ONE_OVER_SQRT_HEAD_DIM,
      "by_embed_dim_div_num_heads":
          t.QueryPreAttentionNormalisation.BY_EMBED_DIM_DIV_NUM_HEADS,
      "by_one_over_sqrt_embed_dim_div_num_heads":
          t.QueryPreAttentionNormalisation.BY_ONE_OVER_SQRT_EMBED_DIM_DIV_NUM_HEADS,
  }[config.query_pre_attn_norm]
  return t.TransformerConfig(
      num_layers=config.num_layers, num_embed=config.num_embed,
      embed_dim=config.embed_dim, hidden_dim=config.hidden_dim,
      num_heads=config.num_heads, head_dim=config.head_dim,
      num_kv_heads=config.num_kv_heads,
      final_logit_softcap=config.final_logit_softcap,
      use_post_attn_norm=config.use_post_attn_norm,
      use_post_ffw_norm=config.use_post_ffw_norm,
      attention_types=tuple(
          m.AttentionType.GLOBAL if a == "global"
          else m.AttentionType.LOCAL_SLIDING for a in config.attention_types),
      max_cache_length=None, query_pre_attn_norm=norm,
      attn_logits_soft_cap=config.attn_logits_soft_cap,
      sliding_window_size=config.sliding_window_size,
      transpose_gating_einsum=config.transpose_gating_einsum,
      use_qk_norm=config.use_qk_norm,
      local_base_frequency=config.local_base_frequency,
      global_base_frequency=config.global_base_frequency)


# Both models run jitted, one compile per config and shapes: called eagerly,
# JAX compiles each of a forward's hundreds of ops for each new shape, which
# took seconds per test on the 2-core CPU.


@functools.lru_cache
def _jitted_apply(config, static_kw):
  def forward(params, tokens, array_kw):
    return gemma.Transformer(config).apply({"params": params}, tokens,
                                           **array_kw, **dict(static_kw))
  return jax.jit(forward)


def apply(config, params, tokens, **kw):
  """Our Transformer's forward (`Transformer(config).apply`), jitted; flags
  (bools, strings, None) are static, arrays and caches traced."""
  static = {k: v for k, v in kw.items()
            if v is None or isinstance(v, (bool, str))}
  arrays = {k: v for k, v in kw.items() if k not in static}
  return _jitted_apply(config, tuple(sorted(static.items())))(
      params, tokens, arrays)


@functools.lru_cache
def _jitted_official_logits(config, position_scale=1.0):
  cfg = official_config(config)

  def forward(params, tokens):
    nested = checkpoints.stacked_to_nested(params)
    mask = tokens != 0
    positions = official_transformer.build_positions_from_mask(mask)
    if position_scale != 1.0:  # RoPE sees positions / scale (global layers)
      positions = positions / position_scale
    attn_mask = official_transformer.make_causal_attn_mask(mask)
    logits, _ = official_transformer.Transformer(cfg).apply(
        {"params": nested}, tokens, positions, None, attn_mask)
    return logits
  return jax.jit(forward)


def official_logits(config, params, tokens,
                    position_scale: float = 1.0) -> np.ndarray:
  """Full-sequence logits from the official implementation; with
  `position_scale`, its RoPE positions divided by it (the 2.0.8 package
  predates `global_scale_factor`, which is that division)."""
  return np.asarray(_jitted_official_logits(config, position_scale)(
      params, jnp.asarray(tokens)))


def assert_close(actual, expected, rtol=1e-4):
  """Relative error of the whole tensor (max abs diff / max abs value)."""
  actual, expected = np.asarray(actual), np.asarray(expected)
  assert actual.shape == expected.shape, (actual.shape, expected.shape)
  err = np.max(np.abs(actual - expected)) / max(np.max(np.abs(expected)), 1e-6)
  assert err <= rtol, f"relative error {err:.3g} > {rtol}"
