"""Model behaviour beyond parity: packing, padding, sharding, remat, dtypes,
presets and checkpoint errors."""

import functools

import numpy as np
import pytest

import flax.linen as nn
import jax
import jax.numpy as jnp

from genrm_jax import sharding
from genrm_jax.models import checkpoints
from genrm_jax.models import gemma
from tests import gemma_reference as ref
from tests import jaxprs


_apply = ref.apply


@pytest.mark.parametrize("family", ["gemma2", "gemma3"])
def test_packed_segments_equal_separate_sequences(family):
  config = ref.tiny_config(family)
  params = ref.random_params(config)
  rng = np.random.default_rng(0)
  a = rng.integers(1, config.num_embed, size=5)
  b = rng.integers(1, config.num_embed, size=6)
  packed = np.concatenate([a, b, [0, 0]])[None]  # trailing padding
  segment_ids = np.array([[1] * 5 + [2] * 6 + [0, 0]])
  positions = np.array([list(range(5)) + list(range(6)) + [0, 0]])
  out = _apply(config, params, packed, positions=positions,
               segment_ids=segment_ids).logits[0]
  alone_a = _apply(config, params, a[None]).logits[0]
  alone_b = _apply(config, params, b[None]).logits[0]
  ref.assert_close(out[:5], alone_a, rtol=1e-5)
  ref.assert_close(out[5:11], alone_b, rtol=1e-5)
  # Without segment ids the second sequence sees the first: logits differ.
  mixed = _apply(config, params, packed[:, :11]).logits[0]
  assert np.max(np.abs(mixed[5:11] - alone_b)) > 1e-2


@pytest.mark.parametrize("family", ["gemma1_mqa", "gemma1_mha", "gemma2",
                                    "gemma3"])
def test_batched_projections_compute_the_same_model(family):
  """batched_projections (the sampler's: q / kv / qkv and the gate-and-up as
  batched matmuls over their weights' leading axes) is the same model,
  with and without a cache; so are per-layer cache buffers."""
  config = ref.tiny_config(family).replace(scan_layers=False)
  params = gemma.unstack_layers(ref.random_params(config.replace(
      scan_layers=True), seed=3))
  tokens = np.array([[2, 5, 9, 13, 4], [2, 40, 41, 7, 0]])
  plain = _apply(config, params, tokens).logits
  batched_config = config.replace(batched_projections=True)
  ref.assert_close(_apply(batched_config, params, tokens).logits, plain,
                   rtol=1e-5)
  steps = {}
  for name, cfg, per_layer in (("stacked", config, False),
                               ("batched, per-layer", batched_config, True)):
    cache = gemma.init_cache(cfg, 2, 8, jnp.float32, per_layer=per_layer)
    out = _apply(cfg, params, tokens[:, :3], cache=cache)
    logits = [out.logits[:, -1]]
    for t in (3, 4):
      out = _apply(cfg, params, tokens[:, t:t + 1], cache=out.cache)
      logits.append(out.logits[:, 0])
    steps[name] = np.stack(logits)
    assert isinstance(out.cache["k"], tuple) == per_layer
  ref.assert_close(steps["batched, per-layer"], steps["stacked"], rtol=1e-5)
  ref.assert_close(steps["stacked"][:2], np.swapaxes(plain[:, 2:4], 0, 1),
                   rtol=1e-5)


@pytest.mark.parametrize("eqn, w_shape, lead", [
    ("MD,CFD->CMF", (2, 48, 16), (2,)),  # Gemma 2 9B / Gemma 3 gating
    ("MD,CDF->CMF", (2, 16, 48), (2,)),  # the other gating layout
    ("BTD,NDH->BTNH", (4, 16, 8), (4,)),  # q
    ("BSD,CKDH->CBSKH", (2, 3, 16, 8), (2, 3)),  # kv
    ("BTD,SNDH->SBTNH", (3, 4, 16, 8), (3, 4)),  # qkv
])
def test_batched_einsum_broadcasts_over_batch_axes_only(eqn, w_shape, lead):
  """The activations are broadcast over the weight's batch axes alone:
  with the transposed gating weight [2, F, D] they were once broadcast over
  F too (x as [2, F, M, D]: 10.7 GB for Gemma 3 270M's prefill of 8 x 128
  tokens, 23 GB of RSS on a CPU)."""
  x_shape = (5, 16) if eqn.startswith("MD") else (2, 5, 16)
  x, w = np.ones(x_shape, np.float32), np.ones(w_shape, np.float32)
  jaxpr = jax.make_jaxpr(lambda a, b: gemma.batched_einsum(eqn, a, b))(x, w)
  shapes = [e.outvars[0].aval.shape for e in jaxpr.eqns
            if e.primitive.name == "broadcast_in_dim"]
  assert shapes == [lead + x_shape]
  np.testing.assert_allclose(gemma.batched_einsum(eqn, x, w),
                             jnp.einsum(eqn, x, w), rtol=1e-6)


def test_per_layer_cache_needs_the_layer_loop():
  config = ref.tiny_config("gemma2")
  with pytest.raises(ValueError, match="scan_layers=False"):
    gemma.init_cache(config, 1, 8, per_layer=True)
  cache = gemma.init_cache(config.replace(scan_layers=False), 1, 8,
                           per_layer=True)
  with pytest.raises(ValueError, match="needs scan_layers=False"):
    _apply(config, ref.random_params(config), np.array([[2, 5]]), cache=cache)


def test_left_padded_batch_decodes_like_unpadded_rows():
  """A cache filled from left-padded prompts of different lengths."""
  config = ref.tiny_config("gemma2")
  params = ref.random_params(config, seed=4)
  rng = np.random.default_rng(4)
  long = rng.integers(1, config.num_embed, size=7)
  short = rng.integers(1, config.num_embed, size=4)
  prompts = np.stack([long[:5], np.concatenate([[0, 0], short[:3]])])
  cache = gemma.init_cache(config, 2, 12, jnp.float32)
  out = _apply(config, params, prompts, cache=cache)
  cache = out.cache
  steps = [out.logits[:, -1]]
  for t in range(2):
    nxt = np.array([[long[5 + t]], [short[3 + t] if t < 1 else short[3]]])
    out = _apply(config, params, nxt, cache=cache)
    cache = out.cache
    steps.append(out.logits[:, 0])
  full_long = _apply(config, params, long[None]).logits[0]
  full_short = _apply(config, params, short[None]).logits[0]
  ref.assert_close(steps[0][0], full_long[4], rtol=1e-5)
  ref.assert_close(steps[1][0], full_long[5], rtol=1e-5)
  ref.assert_close(steps[2][0], full_long[6], rtol=1e-5)
  ref.assert_close(steps[0][1], full_short[2], rtol=1e-5)
  ref.assert_close(steps[1][1], full_short[3], rtol=1e-5)
  np.testing.assert_array_equal(cache["positions"][1, 2:7], [0, 1, 2, 3, 4])


@pytest.mark.parametrize("mesh_shape", [(8, 1, 1), (2, 2, 2), (1, 2, 4),
                                        (1, 8, 1)])
def test_sharded_forward_equals_single_device(mesh_shape):
  assert jax.device_count() == 8, "conftest sets 8 fake CPU devices"
  config = ref.tiny_config("gemma2", hidden_dim=64)
  params = ref.random_params(config, seed=5)
  tokens = np.random.default_rng(5).integers(
      1, config.num_embed, size=(8, 9)).astype(np.int32)
  expected = jax.jit(lambda p, t: _apply(config, p, t).logits)(params, tokens)

  mesh = sharding.make_mesh(mesh_shape)
  shardings = sharding.logical_shardings(gemma.abstract_params(config), mesh)
  sharded_params = jax.device_put(params, shardings)
  sharded_tokens = jax.device_put(tokens, sharding.batch_sharding(mesh))
  if mesh_shape[1] > 1:  # FSDP really splits the embedding table
    table = sharded_params["embedder"]["input_embedding"]
    assert table.addressable_shards[0].data.shape[1] < config.embed_dim
  with sharding.use_mesh(mesh):
    got = jax.jit(lambda p, t: _apply(config, p, t).logits)(
        sharded_params, sharded_tokens)
  ref.assert_close(got, expected, rtol=1e-5)


def test_params_created_already_sharded():
  config = ref.tiny_config("gemma3")
  mesh = sharding.make_mesh((1, 4, 2))
  params = gemma.init_params(config, 0, mesh=mesh)
  table = params["embedder"]["input_embedding"]
  assert table.sharding.spec == jax.sharding.PartitionSpec(None, "fsdp")
  # The single MQA kv head cannot split over `tensor`: replicated there.
  kv = params["layers"]["attn"]["kv_einsum"]["w"]
  assert "tensor" not in jax.tree.leaves(tuple(kv.sharding.spec))
  single = gemma.init_params(config, 0)
  jax.tree.map(np.testing.assert_allclose, params, single)


def test_remat_gives_the_same_gradients():
  config = ref.tiny_config("gemma2")
  params = ref.random_params(config)
  tokens = np.random.default_rng(0).integers(1, 101, size=(2, 8))

  def grads(cfg):
    def loss(p):
      return jnp.mean(_apply(cfg, p, tokens).logits ** 2)
    return jax.jit(jax.grad(loss))(params)

  plain = grads(config)
  for policy in ("full", "dots_saveable"):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5,
                                                         atol=1e-6),
                 grads(config.replace(remat_policy=policy)), plain)


@pytest.mark.parametrize("family", ["gemma1_mqa", "gemma1_mha", "gemma3"])
def test_fused_attention_call_equals_einsum_attention(family):
  """attention_impl='xla' (jax.nn.dot_product_attention, the portable twin
  of 'cudnn') gives the einsum path's logits and gradients: packed segments,
  padding, GQA/MQA and sliding windows included."""
  config = ref.tiny_config(family, sliding_window_size=3)
  fused = config.replace(attention_impl="xla")
  params = ref.random_params(config)
  rng = np.random.default_rng(0)
  tokens = rng.integers(1, config.num_embed, size=(2, 13))
  segment_ids = np.array([[1] * 7 + [2] * 4 + [0, 0], [1] * 13])
  positions = np.array([list(range(7)) + list(range(4)) + [0, 0],
                        list(range(13))])
  kw = dict(positions=positions, segment_ids=segment_ids)

  def loss(cfg, p):
    logits = _apply(cfg, p, tokens, **kw).logits
    return jnp.sum(jnp.where(segment_ids[..., None] > 0, logits, 0.0) ** 2)

  ref.assert_close(_apply(fused, params, tokens, **kw).logits,
                   _apply(config, params, tokens, **kw).logits, rtol=1e-5)
  grads = [jax.jit(jax.grad(functools.partial(loss, c)))(params)
           for c in (config, fused)]
  # fp32, summed in another order: relative to each gradient's scale.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(
      a, b, rtol=0, atol=1e-5 * np.max(np.abs(b))), *grads)
  # With a KV cache (decoding) both take the einsum path.
  cache = fused.init_cache(2, 16)
  step = _apply(fused, params, tokens[:, :5], cache=cache)
  plain = _apply(config, params, tokens[:, :5], cache=cache)
  np.testing.assert_array_equal(step.logits, plain.logits)


@pytest.mark.parametrize("preset", ["gemma_2b", "gemma_7b", "gemma3_270m"])
def test_cudnn_attention_lowers_to_the_fused_kernel_for_an_h100(
    preset, monkeypatch):
  """No GPU here: the forward+backward is lowered for CUDA, with JAX's cuDNN
  checks told what an H100 reports (cuDNN 9.10, compute capability 9.0,
  which allows head_dim 256). Our call passes JAX's layout, head-count and
  bias checks and becomes cuDNN's fused attention, forward and backward."""
  fa = pytest.importorskip("jax._src.cudnn.fused_attention_stablehlo")
  for name in ("check_cudnn_version", "check_compute_capability",
               "is_cuda_compute_capability_equal"):
    if not hasattr(fa, name):
      pytest.skip(f"this jax has no {fa.__name__}.{name} to stand in for a GPU")
  monkeypatch.setattr(fa, "check_cudnn_version", lambda: 91000)
  monkeypatch.setattr(fa, "check_compute_capability", lambda cc: True)
  monkeypatch.setattr(fa, "is_cuda_compute_capability_equal", lambda cc: False)
  # Under the train step's remat policy, as benchmarks.train_step runs it.
  config = gemma.get_config(preset, dtype="bfloat16", attention_impl="cudnn",
                            num_layers=2,
                            remat_policy="dots_with_no_batch_dims_saveable")
  params = jax.eval_shape(lambda: gemma.init_params(config, 0))

  def loss(p, tokens, segment_ids, positions):
    out = gemma.Transformer(config).apply(
        {"params": p}, tokens, positions=positions, segment_ids=segment_ids)
    return jnp.mean(out.logits)

  ids = jax.ShapeDtypeStruct((2, 256), jnp.int32)
  text = jax.jit(jax.grad(loss)).trace(params, ids, ids, ids).lower(
      lowering_platforms=("cuda",)).as_text()
  assert "custom_call @__cudnn$fmhaScaleBiasSoftmax(" in text
  assert "custom_call @__cudnn$fmhaScaleBiasSoftmaxBackward(" in text
  # Without the stand-in capability (head_dim 256 needs Hopper) JAX refuses.
  monkeypatch.setattr(fa, "check_compute_capability", lambda cc: False)
  with pytest.raises(NotImplementedError, match="head dim"):
    jax.jit(jax.grad(loss)).trace(params, ids, ids, ids).lower(
        lowering_platforms=("cuda",))


def test_fused_attention_rejects_what_it_cannot_compute():
  with pytest.raises(ValueError, match="soft-cap.*attention_impl='einsum'"):
    ref.tiny_config("gemma2", attention_impl="cudnn", dtype="bfloat16")
  with pytest.raises(ValueError, match="dtype='bfloat16'"):
    ref.tiny_config("gemma3", attention_impl="cudnn")  # fp32 compute
  with pytest.raises(ValueError, match="expected one of"):
    ref.tiny_config("gemma3", attention_impl="flash")


def test_einsum_fp32_out_gradients_are_matmuls_in_the_operands_dtype():
  """fp32 results (scores, logits) whose gradients multiply bf16 by bf16:
  with plain preferred_element_type=float32 the transposed einsums took an
  fp32 cotangent and bf16 operands upcast to fp32 (fp32 matmuls on a GPU).
  Same values as that formulation: exactly with fp32 operands, to bf16
  rounding of the cotangent with bf16 ones."""
  spec = "btd,vd->btv"
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  a = jax.random.normal(keys[0], (2, 3, 16))
  b = jax.random.normal(keys[1], (40, 16))
  w = jax.random.normal(keys[2], (2, 3, 40))
  plain = lambda a, b: jnp.einsum(spec, a, b,
                                  preferred_element_type=jnp.float32)
  ours = functools.partial(gemma.einsum_fp32_out, spec)
  loss = lambda f: lambda a, b: jnp.sum(jnp.tanh(f(a, b)) * w)

  out = ours(a.astype(jnp.bfloat16), b.astype(jnp.bfloat16))
  assert out.dtype == jnp.float32
  np.testing.assert_array_equal(
      out, plain(a.astype(jnp.bfloat16), b.astype(jnp.bfloat16)))
  for x, y in zip(jax.grad(loss(ours), (0, 1))(a, b),
                  jax.grad(loss(plain), (0, 1))(a, b)):
    np.testing.assert_array_equal(x, y)  # fp32 operands: unchanged

  a16, b16 = a.astype(jnp.bfloat16), b.astype(jnp.bfloat16)
  grads = jax.grad(loss(ours), (0, 1))(a16, b16)
  for x, y in zip(grads, jax.grad(loss(plain), (0, 1))(a16, b16)):
    assert x.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(x, np.float32),
                               np.asarray(y, np.float32), rtol=0.05,
                               atol=0.05)

  def dot_input_dtypes(f):
    jaxpr = jax.make_jaxpr(jax.grad(loss(f), (0, 1)))(a16, b16)
    return {tuple(str(v.aval.dtype) for v in eqn.invars)
            for eqn in jaxprs.all_eqns(jaxpr)
            if eqn.primitive.name == "dot_general"}
  assert dot_input_dtypes(ours) == {("bfloat16", "bfloat16")}
  assert ("float32", "bfloat16") in dot_input_dtypes(plain)  # what it fixes


def test_bf16_compute_approximates_fp32_and_hidden_states():
  config = ref.tiny_config("gemma3")
  params = ref.random_params(config)
  tokens = np.random.default_rng(0).integers(1, 101, size=(2, 8))
  fp32 = _apply(config, params, tokens)
  bf16 = _apply(config.replace(dtype="bfloat16"), params, tokens)
  assert bf16.logits.dtype == jnp.float32  # logits are always fp32
  assert bf16.hidden_states.dtype == jnp.bfloat16
  ref.assert_close(bf16.logits, fp32.logits, rtol=5e-2)
  no_logits = _apply(config, params, tokens, return_logits=False)
  assert no_logits.logits is None
  assert no_logits.hidden_states.shape == (2, 8, config.embed_dim)
  np.testing.assert_allclose(no_logits.hidden_states, fp32.hidden_states)
  bf16_params = gemma.init_params(config.replace(param_dtype="bfloat16"))
  assert bf16_params["layers"]["mlp"]["linear"].dtype == jnp.bfloat16


@pytest.mark.parametrize("name,billions", [
    ("gemma_2b", 2.51), ("gemma_7b", 8.54), ("gemma2_2b", 2.61),
    ("gemma2_9b", 9.24), ("gemma2_27b", 27.2), ("gemma3_270m", 0.268),
    ("gemma3_1b", 1.0), ("gemma3_4b", 3.88), ("gemma3_12b", 11.77),
    ("gemma3_27b", 27.01)])
def test_preset_sizes(name, billions):
  """Parameter counts of the released models (shapes only, no memory)."""
  params = jax.tree.map(lambda b: b.value, gemma.abstract_params(
      gemma.get_config(name)), is_leaf=lambda x: hasattr(x, "names"))
  assert gemma.count_params(params) / 1e9 == pytest.approx(billions, rel=0.02)


def test_get_config_overrides():
  cfg = gemma.get_config("gemma3_1b", num_layers=8, dtype="float32")
  assert cfg.attention_types == ("local_sliding",) * 5 + ("global", "local_sliding", "local_sliding")
  assert cfg.dtype == "float32" and cfg.transpose_gating_einsum
  cfg = gemma.get_config("gemma2_2b", attention_types=["global", "LOCAL_SLIDING"])
  assert cfg.attention_types == ("global", "local_sliding")
  with pytest.raises(ValueError, match="Unknown Gemma config field"):
    gemma.get_config("tiny", num_layer=3)
  with pytest.raises(ValueError, match="Unknown Gemma preset"):
    gemma.get_config("gemma5")
  with pytest.raises(ValueError, match="sliding_window_size"):
    gemma.get_config("tiny", sliding_window_size=None)


def test_checkpoint_mismatch_lists_keys(tmp_path):
  config = ref.tiny_config("gemma2")
  checkpoints.save_params(ref.random_params(config), tmp_path / "c")
  other = ref.tiny_config("gemma2", hidden_dim=40, num_layers=3,
                          attention_types=("global",) * 3, use_qk_norm=True)
  with pytest.raises(checkpoints.CheckpointMismatchError) as err:
    checkpoints.load_params(tmp_path / "c", other)
  message = str(err.value)
  assert "missing keys" in message and "layer_2" in message
  assert "transformer/layer_0/attn/_query_norm/scale" in message
  assert "unexpected keys" in message and "layer_3" in message
  assert "mis-shaped" in message and "mlp/linear/w" in message
  with pytest.raises(FileNotFoundError, match="Kaggle"):
    checkpoints.load_params(tmp_path / "nope", config)
  (tmp_path / "empty").mkdir()  # a folder, but no checkpoint in it
  with pytest.raises(FileNotFoundError, match="empty holds no orbax checkpoint"):
    checkpoints.load_params(tmp_path / "empty", config)


def test_load_params_from_a_bundle_directory(tmp_path):
  """`init_from` may name a bundle (`import_hf --out=DIR`): its params/."""
  from genrm_jax.models import bundle  # pylint: disable=g-import-not-at-top
  config = ref.tiny_config("gemma2")
  params = ref.random_params(config)
  bundle.save_bundle(str(tmp_path / "b"), params, config, "byte")
  loaded = checkpoints.load_params(tmp_path / "b", config)
  jax.tree.map(np.testing.assert_array_equal, loaded, params)


def test_load_params_from_a_relative_path(tmp_path, monkeypatch):
  # The launchers pass `runs/gemma3_270m/params`; orbax reads no item
  # metadata through a relative path.
  config = ref.tiny_config("gemma3")
  params = ref.random_params(config)
  monkeypatch.chdir(tmp_path)
  checkpoints.save_params(params, "runs/c", layout="kaggle")
  loaded = checkpoints.load_params("runs/c", config)
  jax.tree.map(np.testing.assert_array_equal, loaded, params)


def test_load_params_onto_mesh(tmp_path):
  config = ref.tiny_config("gemma1_mha")
  params = ref.random_params(config)
  checkpoints.save_params(params, tmp_path / "c", layout="kaggle")
  mesh = sharding.make_mesh((2, 2, 2))
  loaded = checkpoints.load_params(tmp_path / "c", config, mesh=mesh)
  qkv = loaded["layers"]["attn"]["qkv_einsum"]["w"]
  assert qkv.sharding.spec == jax.sharding.PartitionSpec(
      None, None, "tensor", "fsdp", None)
  jax.tree.map(np.testing.assert_array_equal, loaded, params)


def _with_multimodal_arrays(tree, layout):
  """`tree` (our params in `layout`) plus what the multimodal Gemma 3
  releases hold beside the language model: a SigLIP tower and the
  embedder's projection of its outputs (official names)."""
  rng = np.random.default_rng(0)
  extra = lambda *shape: rng.normal(size=shape).astype(np.float32)
  tree = dict(tree)
  if layout == "kaggle":
    tree["SigLiPFromPatches_0/siglip_encoder/embedding"] = {
        "kernel": extra(14, 14, 3, 8), "bias": extra(8)}
    tree["SigLiPFromPatches_0/siglip_encoder/Transformer/encoder_norm"] = {
        "scale": extra(8)}
    tree["transformer/embedder/mm_input_projection"] = {"w": extra(8, 32)}
    tree["transformer/embedder/mm_soft_embedding_norm"] = {"scale": extra(8)}
  else:
    tree["vision_encoder"] = {"siglip_encoder": {"embedding": {
        "kernel": extra(14, 14, 3, 8)}}}
    tree["embedder"] = dict(tree["embedder"], mm_input_projection={
        "w": extra(8, 32)}, mm_soft_embedding_norm={"scale": extra(8)})
  return tree


@pytest.mark.parametrize("layout", ["kaggle", "nested"])
def test_load_params_reads_the_language_model_of_a_multimodal_checkpoint(
    layout, tmp_path):
  """Gemma 3 4B/12B/27B ship with a vision tower; `load_params` reads the
  language model alone (official `load_params(text_only=True)`), and a
  mismatch there is still reported key by key."""
  import orbax.checkpoint as ocp
  config = ref.tiny_config("gemma3")
  params = ref.random_params(config)
  tree = _with_multimodal_arrays(checkpoints.to_layout(params, layout), layout)
  ocp.PyTreeCheckpointer().save(str(tmp_path / "c"), tree)
  stored = checkpoints.read_metadata(tmp_path / "c")
  text, prefix, left_out = checkpoints.split_language_model(stored)
  assert prefix == () and checkpoints.detect_layout(text) == layout
  assert any("SigLiPFromPatches_0" in p or "vision_encoder" in p
             for p in left_out)
  assert sum("mm_" in p for p in left_out) == 2
  loaded = checkpoints.load_params(tmp_path / "c", config)
  jax.tree.map(np.testing.assert_array_equal, loaded, params)
  # Straight into its shardings on a mesh (a pod loading Gemma 3 27B).
  mesh = sharding.make_mesh((2, 2, 2))
  sharded = checkpoints.load_params(tmp_path / "c", config, mesh=mesh)
  assert sharded["layers"]["attn"]["q_einsum"]["w"].sharding.mesh == mesh
  jax.tree.map(np.testing.assert_array_equal, sharded, params)
  with pytest.raises(checkpoints.CheckpointMismatchError,
                     match="missing keys.*layer_3") as err:
    checkpoints.load_params(tmp_path / "c", config.replace(
        attention_types=("global",) * 4))
  assert "mm_" not in str(err.value) and "SigLiP" not in str(err.value)


def test_load_params_reads_a_kauldron_trainer_checkpoint(tmp_path):
  """A `kd.train.Trainer` step directory: `default/` holds {params (nested),
  opt_state, step}; the params are read, the optimizer state is not."""
  import orbax.checkpoint as ocp
  config = ref.tiny_config("gemma2")
  params = ref.random_params(config, seed=4)
  nested = checkpoints.to_layout(params, "nested")
  state = {"params": nested, "step": np.int64(7),
           "opt_state": {"mu": jax.tree.map(np.zeros_like, nested)}}
  ocp.PyTreeCheckpointer().save(str(tmp_path / "ckpt_7" / "default"), state)
  (tmp_path / "ckpt_7" / "_CHECKPOINT_METADATA").write_text("{}")
  loaded = checkpoints.load_params(tmp_path / "ckpt_7", config)
  jax.tree.map(np.testing.assert_array_equal, loaded, params)


@pytest.mark.parametrize("transpose_gating", [False, True])
def test_feed_forward_gradient_writes_no_transposed_activations_on_a_cpu(
    transpose_gating):
  """The MLP's matmuls run on rows [B * T, D]: with the two leading axes,
  XLA:CPU wrote the gating gradient [B, T, F] out transposed, as [F, B * T],
  before each weight-gradient matmul, a strided pass that was a quarter of
  the quickstart's train step (benchmarks/RESULTS.md). The gradients are
  the einsum's."""
  b, t, d, f = 4, 32, 16, 96
  config = gemma.get_config("tiny", embed_dim=d, hidden_dim=f,
                            transpose_gating_einsum=transpose_gating)
  module = gemma.FeedForward(config)
  x = jnp.asarray(np.random.default_rng(0).normal(size=(b, t, d)),
                  jnp.float32)
  params = nn.unbox(module.init(jax.random.PRNGKey(0), x))

  def loss(p, x):
    return jnp.sum(module.apply(p, x) ** 2)

  grad = jax.jit(jax.grad(loss, (0, 1)))
  hlo = grad.lower(params, x).compile().as_text()
  assert f"f32[{f},{b * t}]" not in hlo

  def reference(p, x):  # the same math on [B, T, D]
    w = p["params"]["gating_einsum"]
    eqn = "btd,fd->btf" if transpose_gating else "btd,df->btf"
    hidden = jax.nn.gelu(jnp.einsum(eqn, x, w[0])) * jnp.einsum(eqn, x, w[1])
    return jnp.sum(jnp.einsum("btf,fd->btd", hidden,
                              p["params"]["linear"]) ** 2)
  for ours, want in zip(jax.tree.leaves(grad(params, x)),
                        jax.tree.leaves(jax.grad(reference, (0, 1))(params,
                                                                    x))):
    np.testing.assert_allclose(ours, want, rtol=1e-5, atol=1e-5)
