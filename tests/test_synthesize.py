"""Reference-guided rationale synthesis and its use for math GenRM-CoT."""

import json
import os

import ml_collections as mlc
import numpy as np
import pytest

from genrm_jax import candidates as candidates_lib
from genrm_jax import prompts
from genrm_jax import sampling
from genrm_jax import synthesize
from genrm_jax.models import tokenizer as tokenizer_lib
from tests import gemma_reference as ref


def _cands():
  return [candidates_lib.Candidate(
      problem_id=f"math/p{i}", candidate_id=j, question=f"What is {i}+{i}?",
      solution=f"{i}+{i} = {2 * i + j}. The answer is {2 * i + j}.",
      answer=str(2 * i + j), reference=str(2 * i), correct=j == 0,
      task="math", extra={"reference_solution": f"{i}+{i}={2 * i}."})
          for i in range(2) for j in range(2)]


def test_grading_prompt_shows_the_reference():
  cand = _cands()[0]
  text = synthesize.grading_prompt(cand)
  assert text.startswith(prompts.HEADER)
  assert synthesize.REFERENCE_LINE + "0+0=0." in text
  assert text.endswith(cand.solution + prompts.COT_SUFFIX)
  no_ref = candidates_lib.Candidate(**{**cand.__dict__, "extra": {}})
  assert "The answer is 0." in synthesize.grading_prompt(no_ref)


def test_unguided_grading_is_the_verifiers_own_prompt(tmp_path):
  """reference_guided=False (the paper's ablation): the grader sees the
  question and candidate only; rows say so, and a file of guided rows
  refuses to be resumed unguided."""
  seen = []

  def generate(texts, rows):
    seen.extend(texts)
    return [prompts.verdict_line(True)] * len(texts)

  cand = _cands()[0]
  rows = list(synthesize.synthesize([cand], generate, 2, guided=False))
  assert seen == [prompts.cot_verification_prompt(cand.question, cand.solution)] * 2
  assert synthesize.REFERENCE_LINE not in seen[0] and "0+0=0." not in seen[0]
  assert [r["guided"] for r in rows] == [False, False]
  guided = list(synthesize.synthesize([cand], generate, 1))
  assert guided[0]["guided"] is True and synthesize.REFERENCE_LINE in seen[-1]
  path = tmp_path / "r.jsonl"
  path.write_text(json.dumps(guided[0]) + "\n")
  assert synthesize._done(str(path), 1) == {("math/p0", "0")}  # pylint: disable=protected-access
  assert synthesize._done(str(path), 2) == set()  # pylint: disable=protected-access
  with pytest.raises(ValueError, match="r.jsonl:1: rationales synthesised with "
                     "reference_guided=True, not False: use another --out"):
    synthesize._done(str(path), 1, guided=False)  # pylint: disable=protected-access


def test_rows_keep_only_rationales_agreeing_with_the_label(tmp_path):
  yes, no = prompts.verdict_line(True), prompts.verdict_line(False)
  outputs = [f"Step ok.\n{yes}\nextra chatter", f"Wrong.\n{no}", "no verdict"]
  calls = []

  def generate(texts, rows):
    calls.append(rows)
    return (outputs * 2)[:len(texts)]

  rows = list(synthesize.synthesize(_cands()[:2], generate, 3, batch_size=6))
  assert [r["k"] for r in rows] == [0, 1, 2, 0, 1, 2]
  # Both candidates' rationales in one call, each row named by its
  # (problem, candidate, k): what its sampling key depends on.
  assert calls == [[("math/p0", "0", 0), ("math/p0", "0", 1),
                    ("math/p0", "0", 2), ("math/p0", "1", 0),
                    ("math/p0", "1", 1), ("math/p0", "1", 2)]]
  assert rows[0]["rationale"] == f"Step ok.\n{yes}"  # cut after the verdict
  # Candidate 0 is correct (Yes agrees), candidate 1 incorrect (No agrees).
  assert [r["agrees"] for r in rows] == [True, False, False, False, True,
                                         False]
  path = tmp_path / "r.jsonl"
  path.write_text("".join(json.dumps(r) + "\n" for r in rows))
  table = synthesize.read_rationales(str(path))
  assert table == {("math/p0", "0"): [f"Step ok.\n{yes}"],
                   ("math/p0", "1"): [f"Wrong.\n{no}"]}
  path.write_text('{"problem_id": "x"}\n')
  with pytest.raises(candidates_lib.MalformedRowError, match=":1:"):
    synthesize.read_rationales(str(path))


def test_an_instruction_tuned_grader_gets_the_prompt_as_its_turn():
  texts = []

  def generate(prompts_in, rows):
    texts.extend(prompts_in)
    return [prompts.verdict_line(True)] * len(prompts_in)

  rows = list(synthesize.synthesize(_cands()[:1], generate, 2,
                                    chat_template="gemma"))
  want = synthesize.grading_prompt(_cands()[0])
  assert texts == [f"<start_of_turn>user\n{want}<end_of_turn>\n"
                   "<start_of_turn>model\n"] * 2
  assert [r["verdict"] for r in rows] == [True, True]
  assert prompts.chat_stop_strings("gemma") == ("<end_of_turn>",)
  assert prompts.as_chat("x", None) == "x"
  with pytest.raises(ValueError, match="known: gemma"):
    prompts.as_chat("x", "chatml")


def test_run_with_a_tiny_model_writes_and_resumes(tmp_path):
  config = ref.tiny_config("gemma2", num_embed=300)
  sampler = sampling.Sampler(config, ref.random_params(config),
                             tokenizer=tokenizer_lib.ByteTokenizer())
  store = tmp_path / "c.jsonl"
  candidates_lib.write_candidates(str(store), _cands())
  out = tmp_path / "r.jsonl"
  counts = synthesize.run(str(store), str(out), sampler, num_rationales=2,
                          max_new_tokens=6)
  assert counts["rationales"] == 8
  first = out.read_text()
  again = synthesize.run(str(store), str(out), sampler, num_rationales=2,
                         max_new_tokens=6)
  assert again["skipped_done"] == 4 and out.read_text() == first
  # Killed after one candidate and resumed, in other batches, streamed
  # through 3 rows: what the uninterrupted run wrote (a rationale's key is
  # its (seed, problem, candidate, k)).
  part = tmp_path / "part.jsonl"
  synthesize.run(str(store), str(part), sampler, num_rationales=2,
                 max_new_tokens=6, max_candidates=1, batch_size=2)
  synthesize.run(str(store), str(part), sampler, num_rationales=2,
                 max_new_tokens=6, batch_size=3, continuous_batching=True)
  assert [json.loads(l)["rationale"] for l in part.read_text().splitlines()] == \
      [json.loads(l)["rationale"] for l in first.splitlines()]
  # Killed inside a candidate: its first rationale on disk, the second cut
  # mid-line. The candidate is written again whole, the cut line set aside,
  # and the table is the uninterrupted run's.
  lines = first.splitlines(keepends=True)
  cut = tmp_path / "cut.jsonl"
  cut.write_text(lines[0] + lines[1][:30])
  synthesize.run(str(store), str(cut), sampler, num_rationales=2, max_new_tokens=6)
  assert (tmp_path / "cut.jsonl.cut").read_text() == lines[1][:30] + "\n"
  rows = lambda path: {(r["problem_id"], r["candidate_id"], r["k"], r["rationale"])
                       for r in map(json.loads, path.read_text().splitlines())}
  assert rows(cut) == rows(out) and len(cut.read_text().splitlines()) == 9
  assert synthesize.read_rationales(str(cut)) == synthesize.read_rationales(str(out))


@pytest.mark.skipif(not os.path.isdir(os.environ.get("GENRM_DATA_DIR", "")),
                    reason="set GENRM_DATA_DIR (the seqio registry test)")
def test_math_genrm_cot_task_uses_synthesised_rationales(tmp_path):
  pytest.importorskip("seqio")
  from genrm_jax import input_pipeline as ip
  store, rats = tmp_path / "c.jsonl", tmp_path / "r.jsonl"
  candidates_lib.write_candidates(str(store), _cands())
  yes, no = prompts.verdict_line(True), prompts.verdict_line(False)
  rows = [{"problem_id": c.problem_id, "candidate_id": c.candidate_id, "k": 0,
           "rationale": f"Check {c.candidate_id}.\n{yes if c.correct else no}",
           "agrees": True} for c in _cands()]
  rats.write_text("".join(json.dumps(r) + "\n" for r in rows))
  data = dict(task="math_genrm_cot", task_module="tasks.registry",
              vocabulary="byte", seq_len=2048, inputs_len=1024, pack=False,
              eval_task="", eval_split="validation",
              candidates={"train": str(store)},
              rationales={"train": str(rats)}, unified_lambda=1.0)
  config = mlc.ConfigDict(dict(seed=0, batch_size=4, data=data))
  batch = next(ip.make_local_iterator(config, split="train", num_steps=1))
  vocab = ip.get_vocabulary("byte")
  for row in range(4):
    tokens, w = batch["decoder_target_tokens"][row], batch[
        "decoder_loss_weights"][row]
    prompt = vocab.decode([int(t) for t in tokens[1:][w[1:] == 0] if t])
    target = vocab.decode([int(t) for t in tokens[w == 1][:-1]])
    assert synthesize.REFERENCE_LINE not in prompt  # the reference is hidden
    assert prompt.endswith(prompts.COT_SUFFIX)
    assert target.startswith("Check ") and prompts.parse_verdict(target) in (
        True, False)
  np.testing.assert_array_equal(batch["decoder_target_tokens"][:, 0], 2)


def test_rationales_per_solution_keeps_the_first_agreeing_ones(tmp_path):
  """data.rationales_per_solution: each solution's first R agreeing
  rationales (by k; a disagreeing one does not count); 0 keeps all."""
  from tasks import examples  # pylint: disable=g-import-not-at-top
  store, rats = tmp_path / "c.jsonl", tmp_path / "r.jsonl"
  candidates_lib.write_candidates(str(store), _cands())
  yes, no = prompts.verdict_line(True), prompts.verdict_line(False)
  rows = [{"problem_id": c.problem_id, "candidate_id": c.candidate_id, "k": k,
           "rationale": f"Check {k}.\n{yes if c.correct != (k == 1) else no}",
           "agrees": k != 1} for c in _cands() for k in range(4)]
  rats.write_text("".join(json.dumps(r) + "\n" for r in rows))

  def kept(per_solution):
    return examples.verification_examples(
        "genrm_cot", "math", (("train", str(store)),), 16, 16, 0, "train",
        (("train", str(rats)),), "", 0, per_solution)

  first_words = lambda per_solution: sorted(e["targets"].split(".")[0]
                                           for e in kept(per_solution))
  assert first_words(0) == sorted(["Check 0", "Check 2", "Check 3"] * 4)
  assert first_words(2) == sorted(["Check 0", "Check 2"] * 4)
  assert len(kept(1)) == 4
