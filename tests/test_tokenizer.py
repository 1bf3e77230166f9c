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
