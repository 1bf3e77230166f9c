"""`data.source='python'`: the seqio tasks' batches without seqio or TF."""

import os
import subprocess
import sys

import numpy as np
import pytest

from configs import common
from genrm_jax import candidates as candidates_lib
from genrm_jax import data_python
from genrm_jax import input_pipeline as ip
from tasks import sources
from tests import train_utils as tu

pytestmark = pytest.mark.skipif(
    not os.path.isdir(sources.resolve_data_dir(None)), reason="needs GENRM_DATA_DIR")


def _store(path):
  rows = []
  for p in sources.get_problems("last_letter", "validation")[:12]:
    wrong = p["reference"][::-1] + "x"
    for i, (solution, ok) in enumerate([
        (p["solution"], True), ("So: " + p["solution"], True),
        (p["solution"].replace(p["reference"], wrong), False),
        (p["solution"].replace(p["reference"], wrong + "q"), False)]):
      rows.append(candidates_lib.Candidate(
          problem_id=p["problem_id"], candidate_id=i, question=p["question"],
          solution=solution, answer=None, reference=p["reference"], correct=ok,
          task="last_letter"))
  candidates_lib.write_candidates(path, rows)
  return path


def _config(method, task, store, pack=False, seq_len=192):
  c = common.get_config("last_letter", method)
  c.batch_size = 4
  c.data.vocabulary = "byte"
  c.data.task = task
  c.data.seq_len = seq_len
  c.data.pack = pack
  c.data.eval_split = "validation"
  c.data.candidates.train = store
  c.data.candidates.validation = store
  return c


def _both(config, steps=3):
  config.data.source = "seqio"
  want = list(ip.make_local_iterator(config, split="validation", num_steps=steps))
  config.data.source = "python"
  got = list(data_python.make_local_iterator(config, split="validation", num_steps=steps))
  return want, got


@pytest.mark.parametrize("method,task", [("solve", "last_letter_sft"),
                                         ("genrm", "last_letter_genrm"),
                                         ("cot", "last_letter_genrm_cot")])
@tu.needs_seqio
def test_unpacked_rows_equal_seqio(tmp_path, method, task):
  config = _config(method, task, _store(str(tmp_path / "c.jsonl")), seq_len=512)
  for want, got in zip(*_both(config)):
    real = want["decoder_segment_ids"] != 0
    for key in ("decoder_target_tokens", "decoder_loss_weights", "decoder_segment_ids"):
      np.testing.assert_array_equal(got[key], want[key], err_msg=key)
    np.testing.assert_array_equal(got["decoder_positions"][real],
                                  want["decoder_positions"][real])


@pytest.mark.parametrize("method", ["disc", "bt", "dpo"])
@tu.needs_seqio
def test_disc_and_dpo_batches_equal_seqio(tmp_path, method):
  config = _config(method, f"last_letter_{method}", _store(str(tmp_path / "c.jsonl")))
  for want, got in zip(*_both(config)):
    assert set(got) == set(want)
    for key in want:
      np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_packing_resume_hosts_and_mixture(tmp_path):
  store = _store(str(tmp_path / "c.jsonl"))
  config = _config("unified", "last_letter_genrm_cot_unified", store, pack=True,
                   seq_len=3072)  # byte tokens: a CoT example is ~1,300
  config.data.source = "python"
  batches = list(data_python.make_local_iterator(config, split="train", num_steps=4))
  first = batches[0]
  # Packed rows: several segments, positions restart, loss only on targets.
  assert first["decoder_segment_ids"].max() >= 2
  for row in range(first["decoder_target_tokens"].shape[0]):
    seg, pos = first["decoder_segment_ids"][row], first["decoder_positions"][row]
    for s in range(1, seg.max() + 1):
      idx = np.nonzero(seg == s)[0]
      assert pos[idx[0]] == 0 and first["decoder_target_tokens"][row, idx[0]] == ip.BOS_ID
      weights = first["decoder_loss_weights"][row, idx]
      assert weights[0] == 0 and weights[-1] == 1  # prompt, then targets
      assert first["decoder_target_tokens"][row, idx[-1]] == 1  # EOS
  # Both parts of the unified mixture appear (verification and solve targets).
  text = bytes(int(t) - 3 for b in batches for t in b["decoder_target_tokens"].ravel()
               if 3 <= t < 259).decode("utf-8", "ignore")
  assert "Check each step." in text and "Concatenating them is" in text
  # Resume: starting at step 2 gives batches 2 and 3 exactly.
  resumed = list(data_python.make_local_iterator(config, split="train", start_step=2,
                                                 num_steps=2))
  for a, b in zip(batches[2:], resumed):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  # Two hosts: their halves make up the global batch.
  halves = [next(data_python.make_local_iterator(config, split="train", num_steps=1,
                                                 process_index=i, process_count=2))
            for i in range(2)]
  for key in first:
    np.testing.assert_array_equal(np.concatenate([h[key] for h in halves]), first[key])


def test_no_tensorflow_imported(tmp_path):
  store = _store(str(tmp_path / "c.jsonl"))
  code = (
      "import sys\n"
      "from configs import common\n"
      "from genrm_jax import data_python\n"
      "c = common.get_config('last_letter', 'genrm')\n"
      "c.data.source = 'python'; c.data.vocabulary = 'byte'; c.batch_size = 2\n"
      f"c.data.candidates.train = {store!r}\n"
      "next(data_python.make_local_iterator(c, split='train', num_steps=1))\n"
      "bad = [m for m in sys.modules if m.startswith(('tensorflow', 'seqio'))]\n"
      "assert not bad, bad[:5]\n")
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  subprocess.run([sys.executable, "-c", code], check=True, cwd=repo)



def _math_store(path):
  """MATH training problems: the reference solution, and one ending in
  another boxed answer (graded wrong)."""
  rows = []
  for p in sources.get_problems("math", "train")[:8]:
    wrong = p["solution"] + " So the answer is $\\boxed{" + p["reference"] + "0}$."
    for i, (solution, ok) in enumerate([(p["solution"], True), (wrong, False)]):
      rows.append(candidates_lib.Candidate(
          problem_id=p["problem_id"], candidate_id=i, question=p["question"],
          solution=solution, answer=None, reference=p["reference"], correct=ok,
          task="math"))
  candidates_lib.write_candidates(path, rows)
  return path


@pytest.mark.parametrize("method", ["genrm", "disc", "bt", "dpo"])
@tu.needs_seqio
def test_math_configs_train_on_a_math_store(tmp_path, method):
  """configs/math_<method>.py: MATH verification tasks from a store, the same
  batches with and without seqio, both labels present."""
  store = _math_store(str(tmp_path / "c.jsonl"))
  config = tu.load_config(f"math_{method}.py")
  assert config.data.task == f"math_{common.TASK_SUFFIX[config.method]}"
  assert config.data.eval_split == ""  # MATH has no validation split
  config.batch_size = 4
  config.data.vocabulary = "byte"
  config.data.seq_len = 1024
  # Held-out problems for eval, as the config's docstring says to add them.
  config.data.candidates.train = config.data.candidates.validation = store
  config.data.eval_split = "validation"
  want, got = _both(config, steps=4)
  for w, g in zip(want, got):
    assert set(g) == set(w)
    for key in w:
      np.testing.assert_array_equal(g[key], w[key], err_msg=key)
  if method == "disc":
    assert set(np.concatenate([b["label"] for b in want])) == {0.0, 1.0}


def test_bt_rows_are_what_the_disc_scorer_reads(tmp_path):
  """A Bradley-Terry row is the very token sequence `verifiers` scores with
  kind 'disc' (BOS + solution prompt + solution): the value head is trained
  where it is read."""
  from genrm_jax import prompts  # pylint: disable=g-import-not-at-top
  from genrm_jax.models import tokenizer as tokenizer_lib  # pylint: disable=g-import-not-at-top
  store = _store(str(tmp_path / "c.jsonl"))
  config = _config("bt", "last_letter_bt", store, seq_len=1024)  # nothing cut
  tok = tokenizer_lib.from_spec("byte")
  scored = {label: [tok.encode(prompts.solution_prompt(c.question) + c.solution, add_bos=True)
                    for c in candidates_lib.read_candidates(store) if c.correct == label]
            for label in (True, False)}
  rows = list(data_python.local_example_rows(config, split="validation"))
  assert len(rows) == 24  # two pairs for each of the 12 problems
  for row in rows:
    for prefix, label in (("chosen", True), ("rejected", False)):
      tokens = row[f"{prefix}_tokens"][row[f"{prefix}_segment_ids"] != 0].tolist()
      assert tokens in scored[label]


def test_a_dpo_pair_trims_one_prompt_for_both_rows():
  """Only the rejected row is over-long: both rows still see the same
  (trimmed) prompt, since DPO compares two completions of one prompt."""
  lengths = {"inputs": 8, "chosen": 8, "rejected": 8}  # 16 tokens a row
  prompt = [2] + list(range(10, 21))  # BOS + 11 tokens: more than inputs_len
  example = {"inputs": prompt, "chosen": [50, 51, 1], "rejected": [60, 61, 62, 63, 64, 1]}
  batch = ip._to_batch([example], ip.DPO, lengths)  # pylint: disable=protected-access
  seen = {}
  for side in ("chosen", "rejected"):
    tokens, weights = batch[f"{side}_tokens"][0], batch[f"{side}_loss_weights"][0]
    seen[side] = tokens[(weights == 0) & (tokens != 0)].tolist()
    assert tokens[weights > 0].tolist() == example[side]  # completions whole
  assert seen["chosen"] == seen["rejected"] == [2] + list(range(14, 21))
  # A pair whose rows both fit keeps all of the prompt.
  short = dict(example, rejected=[60, 1])
  batch = ip._to_batch([short], ip.DPO, {"inputs": 8, "chosen": 8, "rejected": 8})  # pylint: disable=protected-access
  assert batch["rejected_tokens"][0][:12].tolist() == prompt


def test_an_eval_task_of_another_kind_gets_its_own_prompt_length():
  """Training GenRM-CoT with direct GenRM as the eval task: the direct
  prompts get all but the verdict's tokens, not CoT's half of seq_len."""
  import ml_collections as mlc  # pylint: disable=g-import-not-at-top
  data = mlc.ConfigDict(dict(task="last_letter_genrm_cot", eval_task="last_letter_genrm",
                             eval_split="validation", seq_len=256, inputs_len=0))
  assert ip.feature_lengths(data, ip.GENERATIVE)["inputs"] == 128
  name, _ = ip.task_and_split(data, "validation")
  assert ip.feature_lengths(data, ip.GENERATIVE, name)["inputs"] == 256 - ip.DIRECT_VERDICT_TOKENS
