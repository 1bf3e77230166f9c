"""Helpers for trainer tests: tiny configs, metrics, checkpoints."""

import importlib.util
import json
import os
import tempfile

import jax
import orbax.checkpoint as ocp
import pytest

# A persistent compilation cache: the resume and kill -9 tests compile the
# same step several times (in this process and in subprocesses).
CACHE_DIR = os.path.join(tempfile.gettempdir(),
                         f"genrm_jax_test_compile_cache_{os.getuid()}")
CACHE_ENV = {"JAX_COMPILATION_CACHE_DIR": CACHE_DIR,
             "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
             "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
jax.config.update("jax_compilation_cache_dir", CACHE_DIR)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

# seqio runs on TensorFlow, which the GPU images lack (and the train step,
# sampler and scorer never need): there the tests that run or compare against
# the seqio pipeline skip, saying so, and everything else runs.
HAS_SEQIO = all(importlib.util.find_spec(m) for m in ("tensorflow", "seqio"))
needs_seqio = pytest.mark.skipif(
    not HAS_SEQIO, reason="needs seqio and TensorFlow (pip install -e .)")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG_DIR = os.path.join(REPO, "configs")
CONFIG_FILES = sorted(f for f in os.listdir(CONFIG_DIR)
                      if f.endswith(".py") and f not in ("__init__.py",
                                                         "common.py"))


def load_config(name: str, arg: str | None = None):
  path = os.path.join(CONFIG_DIR, name if name.endswith(".py")
                      else name + ".py")
  spec = importlib.util.spec_from_file_location("cfg_" + name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def tiny_config(name: str = "last_letter_genrm", **overrides):
  """The `:tiny` config with eval off, logging every step, and overrides
  given as dotted keys with '__' (e.g. optimizer__grad_accum_steps=2)."""
  config = load_config(name, "tiny")
  config.eval_every = 0
  config.log_every = 1
  config.async_checkpointing = True
  config.mesh = (1, 1, 1)  # one device unless a test asks for a mesh
  for key, value in overrides.items():
    *parents, leaf = key.split("__")
    node = config
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config


def run(config, workdir, num_devices=1):
  """Trains in-process on the first `num_devices` (fake CPU) devices."""
  from genrm_jax import train  # pylint: disable=g-import-not-at-top
  return train.train_and_evaluate(config, str(workdir),
                                  devices=jax.devices()[:num_devices])


def read_metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(l) for l in f if l.strip()]


def train_records(workdir):
  return [r for r in read_metrics(workdir) if "loss" in r]


def restore_raw(workdir, step):
  return restore_raw_path(os.path.join(workdir, "checkpoints", str(step)))


def restore_raw_path(step_dir):
  return ocp.StandardCheckpointer().restore(os.path.join(step_dir, "default"))
