"""Golden tests: our Flax Gemma against the official `gemma` implementation.

For tiny random configs of each family (Gemma 1 MQA/MHA, Gemma 2, Gemma 3),
logits agree to <= 1e-4 relative in fp32: full-sequence, incremental decoding
with the KV cache, and after a save in the official layout + `load_params`.
"""

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from genrm_jax.models import checkpoints
from genrm_jax.models import gemma
from tests import gemma_reference as ref

FAMILIES = sorted(ref.FAMILIES)
SEQ_LEN = 11


def _tokens(config, batch=2, length=SEQ_LEN, seed=0):
  rng = np.random.default_rng(seed)
  return rng.integers(1, config.num_embed, size=(batch, length)).astype(np.int32)


@pytest.mark.parametrize("family", FAMILIES)
def test_full_sequence_matches_official(family):
  config = ref.tiny_config(family)
  params = ref.random_params(config)
  tokens = _tokens(config)
  ours = ref.apply(config, params, tokens).logits
  ref.assert_close(ours, ref.official_logits(config, params, tokens))


def test_rope_scale_factor_matches_official_with_scaled_positions():
  """Gemma 3 4B/12B/27B stretch their global layers' RoPE 8x
  (`global_scale_factor`): positions / 8, as the official `apply_rope`'s
  `scale_factor` and HF's linear rope scaling do. Global layers only: the
  official 2.0.8 sliding mask reads the positions too."""
  config = ref.tiny_config("gemma3", attention_types=("global",) * 2,
                           global_scale_factor=8.0)
  params = ref.random_params(config, seed=3)
  tokens = _tokens(config, seed=3)
  ours = ref.apply(config, params, tokens).logits
  ref.assert_close(ours, ref.official_logits(config, params, tokens,
                                             position_scale=8.0))
  unscaled = ref.official_logits(config, params, tokens)
  assert np.max(np.abs(np.asarray(ours) - unscaled)) > 1e-2


@pytest.mark.parametrize("cache_left", [False, True])
@pytest.mark.parametrize("family", FAMILIES)
def test_kv_cache_decoding_matches_official(family, cache_left):
  """Prefill a prompt into the cache, then decode one token at a time; with
  either attention layout (`cache_left_attention`: the sampler's on CPUs)."""
  config = ref.tiny_config(family).replace(cache_left_attention=cache_left)
  params = ref.random_params(config, seed=1)
  tokens = _tokens(config, seed=1)
  expected = ref.official_logits(config, params, tokens)
  model = gemma.Transformer(config)
  prompt_len = 4
  cache = gemma.init_cache(config, batch_size=2, cache_length=16,
                           dtype=jnp.float32)

  @jax.jit
  def step(tokens, cache):
    out = model.apply({"params": params}, tokens, cache=cache)
    return out.logits, out.cache

  logits, cache = step(tokens[:, :prompt_len], cache)
  ref.assert_close(logits, expected[:, :prompt_len])
  for t in range(prompt_len, SEQ_LEN):
    logits, cache = step(tokens[:, t:t + 1], cache)
    ref.assert_close(logits[:, 0], expected[:, t])
  assert int(cache["end_index"]) == SEQ_LEN


@pytest.mark.parametrize("family", FAMILIES)
def test_official_save_then_load_params(family, tmp_path):
  """The official `format_and_save_params` writes; our `load_params` reads."""
  config = ref.tiny_config(family)
  params = ref.random_params(config, seed=2)
  nested = checkpoints.stacked_to_nested(params)
  path = tmp_path / "ckpt"
  ref.official_params.format_and_save_params({"transformer": nested},
                                             str(path))
  loaded = checkpoints.load_params(path, config)
  jax.tree.map(np.testing.assert_array_equal, loaded, params)
  tokens = _tokens(config, seed=2)
  ours = ref.apply(config, loaded, tokens).logits
  ref.assert_close(ours, ref.official_logits(config, params, tokens))


@pytest.mark.parametrize("layout", ["kaggle", "nested", "stacked"])
def test_our_save_is_read_by_official_and_by_us(layout, tmp_path):
  config = ref.tiny_config("gemma2")
  params = ref.random_params(config, seed=3)
  path = tmp_path / layout
  checkpoints.save_params(params, path, layout=layout)
  loaded = checkpoints.load_params(path, config)
  jax.tree.map(np.testing.assert_array_equal, loaded, params)
  if layout == "kaggle":  # the official loader understands what we wrote
    official = ref.official_params.load_and_format_params(str(path))
    expected = checkpoints.stacked_to_nested(params)
    jax.tree.map(np.testing.assert_array_equal, official["transformer"],
                 expected)


def test_presets_match_official_configs():
  """Our presets carry every field of the official releases."""
  t = ref.official_transformer
  for name, official in [("gemma_2b", t.TransformerConfig.gemma_2b(None)),
                         ("gemma_7b", t.TransformerConfig.gemma_7b(None)),
                         ("gemma2_2b", t.TransformerConfig.gemma2_2b(None)),
                         ("gemma2_9b", t.TransformerConfig.gemma2_9b(None)),
                         ("gemma2_27b", t.TransformerConfig.gemma2_27b(None))]:
    ours = ref.official_config(gemma.get_config(name))
    for field in ("num_layers", "num_embed", "embed_dim", "hidden_dim",
                  "num_heads", "head_dim", "num_kv_heads",
                  "final_logit_softcap", "use_post_attn_norm",
                  "use_post_ffw_norm", "query_pre_attn_norm",
                  "attn_logits_soft_cap", "sliding_window_size",
                  "transpose_gating_einsum", "use_qk_norm"):
      assert getattr(ours, field) == getattr(official, field), (name, field)
    assert tuple(ours.attention_types) == tuple(official.attention_types), name
