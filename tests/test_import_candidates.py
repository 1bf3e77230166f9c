"""`python -m genrm_jax.import_candidates`: samples from elsewhere -> a store."""

import json
import subprocess
import sys

import pytest

from genrm_jax import candidates as candidates_lib
from genrm_jax import import_candidates as ic
from tests import train_utils as tu


def _rows(*rows):
  return list(enumerate(rows, start=1))


def test_graded_with_the_task_grader_from_lists_of_samples():
  """vLLM-style rows (a prompt, n responses, a GSM8K reference): one
  candidate per response, graded and answered by the GSM8K grader."""
  rows = _rows({"prompt": "Q1", "responses": ["6 * 7. The answer is 42.", "The answer is 41."],
                "gold": "6 * 7 = 42\n#### 42"},
               {"prompt": "Q2", "responses": ["The answer is 1,000."], "gold": "#### 1000"},
               {"prompt": "Q1", "responses": ["The answer is 42."], "gold": "#### 42"})
  got = list(ic.convert(rows, question="prompt", solution="responses", reference="gold",
                        task="gsm8k"))
  assert [(c.question, c.candidate_id, c.answer, c.correct) for c in got] == [
      ("Q1", 0, "42", True), ("Q1", 1, "41", False), ("Q2", 0, "1000", True),
      ("Q1", 2, "42", True)]
  assert got[0].problem_id == got[3].problem_id != got[2].problem_id
  assert got[0].reference == "42" and got[0].task == "gsm8k"
  # A question differing only in whitespace is the same problem.
  again = list(ic.convert(_rows({"prompt": "Q1\n", "responses": ["x"], "gold": "#### 42"}),
                          question="prompt", solution="responses", reference="gold",
                          task="gsm8k"))
  assert again[0].problem_id == got[0].problem_id


def test_given_labels_answers_and_ids():
  rows = _rows({"id": 7, "q": "Q", "out": ["a", "b"], "ok": [1, "false"], "ans": ["x", None]},
               {"id": 8, "q": "R", "out": "c", "ok": True})
  got = list(ic.convert(rows[:1], question="q", solution="out", correct="ok", answer="ans",
                        problem_id="id"))
  assert [(c.problem_id, c.candidate_id, c.answer, c.correct) for c in got] == [
      ("7", 0, "x", True), ("7", 1, None, False)]
  single = list(ic.convert(rows[1:], question="q", solution="out", correct="ok",
                           problem_id="id"))
  assert [(c.problem_id, c.solution, c.answer, c.correct) for c in single] == [
      ("8", "c", None, True)]


def test_preference_pairs():
  """TRL preference rows: two candidates a line, chosen correct, rejected
  not; lines of one prompt join one problem."""
  rows = _rows({"prompt": "Q", "chosen": "good", "rejected": "bad"},
               {"prompt": "Q", "chosen": "fine", "rejected": "worse"})
  got = list(ic.convert(rows, question="prompt", chosen="chosen", rejected="rejected"))
  assert [(c.candidate_id, c.solution, c.correct) for c in got] == [
      (0, "good", True), (1, "bad", False), (2, "fine", True), (3, "worse", False)]
  assert len({c.problem_id for c in got}) == 1
  with pytest.raises(ValueError, match="--chosen=KEY and --rejected=KEY"):
    list(ic.convert(rows, question="prompt", chosen="chosen"))
  with pytest.raises(ValueError, match="not both"):
    list(ic.convert(rows, question="prompt", solution="chosen", chosen="chosen",
                    rejected="rejected"))
  with pytest.raises(ValueError, match="drop --correct"):
    list(ic.convert(rows, question="prompt", chosen="chosen", rejected="rejected",
                    correct="ok"))


@pytest.mark.parametrize("rows,kwargs,message", [
    (_rows({"q": "Q", "s": "a"}), dict(correct="ok"), r"in.jsonl:1: no key 'ok' \(keys: \['q', 's'\]\)"),
    (_rows({"q": "Q", "s": ["a", "b"], "ok": [1]}), dict(correct="ok"),
     r"in.jsonl:1: 1 labels \('ok'\) for 2 solutions"),
    (_rows({"q": "Q", "s": "a", "ok": 1}, {"q": "Q", "s": "b", "ok": "maybe"}),
     dict(correct="ok"), r"in.jsonl:2: label 'maybe' is not true/false"),
    (_rows({"q": "Q", "s": "a"}), {}, r"pass --correct=KEY .* or --task and --reference"),
    (_rows({"q": "Q", "s": "a", "r": "1"}), dict(task="gsm9k", reference="r"),
     r"--task='gsm9k': graders exist for"),
    (_rows(["not", "an", "object"]), dict(correct="ok"), r"in.jsonl:1: a line must be a JSON object"),
    # Would have graded every solution wrong against '', dropped a problem,
    # or merged questions under the id "None".
    (_rows({"q": "Q", "s": "a", "r": None}), dict(task="gsm8k", reference="r"),
     r"in.jsonl:1: reference 'r' is empty"),
    (_rows({"q": "Q", "s": [], "ok": []}), dict(correct="ok"),
     r"in.jsonl:1: no solutions \('s' is an empty list\)"),
    (_rows({"q": "Q", "s": "a", "ok": 1, "id": None}), dict(correct="ok", problem_id="id"),
     r"in.jsonl:1: problem id 'id' is empty"),
    (_rows({"q": "A?", "s": "a", "ok": 1, "id": 3}, {"q": "B?", "s": "b", "ok": 1, "id": 3}),
     dict(correct="ok", problem_id="id"), r"in.jsonl:2: problem id '3' came with another question"),
])
def test_errors_name_the_line_and_the_fix(rows, kwargs, message):
  with pytest.raises(ValueError, match=message):
    list(ic.convert(rows, question="q", solution="s", source="in.jsonl", **kwargs))


def test_cli_writes_a_store_the_tools_read(tmp_path):
  samples = tmp_path / "samples.jsonl"
  samples.write_text("\n".join(json.dumps(r) for r in (
      {"question": "Q1", "output": ["The answer is 3.", "The answer is 4."], "label": [1, 0]},
      {"question": "Q2", "output": ["The answer is 5."], "label": [0]})) + "\n")
  out = tmp_path / "c.jsonl"
  proc = subprocess.run([sys.executable, "-m", "genrm_jax.import_candidates",
                         f"--input={samples}", f"--out={out}", "--question=question",
                         "--solution=output", "--correct=label"],
                        cwd=tu.REPO, capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr
  assert "3 candidates of 2 problems, 1 correct" in proc.stdout
  store = candidates_lib.read_candidates(str(out))
  assert [(c.candidate_id, c.correct) for c in store] == [(0, True), (1, False), (0, False)]
  # A broken line: the error names it, and nothing is written.
  samples.write_text('{"question": "Q1", "output": "x", "label": 1}\n{"question": \n')
  proc = subprocess.run([sys.executable, "-m", "genrm_jax.import_candidates",
                         f"--input={samples}", f"--out={tmp_path / 'd.jsonl'}",
                         "--question=question", "--solution=output", "--correct=label"],
                        cwd=tu.REPO, capture_output=True, text=True, timeout=120)
  assert proc.returncode != 0 and f"{samples}:2: invalid JSON" in proc.stderr
  assert not (tmp_path / "d.jsonl").exists()
