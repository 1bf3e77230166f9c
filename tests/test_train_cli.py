"""`python -m genrm_jax.train` end to end, in subprocesses: kill -9 and
resume, a locked config, and no TensorFlow in the train step."""

import os
import signal
import subprocess
import sys

import numpy as np

from genrm_jax import train
from tests import train_utils as tu


def _env(**extra):
  env = dict(os.environ)
  env.update(tu.CACHE_ENV)
  env.update(JAX_PLATFORMS="cpu", TF_CPP_MIN_LOG_LEVEL="3",
             PYTHONPATH=tu.REPO + os.pathsep + env.get("PYTHONPATH", ""))
  # One CPU device (the tiny configs' mesh (-1, 1, 1) then has one device).
  env["XLA_FLAGS"] = " ".join(
      f for f in env.get("XLA_FLAGS", "").split()
      if "xla_force_host_platform_device_count" not in f)
  env.update(extra)
  return env


def _train_cli(config_arg, workdir, *flags, env=None, check=True):
  cmd = [sys.executable, "-m", "genrm_jax.train", f"--config={config_arg}",
         f"--workdir={workdir}", *flags]
  proc = subprocess.run(cmd, cwd=tu.REPO, env=env or _env(),
                        capture_output=True, text=True, timeout=300)
  if check and proc.returncode != 0:
    raise AssertionError(f"{cmd} failed:\n{proc.stderr[-4000:]}")
  return proc


FLAGS = ("--config.total_steps=12", "--config.checkpoint_every=4",
         "--config.log_every=1", "--config.eval_every=0")


def test_kill_minus_9_then_resume_equals_uninterrupted(tmp_path):
  config = "configs/last_letter_dpo.py:tiny"
  # Uninterrupted run.
  full = tmp_path / "full"
  _train_cli(config, full, *FLAGS)
  # The same command, SIGKILLed right after step 10 (its step-8 save may or
  # may not have finished), then simply run again.
  killed = tmp_path / "killed"
  proc = _train_cli(config, killed, *FLAGS, check=False,
                    env=_env(**{train.KILL_AT_STEP_ENV: "10"}))
  assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
  resumed_from = max(int(d) for d in os.listdir(killed / "checkpoints")
                     if d.isdigit())
  assert resumed_from in (4, 8)
  _train_cli(config, killed, *FLAGS)
  a, b = tu.train_records(full), tu.train_records(killed)
  assert [r["step"] for r in b] == list(range(1, 13))
  for ra, rb in zip(a, b):
    for key in ("loss", "l2_grads", "l2_params", "reward_margin"):
      np.testing.assert_allclose(ra[key], rb[key], rtol=1e-5,
                                 err_msg=f"step {ra['step']} {key}")
  assert (full / "config.json").exists()
  assert any(f.startswith("events.out.tfevents") for f in os.listdir(full))


def test_mistyped_config_key_is_an_error(tmp_path):
  proc = _train_cli("configs/gsm8k_genrm.py:tiny", tmp_path,
                    "--config.totl_steps=3", check=False)
  assert proc.returncode != 0
  assert "totl_steps" in proc.stderr


def test_train_step_runs_without_tensorflow(tmp_path):
  script = f"""
import sys
from genrm_jax import train
from tests import train_utils as tu
config = tu.tiny_config("word_sort_cot", total_steps=2, checkpoint_every=2)
tu.run(config, {str(tmp_path)!r})
assert "tensorflow" not in sys.modules, "TensorFlow was imported"
print("OK")
"""
  proc = subprocess.run([sys.executable, "-c", script], cwd=tu.REPO,
                        env=_env(), capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]
