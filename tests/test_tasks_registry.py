"""seqio tasks and mixtures: every registered name yields correctly
formatted, tokenised, packed examples (golden strings), deterministically."""

import os

import ml_collections as mlc
import numpy as np
import pytest

pytest.importorskip("seqio")

from genrm_jax import candidates as candidates_lib  # noqa: E402
from genrm_jax import grading  # noqa: E402
from genrm_jax import input_pipeline as ip  # noqa: E402
from genrm_jax import prompts  # noqa: E402
from tasks import examples  # noqa: E402
from tasks import sources  # noqa: E402

DATA_DIR = os.environ.get("GENRM_DATA_DIR", "")
needs_data = pytest.mark.skipif(
    not os.path.isdir(DATA_DIR),
    reason="set GENRM_DATA_DIR to the data directory (../shared/data in CI)")

VOCAB = None


def _vocab():
  global VOCAB
  VOCAB = VOCAB or ip.get_vocabulary("byte")
  return VOCAB


def _config(task, **data):
  fields = dict(task=task, task_module="tasks.registry", vocabulary="byte",
                seq_len=2048, inputs_len=1024, pack=True, eval_task="",
                eval_split="validation", candidates={}, unified_lambda=1.0,
                max_correct=16, max_incorrect=16)
  fields.update(data)
  return mlc.ConfigDict(dict(seed=0, batch_size=4, data=fields))


def _first_batch(config, split="train", start_step=0):
  return next(ip.make_local_iterator(config, split=split,
                                     start_step=start_step, num_steps=1))


def _segments(batch, row=0):
  """(prompt text, target text) of every segment in a packed row."""
  tokens = batch["decoder_target_tokens"][row]
  seg = batch["decoder_segment_ids"][row]
  weights = batch["decoder_loss_weights"][row]
  out = []
  for s in sorted(set(seg.tolist()) - {0}):
    t, w = tokens[seg == s], weights[seg == s]
    assert t[0] == ip.BOS_ID  # every segment starts with BOS
    assert t[-1] == 1 and w[-1] == 1  # and ends with a weighted EOS
    positions = batch["decoder_positions"][row][seg == s]
    np.testing.assert_array_equal(positions, np.arange(len(t)))
    prompt = _vocab().decode([int(x) for x in t[1:][w[1:] == 0]])
    target = _vocab().decode([int(x) for x in t[w == 1][:-1]])
    out.append((prompt, target))
  return out


@pytest.fixture(scope="module")
def last_letter_store(tmp_path_factory):
  """A small candidate store: reference solutions and corrupted ones."""
  rows = []
  for split in ("train", "validation"):
    for p in sources.get_problems("last_letter", split, train_size=40,
                                  validation_size=10, test_size=10)[:10]:
      wrong = p["solution"].replace(f"The answer is {p['reference']}.",
                                    f"The answer is {p['reference'][::-1]}x.")
      for i, sol in enumerate([p["solution"], wrong]):
        answer = grading.extract_answer("last_letter", sol)
        rows.append(candidates_lib.Candidate(
            problem_id=p["problem_id"], candidate_id=i,
            question=p["question"], solution=sol, answer=answer,
            reference=p["reference"],
            correct=grading.is_equivalent("last_letter", answer,
                                          p["reference"]),
            task="last_letter"))
  paths = {}
  root = tmp_path_factory.mktemp("store")
  for split in ("train", "validation"):
    part = [r for r in rows if f"/{split}/" in r.problem_id]
    paths[split] = str(root / f"{split}.jsonl")
    candidates_lib.write_candidates(paths[split], part)
  return paths


@needs_data
@pytest.mark.parametrize("family", ["last_letter", "word_sort", "gsm8k",
                                    "math"])
def test_sft_tasks_give_packed_solution_examples(family):
  batch = _first_batch(_config(f"{family}_sft"))
  segments = _segments(batch)
  prompt, target = segments[0]
  assert prompt.startswith(prompts.HEADER + "\n\nQ: ")
  assert prompt.endswith("\nA: Let's think step by step.\n")
  assert "The answer is" in target
  if family in ("last_letter", "word_sort"):  # short: several per row
    assert len(segments) > 1


@needs_data
def test_gsm8k_released_direct_golden_example():
  batch = _first_batch(_config("gsm8k_genrm"), "validation")
  prompt, target = _segments(batch)[0]
  assert prompt.endswith("Verification: Is the answer correct (Yes/No)?")
  assert target in (" Yes", " No")
  question, solution = prompts.parse_verification_inputs(prompt)
  assert prompt == prompts.direct_verification_prompt(question, solution)


@needs_data
def test_gsm8k_released_cot_example_ends_with_verdict():
  batch = _first_batch(_config("gsm8k_genrm_cot", seq_len=2048,
                               inputs_len=1024), "validation")
  prompt, target = _segments(batch)[0]
  assert prompt.endswith("Verification: Let's verify step by step.\n")
  assert prompts.parse_verdict(target) is not None
  assert target.rstrip().endswith(("(Yes/No)? Yes", "(Yes/No)? No"))


@needs_data
def test_verification_tasks_from_a_candidate_store(last_letter_store):
  cfg = lambda task, **kw: _config(task, candidates=last_letter_store, **kw)
  direct = _segments(_first_batch(cfg("last_letter_genrm")))
  assert {t for _, t in direct} <= {" Yes", " No"}
  cot_prompt, cot = _segments(_first_batch(cfg("last_letter_genrm_cot")))[0]
  assert cot_prompt.endswith("Verification: Let's verify step by step.\n")
  assert cot.endswith(prompts.verdict_line(True)) or cot.endswith(
      prompts.verdict_line(False))
  solve = _segments(_first_batch(cfg("last_letter_solve")))
  assert all("The answer is" in t for _, t in solve)

  disc = _first_batch(cfg("last_letter_disc", pack=False))
  assert disc["tokens"].shape == (4, 2048) and set(disc["label"]) <= {0., 1.}
  assert (disc["tokens"][:, 0] == ip.BOS_ID).all()
  dpo = _first_batch(cfg("last_letter_dpo", pack=False))
  for side in ("chosen", "rejected"):
    toks, w = dpo[f"{side}_tokens"][0], dpo[f"{side}_loss_weights"][0]
    assert toks[0] == ip.BOS_ID and w[0] == 0 and w.sum() > 0
  assert not np.array_equal(dpo["chosen_tokens"], dpo["rejected_tokens"])


@needs_data
def test_unified_mixture_mixes_verification_and_solutions(last_letter_store):
  config = _config("last_letter_genrm_unified", candidates=last_letter_store,
                   unified_lambda=1.0)
  kinds = set()
  for batch in ip.make_local_iterator(config, split="train", num_steps=3):
    for row in range(4):
      for _, target in _segments(batch, row):
        kinds.add("verify" if target in (" Yes", " No") else "solve")
  assert kinds == {"verify", "solve"}


@needs_data
def test_resume_reads_the_same_batches():
  config = _config("word_sort_sft")
  run = list(ip.make_local_iterator(config, split="train", num_steps=3))
  resumed = _first_batch(config, start_step=2)
  for k in run[2]:
    np.testing.assert_array_equal(run[2][k], resumed[k])
  assert not np.array_equal(run[1]["decoder_target_tokens"],
                            run[2]["decoder_target_tokens"])
  # Two hosts read disjoint halves of the data.
  host0 = next(ip.make_local_iterator(config, split="train", num_steps=1,
                                      process_index=0, process_count=2))
  assert host0["decoder_target_tokens"].shape[0] == 2


@needs_data
def test_long_prompts_are_trimmed_from_the_left():
  batch = _first_batch(_config("gsm8k_genrm", seq_len=96, inputs_len=64,
                               pack=False), "validation")
  prompt, target = _segments(batch)[0]
  assert prompt.endswith("Is the answer correct (Yes/No)?")
  assert target in (" Yes", " No")


def test_verdict_ids_and_missing_vocabulary():
  yes, no = ip.verdict_ids(_vocab())
  assert _vocab().decode([yes]) == "Y" and _vocab().decode([no]) == "N"
  with pytest.raises(ValueError, match="tokenizer.model"):
    ip.get_vocabulary("")
  with pytest.raises(ValueError, match="candidate stores"):
    examples.verification_examples("genrm", "math", (), 16, 16, 0, "train")


@needs_data
@pytest.mark.parametrize("source", ["seqio", "python"])
def test_training_on_a_seqio_task_end_to_end(tmp_path, source):
  """`data.source='seqio'`: the trainer reads the registry's batches;
  'python': the same tasks' batches built without TensorFlow."""
  import json
  import jax
  from genrm_jax import train
  from tests import train_utils
  config = train_utils.load_config("gsm8k_genrm.py", "tiny")
  with config.unlocked():
    config.data.source = source
    config.data.vocabulary = "byte"
    # In bytes GSM8K's direct prompts run to 2,265 (train stops when more
    # than 1% would be cut); direct GenRM's target is the verdict only.
    config.data.seq_len = 2304
    config.batch_size = 2
    config.total_steps = 2
    config.log_every = 1
    config.eval_every = 0
    config.checkpoint_every = 2
  train.train_and_evaluate(config, str(tmp_path), devices=jax.devices()[:1])
  rows = [json.loads(l) for l in (tmp_path / "metrics.jsonl").open()]
  assert [r["step"] for r in rows] == [1, 2]
  assert all(np.isfinite(r["loss"]) and r["target_tokens"] > 0 for r in rows)


@needs_data
def test_sentencepiece_vocabulary(tmp_path):
  """A SentencePiece `tokenizer.model` (as Gemma's) as the task vocabulary:
  BOS first, ' Yes'/' No' verdict ids, golden round trip of a prompt."""
  import io
  import sentencepiece as spm
  problems = sources.get_problems("last_letter", "validation")[:200]
  text = "\n".join([prompts.HEADER] + [p["question"] + "\n" + p["solution"]
                                       for p in problems] +
                   ["Verification: Is the answer correct (Yes/No)? Yes",
                    "Verification: Is the answer correct (Yes/No)? No"] * 20)
  prefix = str(tmp_path / "sp")
  spm.SentencePieceTrainer.train(
      sentence_iterator=io.StringIO(text), model_prefix=prefix,
      vocab_size=400, pad_id=0, eos_id=1, bos_id=2, unk_id=3,
      byte_fallback=True, minloglevel=2, normalization_rule_name="identity",
      remove_extra_whitespaces=False, user_defined_symbols=["\n"])
  config = _config("last_letter_sft", vocabulary=prefix + ".model",
                   seq_len=512, inputs_len=384)
  batch = _first_batch(config)
  vocab = ip.get_vocabulary(prefix + ".model")
  tokens, seg = batch["decoder_target_tokens"][0], batch[
      "decoder_segment_ids"][0]
  weights = batch["decoder_loss_weights"][0]
  first = tokens[seg == 1]
  assert first[0] == ip.BOS_ID and first[-1] == 1
  prompt = vocab.decode([int(t) for t in first[1:][weights[seg == 1][1:] == 0]])
  question = prompt.split("\n\nQ: ")[1].split("\nA: ")[0]
  assert prompt == prompts.solution_prompt(question)  # golden, newlines kept
  yes, no = ip.verdict_ids(vocab)
  assert yes != no and vocab.decode([yes]).strip() in ("Yes", "Y")


def test_keep_problems_is_a_nested_seeded_subset():
  items = [(f"p{i % 20}", i) for i in range(60)]
  problem = lambda item: item[0]
  five = examples.keep_problems(items, problem, 5, seed=0)
  ten = examples.keep_problems(items, problem, 10, seed=0)
  assert len({problem(i) for i in five}) == 5 and len(five) == 15  # 3 items each
  assert set(five) <= set(ten)  # nested: a scaling curve adds problems
  assert examples.keep_problems(items, problem, 5, seed=1) != five
  assert examples.keep_problems(items, problem, 0) == items
  with pytest.raises(ValueError, match="train_problems=21.*20 problems"):
    examples.keep_problems(items, problem, 21)


@needs_data
def test_train_problems_subsets_the_training_split_only(last_letter_store):
  stores = tuple(sorted(last_letter_store.items()))
  build = lambda split, n: examples.verification_examples(
      "genrm", "last_letter", stores, 16, 16, 0, split, (), "", n)
  assert len({e["problem_id"] for e in build("train", 0)}) == 10
  assert len({e["problem_id"] for e in build("train", 4)}) == 4
  assert build("validation", 4) == build("validation", 0)
  # Through the config, seqio and plain-Python sources alike.
  config = _config("last_letter_genrm", candidates=last_letter_store, train_problems=3)
  rows = _segments(_first_batch(config))
  assert rows and len({p for p, _ in rows}) <= 3 * 2  # 3 problems x 2 solutions
  # The released GSM8K data (no candidate store): direct rows by question.
  direct = examples.verification_examples("genrm", "gsm8k", (), 16, 16, 0, "train",
                                              (), "", 25)
  assert len({e["problem_id"] for e in direct}) == 25
