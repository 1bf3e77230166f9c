"""Lengths: a run fails before training when its batches would cut the
examples (data_python.check_example_lengths), and a pipeline when its
samples could not hold a whole solution or rationale
(pipeline.check_generation_lengths)."""

import os

import numpy as np
import pytest

from configs import common
from configs.pipeline import quickstart
from genrm_jax import data_python
from genrm_jax import input_pipeline as ip
from genrm_jax import pipeline
from genrm_jax import task_vocab
from genrm_jax.models import tokenizer as tokenizer_lib
from tasks import sources

pytestmark = pytest.mark.skipif(
    not os.path.isdir(sources.resolve_data_dir(None)), reason="needs GENRM_DATA_DIR")


def _sft_config(seq_len, inputs_len=0):
  c = common.get_config("last_letter", "solve")
  c.data.task = "last_letter_sft"
  c.data.vocabulary = "byte"
  c.data.seq_len = seq_len
  c.data.inputs_len = inputs_len
  return c


def test_default_inputs_len_leaves_direct_genrm_only_its_verdict():
  c = common.get_config("last_letter", "genrm")
  c.data.task, c.data.seq_len = "last_letter_genrm", 192
  assert ip.feature_lengths(c.data, ip.GENERATIVE) == {"inputs": 184, "targets": 8}
  c.data.task = "last_letter_genrm_unified"  # mixes in solutions: half each
  assert ip.feature_lengths(c.data, ip.GENERATIVE) == {"inputs": 96, "targets": 96}
  c.data.task, c.data.inputs_len = "last_letter_genrm", 100  # explicit wins
  assert ip.feature_lengths(c.data, ip.GENERATIVE) == {"inputs": 100, "targets": 92}


def test_lengths_that_cut_solutions_stop_the_run_naming_the_fix():
  # In bytes, a 2-4-word solution is 150-270 long: 64 target tokens cut all
  # (and their prompts, ~100 bytes, lose their start).
  config = _sft_config(seq_len=128)
  report = data_python.length_report(config, max_examples=200)
  assert report["examples"] == 200 and report["cut"] == 200
  assert report["by_part"] == {"inputs": 200, "targets": 200}
  assert report["limits"] == {"inputs": 64, "targets": 64}
  assert report["longest"]["targets"] > 150
  with pytest.raises(ValueError) as e:
    data_python.check_example_lengths(config, max_examples=200)
  message = str(e.value)
  assert "last_letter_sft: 200 of 200 examples" in message
  for fix in ("data.seq_len", "data.inputs_len", "data.max_truncated_fraction"):
    assert fix in message

  # Accepting the cut: the run goes on, and says what it cuts.
  config.data.max_truncated_fraction = 1.0
  logged = []
  assert data_python.check_example_lengths(config, log=logged.append,
                                           max_examples=200)["cut"] == 200
  assert len(logged) == 2 and "training goes on" in logged[1]


def test_lengths_that_fit_pass_with_only_the_epoch_count_logged():
  longest = data_python.length_report(_sft_config(seq_len=1024), max_examples=300)["longest"]
  config = _sft_config(seq_len=longest["inputs"] + longest["targets"],
                       inputs_len=longest["inputs"])
  logged = []
  report = data_python.check_example_lengths(config, log=logged.append, max_examples=300)
  assert report["cut"] == 0 and len(logged) == 1 and "training examples" in logged[0]
  # One token less for the targets: the longest is cut (a prompt too).
  config.data.seq_len -= 1
  assert data_python.length_report(config, max_examples=300)["by_part"] == {"targets": 1}
  config.data.inputs_len -= 1
  assert data_python.length_report(config, max_examples=300)["by_part"]["inputs"] >= 1


def test_dpo_counts_prompt_and_completion_in_one_row():
  # pylint: disable=protected-access
  lengths = {"inputs": 10, "chosen": 6, "rejected": 6}
  encoder = data_python._Encoder(tokenizer_lib.from_spec("byte"), ip.DPO, lengths)
  # Bytes: BOS + 4 prompt tokens; 10 and 3 completion tokens + EOS each.
  fits = {"inputs": "abcd", "chosen": "abcdefghij", "rejected": "abc"}
  sizes = data_python._part_lengths(encoder.untrimmed(fits), ip.DPO)
  limits = data_python._part_limits(ip.DPO, lengths)
  assert sizes == {"inputs + chosen": 16, "inputs + rejected": 9}
  assert all(sizes[k] <= limits[k] for k in sizes)
  fits["chosen"] += "k"
  assert (data_python._part_lengths(encoder.untrimmed(fits), ip.DPO)["inputs + chosen"]
          > limits["inputs + chosen"])


def test_an_over_long_dpo_row_loses_its_prompts_start_not_its_completion():
  """A DPO row whose prompt alone fills the row: the prompt keeps BOS and
  its last inputs_len - 1 tokens and the completion stays (the
  completion vanished before, leaving a row with no target: log p 0, a
  loss stuck at log 2). Rows that fit keep everything, however they split."""
  # pylint: disable=protected-access
  lengths = {"inputs": 4, "chosen": 6, "rejected": 6}
  bos, eos = 2, 1
  long_prompt = np.array([bos] + list(range(10, 22)))  # 13 tokens
  ex = {"inputs": long_prompt, "chosen": np.array([5, 6, 7, eos]),
        "rejected": np.array([8, 9, 10, 11, 12, 13, 14, eos])}
  batch = ip._to_batch([ex], ip.DPO, lengths)
  np.testing.assert_array_equal(batch["chosen_tokens"][0],
                                [bos, 19, 20, 21, 5, 6, 7, eos, 0, 0])
  np.testing.assert_array_equal(batch["chosen_loss_weights"][0],
                                [0, 0, 0, 0, 1, 1, 1, 1, 0, 0])
  # The rejected completion is then cut at its end (6 of 8 tokens).
  np.testing.assert_array_equal(batch["rejected_tokens"][0],
                                [bos, 19, 20, 21, 8, 9, 10, 11, 12, 13])
  assert batch["rejected_loss_weights"][0].sum() == 6
  # A long prompt with a short completion fits whole (7 + 3 = 10).
  ex = {"inputs": long_prompt[:7], "chosen": np.array([5, 6, eos]),
        "rejected": np.array([8, eos])}
  batch = ip._to_batch([ex], ip.DPO, lengths)
  np.testing.assert_array_equal(batch["chosen_tokens"][0],
                                list(long_prompt[:7]) + [5, 6, eos])


def test_tasks_of_ones_own_are_not_checked():
  config = _sft_config(seq_len=16)
  config.data.task = "my_own_seqio_task"
  assert data_python.check_example_lengths(config) is None


def test_quickstart_samples_and_training_runs_fit(tmp_path):
  config = quickstart.get_config()
  vocab = str(tmp_path / "tokenizer.model")
  task_vocab.train(config.task, pipeline.problems(config, "vocab"), vocab,
                   vocab_size=config.vocab.size, model_type=config.vocab.model_type,
                   seed=config.seed)
  longest = pipeline.check_generation_lengths(config, vocab, log=lambda m: None)
  assert longest["solution"] <= config.sampling.max_new_tokens
  assert (longest["rationale"] + pipeline.RATIONALE_MARGIN
          <= config.verifiers.genrm_cot.options.max_new_tokens)
  # The generator's SFT data: no solution is cut (5 names included).
  report = data_python.length_report(pipeline.generator_config(config, vocab))
  assert report["cut"] == 0 and report["examples"] == 2000

  # GenRM-CoT's training rows hold a verifier-train prompt and rationale.
  assert longest["train_prompt"] <= config.runs.cot.data.inputs_len
  assert (longest["train_rationale"] + pipeline.RATIONALE_MARGIN
          <= config.runs.cot.data.seq_len - config.runs.cot.data.inputs_len)

  # The earlier CoT rows (384 tokens, half of them prompt) are refused
  # before anything trains, with overrides that fit.
  short = quickstart.get_config()
  short.runs.cot.data.update(seq_len=384, inputs_len=0)
  with pytest.raises(ValueError) as e:
    pipeline.check_generation_lengths(short, vocab, log=lambda m: None)
  fix = e.value.args[0].split("set ")[1].split(" (or more)")[0]
  assert fix.startswith("--config.runs.cot.data.inputs_len=192 --config.runs.cot.data.seq_len=")
  short.runs.cot.data.update(inputs_len=192, seq_len=int(fix.rsplit("=", 1)[1]))
  assert pipeline.check_generation_lengths(short, vocab, log=lambda m: None) == longest

  # A rationale budget the 5-name rationales overrun is refused, naming the key.
  config.verifiers.genrm_cot.options.max_new_tokens = longest["rationale"]
  with pytest.raises(ValueError, match=r"set --config\.verifiers\.genrm_cot\.options\."
                                       r"max_new_tokens=\d+ \(or more\)"):
    pipeline.check_generation_lengths(config, vocab, log=lambda m: None)
  config.sampling.max_new_tokens = longest["solution"] - 1
  with pytest.raises(ValueError, match=r"--config\.sampling\.max_new_tokens="):
    pipeline.check_generation_lengths(config, vocab, log=lambda m: None)
  config.check_lengths = False  # smoke runs
  assert pipeline.check_generation_lengths(config, vocab, log=lambda m: None) == {}


def test_epoch_count_follows_packing_and_notes_memorisation():
  # Unpacked: one example a row, so steps x batch rows over the train set.
  config = _sft_config(seq_len=1024)
  config.data.pack = False
  config.total_steps, config.batch_size = 100, 8
  report = data_python.length_report(config, max_examples=300)
  size = report["source_examples"][0]
  assert size > 1000 and report["examples_per_row"] == 1.0
  assert data_python.training_epochs(config, report) == [pytest.approx(800 / size)]

  # Packed 4,096-byte rows hold several 600-800-byte examples: the estimate
  # matches the segments of the rows the run would read.
  config.data.pack, config.data.seq_len = True, 4096
  report = data_python.length_report(config, max_examples=300)
  rows = [row for batch in data_python.make_local_iterator(config, split="train", num_steps=8)
          for row in batch["decoder_segment_ids"]]
  per_row = sum(int(row.max()) for row in rows) / len(rows)
  assert per_row > 4
  assert report["examples_per_row"] == pytest.approx(per_row, rel=0.15)
  assert data_python.training_epochs(config, report)[0] == pytest.approx(
      800 * report["examples_per_row"] / size)

  # A unified mixture reads its second source unified_lambda / (1 + lambda)
  # of the time.
  config.data.unified_lambda = 0.25
  assert data_python.training_epochs(
      config, {"examples_per_row": 2.0, "source_examples": [100, 50]}) == [
          pytest.approx(1600 * 0.8 / 100), pytest.approx(1600 * 0.2 / 50)]
  config.data.unified_lambda = 1.0

  # Many passes over the examples get a note; a few do not.
  for steps, noted in ((100, False), (20_000, True)):
    config.total_steps, logged = steps, []
    data_python.check_example_lengths(config, log=logged.append, max_examples=300)
    assert (f"{size:,} training examples; {steps} steps x 8 rows" in logged[0]
            and ("memorise" in logged[0]) == noted), logged
