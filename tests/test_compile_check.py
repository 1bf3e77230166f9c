"""The offline compile check (`train --compile_only --topology=...`).

CPU devices always (the same code path, so it cannot rot); a real TPU
topology through libtpu when libtpu is installed (the `tpu` extra).
"""

import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import common
from genrm_jax import compile_check
from genrm_jax import data_synthetic

REPO = pathlib.Path(__file__).resolve().parents[1]
HAS_LIBTPU = compile_check._libtpu_path() is not None  # pylint: disable=protected-access


def tiny(task="gsm8k", method="cot"):
  return common.get_config(task, method, "tiny")


@pytest.mark.parametrize("spec,topology,devices,hbm_gib", [
    ("v5p-32", "v5p:2x2x4", 16, 95),
    ("v5p-8", "v5p:2x2x1", 4, 95),
    ("v6e-16", "v6e:4x4", 16, 32),
    ("v5litepod-4", "v5e:2x2", 4, 16),
    ("v4-8", "v4:2x2x1", 4, 32),
    ("v5p:2x4x4", "v5p:2x4x4", 32, 95),
])
def test_parse_topology(spec, topology, devices, hbm_gib):
  t = compile_check.parse_topology(spec)
  assert (t.platform, t.topology, t.num_devices) == ("tpu", topology, devices)
  assert t.hbm_bytes == hbm_gib * 1024**3


def test_parse_topology_cpu_and_errors():
  t = compile_check.parse_topology("cpu:4")
  assert (t.platform, t.num_devices, t.hbm_bytes) == ("cpu", 4, None)
  with pytest.raises(ValueError, match="v5p-8, v5p-16"):
    compile_check.parse_topology("v5p-12")
  with pytest.raises(ValueError, match="accelerator type"):
    compile_check.parse_topology("h100-8")


@pytest.mark.parametrize("method", ["cot", "genrm", "disc", "dpo"])
def test_batch_spec_matches_the_data_source(method):
  """The abstract batch has the fields, shapes and dtypes real batches have."""
  config = tiny("last_letter", method)
  real = data_synthetic.SyntheticSource(config).local_batch(
      0, config.batch_size)
  spec = compile_check.batch_spec(config)
  assert set(spec) == set(real)
  for k, (shape, dtype) in spec.items():
    assert real[k].shape == shape, k
    assert real[k].dtype == np.dtype(dtype), k


def _check_numbers(report):
  for key in ("argument_bytes", "output_bytes", "total_bytes", "params_bytes",
              "opt_state_bytes", "batch_bytes", "num_params"):
    assert report[key] > 0, key
  assert report["temp_bytes"] >= 0
  # The donated state is aliased to the new state.
  assert 0 < report["alias_bytes"] <= report["argument_bytes"]
  assert report["total_bytes"] >= report["argument_bytes"]


def test_compile_on_cpu_devices():
  """The real train step, sharded over 8 (fake) CPU devices."""
  if len(jax.devices()) < 8:
    pytest.skip("needs XLA_FLAGS=--xla_force_host_platform_device_count=8")
  config = tiny()
  with config.unlocked():
    config.mesh = (2, 4, 1)  # data x fsdp: params and moments sharded 4 ways
  report = compile_check.run(config, "cpu:8")
  _check_numbers(report)
  assert report["mesh"] == {"data": 2, "fsdp": 4, "tensor": 1}
  assert report["num_devices"] == 8 and report["fits"] is None
  # FSDP over 4: each device holds about a quarter of the params.
  full = report["num_params"] * 4  # fp32
  assert report["params_bytes"] < full / 2
  text = compile_check.format_report(report)
  assert "arguments" in text and "no HBM budget" in text


def test_missing_libtpu_is_a_clear_error(monkeypatch):
  monkeypatch.setattr(compile_check, "_libtpu_path", lambda: None)
  with pytest.raises(RuntimeError, match=r"libtpu.*\[tpu\]"):
    compile_check.topology_devices(compile_check.parse_topology("v5p-8"))


def test_report_says_when_it_does_not_fit():
  report = {
      "topology": "v5e-4", "libtpu_topology": "v5e:2x2", "num_devices": 4,
      "device_kind": "TPU v5 lite", "mesh": {"data": 1, "fsdp": 4,
                                              "tensor": 1},
      "method": "genrm_cot", "model": "gemma2_9b", "num_params": 9.2e9,
      "batch_size": 64, "seq_len": 1024, "compile_seconds": 1.0,
      "params_bytes": 9e9, "opt_state_bytes": 18e9, "batch_bytes": 1e6,
      "ref_bytes": 0, "argument_bytes": 27e9, "output_bytes": 27e9,
      "alias_bytes": 27e9, "temp_bytes": 5e9, "code_bytes": 1e6,
      "total_bytes": 32e9, "hbm_bytes": 16 * 1024**3, "fits": False}
  text = compile_check.format_report(report)
  assert "DOES NOT FIT" in text and "To fit:" in text


def _cli(*args, timeout=300):
  env = {**os.environ, "PYTHONPATH": str(REPO)}
  env.pop("XLA_FLAGS", None)
  return subprocess.run(
      [sys.executable, "-m", "genrm_jax.train", *args], cwd=REPO, env=env,
      capture_output=True, text=True, timeout=timeout, check=False)


def _json_line(stdout):
  line = [l for l in stdout.splitlines()
          if l.startswith("compile_check_json: ")]
  assert len(line) == 1, stdout
  return json.loads(line[0].split(": ", 1)[1])


@pytest.mark.skipif(not HAS_LIBTPU, reason="libtpu not installed "
                    "(pip install -e '.[tpu]')")
def test_cli_compiles_for_a_tpu_topology():
  """`train --compile_only` on a v5e-4 (through libtpu, no TPU needed)."""
  proc = _cli("--config=configs/gsm8k_cot.py:tiny", "--compile_only",
              "--topology=v5litepod-4", "--config.mesh=(1,4,1)")
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = _json_line(proc.stdout)
  _check_numbers(report)
  assert report["platform"] == "tpu" and report["num_devices"] == 4
  assert report["device_kind"].startswith("TPU v5")
  assert report["hbm_bytes"] == 16 * 1024**3 and report["fits"] is True
  assert "FITS" in proc.stdout and "of 16.00 GiB HBM" in proc.stdout
  assert "could not determine TPU" not in proc.stderr  # libtpu kept quiet


def test_cli_reports_a_bad_topology():
  proc = _cli("--config=configs/gsm8k_cot.py:tiny", "--compile_only",
              "--topology=v5p-12", timeout=120)
  assert proc.returncode == 2
  assert "compile check failed" in proc.stderr and "v5p-16" in proc.stderr
