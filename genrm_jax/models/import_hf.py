r"""Imports a Gemma checkpoint in HF transformers' format (safetensors).

  pip install -e '.[hf]'          # safetensors
  huggingface-cli download google/gemma-2-9b --local-dir /ckpts/gemma-2-9b   # at home
  python -m genrm_jax.models.import_hf --hf_dir=/ckpts/gemma-2-9b --out=/ckpts/gemma2_9b

writes a bundle (`genrm_jax.models.bundle`): `OUT/params` (official Kaggle
layout, what `checkpoints.load_params` and `--config.init_from` read),
`OUT/tokenizer.model` (copied) and `OUT/model.json`. Gemma 1, 2 and 3
(`model_type` gemma, gemma2, gemma3_text, and gemma3, whose vision tower is
left out) are mapped onto the preset whose shapes match `config.json`
(`--preset` to choose).

HF conventions, and what they become here (`linear_layout`):
* `nn.Linear` weights `[out, in]`: q/k/v/o, gate/up/down projections;
  heads split as `[heads, head_dim]` rows (Gemma's half-split RoPE needs no
  permutation, unlike Llama's conversions).
* RMSNorm weights are Gemma's `scale` (the model multiplies by `1 +
  weight`), stored as they are.
* Norm names: Gemma 1's `post_attention_layernorm` is the norm *before* the
  MLP; Gemma 2 and 3 have `post_attention_layernorm` (after attention),
  `pre_feedforward_layernorm` and `post_feedforward_layernorm`; Gemma 3 adds
  `self_attn.{q,k}_norm`.
* The embedding is tied to the output (a `lm_head.weight`, if stored, must
  equal it). Its rows are fitted to the preset's `num_embed`: Gemma 3's
  multimodal checkpoints store 262,208 (image tokens at the end) where the
  text model has 262,144, and the extra rows go; Gemma 1 and 2 store the
  256,000 tokens of the vocabulary where the official checkpoints (and so
  the presets) have 256,128 rows, and zero rows are added (never produced
  by the tokenizer).
* Tensors are written in `--dtype` (default bfloat16, the releases' own).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from typing import Any, Iterable, Iterator, Mapping

import numpy as np

from genrm_jax.models import gemma
from genrm_jax.models import linear_layout

INSTALL_HINT = "Install the optional extra: pip install -e '.[hf]' (safetensors)."
MODEL_TYPES = ("gemma", "gemma2", "gemma3_text", "gemma3")
# A `*ForSequenceClassification` reward model's head: [num_labels, hidden].
SCORE = "score.weight"

# HF config.json field -> TransformerConfig field (the shapes a preset must match).
SHAPE_FIELDS = {
    "num_hidden_layers": "num_layers",
    "hidden_size": "embed_dim",
    "intermediate_size": "hidden_dim",
    "num_attention_heads": "num_heads",
    "num_key_value_heads": "num_kv_heads",
    "head_dim": "head_dim",
}

HF_NAMES = {
    "q": "self_attn.q_proj.weight", "k": "self_attn.k_proj.weight",
    "v": "self_attn.v_proj.weight", "o": "self_attn.o_proj.weight",
    "gate": "mlp.gate_proj.weight", "up": "mlp.up_proj.weight",
    "down": "mlp.down_proj.weight",
    "pre_attn_norm": "input_layernorm.weight",
    "q_norm": "self_attn.q_norm.weight", "k_norm": "self_attn.k_norm.weight",
}
# Gemma 2 and 3 (post-norms present).
HF_NORMS_2 = {
    "post_attn_norm": "post_attention_layernorm.weight",
    "pre_ffw_norm": "pre_feedforward_layernorm.weight",
    "post_ffw_norm": "post_feedforward_layernorm.weight",
}
# Gemma 1: one norm before the MLP, named after the attention.
HF_NORMS_1 = {"pre_ffw_norm": "post_attention_layernorm.weight"}


def layer_names(config: gemma.TransformerConfig) -> dict[str, str]:
  """Semantic names (`linear_layout`) -> HF's per-layer names, for this
  model's generation of Gemma."""
  return dict(HF_NAMES, **(HF_NORMS_2 if config.use_post_ffw_norm else HF_NORMS_1))


def text_config(hf_config: Mapping[str, Any]) -> dict[str, Any]:
  """The language model's part of an HF config.json (Gemma 3 nests it)."""
  model_type = hf_config.get("model_type")
  if model_type not in MODEL_TYPES:
    raise ValueError(f"config.json model_type={model_type!r}: not a Gemma ({MODEL_TYPES}).")
  if model_type == "gemma3":
    return dict(hf_config.get("text_config") or {}, model_type="gemma3_text")
  return dict(hf_config)


def matching_presets(text: Mapping[str, Any]) -> list[str]:
  """Presets of the config's family whose shapes equal its own (the
  vocabulary's rows may differ: see `_LanguageModel`)."""
  out = []
  for name in gemma.PRESETS:
    if name == "tiny":
      continue
    config = gemma.get_config(name)
    if all(text.get(hf) == getattr(config, ours) for hf, ours in SHAPE_FIELDS.items()
           if hf in text):
      family = "gemma3" if name.startswith("gemma3") else (
          "gemma2" if name.startswith("gemma2") else "gemma")
      if text["model_type"].startswith(family):
        out.append(name)
  return out


def model_config(text: Mapping[str, Any], preset: str | None = None
                 ) -> tuple[str, gemma.TransformerConfig]:
  """(preset name, its config) for an HF text config, the shapes checked."""
  if preset is None:
    found = matching_presets(text)
    if len(found) != 1:
      shapes = {hf: text.get(hf) for hf in SHAPE_FIELDS}
      raise ValueError(
          f"config.json ({text['model_type']}, {shapes}, vocab {text.get('vocab_size')}) "
          + (f"matches presets {found}: choose with --preset." if found else
             f"matches no preset of {[p for p in gemma.PRESETS if p != 'tiny']}; "
             "pass --preset=NAME with the shapes it has."))
    preset = found[0]
  config = gemma.get_config(preset)
  wrong = {hf: (text[hf], getattr(config, ours)) for hf, ours in SHAPE_FIELDS.items()
           if hf in text and text[hf] != getattr(config, ours)}
  if wrong:
    raise ValueError(f"--preset={preset} does not fit config.json: "
                     + ", ".join(f"{hf} {a} vs {b}" for hf, (a, b) in wrong.items()))
  return preset, config


class SafetensorsDir(Mapping[str, np.ndarray]):
  """The tensors of a checkpoint directory's *.safetensors files, read one
  at a time (a 27B checkpoint never sits in memory whole)."""

  def __init__(self, directory: str):
    try:
      from safetensors import safe_open  # pylint: disable=g-import-not-at-top
    except ImportError as e:
      raise ImportError(f"`safetensors` is not installed. {INSTALL_HINT}") from e
    files = sorted(glob.glob(os.path.join(directory, "*.safetensors")))
    if not files:
      raise FileNotFoundError(f"{directory}: no *.safetensors files (an HF checkpoint "
                              "directory: config.json, model*.safetensors, tokenizer.model).")
    self._handles = [safe_open(f, framework="numpy") for f in files]
    self._where = {}
    for handle, path in zip(self._handles, files):
      for name in handle.keys():
        self._where[name] = handle
    self.files = files

  def __getitem__(self, name: str) -> np.ndarray:
    return self._where[name].get_tensor(name)

  def __iter__(self) -> Iterator[str]:
    return iter(self._where)

  def __len__(self) -> int:
    return len(self._where)


class _LanguageModel(Mapping[str, np.ndarray]):
  """The tensors under `prefix` (the language model of a multimodal
  checkpoint), the embedding table fitted to `rows`: cut (Gemma 3's image
  tokens at the end) or padded with zero rows (Gemma 1 and 2 store 256,000
  rows; the official checkpoints, whose shapes the presets carry, 256,128)."""

  def __init__(self, tensors: Mapping[str, np.ndarray], prefix: str, rows: int):
    self._tensors, self._rows = tensors, rows
    self._embed = prefix + "embed_tokens.weight"
    self._names = [name for name in tensors if name.startswith(prefix)]
    self._known = set(self._names)
    self.others = sorted(name for name in tensors if not name.startswith(prefix))

  def __getitem__(self, name: str) -> np.ndarray:
    x = self._tensors[name]
    if name != self._embed or x.shape[0] == self._rows:
      return x
    if x.shape[0] > self._rows:
      return x[:self._rows]
    return np.concatenate([x, np.zeros((self._rows - x.shape[0],) + x.shape[1:], x.dtype)])

  def __contains__(self, name: object) -> bool:
    return name in self._known

  def __iter__(self) -> Iterator[str]:
    return iter(self._names)

  def __len__(self) -> int:
    return len(self._names)


def value_head(tensors: Mapping[str, np.ndarray], hf_config: Mapping[str, Any],
               source: str = "HF checkpoint") -> dict[str, np.ndarray] | None:
  """A one-label `*ForSequenceClassification`'s score layer as our value
  head ({kernel [D, 1], bias [1]}; the bias from config.json's
  `genrm_value_head_bias`, which `export_hf` writes, else 0), or None."""
  if SCORE not in tensors:
    return None
  score = np.asarray(tensors[SCORE], np.float32)
  if score.ndim != 2 or score.shape[0] != 1:
    raise ValueError(f"{source}: {SCORE} has shape {score.shape}; a reward model's "
                     "score layer has one label ([1, hidden]).")
  bias = float(hf_config.get("genrm_value_head_bias", 0.0))
  return {"kernel": score.T.copy(), "bias": np.array([bias], np.float32)}


def hf_to_params(tensors: Mapping[str, np.ndarray], config: gemma.TransformerConfig,
                 dtype: Any = np.float32, source: str = "HF checkpoint"
                 ) -> tuple[dict[str, Any], list[str]]:
  """HF safetensors tensors -> (our stacked parameter tree (numpy), the
  names left out: other towers of a multimodal checkpoint; a reward
  model's score layer is read by `value_head`)."""
  embed = next((n for n in tensors if n.endswith("embed_tokens.weight")), None)
  if embed is None:
    raise KeyError(f"{source}: no '*embed_tokens.weight' tensor (have e.g. "
                   f"{sorted(tensors)[:8]}).")
  prefix = embed[:-len("embed_tokens.weight")]  # "model.", "language_model.model.", ...
  head = next((n for n in tensors if n.endswith("lm_head.weight")), None)
  if head is not None and not np.array_equal(tensors[head], tensors[embed]):
    raise ValueError(f"{source}: {head} differs from {embed}; Gemma ties them.")
  model = _LanguageModel(tensors, prefix, config.num_embed)
  names = layer_names(config)
  params = linear_layout.build_params(
      model, config, lambda i, what: f"{prefix}layers.{i}.{names[what]}",
      embed, prefix + "norm.weight", norm_offset=0.0, source=source, dtype=dtype)
  return params, [n for n in model.others if n not in (head, SCORE)]


def is_hf_dir(path) -> bool:
  """An HF checkpoint directory: config.json beside *.safetensors files."""
  path = os.fspath(path)
  return (os.path.isdir(path) and os.path.isfile(os.path.join(path, "config.json")) and
          bool(glob.glob(os.path.join(path, "*.safetensors"))))


def load_params(hf_dir: str, config: gemma.TransformerConfig, mesh=None, rules=None,
                dtype: Any = None) -> dict[str, Any]:
  """`checkpoints.load_params` for an HF directory: converted in memory and
  placed in `config`'s shardings on `mesh` (one host's memory holds it
  once, in `dtype`, default `config.param_dtype`)."""
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import ml_dtypes  # pylint: disable=g-import-not-at-top
  from genrm_jax import sharding as sharding_lib  # pylint: disable=g-import-not-at-top
  dtype = jnp.dtype(dtype or config.param_dtype)
  np_dtype = ml_dtypes.bfloat16 if dtype == jnp.bfloat16 else np.dtype(dtype)
  params, left_out = hf_to_params(SafetensorsDir(hf_dir), config, np_dtype, source=hf_dir)
  if left_out:
    _log(f"{hf_dir}: left out {len(left_out)} tensors of other towers")
  linear_layout.check_params(params, config, hf_dir)
  if mesh is None:
    return jax.device_put(params)
  shardings = sharding_lib.logical_shardings(gemma.abstract_params(config), mesh,
                                             rules or sharding_lib.DEFAULT_RULES)
  return jax.device_put(params, shardings)


def _log(msg: str) -> None:
  print(f"[import_hf] {msg}", file=sys.stderr, flush=True)


def import_hf(hf_dir: str, out_dir: str, *, preset: str | None = None,
              dtype: str = "bfloat16", tokenizer: str | None = None,
              force: bool = False, verbose: bool = True) -> str:
  """Converts the HF checkpoint in `hf_dir` to a bundle in `out_dir`."""
  from genrm_jax.models import bundle  # pylint: disable=g-import-not-at-top
  import ml_dtypes  # pylint: disable=g-import-not-at-top
  log = _log if verbose else (lambda _: None)
  start = time.time()
  out_dir = os.path.abspath(out_dir)
  params_dir = os.path.join(out_dir, bundle.PARAMS)
  if os.path.exists(params_dir) and not force:
    raise FileExistsError(f"{params_dir} exists; pass --force to overwrite it or "
                          "choose another --out.")
  config_path = os.path.join(hf_dir, "config.json")
  if not os.path.isfile(config_path):
    raise FileNotFoundError(f"{config_path}: missing (an HF checkpoint directory has "
                            "config.json, model*.safetensors and tokenizer.model).")
  with open(config_path) as f:
    raw_config = json.load(f)
  text = text_config(raw_config)
  preset, config = model_config(text, preset)
  tokenizer = tokenizer or os.path.join(hf_dir, "tokenizer.model")
  if not os.path.isfile(tokenizer):
    raise FileNotFoundError(f"{tokenizer}: missing; pass --tokenizer=PATH to Gemma's "
                            "SentencePiece tokenizer.model.")
  tensors = SafetensorsDir(hf_dir)
  log(f"{len(tensors)} tensors in {len(tensors.files)} files; model {text['model_type']} "
      f"as preset {preset}")
  np_dtype = {"bfloat16": ml_dtypes.bfloat16, "float32": np.float32}[dtype]
  params, left_out = hf_to_params(tensors, config, np_dtype, source=hf_dir)
  if left_out:
    log(f"left out {len(left_out)} tensors of other towers (e.g. {left_out[:3]})")
  linear_layout.check_params(params, config, "<HF import>")
  head = value_head(tensors, raw_config, hf_dir)
  if head is not None:
    log(f"{SCORE}: a reward model's head, kept as the bundle's value head "
        f"(bias {float(head['bias'][0]):g})")
  bundle.save_bundle(out_dir, params, config, tokenizer, value_head=head)
  log(f"wrote {out_dir} ({gemma.count_params(params) / 1e9:.2f}B params, {dtype}) in "
      f"{time.time() - start:.1f}s")
  return out_dir


def main(argv: Iterable[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--hf_dir", required=True,
                      help="HF checkpoint directory (config.json, *.safetensors, "
                      "tokenizer.model)")
  parser.add_argument("--out", required=True, help="bundle directory to write")
  parser.add_argument("--preset", default=None, help="gemma preset (default: the one "
                      "whose shapes match config.json)")
  parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float32"))
  parser.add_argument("--tokenizer", default=None, help="tokenizer.model (default: "
                      "HF_DIR/tokenizer.model)")
  parser.add_argument("--force", action="store_true", help="overwrite OUT/params")
  args = parser.parse_args(argv)
  try:
    import_hf(args.hf_dir, args.out, preset=args.preset, dtype=args.dtype,
              tokenizer=args.tokenizer, force=args.force)
  except (ValueError, KeyError, FileNotFoundError, FileExistsError, ImportError) as e:
    sys.exit(f"error: {e}")


if __name__ == "__main__":
  main()
