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
    ids = [int(i) for i in ids]
    return self._sp.decode(ids)


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


def from_spec(spec: str):
  """'byte' -> ByteTokenizer; else a SentencePiece `tokenizer.model` path
  (the same spec as `config.data.vocabulary`)."""
  if spec == "byte":
    return ByteTokenizer()
  if not spec:
    raise ValueError("No tokenizer: give the path of the model's "
                     "SentencePiece tokenizer.model, or 'byte'.")
  return load(spec)
