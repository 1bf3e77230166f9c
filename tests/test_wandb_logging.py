"""`config.wandb`: metrics.jsonl mirrored into a Weights & Biases run."""

import glob
import os
import subprocess
import sys
import types

import pytest

from genrm_jax import candidates as candidates_lib
from genrm_jax import evaluate
from genrm_jax import wandb_logging
from tests import train_utils as tu
from tests.test_train_cli import _env


class _FakeRun:
  """Records what the trainer sends; `step` as W&B reports it on resume."""

  def __init__(self, kwargs, step=0):
    self.kwargs, self.step, self.logged, self.finished = kwargs, step, [], False
    self.summary = {}

  def log(self, data, step):
    assert step >= self.step, "W&B drops steps below its current one"
    self.step = step
    self.logged.append({"step": step, **data})

  def finish(self):
    self.finished = True


@pytest.fixture
def fake_wandb(monkeypatch):
  runs = []
  module = types.ModuleType("wandb")

  def init(**kwargs):
    runs.append(_FakeRun(kwargs, step=module.resumed_step))
    return runs[-1]

  module.init, module.resumed_step, module.runs = init, 0, runs
  module.Table = lambda columns, data: ("table", columns, data)
  module.Image = lambda path: ("image", os.path.basename(path))
  monkeypatch.setitem(sys.modules, "wandb", module)
  return module


def _merged_by_step(records):
  """W&B merges the records logged at one step (train, then eval)."""
  out = {}
  for r in records:
    out.setdefault(r["step"], {}).update(r)
  return out


def test_training_mirrors_metrics_jsonl_and_resumes_the_same_run(tmp_path, fake_wandb):
  workdir = str(tmp_path / "run")
  config = tu.tiny_config(total_steps=4, checkpoint_every=2, eval_every=2,
                          wandb__project="genrm", wandb__tags="a, b",
                          wandb__mode="offline")
  tu.run(config, workdir)
  (first,) = fake_wandb.runs
  run_id = open(os.path.join(workdir, wandb_logging.RUN_ID_FILE)).read().strip()
  assert first.kwargs["id"] == run_id and first.kwargs["resume"] == "allow"
  assert first.kwargs["project"] == "genrm" and first.kwargs["mode"] == "offline"
  assert first.kwargs["name"] == "run" and first.kwargs["tags"] == ["a", "b"]
  assert first.kwargs["entity"] is None and first.kwargs["dir"] == workdir
  assert first.kwargs["config"]["method"] == config.method
  assert first.finished
  # Every record of metrics.jsonl, train and eval, at its step.
  want = _merged_by_step(tu.read_metrics(workdir))
  assert _merged_by_step(first.logged) == want
  assert sorted(want) == [1, 2, 3, 4] and "eval/loss" in want[2]

  # Resumed to 6 steps: the same W&B run; W&B (online) reports step 4, the
  # steps before it are not sent again.
  fake_wandb.resumed_step = 4
  config.total_steps = 6
  tu.run(config, workdir)
  second = fake_wandb.runs[1]
  assert second.kwargs["id"] == run_id
  assert [r["step"] for r in second.logged if "loss" in r] == [5, 6]


def test_a_killed_run_does_not_send_its_last_steps_twice(tmp_path, fake_wandb):
  fake_wandb.resumed_step = 7  # logged up to 7, checkpoint at 5
  mirror = wandb_logging.WandbMirror({"project": "p"}, str(tmp_path))
  for step in range(6, 10):
    mirror.log(step, {"loss": 1.0 / step})
  mirror.log(9, {"eval/loss": 0.5})
  mirror.close()
  assert [(r["step"], sorted(r)) for r in fake_wandb.runs[0].logged] == [
      (7, ["loss", "step"]), (8, ["loss", "step"]), (9, ["loss", "step"]),
      (9, ["eval/loss", "step"])]


def test_run_id_is_kept_and_a_different_one_is_refused(tmp_path):
  first = wandb_logging.run_id(str(tmp_path))
  assert wandb_logging.run_id(str(tmp_path)) == first
  assert wandb_logging.run_id(str(tmp_path), first) == first
  with pytest.raises(ValueError, match="delete the file"):
    wandb_logging.run_id(str(tmp_path), "other")
  assert wandb_logging.run_id(str(tmp_path / "b"), "mine") == "mine"


def test_off_by_default_and_bad_settings_fail_before_training(tmp_path, monkeypatch):
  config = tu.load_config("last_letter_genrm", "tiny")
  assert set(config.wandb.keys()) == set(wandb_logging.FIELDS)
  assert not wandb_logging.enabled(config.wandb)
  wandb_logging.check(config.wandb)  # off: wandb need not be installed
  config.wandb.project = "p"
  config.wandb.mode = "later"
  with pytest.raises(ValueError, match="'offline'"):
    wandb_logging.check(config.wandb)
  config.wandb.mode = ""
  monkeypatch.setitem(sys.modules, "wandb", None)  # not installed
  from genrm_jax import train  # pylint: disable=g-import-not-at-top
  with pytest.raises(ImportError, match=r"pip install -e '\.\[wandb\]'"):
    train.train_and_evaluate(config, str(tmp_path / "run"))
  assert not os.path.exists(tmp_path / "run" / "checkpoints")


def test_real_wandb_offline_run(tmp_path, monkeypatch):
  """The installed wandb takes our arguments and writes the offline run
  that `wandb sync` uploads."""
  pytest.importorskip("wandb", reason="the `test` (or `wandb`) extra installs wandb")
  for var in ("WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_DIR"):
    monkeypatch.delenv(var, raising=False)
  monkeypatch.setenv("WANDB_SILENT", "true")
  workdir = str(tmp_path / "run")
  os.makedirs(workdir)
  mirror = wandb_logging.WandbMirror(
      {"project": "genrm-test", "mode": "offline", "tags": "x"}, workdir,
      run_config={"method": "genrm", "mesh": (1, -1, 1)})
  for step in (1, 2, 3):
    mirror.log(step, {"loss": 1.0 / step, "lr": 0.1})
  mirror.close()
  run_id = open(os.path.join(workdir, wandb_logging.RUN_ID_FILE)).read().strip()
  (log,) = glob.glob(os.path.join(workdir, "wandb", f"offline-run-*-{run_id}",
                                  f"run-{run_id}.wandb"))
  assert os.path.getsize(log) > 0


def test_pipeline_runs_share_a_group_named_after_the_pipeline(tmp_path):
  from configs.pipeline import quickstart  # pylint: disable=g-import-not-at-top
  from genrm_jax import pipeline  # pylint: disable=g-import-not-at-top
  config = quickstart.get_config("smoke")
  pipeline.group_wandb_runs(config, str(tmp_path / "qs"))
  off = pipeline.train_config(config, "genrm", vocabulary="byte", init_from="")
  assert not wandb_logging.enabled(off.wandb) and off.wandb.group == ""
  config.train.wandb.project = "genrm"
  pipeline.group_wandb_runs(config, str(tmp_path / "qs"))
  for method in ("solve", "genrm", "cot"):
    c = pipeline.train_config(config, method, vocabulary="byte", init_from="")
    assert (c.wandb.project, c.wandb.group) == ("genrm", "qs")
  assert pipeline._eval_wandb(config) == {"project": "genrm", "group": "qs",
                                          "mode": "", "name": "eval"}
  config.train.wandb.group = "mine"
  pipeline.group_wandb_runs(config, str(tmp_path / "qs"))
  assert config.train.wandb.group == "mine"


def _small_store(tmp_path):
  """3 problems x 4 candidates; verifier v prefers the correct ones."""
  cands, scores = [], []
  for p in range(3):
    for i in range(4):
      correct = i == p
      cands.append(candidates_lib.Candidate(
          problem_id=f"p{p}", candidate_id=i, question="q", solution="s",
          answer=str(i), reference=str(p), correct=correct, task="gsm8k"))
      scores.append(candidates_lib.VerifierScore(
          f"p{p}", i, "v", 0.5 + 0.4 * correct - 0.1 * i))
  candidates_lib.write_candidates(str(tmp_path / "c.jsonl"), cands)
  candidates_lib.write_scores(str(tmp_path / "s.jsonl"), scores)
  return str(tmp_path / "c.jsonl"), [str(tmp_path / "s.jsonl")]


def test_evaluation_goes_to_one_run_curves_against_n(tmp_path, fake_wandb):
  cands, scores = _small_store(tmp_path)
  out = str(tmp_path / "eval")
  results = evaluate.run(cands, scores, out, num_bootstrap=20, verbose=False,
                         wandb={"project": "genrm", "group": "g"})
  (run,) = fake_wandb.runs
  assert run.kwargs["job_type"] == "evaluate" and run.kwargs["name"] == "eval"
  assert run.kwargs["group"] == "g" and run.finished
  assert run.kwargs["config"]["n_max"] == 4
  by_step = _merged_by_step(run.logged)
  assert sorted(by_step) == [1, 2, 3, 4]
  for n in range(1, 5):
    for m in results["methods"]:
      assert by_step[n][f"best_of_n/{m}"] == results["curves"][m][str(n)]
  _, columns, rows = by_step[4]["best_of_n_table"]
  assert columns == ["method", "n", "accuracy", "ci95_lo", "ci95_hi"]
  assert len(rows) == 4 * len(results["methods"])
  assert ["v", 4, results["curves"]["v"]["4"], *results["ci95"]["v"]["4"]] in rows
  assert by_step[4]["best_of_n"] == ("image", "best_of_n.png")
  assert run.summary["best_of_4/v"] == results["curves"]["v"]["4"] == 1.0
  assert run.summary["auroc/v"] == results["auroc"]["v"]
  assert run.summary["first_sample"] == results["first_sample"]["accuracy"]


def test_evaluation_without_wandb_installed_fails_before_any_work(tmp_path, monkeypatch):
  cands, scores = _small_store(tmp_path)
  monkeypatch.setitem(sys.modules, "wandb", None)
  with pytest.raises(ImportError, match="wandb"):
    evaluate.run(cands, scores, str(tmp_path / "eval"), verbose=False,
                 wandb={"project": "genrm"})
  assert not os.path.exists(tmp_path / "eval")
  evaluate.run(cands, scores, str(tmp_path / "eval"), num_bootstrap=0,
               verbose=False, wandb={"project": ""})  # off: no wandb needed


def test_real_wandb_offline_evaluation_from_the_cli(tmp_path):
  pytest.importorskip("wandb", reason="the `test` (or `wandb`) extra installs wandb")
  cands, scores = _small_store(tmp_path)
  out = str(tmp_path / "eval")
  proc = subprocess.run(
      [sys.executable, "-m", "genrm_jax.evaluate", f"--candidates={cands}",
       f"--scores={scores[0]}", f"--out={out}", "--bootstrap=0",
       "--wandb_project=genrm-test", "--wandb_mode=offline"],
      cwd=tu.REPO, env=_env(WANDB_SILENT="true"), capture_output=True,
      text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  (log,) = glob.glob(os.path.join(out, "wandb", "offline-run-*", "run-*.wandb"))
  assert os.path.getsize(log) > 0
  # The table and the plot were written as W&B media files of the run.
  media = glob.glob(os.path.join(os.path.dirname(log), "files", "media", "**", "*"),
                    recursive=True)
  assert any(m.endswith(".png") for m in media), media
  assert any(m.endswith(".table.json") for m in media), media
