"""The SentencePiece tokenizer wrapper, on a model trained here."""

import io

import pytest
import sentencepiece as spm

from genrm_jax.models import tokenizer as tokenizer_lib


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
  text = "\n".join(
      f"Q: Take the last letters of the words in 'name{i} other{i}'. "
      f"A: Let's think step by step. The answer is {i}." for i in range(300))
  out = tmp_path_factory.mktemp("sp") / "tokenizer"
  # Gemma's special ids: pad 0, eos 1, bos 2, unk 3.
  spm.SentencePieceTrainer.train(
      sentence_iterator=io.StringIO(text), model_prefix=str(out),
      vocab_size=120, pad_id=0, eos_id=1, bos_id=2, unk_id=3,
      minloglevel=2)
  return str(out) + ".model"


def test_round_trip_and_special_ids(model_path):
  tok = tokenizer_lib.load(model_path)
  ids = tok.encode("The answer is 42.", add_bos=True, add_eos=True)
  assert ids[0] == 2 and ids[-1] == 1 and (tok.pad_id, tok.vocab_size) == (0, 120)
  assert tok.decode(ids[1:-1]) == "The answer is 42."


def test_missing_model_names_the_fix(tmp_path):
  with pytest.raises(FileNotFoundError, match="tokenizer.model"):
    tokenizer_lib.Tokenizer(tmp_path / "missing.model")


def test_token_bytes_concatenate_to_the_decoded_text(model_path):
  """The bytes per id the sampler watches for stop strings: their
  concatenation is `decode`'s text, but for the leading space a model
  trained with `add_dummy_prefix` (SentencePiece's default; not Gemma's)
  drops."""
  tok = tokenizer_lib.load(model_path)
  assert tok.strips_leading_space
  for text in ["The answer is 42.", "Q: Take the last letters A: ok", "é x"]:
    ids = tok.encode(text)
    joined = b"".join(tok.token_bytes[i] for i in ids).decode()
    assert joined.removeprefix(" ") == tok.decode(ids)
  byte = tokenizer_lib.ByteTokenizer()
  ids = byte.encode("naïve\n\nQ:", add_bos=True, add_eos=True)
  assert b"".join(byte.token_bytes[i] for i in ids).decode() == "naïve\n\nQ:"
  assert not byte.strips_leading_space


def test_ids_past_the_pieces_decode_to_nothing(model_path):
  """A model's padded embedding rows (Gemma 1/2: 256,128 for 256,000 pieces)
  can be sampled by an untrained model: decoded as nothing, not an error."""
  tok = tokenizer_lib.load(model_path)
  ids = tok.encode("hello world")
  assert tok.decode(ids + [tok.vocab_size, tok.vocab_size + 5]) == tok.decode(ids)
