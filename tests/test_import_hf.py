"""HF transformers checkpoints (safetensors) -> bundles, and back: golden
logits against HF's own Gemma (Flax) and Gemma 2/3 (PyTorch), multimodal
prefixes, the exported config.json, and errors."""

import json
import os

from flax import traverse_util
import ml_dtypes
import numpy as np
import pytest

pytest.importorskip("safetensors", reason="the `hf` (or `test`) extra installs safetensors")
from safetensors import numpy as safetensors_numpy  # noqa: E402

from genrm_jax.models import gemma  # noqa: E402
from genrm_jax.models import import_hf  # noqa: E402
from tests import hf_reference as ref  # noqa: E402


def _config(spec, **more):
  fields = dict(num_layers=spec["layers"], num_embed=spec["vocab"], embed_dim=spec["d"],
                hidden_dim=spec["f"], num_heads=spec["heads"], num_kv_heads=spec["kv"],
                head_dim=spec["head_dim"], dtype="float32")
  return gemma.get_config("gemma_2b", **{**fields, **more})


def _logits(config, params):
  out = gemma.Transformer(config).apply({"params": params}, np.asarray(ref.TOKENS))
  return np.asarray(getattr(out, "logits", out))


def _write_checkpoint(directory, tensors, config_json, shards=2):
  """An HF checkpoint directory: sharded safetensors, config.json, tokenizer."""
  os.makedirs(directory, exist_ok=True)
  names = sorted(tensors)
  for s in range(shards):
    part = {n: tensors[n] for n in names[s::shards]}
    safetensors_numpy.save_file(part, os.path.join(directory,
                                                   f"model-{s + 1:05d}-of-{shards:05d}.safetensors"))
  with open(os.path.join(directory, "config.json"), "w") as f:
    json.dump(config_json, f)
  with open(os.path.join(directory, "tokenizer.model"), "wb") as f:
    f.write(b"a SentencePiece model")
  return str(directory)


@pytest.mark.parametrize("name", list(ref.SPECS))
def test_golden_logits_against_hf_flax_gemma(name, tmp_path):
  """MQA (Gemma 2B's q + kv) and multi-head (7B's fused qkv) weights, read
  from sharded safetensors files: HF's FlaxGemmaForCausalLM's logits."""
  spec = ref.SPECS[name]
  directory = _write_checkpoint(tmp_path / "hf", ref.hf_weights(spec), ref.hf_config(spec))
  config = _config(spec)
  params, left_out = import_hf.hf_to_params(import_hf.SafetensorsDir(directory), config)
  assert left_out == []
  assert ("qkv_einsum" in params["layers"]["attn"]) == (spec["heads"] == spec["kv"])
  np.testing.assert_allclose(_logits(config, params)[:, :, :8], ref.GOLDEN[name],
                             atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("name", list(ref.V23_CONFIGS))
def test_golden_logits_against_hf_torch_gemma2_and_gemma3(name, tmp_path):
  """Gemma 2 (soft caps, sliding windows, the 27B's query scale) and Gemma 3
  (QK-norm, local/global RoPE bases, the 4B+'s stretched global RoPE):
  the logits of HF's PyTorch Gemma2ForCausalLM / Gemma3ForCausalLM on the
  same weights, read from sharded safetensors files."""
  config = ref.v23_config(name)
  directory = _write_checkpoint(tmp_path / "hf", ref.hf_weights_v23(config),
                                ref.HF_CONFIGS_V23[name])
  params, left_out = import_hf.hf_to_params(import_hf.SafetensorsDir(directory), config)
  assert left_out == []
  np.testing.assert_allclose(_logits(config, params)[:, :, :8], ref.GOLDEN_V23[name],
                             atol=2e-5, rtol=1e-5)


@pytest.mark.parametrize("name", list(ref.V23_CONFIGS))
def test_export_writes_the_config_and_tensors_hf_loaded(name):
  """Export gives back the tensors, and the config.json, with which HF's
  PyTorch Gemma 2/3 computed GOLDEN_V23 (`from_pretrained`, no key missing
  or unexpected): a change to either must be checked against HF again."""
  from genrm_jax.models import export_hf  # pylint: disable=g-import-not-at-top
  config = ref.v23_config(name)
  _assert_round_trip(ref.hf_weights_v23(config), config)
  assert export_hf.hf_config(config, "float32") == ref.HF_CONFIGS_V23[name]


@pytest.mark.parametrize("name", ref.SEQ_CLS_NAMES)
def test_reward_models_as_hf_sequence_classification(name, tmp_path, monkeypatch):
  """A value-head bundle (disc / bt) exports as HF's one-label
  *ForSequenceClassification: its logits are HF's own on padded rows, up to
  the head's bias (HF's score has none; kept in config.json), and export ->
  import -> load gives the head back, bias included."""
  from genrm_jax import losses  # pylint: disable=g-import-not-at-top
  from genrm_jax.models import bundle  # pylint: disable=g-import-not-at-top
  from genrm_jax.models import export_hf  # pylint: disable=g-import-not-at-top
  config = ref.v23_config(name)
  params, _ = import_hf.hf_to_params(ref.hf_weights_v23(config), config)
  head = ref.value_head_v23(config)
  tokens = np.asarray(ref.TOKENS_PADDED)
  ours = np.asarray(losses.value_logits(gemma.Transformer(config),
                                        {"model": params, "value_head": head},
                                        tokens, (tokens != 0).astype(np.int32)))
  np.testing.assert_allclose(ours - head["bias"][0], ref.GOLDEN_SEQ_CLS[name], atol=2e-5)
  # export_hf of a bundle with a head (byte vocabulary: 300 rows), then
  # the HF directory read as a bundle (as `score --checkpoint=HF_DIR` does).
  small = gemma.get_config("tiny", num_embed=300)
  rm = dict(ref.value_head_v23(small), bias=np.array([-1.5], np.float32))
  source = bundle.save_bundle(str(tmp_path / "rm"), gemma.init_params(small, 0), small,
                              "byte", value_head=rm)
  hf_dir = export_hf.export_hf(source, str(tmp_path / "hf"), dtype="float32", verbose=False)
  written = json.load(open(os.path.join(hf_dir, "config.json")))
  assert written["architectures"] == [export_hf.SEQUENCE_CLASSIFICATION[export_hf.family(small)]]
  assert written["num_labels"] == 1 and written["genrm_value_head_bias"] == -1.5
  np.testing.assert_array_equal(import_hf.SafetensorsDir(hf_dir)["score.weight"],
                                rm["kernel"].T)
  monkeypatch.setattr(import_hf, "model_config", lambda text, preset=None: ("tiny", small))
  loaded = bundle.load_bundle(hf_dir, tokenizer="byte")
  np.testing.assert_array_equal(loaded.value_head["kernel"], rm["kernel"])
  np.testing.assert_array_equal(loaded.value_head["bias"], [-1.5])
  # import_hf writes it into the bundle's value_head.npz.
  with open(os.path.join(hf_dir, "tokenizer.model"), "wb") as f:
    f.write(b"not read")
  imported = import_hf.import_hf(hf_dir, str(tmp_path / "back"), dtype="float32",
                                 verbose=False)
  again = bundle.load_bundle(imported, tokenizer="byte")
  np.testing.assert_array_equal(again.value_head["kernel"], rm["kernel"])
  np.testing.assert_array_equal(again.value_head["bias"], [-1.5])
  with pytest.raises(ValueError, match=r"score.weight has shape \(2, 32\); a reward model"):
    import_hf.value_head({"score.weight": np.zeros((2, 32))}, {})


def test_gemma3_names_multimodal_prefix_and_image_rows():
  config = gemma.get_config("gemma3_270m", num_layers=2, num_embed=64, dtype="float32")
  plain = ref.hf_weights_v23(config)
  params, _ = import_hf.hf_to_params(plain, config)
  layers = params["layers"]
  # Where each HF tensor went: post-attention norm after attention, the
  # transposed gating weight [2, F, D] as stored, the q/k norms.
  np.testing.assert_array_equal(layers["post_attention_norm"]["scale"][1],
                                plain["model.layers.1.post_attention_layernorm.weight"])
  np.testing.assert_array_equal(layers["pre_ffw_norm"]["scale"][0],
                                plain["model.layers.0.pre_feedforward_layernorm.weight"])
  np.testing.assert_array_equal(layers["mlp"]["gating_einsum"][0, 1],
                                plain["model.layers.0.mlp.up_proj.weight"])
  np.testing.assert_array_equal(layers["attn"]["_key_norm"]["scale"][1],
                                plain["model.layers.1.self_attn.k_norm.weight"])
  q = plain["model.layers.0.self_attn.q_proj.weight"].reshape(4, 256, 640)
  np.testing.assert_array_equal(layers["attn"]["q_einsum"]["w"][0], q.transpose(0, 2, 1))
  # A multimodal checkpoint: the language model under its own prefix, a
  # vision tower beside it, image-token rows at the end of the embedding,
  # and a tied lm_head: the same params, the tower left out.
  multi = {"language_model." + name: value for name, value in plain.items()}
  multi["language_model.model.embed_tokens.weight"] = np.concatenate(
      [plain["model.embed_tokens.weight"], np.ones((8, 640), np.float32)])
  multi["language_model.lm_head.weight"] = multi["language_model.model.embed_tokens.weight"]
  multi["vision_tower.vision_model.embeddings.patch_embedding.weight"] = np.zeros((2, 2))
  got, left_out = import_hf.hf_to_params(multi, config)
  assert left_out == ["vision_tower.vision_model.embeddings.patch_embedding.weight"]
  flat = traverse_util.flatten_dict
  assert flat(params).keys() == flat(got).keys()
  for key, value in flat(params).items():
    np.testing.assert_array_equal(flat(got)[key], value, err_msg=str(key))
  # bf16, the releases' dtype.
  half, _ = import_hf.hf_to_params(plain, config, dtype=ml_dtypes.bfloat16)
  assert half["embedder"]["input_embedding"].dtype == ml_dtypes.bfloat16


def test_errors_name_what_is_wrong():
  spec = ref.SPECS["mqa"]
  config = _config(spec)
  weights = ref.hf_weights(spec)
  missing = {k: v for k, v in weights.items() if "layers.1.mlp.up_proj" not in k}
  with pytest.raises(KeyError, match="'model.layers.1.mlp.up_proj.weight' missing"):
    import_hf.hf_to_params(missing, config)
  with pytest.raises(ValueError, match=r"model.layers.0.self_attn.q_proj.weight has shape "
                     r"\(64, 32\); expected \(32, 32\)"):
    import_hf.hf_to_params(weights, _config(dict(spec, heads=2)))
  extra = dict(weights, **{"model.layers.0.mlp.extra_proj.weight": np.zeros(3)})
  with pytest.raises(ValueError, match="not mapped onto the model.*extra_proj"):
    import_hf.hf_to_params(extra, config)
  untied = dict(weights, **{"lm_head.weight": weights["model.embed_tokens.weight"] + 1})
  with pytest.raises(ValueError, match="lm_head.weight differs"):
    import_hf.hf_to_params(untied, config)
  with pytest.raises(ValueError, match="not a Gemma"):
    import_hf.text_config({"model_type": "llama"})
  with pytest.raises(ValueError, match="matches no preset"):
    import_hf.model_config(import_hf.text_config(ref.hf_config(spec)))
  with pytest.raises(ValueError, match="--preset=gemma_7b does not fit config.json: "
                     "num_hidden_layers 18 vs 28"):
    import_hf.model_config({"model_type": "gemma", "num_hidden_layers": 18,
                            "hidden_size": 2048}, "gemma_7b")


def test_presets_found_from_config_json():
  text = lambda **fields: import_hf.text_config(fields)
  assert import_hf.model_config(text(
      model_type="gemma3_text", vocab_size=262144, hidden_size=640, intermediate_size=2048,
      num_hidden_layers=18, num_attention_heads=4, num_key_value_heads=1,
      head_dim=256))[0] == "gemma3_270m"
  # Gemma 3 4B's multimodal config.json: its text part, 262,208 rows.
  assert import_hf.model_config(text(
      model_type="gemma3", text_config=dict(
          vocab_size=262208, hidden_size=2560, intermediate_size=10240,
          num_hidden_layers=34, num_attention_heads=8, num_key_value_heads=4,
          head_dim=256)))[0] == "gemma3_4b"
  assert import_hf.model_config(text(
      model_type="gemma2", vocab_size=256000, hidden_size=3584, intermediate_size=14336,
      num_hidden_layers=42, num_attention_heads=16, num_key_value_heads=8,
      head_dim=256))[0] == "gemma2_9b"


def test_vocabulary_rows_are_fitted_to_the_preset():
  """Gemma 1 and 2 store 256,000 rows, the presets 256,128: zero rows are
  added, and the real tokens' logits do not change."""
  spec = ref.SPECS["mqa"]
  config = _config(spec, num_embed=spec["vocab"] + 32)
  params, _ = import_hf.hf_to_params(ref.hf_weights(spec), config)
  table = params["embedder"]["input_embedding"]
  assert table.shape == (spec["vocab"] + 32, spec["d"]) and not table[spec["vocab"]:].any()
  np.testing.assert_allclose(_logits(config, params)[:, :, :8], ref.GOLDEN["mqa"],
                             atol=2e-5, rtol=1e-5)


def _assert_round_trip(weights, config):
  """Import, then export: the same tensors."""
  from genrm_jax.models import export_hf  # pylint: disable=g-import-not-at-top
  params, _ = import_hf.hf_to_params(weights, config)
  back = export_hf.params_to_hf(params, config)
  assert back.keys() == weights.keys()
  for key, value in weights.items():
    np.testing.assert_array_equal(back[key], value, err_msg=key)


@pytest.mark.parametrize("name", list(ref.SPECS))
def test_export_gives_back_the_hf_weights(name):
  """Import, then export: the very tensors HF's Flax Gemma was checked
  against, and a config.json with their shapes."""
  from genrm_jax.models import export_hf  # pylint: disable=g-import-not-at-top
  spec = ref.SPECS[name]
  weights = ref.hf_weights(spec)
  config = _config(spec)
  _assert_round_trip(weights, config)
  written = export_hf.hf_config(config, "float32")
  for key in ("model_type", "vocab_size", "hidden_size", "intermediate_size",
              "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
              "hidden_act", "rms_norm_eps", "rope_theta"):
    assert written[key] == ref.hf_config(spec)[key], key


def test_export_config_of_the_presets():
  from genrm_jax.models import export_hf  # pylint: disable=g-import-not-at-top
  # Gemma 2's query scale from the 27B's embed_dim / num_heads; Gemma 1 has
  # none of the newer fields.
  assert export_hf.hf_config(gemma.get_config("gemma2_27b"), "bfloat16")[
      "query_pre_attn_scalar"] == 144
  assert export_hf.family(gemma.get_config("gemma_7b")) == "gemma"
  assert "sliding_window" not in export_hf.hf_config(gemma.get_config("gemma_7b"), "float32")
  four_b = export_hf.hf_config(gemma.get_config("gemma3_4b"), "bfloat16")
  assert four_b["rope_scaling"] == {"rope_type": "linear", "factor": 8.0}
  assert four_b["sliding_window"] == 1024 and four_b["sliding_window_pattern"] == 6
  # Context lengths as HF's released configs (servers such as vLLM cap at it).
  assert four_b["max_position_embeddings"] == 131072
  assert export_hf.hf_config(gemma.get_config("gemma3_1b"), "bfloat16")[
      "max_position_embeddings"] == 32768


def test_load_params_and_training_read_an_hf_directory(tmp_path):
  """`checkpoints.load_params` (and so `--config.init_from`) takes an HF
  checkpoint directory as it is, converted in memory, sharded on a mesh."""
  from genrm_jax import checkpointing  # pylint: disable=g-import-not-at-top
  from genrm_jax import sharding  # pylint: disable=g-import-not-at-top
  from genrm_jax.models import checkpoints  # pylint: disable=g-import-not-at-top
  from genrm_jax.models import export_hf  # pylint: disable=g-import-not-at-top
  from tests import train_utils as tu  # pylint: disable=g-import-not-at-top
  train = tu.tiny_config("last_letter_genrm", total_steps=1)
  config = gemma.get_config(train.model.preset, **{
      k: v for k, v in train.model.to_dict().items()
      if k not in ("preset", "lora_targets") and v is not None})
  base = gemma.init_params(config, 5)
  hf_dir = _write_checkpoint(tmp_path / "hf", export_hf.params_to_hf(base, config),
                             export_hf.hf_config(config, "float32"), shards=1)
  mesh = sharding.make_mesh((2, 2, 2))
  loaded = checkpoints.load_params(hf_dir, config, mesh=mesh)
  flat = traverse_util.flatten_dict
  for key, value in flat(base).items():
    np.testing.assert_array_equal(np.asarray(flat(loaded)[key]), np.asarray(value),
                                  err_msg=str(key))
  assert len(flat(loaded)[("embedder", "input_embedding")].sharding.device_set) == 8
  # Training from it: the same first loss as from the orbax checkpoint.
  orbax_dir = str(tmp_path / "orbax")
  checkpointing.export_params(base, orbax_dir)
  from_hf = tu.run(tu.tiny_config("last_letter_genrm", total_steps=1, init_from=hf_dir),
                   tmp_path / "a")
  from_orbax = tu.run(tu.tiny_config("last_letter_genrm", total_steps=1, init_from=orbax_dir),
                      tmp_path / "b")
  assert from_hf["loss"] == from_orbax["loss"]
