"""A workdir on gs:// (as launch/tpu_pod.sh passes), against a fake GCS.

`fake_gcs` maps `gs://B/P` onto a local folder at the two places I/O
leaves the process: every `etils.epath` backend call (`epath.testing.
mock_epath`, with TensorFlow's gfile backend turned off so the mock is what
gs:// paths reach) and orbax's TensorStore kvstore spec for GCS (a `file`
driver on the same folder). Everything above them runs as on GCS: orbax
takes its GCS code paths (commit_success.txt, not atomic renames), the
writers take their URL paths (metrics.jsonl rewritten whole, no appends).
The working directory is an empty folder: anything that bypassed epath with
a `gs://...` string (os.makedirs, open, os.path.abspath) would land there as
`gs:/...`, and the tests check that nothing did.

Not covered offline: the real tf.io.gfile / fsspec GCS clients and the
TensorStore `gcs` driver (credentials, retries, eventual listing).
"""

import contextlib
import os
import signal
import subprocess
import sys
from unittest import mock

from etils import epath
from etils.epath import gpath
from etils.epath import testing as epath_testing
import jax
import numpy as np
import pytest

from genrm_jax import checkpointing
from genrm_jax import metric_writers
from genrm_jax import train
from tests import train_utils as tu

URL = "gs://bucket/run"


@contextlib.contextmanager
def fake_gcs(root):
  """Within: `gs://B/P` is `root/B/P`, for epath and for orbax."""
  # pylint: disable=g-import-not-at-top
  from orbax.checkpoint._src.path import gcs_utils
  root = os.fspath(root)

  def to_local(p):
    p = os.fspath(p)
    return os.path.join(root, p[len("gs://"):]) if p.startswith("gs://") else p

  def to_url(p, like):
    p = os.fspath(p)
    if not os.fspath(like).startswith("gs://"):
      return p
    return "gs://" + os.path.relpath(p, root)

  def one(fn, path, *args, **kwargs):
    return fn(to_local(path), *args, **kwargs)

  def two(fn, src, dst, *args, **kwargs):
    return fn(to_local(src), to_local(dst), *args, **kwargs)

  def glob(fn, pattern):
    return [to_url(p, pattern) for p in fn(to_local(pattern))]

  def walk(fn, top, **kwargs):
    for d, dirs, files in fn(to_local(top), **kwargs):
      yield to_url(d, top), dirs, files

  fns = dict(copy=two, rename=two, replace=two, exists=one, isdir=one,
             listdir=one, makedirs=one, mkdir=one, open=one, remove=one,
             rmtree=one, stat=one, glob=glob, walk=walk)
  with contextlib.ExitStack() as stack:
    stack.enter_context(epath_testing.mock_epath(**fns))
    # With TF installed epath sends gs:// to tf.io.gfile, past the mock.
    stack.enter_context(mock.patch.object(gpath, "_is_tf_installed",
                                          lambda: False))
    stack.enter_context(mock.patch.object(
        gcs_utils, "get_kvstore_for_gcs",
        lambda path: {"driver": "file", "path": to_local(path)}))
    stack.enter_context(mock.patch.object(
        gcs_utils, "is_hierarchical_namespace_enabled", lambda path: False))
    yield


@pytest.fixture
def gcs(tmp_path, monkeypatch):
  """A fake GCS under tmp_path/gcs; the cwd is an empty tmp_path/cwd."""
  root = tmp_path / "gcs"
  root.mkdir()
  cwd = tmp_path / "cwd"
  cwd.mkdir()
  monkeypatch.chdir(cwd)
  with fake_gcs(root):
    yield root
  assert not os.listdir(cwd), "a gs:// path was written with os, not epath"


def _ls(url):
  return sorted(p.name for p in epath.Path(url).iterdir())


# -----------------------------------------------------------------------------
# The metric writer's URL mode.
# -----------------------------------------------------------------------------


def test_metric_writer_rewrites_remote_file_on_flush(gcs):
  path = f"{URL}/metrics.jsonl"
  w = metric_writers.MetricWriter(URL, active=True, remote_flush_secs=3600)
  assert w.remote
  w.write(1, {"loss": 1.0})
  w.write(2, {"loss": 0.5})
  assert not epath.Path(path).exists()  # buffered until a flush
  w.flush()
  assert [r["step"] for r in metric_writers.read_metrics(path)] == [1, 2]
  w.write(3, {"loss": 0.25})
  w.close()
  assert [r["loss"] for r in metric_writers.read_metrics(path)] == [
      1.0, 0.5, 0.25]
  events = [n for n in _ls(URL) if n.startswith("events.out.tfevents")]
  assert len(events) == 1
  from tensorboard.backend.event_processing import event_file_loader  # pylint: disable=g-import-not-at-top
  loaded = list(event_file_loader.LegacyEventFileLoader(
      str(gcs / "bucket" / "run" / events[0])).Load())
  assert [e.step for e in loaded if e.summary.value] == [1, 2, 3]

  # A run resumed from step 2 keeps steps <= 2 and appends after them; with
  # remote_flush_secs=0 every write is stored at once.
  w = metric_writers.MetricWriter(URL, active=True, resume_step=2,
                                  remote_flush_secs=0)
  assert [r["step"] for r in metric_writers.read_metrics(path)] == [1, 2]
  w.write(3, {"loss": 0.3})
  assert [r["loss"] for r in metric_writers.read_metrics(path)] == [
      1.0, 0.5, 0.3]
  w.close()


def test_local_metric_writer_still_appends(tmp_path):
  w = metric_writers.MetricWriter(str(tmp_path), active=True)
  assert not w.remote
  w.write(1, {"loss": 1.0})  # on disk before any flush, as before
  assert metric_writers.read_metrics(str(tmp_path / "metrics.jsonl")) == [
      {"step": 1, "loss": 1.0}]
  w.close()


def test_checkpointers_keep_urls():
  with mock.patch.object(checkpointing.ocp, "CheckpointManager"):
    make = checkpointing.Checkpointer
    assert make(f"{URL}/checkpoints", save_every=1).directory == (
        f"{URL}/checkpoints")
    assert make("rel/ckpt", save_every=1).directory == os.path.abspath(
        "rel/ckpt")
    best = checkpointing.BestCheckpointer(f"{URL}/best", "eval/loss")
    assert best.directory == f"{URL}/best"


def test_bundle_metadata_and_tokenizer_on_gcs(gcs, tmp_path):
  """model.json and a SentencePiece tokenizer.model copied from a local file
  or from gs:// (`--config.data.vocabulary=gs://...`), read back from gs://."""
  import io  # pylint: disable=g-import-not-at-top
  import json  # pylint: disable=g-import-not-at-top
  import sentencepiece as spm  # pylint: disable=g-import-not-at-top
  from genrm_jax.models import bundle  # pylint: disable=g-import-not-at-top
  from genrm_jax.models import tokenizer as tokenizer_lib  # pylint: disable=g-import-not-at-top
  text = "\n".join(f"Q: the last letters of name{i} other{i}. The answer is "
                   f"{i}. Yes No" for i in range(300))
  prefix = tmp_path / "sp"
  spm.SentencePieceTrainer.train(
      sentence_iterator=io.StringIO(text), model_prefix=str(prefix),
      vocab_size=60, pad_id=0, eos_id=1, bos_id=2, unk_id=3, minloglevel=2)
  local_model = str(prefix) + ".model"
  config = train.model_config(tu.tiny_config())
  for src, out in [(local_model, f"{URL}/a"),
                   (f"{URL}/a/tokenizer.model", f"{URL}/b")]:
    path = bundle.write_model_json(out, config, src)
    meta = json.loads(epath.Path(path).read_text())
    assert meta["vocabulary"] == "tokenizer.model"
    vocab = bundle._resolve_vocab(out, meta["vocabulary"])  # pylint: disable=protected-access
    assert vocab == f"{out}/tokenizer.model"
    tok = tokenizer_lib.from_spec(vocab)
    assert tok.decode(tok.encode("The answer is 7.")) == "The answer is 7."
  with pytest.raises(FileNotFoundError):
    bundle.write_model_json(f"{URL}/c", config, f"{URL}/missing.model")


# -----------------------------------------------------------------------------
# The trainer end to end on gs://.
# -----------------------------------------------------------------------------


def _disc_config(total_steps):
  """Disc RM: exercises the value head export; eval + `best` checkpoints."""
  config = tu.tiny_config("last_letter_disc", total_steps=total_steps,
                          checkpoint_every=2, eval_every=2,
                          best_metric="eval/loss", best_mode="min",
                          export_params=True)
  config.eval_steps = 1
  return config


def test_train_on_gcs_then_resume(gcs, monkeypatch):
  # First run: 4 steps.
  tu.run(_disc_config(4), URL)
  metrics_path = f"{URL}/metrics.jsonl"
  first = metric_writers.read_metrics(metrics_path)
  assert [r["step"] for r in first if "loss" in r] == [1, 2, 3, 4]
  assert [r["step"] for r in first if "eval/loss" in r] == [2, 4]
  names = _ls(URL)
  assert {"checkpoints", "best", "export", "metrics.jsonl"} <= set(names)
  assert any(n.startswith("events.out.tfevents") for n in names)
  assert _ls(f"{URL}/checkpoints") == ["2", "4"]
  # orbax took its GCS path: a commit marker, no atomic rename.
  assert epath.Path(f"{URL}/checkpoints/4/commit_success.txt").exists()
  assert len(_ls(f"{URL}/best")) == 1
  assert {"params", "model.json", "value_head.npz"} <= set(_ls(f"{URL}/export"))

  # The export bundle loads from its URL (params via orbax, the rest epath).
  from genrm_jax.models import bundle  # pylint: disable=g-import-not-at-top
  loaded = bundle.load_bundle(f"{URL}/export", tokenizer="byte")
  assert loaded.value_head is not None and set(loaded.value_head) == {
      "kernel", "bias"}
  assert loaded.config.embed_dim == jax.tree.leaves(
      loaded.params["embedder"])[0].shape[1]

  # Second run, 6 steps: restores step 4 from gs:// and continues; the
  # first run's records (wall-clock steps_per_sec included) are kept as
  # they were, not logged again.
  restored = []
  original_restore = checkpointing.Checkpointer.restore

  def spy(self, step, abstract_state):
    restored.append((self.directory, step))
    return original_restore(self, step, abstract_state)

  monkeypatch.setattr(checkpointing.Checkpointer, "restore", spy)
  tu.run(_disc_config(6), URL)
  assert restored == [(f"{URL}/checkpoints", 4)]
  second = metric_writers.read_metrics(metrics_path)
  assert second[:len(first)] == first
  assert [r["step"] for r in second if "loss" in r] == list(range(1, 7))
  assert _ls(f"{URL}/checkpoints") == ["2", "4", "6"]
  state = tu.restore_raw_path(str(gcs / "bucket" / "run" / "checkpoints" / "6"))
  assert int(state["step"]) == 6
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(state["params"]))


_CLI_SCRIPT = """
import sys
from absl import app
from genrm_jax import train
from tests.test_remote_workdir import fake_gcs
with fake_gcs(sys.argv[1]):
  train.define_flags()
  app.run(train.main, argv=["train"] + sys.argv[2:])
"""


def test_cli_workdir_url_kill_minus_9_then_resume(tmp_path):
  """`python -m genrm_jax.train --workdir=gs://...` (main(): config.json and
  the whole run) in a fresh process, SIGKILLed after step 4 (checkpoint and
  eval done), then the same command resumes from gs:// and finishes."""
  root = tmp_path / "gcs"
  cwd = tmp_path / "cwd"
  root.mkdir()
  cwd.mkdir()
  env = dict(os.environ, **tu.CACHE_ENV, JAX_PLATFORMS="cpu",
             TF_CPP_MIN_LOG_LEVEL="3",
             PYTHONPATH=tu.REPO + os.pathsep + os.environ.get("PYTHONPATH",
                                                              ""))
  env["XLA_FLAGS"] = " ".join(
      f for f in env.get("XLA_FLAGS", "").split()
      if "xla_force_host_platform_device_count" not in f)

  def cli(**extra_env):
    cmd = [sys.executable, "-c", _CLI_SCRIPT, str(root),
           f"--config={tu.CONFIG_DIR}/word_sort_genrm.py:tiny",
           f"--workdir={URL}", "--config.total_steps=6",
           "--config.checkpoint_every=2", "--config.log_every=1",
           "--config.eval_every=2", "--config.eval_steps=1",
           # Synchronous saves: the step-4 checkpoint is complete at the kill.
           "--config.async_checkpointing=False"]
    return subprocess.run(cmd, cwd=cwd, env=dict(env, **extra_env),
                          capture_output=True, text=True, timeout=300)

  proc = cli(**{train.KILL_AT_STEP_ENV: "4"})
  assert proc.returncode == -signal.SIGKILL, proc.stderr[-4000:]
  run_dir = root / "bucket" / "run"
  assert (run_dir / "config.json").exists()
  assert sorted(os.listdir(run_dir / "checkpoints")) == ["2", "4"]
  killed = metric_writers.read_metrics(str(run_dir / "metrics.jsonl"))
  # Stored with the step-4 checkpoint: train steps 1-4 and both evals.
  assert [(r["step"], "loss" in r) for r in killed] == [
      (1, True), (2, True), (2, False), (3, True), (4, True), (4, False)]

  proc = cli()
  assert proc.returncode == 0, proc.stderr[-4000:]
  assert f"Resumed from {URL}/checkpoints at step 4" in proc.stderr
  final = metric_writers.read_metrics(str(run_dir / "metrics.jsonl"))
  assert final[:len(killed)] == killed
  assert [r["step"] for r in final if "loss" in r] == list(range(1, 7))
  assert [r["step"] for r in final if "eval/loss" in r] == [2, 4, 6]
  assert sorted(os.listdir(run_dir / "checkpoints")) == ["2", "4", "6"]
  assert not os.listdir(cwd)


def test_tensorboard_drops_the_steps_a_resumed_run_logs_again(tmp_path):
  """A run killed after its step-4 checkpoint had logged steps 5-6; the
  resumed run logs them again. TensorBoard shows one value per step, the
  resumed run's, as metrics.jsonl does."""
  from tensorboard.backend.event_processing import event_accumulator  # pylint: disable=g-import-not-at-top
  w = metric_writers.MetricWriter(str(tmp_path), active=True, resume_step=0)
  for step in range(1, 7):
    w.write(step, {"lr": float(step)})
  w.close()
  w = metric_writers.MetricWriter(str(tmp_path), active=True, resume_step=4)
  for step in range(5, 8):
    w.write(step, {"lr": 10.0 * step})
  w.close()  # the same second and process: a second events file all the same
  assert len([n for n in os.listdir(tmp_path) if n.startswith("events.out")]) == 2
  acc = event_accumulator.EventAccumulator(str(tmp_path))
  acc.Reload()
  assert [(e.step, e.value) for e in acc.Scalars("lr")] == [
      (1, 1.0), (2, 2.0), (3, 3.0), (4, 4.0), (5, 50.0), (6, 60.0), (7, 70.0)]
  assert [r["lr"] for r in metric_writers.read_metrics(
      str(tmp_path / "metrics.jsonl"))] == [1.0, 2.0, 3.0, 4.0, 50.0, 60.0, 70.0]
