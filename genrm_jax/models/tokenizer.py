"""The Gemma SentencePiece tokenizer, without TensorFlow.

The model config names a `tokenizer.model` file (`TransformerConfig.tokenizer`);
the same file serves seqio's `SentencePieceVocabulary` in input pipelines.
Gemma's ids: pad 0, eos 1, bos 2. seqio never adds BOS, so callers that feed
the model add it (`encode(..., add_bos=True)`).
"""

from __future__ import annotations

import functools
import os

from etils import epath
import sentencepiece as spm

from genrm_jax import paths


class Tokenizer:
  """A SentencePiece model read from a `tokenizer.model` path (local, or a
  URL such as gs://, read through `etils.epath`)."""

  def __init__(self, path: str | os.PathLike):
    path = os.fspath(path)
    if not epath.Path(path).exists():
      raise FileNotFoundError(
          f"No SentencePiece model at {path}. Gemma's `tokenizer.model` comes "
          "with the Kaggle checkpoint download (or from "
          "`python -m genrm_jax.models.import_gguf` for Gemma 3 270M); set "
          "the model config's `tokenizer` to its path.")
    self.path = path
    if paths.is_url(path):  # SentencePiece reads local files only
      self._sp = spm.SentencePieceProcessor(
          model_proto=epath.Path(path).read_bytes())
    else:
      self._sp = spm.SentencePieceProcessor(model_file=path)

  @property
  def vocab_size(self) -> int:
    return self._sp.get_piece_size()

  @property
  def pad_id(self) -> int:
    return max(self._sp.pad_id(), 0)

  @property
  def bos_id(self) -> int:
    return self._sp.bos_id()

  @property
  def eos_id(self) -> int:
    return self._sp.eos_id()

  def encode(self, text: str, add_bos: bool = False,
             add_eos: bool = False) -> list[int]:
    ids = self._sp.encode(text)
    return ([self.bos_id] if add_bos else []) + ids + (
        [self.eos_id] if add_eos else [])

  def decode(self, ids) -> str:
    # Ids past the pieces (a model's padded embedding rows: Gemma 1/2 have
    # 256,128 for 256,000 pieces) decode to nothing, as ByteTokenizer's do,
    # rather than raising inside SentencePiece.
    size = self.vocab_size
    return self._sp.decode([int(i) for i in ids if 0 <= int(i) < size])

  @functools.cached_property
  def strips_leading_space(self) -> bool:
    """Whether `decode` drops the first piece's leading space (models
    trained with `add_dummy_prefix`; Gemma's are not)."""
    piece = self._sp.piece_to_id("\u2581")
    return piece != self._sp.unk_id() and self._sp.decode([piece]) == ""

  @functools.cached_property
  def token_bytes(self) -> tuple[bytes, ...]:
    """The UTF-8 bytes each id contributes to `decode`'s text: the piece with
    "\u2581" as a space, a byte-fallback piece's byte, nothing for control
    ids (decode(ids) is their concatenation, but for `strips_leading_space`).
    The sampler watches for stop strings with them as it decodes."""
    out = []
    for i in range(self.vocab_size):
      if self._sp.is_control(i):
        out.append(b"")
      elif self._sp.is_byte(i):
        out.append(bytes([int(self._sp.id_to_piece(i)[3:5], 16)]))
      elif self._sp.is_unknown(i):
        out.append(self._sp.decode([i]).encode("utf-8"))
      else:
        out.append(self._sp.id_to_piece(i).replace("\u2581", " ").encode(
            "utf-8"))
    return tuple(out)


@functools.lru_cache(maxsize=8)
def load(path: str) -> Tokenizer:
  return Tokenizer(path)


class ByteTokenizer:
  """UTF-8 bytes as ids 3..258 (seqio's `ByteVocabulary` ids), for tiny
  runs; pad 0, eos 1, and id 2 (unused by seqio) serves as BOS."""

  offset = 3
  vocab_size = 259
  pad_id, eos_id, bos_id = 0, 1, 2

  def encode(self, text: str, add_bos: bool = False,
             add_eos: bool = False) -> list[int]:
    ids = [b + self.offset for b in text.encode("utf-8")]
    return ([self.bos_id] if add_bos else []) + ids + (
        [self.eos_id] if add_eos else [])

  def decode(self, ids) -> str:
    data = bytes(int(i) - self.offset for i in ids
                 if self.offset <= int(i) < self.vocab_size)
    return data.decode("utf-8", errors="ignore")

  strips_leading_space = False
  token_bytes = (b"",) * offset + tuple(bytes([b]) for b in range(256))


def from_spec(spec: str):
  """'byte' -> ByteTokenizer; else a SentencePiece `tokenizer.model` path
  (the same spec as `config.data.vocabulary`)."""
  if spec == "byte":
    return ByteTokenizer()
  if not spec:
    raise ValueError("No tokenizer: give the path of the model's "
                     "SentencePiece tokenizer.model, or 'byte'.")
  return load(spec)
