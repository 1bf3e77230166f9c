"""Self-describing model directories: params + `model.json` (+ tokenizer).

A *bundle* directory is loadable from its path alone:

  DIR/params/          official Kaggle-layout orbax checkpoint
                       (`checkpoints.save_params`, read by `load_params`)
  DIR/model.json       {"format": "genrm_jax.bundle/1", "config": every
                       `gemma.TransformerConfig` field, "vocabulary": 'byte'
                       | 'tokenizer.model' (relative: inside DIR) | an
                       absolute path | null, "has_value_head": bool}
  DIR/tokenizer.model  copied in when the vocabulary is a SentencePiece file
  DIR/value_head.npz   the discriminative RM's head (kernel, bias), if any

The trainer's `WORKDIR/export` is a bundle. `load_bundle` also accepts a bare
official checkpoint directory (the one holding `_METADATA`, or its parent
holding `params/`) when given `preset=` (a `gemma.get_config` name) and
`tokenizer=` ('byte' or a tokenizer.model path), as the CLIs' `--preset` /
`--tokenizer` flags do.

DIR (and a tokenizer.model to copy in) may be a URL (`gs://bucket/export`):
files go through `etils.epath`, params through orbax.
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
from typing import Any, NamedTuple, Optional

from etils import epath
import jax
import numpy as np

from genrm_jax import paths
from genrm_jax.models import checkpoints
from genrm_jax.models import gemma
from genrm_jax.models import tokenizer as tokenizer_lib

FORMAT = "genrm_jax.bundle/1"
MODEL_JSON = "model.json"
PARAMS = "params"
TOKENIZER_FILE = "tokenizer.model"
VALUE_HEAD = "value_head.npz"


class Bundle(NamedTuple):
  config: gemma.TransformerConfig
  params: Any
  tokenizer: Any
  value_head: Optional[dict[str, np.ndarray]]


def config_to_dict(config: gemma.TransformerConfig) -> dict[str, Any]:
  fields = dataclasses.asdict(config)
  fields["attention_types"] = list(config.attention_types)
  # A platform choice, not a property of the weights: a model trained with
  # cuDNN attention is evaluated anywhere.
  fields["attention_impl"] = "einsum"
  return fields


def config_from_dict(fields: dict[str, Any]) -> gemma.TransformerConfig:
  known = {f.name for f in dataclasses.fields(gemma.TransformerConfig)}
  unknown = sorted(set(fields) - known)
  if unknown:
    raise ValueError(f"model.json has unknown config field(s) {unknown}; "
                     "written by a newer genrm_jax? Known: "
                     f"{sorted(known)}.")
  return gemma.TransformerConfig(**fields)


def write_model_json(directory: str, config: gemma.TransformerConfig,
                     vocabulary: Optional[str],
                     has_value_head: bool = False, init_from: str = "") -> str:
  """Writes DIR/model.json (copying a tokenizer.model file into DIR).
  `init_from`: the checkpoint training started from (a DPO verifier's
  reference model), recorded as `init_from`."""
  epath.Path(directory).mkdir(parents=True, exist_ok=True)
  vocab = vocabulary or None
  if vocab is not None and vocab != "byte":
    if not epath.Path(vocab).is_file():
      raise FileNotFoundError(
          f"vocabulary {vocab!r} is neither 'byte' nor a tokenizer.model "
          "file; set config.data.vocabulary to one of them.")
    target = os.path.join(directory, TOKENIZER_FILE)
    if paths.absolute(vocab) != paths.absolute(target):
      epath.Path(vocab).copy(target, overwrite=True)
    vocab = TOKENIZER_FILE
  config = config.replace(tokenizer=vocab if vocab == TOKENIZER_FILE else
                          config.tokenizer)
  meta = {"format": FORMAT, "config": config_to_dict(config),
          "vocabulary": vocab, "has_value_head": bool(has_value_head)}
  if init_from:
    meta["init_from"] = init_from
  path = os.path.join(directory, MODEL_JSON)
  paths.write_atomic(path, json.dumps(meta, indent=1))
  return path


def save_bundle(directory: str, params, model_config: gemma.TransformerConfig,
                vocabulary: Optional[str],
                value_head: Optional[dict[str, Any]] = None) -> str:
  """Writes params (Kaggle layout), model.json, tokenizer and value head."""
  directory = paths.absolute(directory)
  checkpoints.save_params(params, os.path.join(directory, PARAMS),
                          layout="kaggle", force=True)
  if value_head is not None:
    head = {k: np.asarray(v) for k, v in jax.device_get(value_head).items()}
    buf = io.BytesIO()
    np.savez(buf, **head)
    paths.write_atomic(os.path.join(directory, VALUE_HEAD), buf.getvalue())
  write_model_json(directory, model_config, vocabulary,
                   has_value_head=value_head is not None)
  return directory


def define_flags(what: str) -> None:
  """The model flags of every CLI that loads one: --checkpoint (a bundle, or
  a bare official checkpoint with --preset and --tokenizer) and --dtype."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string("checkpoint", None,
                      f"{what} model directory (bundle or official checkpoint).")
  flags.DEFINE_string("preset", "", "Gemma preset of a bare official checkpoint.")
  flags.DEFINE_string("tokenizer", "",
                      "tokenizer.model path or 'byte' (bare checkpoints).")
  flags.DEFINE_string("dtype", "", "Compute dtype override (e.g. float32).")


def from_flags(mesh: jax.sharding.Mesh | None = None) -> Bundle:
  """`load_bundle` with the flags of `define_flags`."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  f = flags.FLAGS
  return load_bundle(f.checkpoint, mesh, preset=f.preset or None,
                     tokenizer=f.tokenizer or None, dtype=f.dtype or None)


def _params_dir(directory: str) -> str:
  sub = os.path.join(directory, PARAMS)
  return sub if epath.Path(sub).is_dir() else directory


def _resolve_vocab(directory: str, vocab: Optional[str]) -> Optional[str]:
  if (vocab is None or vocab == "byte" or os.path.isabs(vocab)
      or paths.is_url(vocab)):
    return vocab
  return os.path.join(directory, vocab)


def recorded_init_from(directory: str) -> str:
  """The `init_from` a training export recorded in its model.json ('' if
  none, or no model.json)."""
  path = os.path.join(paths.absolute(directory), MODEL_JSON)
  if not epath.Path(path).is_file():
    return ""
  return str(json.loads(epath.Path(path).read_text()).get("init_from") or "")


def load_bundle(directory: str, mesh: jax.sharding.Mesh | None = None, *,
                preset: Optional[str] = None,
                tokenizer: Optional[str] = None,
                dtype: Optional[str] = None) -> Bundle:
  """Loads (config, params, tokenizer, value_head | None) from a directory.

  Args:
    directory: A bundle (with model.json), an HF transformers checkpoint
      directory (config.json, *.safetensors, tokenizer.model: converted in
      memory), or a bare official checkpoint directory (then `preset` and
      `tokenizer` are required).
    mesh: Shard the params onto this mesh (default: one device).
    preset: A `gemma.get_config` preset; overrides model.json's config.
    tokenizer: 'byte' or a tokenizer.model path; overrides model.json's.
    dtype: Compute dtype override (e.g. 'float32' on CPU).
  """
  directory = paths.absolute(directory)
  if not epath.Path(directory).exists():
    raise FileNotFoundError(f"No checkpoint directory {directory}.")
  meta_path = os.path.join(directory, MODEL_JSON)
  vocab = None
  from genrm_jax.models import import_hf  # pylint: disable=g-import-not-at-top
  hf = not epath.Path(meta_path).is_file() and import_hf.is_hf_dir(directory)
  if preset:
    config = gemma.get_config(preset)
  elif hf:  # an HF transformers checkpoint: its config.json names the preset
    _, config = import_hf.model_config(import_hf.text_config(json.loads(
        epath.Path(os.path.join(directory, "config.json")).read_text())))
    if epath.Path(os.path.join(directory, TOKENIZER_FILE)).is_file():
      vocab = os.path.join(directory, TOKENIZER_FILE)
  elif epath.Path(meta_path).is_file():
    meta = json.loads(epath.Path(meta_path).read_text())
    config = config_from_dict(meta["config"])
    vocab = _resolve_vocab(directory, meta.get("vocabulary"))
  else:
    raise FileNotFoundError(
        f"{directory} has no {MODEL_JSON}: pass --preset=<gemma preset, e.g. "
        "gemma_2b> and --tokenizer=<tokenizer.model path or 'byte'> for a "
        "bare official checkpoint, or export it with "
        "genrm_jax.models.bundle.save_bundle / write_model_json.")
  if tokenizer:
    vocab = tokenizer
  if not vocab:
    raise ValueError(
        f"{directory}: no vocabulary recorded; pass --tokenizer=<path of "
        "tokenizer.model or 'byte'>.")
  if dtype:
    config = config.replace(dtype=dtype)
  config = config.replace(tokenizer=None if vocab == "byte" else vocab)
  tok = tokenizer_lib.from_spec(vocab)
  if tok.vocab_size > config.num_embed:
    raise ValueError(f"Tokenizer {vocab!r} has {tok.vocab_size} ids but the "
                     f"model embeds {config.num_embed}: wrong --tokenizer or "
                     "--preset?")
  params = checkpoints.load_params(directory if hf else _params_dir(directory), config,
                                   mesh=mesh)
  head = None
  head_path = os.path.join(directory, VALUE_HEAD)
  if hf:  # a *ForSequenceClassification reward model: its score layer
    head = import_hf.value_head(
        import_hf.SafetensorsDir(directory),
        json.loads(epath.Path(os.path.join(directory, "config.json")).read_text()),
        directory)
  elif epath.Path(head_path).is_file():
    with np.load(io.BytesIO(epath.Path(head_path).read_bytes())) as data:
      head = {k: np.asarray(data[k]) for k in data.files}
  return Bundle(config, params, tok, head)
