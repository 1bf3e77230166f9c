"""The sampling CLIs as users run them (`python -m genrm_jax.<cli>`), in
subprocesses: each writes what its library function writes, resumes, and
reports bad input as an error line, not a traceback."""

import dataclasses
import json
import os
import subprocess
import sys

import jax
import pytest

from genrm_jax import candidates as candidates_lib
from genrm_jax import generate
from genrm_jax import sample
from genrm_jax import sampling
from genrm_jax import synthesize
from genrm_jax.models import bundle
from genrm_jax.models import gemma
from tests.test_train_cli import _env
from tests import train_utils as tu


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
  """A bundle of the `tiny` preset with byte tokens; its `params/` alone is
  a bare checkpoint (then --preset=tiny --tokenizer=byte)."""
  config = gemma.get_config("tiny")
  params = gemma.init_params(config, 0)
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.PRNGKey(1), len(leaves))
  params = jax.tree.unflatten(treedef, [0.3 * jax.random.normal(k, x.shape)
                                        for k, x in zip(keys, leaves)])
  return bundle.save_bundle(
      str(tmp_path_factory.mktemp("clis") / "model"), params, config, "byte")


def _cli(module, *args):
  proc = subprocess.run([sys.executable, "-m", f"genrm_jax.{module}", *args],
                        cwd=tu.REPO, env=_env(), capture_output=True,
                        text=True, timeout=300)
  return proc


def _ok(proc):
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
  return proc.stdout


def test_sample_prints_the_continuation(model_dir, monkeypatch):
  out = _ok(_cli("sample", f"--checkpoint={model_dir}", "--prompt=Q: abc",
                 "--max_new_tokens=6"))
  assert out == sample.sample(model_dir, "Q: abc", 6) + "\n"
  out = _ok(_cli("sample", f"--checkpoint={model_dir}", "--prompt=Q: abc",
                 "--max_new_tokens=6", "--chat_template=gemma"))
  assert out == sample.sample(model_dir, "Q: abc", 6,
                              chat_template="gemma") + "\n"
  # The prompt as the user's turn; the reply ends at the turn's end, cut.
  seen = []
  real = sampling.Sampler.generate

  def spy(self, prompts_in, params, **kw):
    seen.append((list(prompts_in), params.stop_strings))
    out = real(self, prompts_in, params, **kw)
    out.texts = ["Paris.<end_of_turn>"]
    return out

  monkeypatch.setattr(sampling.Sampler, "generate", spy)
  assert sample.sample(model_dir, "Hi", 6, chat_template="gemma") == "Paris."
  assert seen == [(["<start_of_turn>user\nHi<end_of_turn>\n"
                    "<start_of_turn>model\n"], ("<end_of_turn>",))]


def test_generate_score_synthesize_write_what_their_functions_write(
    model_dir, tmp_path):
  bare = dict(preset="tiny", tokenizer="byte")
  flags_bare = ["--preset=tiny", "--tokenizer=byte"]
  # generate: a bare checkpoint, 2 problems x 2 samples.
  store = str(tmp_path / "c.jsonl")
  args = [f"--checkpoint={model_dir}/params", *flags_bare,
          "--task=last_letter", "--split=test", "--num_samples=2",
          "--limit_problems=2", "--max_new_tokens=8", "--batch_size=4",
          "--temperature=3", f"--out={store}"]
  _ok(_cli("generate", *args))
  want = str(tmp_path / "want.jsonl")
  model = bundle.load_bundle(f"{model_dir}/params", **bare)
  problems = generate.load_problems("last_letter", "test")[:2]
  generate.generate(problems, model, want, task="last_letter", num_samples=2,
                    temperature=3.0, max_new_tokens=8, batch_size=4,
                    generator=os.path.abspath(f"{model_dir}/params"))
  got, want = (candidates_lib.read_candidates(p) for p in (store, want))
  assert len(got) == 4 and all(c.solution for c in got)  # (random tokens)
  # (log-probs to float rounding: this process runs on 8 fake CPU devices)
  assert [dataclasses.replace(c, logprob=0) for c in got] == [
      dataclasses.replace(c, logprob=0) for c in want]
  assert [c.logprob for c in got] == pytest.approx(
      [c.logprob for c in want], rel=1e-5)
  assert "2 of 2 problems already complete" in _ok(_cli("generate", *args))

  # score: direct GenRM p(Yes) of each candidate, then a rerun that resumes.
  scores = str(tmp_path / "s.jsonl")
  args = [f"--candidates={store}", "--verifier=genrm",
          f"--checkpoint={model_dir}", f"--out={scores}", "--batch_size=4"]
  _ok(_cli("score", *args))
  rows = [json.loads(line) for line in open(scores)]
  assert len(rows) == 4 and all(0 < r["score"] < 1 for r in rows)
  assert {r["verifier"] for r in rows} == {"genrm"}
  _ok(_cli("score", *args))
  assert len(open(scores).readlines()) == 4

  # synthesize: the grader as a bare checkpoint.
  rationales = str(tmp_path / "r.jsonl")
  _ok(_cli("synthesize", f"--candidates={store}",
           f"--checkpoint={model_dir}/params", *flags_bare,
           f"--out={rationales}", "--num_rationales=2", "--temperature=3",
           "--max_new_tokens=6"))
  want = str(tmp_path / "r_want.jsonl")
  sampler = sampling.Sampler(model.config, model.params,
                             tokenizer=model.tokenizer)
  synthesize.run(store, want, sampler, num_rationales=2, max_new_tokens=6,
                 temperature=3.0)
  assert open(rationales).read() == open(want).read()
  assert len(open(rationales).readlines()) == 8


@pytest.mark.parametrize("module,args", [
    ("generate", ["--task=last_letter", "--out=/tmp/x.jsonl"]),
    ("score", ["--candidates=/tmp/x.jsonl", "--verifier=genrm",
               "--out=/tmp/s.jsonl"]),
    ("synthesize", ["--candidates=/tmp/x.jsonl", "--out=/tmp/r.jsonl"]),
])
def test_a_missing_checkpoint_is_an_error_line(module, args, tmp_path):
  proc = _cli(module, f"--checkpoint={tmp_path}/nowhere", *args)
  assert proc.returncode != 0
  assert "error:" in proc.stderr and "Traceback" not in proc.stderr
