"""The benchmarks' --tiny modes run (so they cannot rot) and report figures."""

import json
import os
import subprocess
import sys

import pytest

from genrm_jax import compile_check

_has = compile_check._module_found  # pylint: disable=protected-access
# The gpu_aot extra, in site-packages or beside it (setup_env.sh).
_has_cuda_plugin = compile_check._cuda_plugin_installed  # pylint: disable=protected-access


needs_official = pytest.mark.skipif(
    not _has("gemma.transformer"), reason="the official gemma package")
needs_data = pytest.mark.skipif(
    not _has("seqio") or not os.path.isdir(os.environ.get("GENRM_DATA_DIR",
                                                          "")),
    reason="seqio and GENRM_DATA_DIR (the released GSM8K data)")


def _run(module, *args, tmp_path, tiny=True):
  out = tmp_path / "bench.jsonl"
  proc = subprocess.run(
      [sys.executable, "-m", module, *(["--tiny"] if tiny else []),
       f"--out={out}", *args],
      capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-2000:]
  return [json.loads(l) for l in out.read_text().splitlines()], proc.stdout


@needs_official
def test_train_step_benchmark_tiny(tmp_path):
  # Ours with the chunked cross-entropy (the full-logits step is what
  # tests/test_train.py runs).
  # and both attention calls (xla: the fused call's portable twin).
  # With a profile of each JAX row.
  # Both with the layers unrolled (no loop; the layer scan is what
  # tests/test_train.py runs).
  # And LoRA beside full fine-tuning.
  rows, stdout = _run("benchmarks.train_step", "--impls=ours,official",
                      "--steps=2", "--loss_chunk=16", "--attention=einsum,xla",
                      "--scan_unroll=all", "--lora_rank=0,4",
                      f"--profile_dir={tmp_path / 'traces'}", tmp_path=tmp_path)
  assert [r["impl"] for r in rows] == ["ours", "ours", "ours", "ours", "official"]
  assert [r.get("attention") for r in rows] == ["einsum", "xla", "einsum", "xla", None]
  assert [r.get("lora_rank") for r in rows] == [0, 0, 4, 4, None]
  assert rows[0]["loss_chunk"] == 16
  assert rows[0]["scan_unroll"] == "all"
  for r in rows:
    assert "error" not in r, r
    assert r["tokens_per_s"] > 0 and r["params"] > 0 and r["device"]
  # The same training on the same batch, whichever attention call.
  assert rows[1]["loss"] == pytest.approx(rows[0]["loss"], rel=1e-2)
  # LoRA: the same model, a few trainable params, a bf16 base, and 4N for
  # the weights' FLOPs where full fine-tuning has 6N.
  full, low_rank = rows[0], rows[2]
  assert low_rank["params"] == full["params"]
  assert 0 < low_rank["trainable_params"] < full["params"] / 5
  assert (full["param_dtype"], low_rank["param_dtype"]) == ("float32", "bfloat16")
  assert full["flops_per_token"] - low_rank["flops_per_token"] == 2 * full["params"]
  assert "ours_speedup" in stdout
  for r in rows:
    profile = r["profile"]
    assert os.path.exists(profile["trace"]) and profile["steps"] == 3
    assert profile["busy_s"] > 0 and profile["ops"][0]["total_s"] > 0
  assert "where the time goes" in stdout


@needs_official
def test_train_step_cost_tiny(tmp_path):
  """XLA's cost model of each configuration (tiny, compiled for one CPU
  device): remat 'full' recomputes the forward (more FLOPs than the default
  policy, which saves the dots, and that more than no remat); the official
  fwd+bwd does the FLOPs of ours without remat, less the optimizer's few."""
  rows, stdout = _run("benchmarks.train_step_cost", "--topology=cpu:1",
                      "--variants=ours,ours_remat_full,ours_remat_none,official,ours_lora",
                      "--by_op=4", tmp_path=tmp_path)
  by = {r["impl"]: r for r in rows}
  assert set(by) == {"ours", "ours_remat_full", "ours_remat_none", "official", "ours_lora"}
  # LoRA's model FLOPs: 4N of the base weights, not 6N of base and adapters.
  tokens = by["ours"]["batch"] * by["ours"]["seq_len"]
  assert by["ours"]["model_flops"] - by["ours_lora"]["model_flops"] == pytest.approx(
      2 * by["ours"]["params"] * tokens)
  del by["ours_lora"]
  for r in rows:
    assert "error" not in r, r
    assert r["xla_flops"] > 0 and r["xla_bytes"] > 0 and r["plan_bytes"] > 0
    assert r["model_flops"] > 0 and "mfu_ceiling" not in r  # no GPU peak
  flops = {k: r["xla_flops"] for k, r in by.items()}
  assert flops["ours_remat_full"] > flops["ours"] > flops["ours_remat_none"]
  assert flops["official"] == pytest.approx(flops["ours_remat_none"], rel=0.01)
  assert "a model, not a measurement" in stdout and "GFLOP" in stdout
  assert stdout.count(", by op:") == len(rows) and "in all (" in stdout


@needs_official
@pytest.mark.skipif(not _has_cuda_plugin(),
                    reason="the gpu_aot extra (CUDA plugin)")
def test_train_step_cost_tiny_for_an_h100(tmp_path):
  """The same for an H100 (no GPU here): roofline bounds and an MFU
  ceiling at or below 100%."""
  rows, stdout = _run("benchmarks.train_step_cost", "--topology=h100",
                      "--variants=ours", tmp_path=tmp_path)
  (row,) = rows
  assert row["device"] == "NVIDIA H100 80GB HBM3", row
  assert row["compute_ms"] > 0 and row["memory_ms"] > 0
  assert 0 < row["mfu_ceiling"] <= 1.0
  assert "MFU ceiling" in stdout


def test_sampling_cost_tiny(tmp_path):
  """One decode-loop iteration of the sampler's own program, tiny, for a CPU
  device and (with the gpu_aot extra) an H100: it reads at least every
  weight once, so the roofline is at most the ideal; --by_op prints where
  the bytes go."""
  rows, stdout = _run("benchmarks.sampling_cost", "--topology=cpu:1",
                      "--batches=2,8", "--by_op=5", "--continuous",
                      tmp_path=tmp_path)
  assert [(r["batch"], r["impl"]) for r in rows] == [
      (2, "ours_sampler"), (2, "ours_sampler_continuous"),
      (8, "ours_sampler"), (8, "ours_sampler_continuous")]
  assert rows[2]["cache_bytes"] > 3.9 * rows[0]["cache_bytes"]  # K, V per row
  # Continuous batching's loop: stream_headroom (64) more cache slots.
  assert rows[1]["cache_slots"] == rows[0]["cache_slots"] + 64
  assert rows[1]["cache_bytes"] > rows[0]["cache_bytes"]
  for r in rows:
    assert r["step_bytes"] >= r["weight_bytes"] > 0, r
    assert r["program_xla_bytes"] > r["step_bytes"]  # + the prefill
    assert "by_op" not in r  # the table is printed, not recorded
  assert "a model, not a measurement" in stdout
  assert "one decode-loop iteration by op" in stdout and "while/body" in stdout
  if _has_cuda_plugin():
    (row,) = _run("benchmarks.sampling_cost", "--topology=h100",
                  "--batches=4", tmp_path=tmp_path / "h100")[0]
    assert row["device"] == "NVIDIA H100 80GB HBM3"
    assert 0 < row["roofline_tokens_per_s"] <= row["ideal_tokens_per_s"]


def test_sampling_cost_with_a_watched_stop_string(tmp_path):
  """--watch: each loop again with a stop string watched; the watch adds a
  [B, 32]-byte gather and a compare a step, a sliver of what the step
  moves (here the tiny model's, which makes it look large)."""
  rows, stdout = _run("benchmarks.sampling_cost", "--topology=cpu:1",
                      "--batches=8", "--continuous", "--watch",
                      tmp_path=tmp_path)
  assert [r["impl"] for r in rows] == [
      "ours_sampler", "ours_sampler+watch", "ours_sampler_continuous",
      "ours_sampler_continuous+watch"]
  for plain, watched in (rows[:2], rows[2:]):
    assert plain["step_bytes"] < watched["step_bytes"] < 1.05 * plain[
        "step_bytes"]
  assert "continuous +watch" in stdout


_HLO = """HloModule m

%fused_slice (param_0: f32[4,8], param_1: s32[]) -> f32[1,8] {
  %param_0 = f32[4,8]{1,0} parameter(0)
  %param_1 = s32[] parameter(1)
  %c = s32[] constant(0)
  ROOT %ds = f32[1,8]{1,0} dynamic-slice(%param_0, %param_1, %c), dynamic_slice_sizes={1,8}
}

%fused_dus (param_0.1: f32[4,8], param_1.1: f32[1,8], param_2: s32[]) -> f32[4,8] {
  %param_0.1 = f32[4,8]{1,0} parameter(0)
  %b = f32[4,8]{0,1} bitcast(%param_0.1)
  %param_1.1 = f32[1,8]{1,0} parameter(1)
  %param_2 = s32[] parameter(2)
  %c.1 = s32[] constant(0)
  ROOT %dus = f32[4,8]{0,1} dynamic-update-slice(%b, %param_1.1, %param_2, %c.1)
}

ENTRY %main.1 (p0: f32[4,8], p1: s32[]) -> (f32[4,8], f32[4,8]) {
  %p0 = f32[4,8]{1,0} parameter(0)
  %p1 = s32[] parameter(1)
  %row = f32[1,8]{1,0} fusion(%p0, %p1), kind=kLoop, calls=%fused_slice, metadata={op_name="jit(f)/layer_3/dynamic_slice"}
  %upd = f32[4,8]{1,0} fusion(%p0, %row, %p1), kind=kLoop, calls=%fused_dus, metadata={op_name="jit(f)/layer_12/dynamic_update_slice"}
  %cp = f32[4,8]{1,0} copy(%p0)
  %g = f32[4,8]{1,0} get-tuple-element(%t0), index=0
  ROOT %t = (f32[4,8]{1,0}, f32[4,8]{1,0}) tuple(%upd, %cp)
}
"""


def test_hlo_ops_counts_slices_in_place_updates_and_copies():
  """By hand: a fusion that only slices an operand reads the slice; an
  in-place update (through a bitcast) reads and writes the update; a copy
  reads and writes it all; tuples and get-tuple-element move nothing."""
  from benchmarks import hlo_ops  # pylint: disable=g-import-not-at-top
  ops = {op.name: op for op in hlo_ops.program_ops(_HLO)}
  assert set(ops) == {"row", "upd", "cp"}
  assert (ops["row"].read, ops["row"].written) == (32 + 4, 32)
  assert (ops["upd"].read, ops["upd"].written) == (32 + 4, 32)
  assert (ops["cp"].read, ops["cp"].written) == (128, 128)
  assert ops["row"].op_name == "layer_N/dynamic_slice"
  assert ops["upd"].kind == "fusion/kLoop" and ops["cp"].kind == "copy"
  groups = hlo_ops.by_op(list(ops.values()))
  assert groups[0]["op_name"] == "(no op_name)"  # the copy, 256 bytes
  assert "in all (3 kernels)" in hlo_ops.table(list(ops.values()))


def test_hlo_ops_total_matches_xla_cost_analysis():
  """On real programs the op-by-op sum is XLA's own total (HloCostAnalysis)
  to 1%: the tiny train step and the official fwd+bwd, compiled for a CPU
  and (with the gpu_aot extra) for an H100."""
  import jax  # pylint: disable=g-import-not-at-top
  from benchmarks import common, hlo_ops, train_step_cost  # pylint: disable=g-import-not-at-top
  # Start jax's CPU backend as conftest set it up (8 devices) before any
  # topology: a 'cpu:1' target would start it with 1 for the whole session.
  assert len(jax.devices()) == 8
  topologies = ["cpu:1"] + (["h100"] if _has_cuda_plugin() else [])
  for topology in topologies:
    target = compile_check.parse_topology(topology)
    devices = compile_check.topology_devices(target)[:1]
    compiled, _, _ = train_step_cost.compile_ours(common.TINY, {}, target,
                                                  devices)
    ops = hlo_ops.program_ops(compiled.as_text())
    total = compile_check.xla_cost(compiled)["bytes accessed"]
    assert sum(op.moved for op in ops) == pytest.approx(total, rel=0.01)
    assert len(ops) > 20


@needs_official
def test_sampling_benchmark_tiny(tmp_path):
  rows, stdout = _run("benchmarks.sampling", "--impls=ours,official",
                      "--batches=2", f"--profile_dir={tmp_path / 'traces'}",
                      tmp_path=tmp_path)
  assert [r["impl"] for r in rows] == ["ours", "official"]
  for r in rows:
    assert "error" not in r, r
    assert r["new_tokens_per_s"] > 0 and r["batch"] == 2
    assert (r["prompt_len"], r["new_tokens"]) == (16, 24)
  assert rows[1]["ours_speedup"] > 0 and "official" in stdout
  assert rows[0]["profile"]["ops"] and "profile" not in rows[1]  # ours only
  assert "ours batch 2: where the time goes" in stdout


def test_scoring_benchmark_tiny(tmp_path):
  # Median lengths only (--spread=0): one program per path, few compiles.
  rows, stdout = _run("benchmarks.scoring", "--questions=2",
                      "--cot_candidates=1", "--cot_batch=4", "--spread=0",
                      "--cot_readout=fused,pass", tmp_path=tmp_path)
  assert [r["impl"] for r in rows] == [
      "direct_shared", "direct_unshared", "cot_shared_fused",
      "cot_shared_fused_continuous", "cot_shared_pass",
      "cot_shared_pass_continuous"]
  for r in rows:
    assert "error" not in r, r
    assert r["candidates_per_s"] > 0 and r["device"]
  shared, unshared, cot, cot_stream, cot_pass, _ = rows
  # The fused readout runs no second pass; the other one does.
  assert cot["readout_s"] == 0 and cot_pass["readout_s"] > 0
  assert shared["candidates"] == unshared["candidates"] == 2 * 16
  # Sharing the header + question runs fewer prefill tokens and FLOPs, and
  # reads the same log-probs (fp32 tiny model).
  assert shared["prefill_tokens"] < unshared["prefill_tokens"]
  assert shared["prefill_tflops"] < unshared["prefill_tflops"]
  assert shared["flops_ratio"] > 1.5
  assert shared["max_abs_logp_diff"] < 1e-4
  assert cot["rationales"] == 8 and cot["k"] == 8
  assert cot["rationales_per_s"] > 0 and cot["sample_s"] > 0
  # Median GSM8K rationale length (29 tokens at the tiny scale), kept whole.
  assert cot["mean_rationale_tokens"] == 29
  assert cot["new_tokens_per_s"] * cot["sample_s"] == pytest.approx(8 * 29)
  assert cot_stream["batching"] == "continuous"
  assert cot_stream["new_tokens_per_s"] * cot_stream["sample_s"] == \
      pytest.approx(8 * 29)
  assert "continuous / static batching (fused readout)" in stdout
  # All 8 rationales the same length: the 4-row batches are always busy.
  assert cot["decode_steps"] == 2 * 29 and cot["busy_rows"] == 1.0
  assert "unshared / shared" in stdout


def test_scoring_benchmark_counts_full_shapes(tmp_path):
  """--count_only: the full (Gemma-2B, GSM8K-sized) pool's prefill tokens
  and FLOPs, counted without running the model."""
  rows, _ = _run("benchmarks.scoring", "--count_only", "--modes=direct",
                 tmp_path=tmp_path, tiny=False)
  shared, unshared = rows
  assert shared["preset"] == "gemma_2b" and shared["candidates"] == 32 * 16
  assert shared["candidates_per_s"] is None  # nothing was timed
  # DESIGN.md's target, >= 2x fewer prefill FLOPs: one prefill per problem
  # (the pool's ceiling is (190 + 146) / (190 / 16 + 146) = 2.13x), and as
  # executed, with bucket and batch padding, at the verifiers' batch of 16.
  assert 2.0 < shared["tokens_ratio"] < 2.2
  assert 2.0 < shared["flops_ratio"] < 2.2
  assert shared["executed_flops_ratio"] >= 2.0


def test_verifier_step_benchmark_tiny(tmp_path):
  """Each method's step projecting every position and only the targets: the
  same loss within a method, at the configs' default K."""
  rows, stdout = _run("benchmarks.verifier_step", "--steps=3", tmp_path=tmp_path)
  assert [(r["method"], r["loss_positions"] > 0) for r in rows] == [
      (m, sparse) for m in ("genrm", "dpo", "solve", "cot") for sparse in (False, True)]
  for dense, sparse in zip(rows[::2], rows[1::2]):
    assert "error" not in dense and "error" not in sparse, (dense, sparse)
    assert sparse["loss_positions"] >= sparse["most_targets"] > 0
    assert sparse["loss"] == pytest.approx(dense["loss"], rel=1e-4)
    assert sparse["tokens_per_s"] > 0 and dense["speedup"] == 1
  assert rows[1]["most_targets"] <= 8 and rows[1]["loss_positions"] == 16
  # Half of the row: the tiny rows' 64, GenRM-CoT's 128.
  assert [r["loss_positions"] for r in rows[3::2]] == [32, 32, 64]
  assert "train step by method, tiny" in stdout


@needs_data
def test_input_pipeline_benchmark_tiny(tmp_path):
  rows, stdout = _run("benchmarks.input_pipeline", tmp_path=tmp_path)
  r = rows[0]
  assert r["task"] == "gsm8k_genrm_cot" and r["vocabulary"] == "byte"
  assert (r["batch"], r["seq_len"]) == (8, 1024)
  assert r["token_slots_per_s"] > 0 and 0 < r["fill"] <= 1
  assert r["target_tokens_per_s"] > 0
  assert "accelerator" in stdout


def test_gpu_suite_dry_run_lists_each_benchmark():
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  proc = subprocess.run(["bash", "benchmarks/gpu_suite.sh", "--dry_run"],
                        cwd=root, capture_output=True, text=True, timeout=60)
  assert proc.returncode == 0, proc.stderr
  lines = [l for l in proc.stdout.splitlines() if l.startswith("+ timeout")]
  modules = [l.split(" -m ")[1].split()[0] for l in lines]
  assert modules == ["benchmarks.train_step", "benchmarks.train_step",
                     "benchmarks.train_step", "benchmarks.sampling", "benchmarks.scoring",
                     "benchmarks.scoring", "benchmarks.scoring",
                     "benchmarks.train_step", "benchmarks.sampling"]
  assert "--attention=einsum,cudnn" in lines[0]
  assert "--attention=cudnn --scan_unroll=all" in lines[1]
  assert "--attention=cudnn --lora_rank=16" in lines[2]
  # Only the last part traces: a profile never costs a measurement.
  assert "--cot_readout=fused --cot_batching=static,continuous" in lines[5]
  assert "--cot_readout=pass --cot_batching=continuous" in lines[6]
  assert ["--profile_dir" in l for l in lines] == [False] * 7 + [True] * 2
  proc = subprocess.run(["bash", "benchmarks/gpu_suite.sh", "--dry_run",
                         "--part=infer", "--tiny"], cwd=root,
                        capture_output=True, text=True, timeout=60)
  assert "train_step" not in proc.stdout and proc.stdout.count("--tiny") == 4
  proc = subprocess.run(["bash", "benchmarks/gpu_suite.sh", "--part=x"],
                        cwd=root, capture_output=True, text=True, timeout=60)
  assert proc.returncode == 2 and "expected all, train, infer or profile" in proc.stderr
  # On a GPU a part a call: all three do not fit a lent machine's 600 s.
  proc = subprocess.run(["bash", "benchmarks/gpu_suite.sh"], cwd=root, capture_output=True,
                        text=True, timeout=60)
  assert proc.returncode == 2 and "give --part=train, infer or profile" in proc.stderr
  limits = lambda part: sum(int(l.split()[2]) for l in subprocess.run(
      ["bash", "benchmarks/gpu_suite.sh", "--dry_run", f"--part={part}"], cwd=root,
      capture_output=True, text=True, timeout=60).stdout.splitlines()
      if l.startswith("+ timeout"))
  assert limits("train") <= 540 and limits("infer") <= 540
  assert all("/tmp/genrm_traces" in l for l in lines if "--profile_dir" in l)


def test_trace_summary_ranks_self_time_and_busy_span(tmp_path):
  import gzip  # pylint: disable=g-import-not-at-top
  from benchmarks import trace_summary  # pylint: disable=g-import-not-at-top
  meta = [{"ph": "M", "name": "process_name", "pid": 1,
           "args": {"name": "/host:CPU"}},
          {"ph": "M", "name": "process_name", "pid": 2,
           "args": {"name": "/device:GPU:0"}}]
  x = lambda name, ts, dur, pid=2, tid=7: {"ph": "X", "name": name, "ts": ts,
                                           "dur": dur, "pid": pid, "tid": tid}
  events = meta + [
      x("python_step", 0, 1000, pid=1),        # host: not the device's
      x("outer", 0, 100), x("gemm", 10, 60),   # gemm nested in outer
      x("gemm", 200, 50), x("softmax", 240, 30, tid=8),  # overlaps gemm
  ]
  directory = tmp_path / "plugins" / "profile" / "run"
  directory.mkdir(parents=True)
  with gzip.open(directory / "perfetto_trace.json.gz", "wt") as f:
    json.dump({"traceEvents": events}, f)
  summary = trace_summary.summarize(str(tmp_path))
  assert summary["device"] == "/device:GPU:0" and summary["events"] == 4
  ops = {op["name"]: (op["total_s"] * 1e6, op["count"]) for op in summary["ops"]}
  assert ops == {"gemm": (110, 2), "outer": (40, 1), "softmax": (30, 1)}
  assert [op["name"] for op in summary["ops"]] == ["gemm", "outer", "softmax"]
  # Span 0..270 us; busy 0..100 and 200..270.
  assert summary["span_s"] * 1e6 == pytest.approx(270)
  assert summary["busy_s"] * 1e6 == pytest.approx(170)
  assert "gemm" in trace_summary.format_summary(summary)
  with pytest.raises(FileNotFoundError, match="create_perfetto_trace=True"):
    trace_summary.summarize(str(tmp_path / "plugins" / "none"))


def test_a_peer_without_its_packages_is_a_one_line_row(monkeypatch):
  """Where torch (or gemma) is not installed, the peer's row names what to
  install instead of carrying a worker's ModuleNotFoundError traceback."""
  from benchmarks import common  # pylint: disable=g-import-not-at-top
  assert common.not_installed("ours") is None
  monkeypatch.setitem(common.PEER_PACKAGES, "hf", ("sys", "no_such_package_xyz"))
  row = common.not_installed("hf")
  assert row == {"error": "skipped: no_such_package_xyz not installed "
                          "(pip install no_such_package_xyz)"}
