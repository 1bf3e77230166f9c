"""The benchmarks' --tiny modes run (so they cannot rot) and report figures."""

import json
import subprocess
import sys

import pytest

pytest.importorskip("gemma.transformer")


def _run(module, *args, tmp_path):
  out = tmp_path / "bench.jsonl"
  proc = subprocess.run(
      [sys.executable, "-m", module, "--tiny", f"--out={out}", *args],
      capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  return [json.loads(l) for l in out.read_text().splitlines()], proc.stdout


def test_train_step_benchmark_tiny(tmp_path):
  rows, stdout = _run("benchmarks.train_step", "--impls=ours,official",
                      "--steps=2", tmp_path=tmp_path)
  assert [r["impl"] for r in rows] == ["ours", "official"]
  for r in rows:
    assert "error" not in r, r
    assert r["tokens_per_s"] > 0 and r["params"] > 0 and r["device"]
  assert "ours_speedup" in stdout


def test_sampling_benchmark_tiny(tmp_path):
  rows, _ = _run("benchmarks.sampling", "--impls=ours", "--batches=2",
                 tmp_path=tmp_path)
  assert rows[0]["new_tokens_per_s"] > 0 and rows[0]["batch"] == 2
