"""The offline compile check (`train --compile_only --topology=...`).

CPU devices always (the same code path, so it cannot rot); a real TPU
topology through libtpu when libtpu is installed (the `tpu` extra).
"""

import json
import os
import pathlib
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import common
from genrm_jax import compile_check
from genrm_jax import data_synthetic

REPO = pathlib.Path(__file__).resolve().parents[1]
HAS_LIBTPU = compile_check._libtpu_path() is not None  # pylint: disable=protected-access
# The `gpu_aot` extra: the CUDA plugin (GPU targets) and cuDNN (its fused
# attention). CI installs both.
HAS_CUDA_PLUGIN = compile_check._cuda_plugin_installed()  # pylint: disable=protected-access
HAS_CUDNN = HAS_CUDA_PLUGIN and compile_check.cudnn_installed()
needs_cuda_plugin = pytest.mark.skipif(
    not HAS_CUDA_PLUGIN, reason="CUDA plugin not installed "
    "(pip install -e '.[gpu_aot]')")
needs_cudnn = pytest.mark.skipif(
    not HAS_CUDNN, reason="CUDA plugin or cuDNN not installed "
    "(pip install -e '.[gpu_aot]')")
H100_BYTES = 84942979072  # what an H100 80GB HBM3 reports


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
  with pytest.raises(ValueError, match="accelerator type.*h100:8"):
    compile_check.parse_topology("h100-8")


@pytest.mark.parametrize("spec,devices,kind,memory", [
    ("h100", 1, "NVIDIA H100 80GB HBM3", H100_BYTES),
    ("h100:8", 8, "NVIDIA H100 80GB HBM3", H100_BYTES),
    ("h200", 1, "NVIDIA H200", 150754820096),
    ("a100:4", 4, "NVIDIA A100-SXM4-80GB", 85198045184),
])
def test_parse_gpu_topology(spec, devices, kind, memory, monkeypatch):
  """The budget is what JAX preallocates: the launchers' 90% by default, or
  the run's XLA_PYTHON_CLIENT_MEM_FRACTION."""
  monkeypatch.delenv("XLA_PYTHON_CLIENT_MEM_FRACTION", raising=False)
  t = compile_check.parse_topology(spec)
  assert (t.platform, t.num_devices, t.gpu.name) == ("cuda", devices, kind)
  assert t.hbm_bytes == int(0.9 * memory)
  monkeypatch.setenv("XLA_PYTHON_CLIENT_MEM_FRACTION", "0.75")
  assert compile_check.parse_topology(spec).hbm_bytes == int(0.75 * memory)
  config = t.gpu.target_config()  # the GpuTargetConfigProto text
  assert f'name: "{kind}"' in config and "core_count:" in config


def test_parse_gpu_topology_errors(monkeypatch):
  with pytest.raises(ValueError, match="1 to 8 GPUs"):
    compile_check.parse_topology("h100:16")
  monkeypatch.setenv("XLA_PYTHON_CLIENT_MEM_FRACTION", "most")
  with pytest.raises(ValueError, match="XLA_PYTHON_CLIENT_MEM_FRACTION"):
    compile_check.parse_topology("h100")


def test_missing_cuda_plugin_is_a_clear_error(monkeypatch):
  monkeypatch.setattr(compile_check, "_cuda_plugin_installed", lambda: False)
  with pytest.raises(RuntimeError, match=r"CUDA PJRT plugin.*\[gpu_aot\]"):
    compile_check.topology_devices(compile_check.parse_topology("h100"))


def test_missing_cudnn_is_a_clear_error(monkeypatch):
  fa = pytest.importorskip("jax._src.cudnn.fused_attention_stablehlo")

  def no_cudnn():
    raise RuntimeError("cuDNN not found.")

  monkeypatch.setattr(fa, "check_cudnn_version", no_cudnn)
  with pytest.raises(RuntimeError, match=r"cuDNN's library.*\[gpu_aot\]"):
    compile_check._require_cudnn()  # pylint: disable=protected-access


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
  env = {**os.environ, "PYTHONPATH": os.pathsep.join(
      p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
  env.pop("XLA_FLAGS", None)
  return subprocess.run(
      [sys.executable, "-m", "genrm_jax.train", *args], cwd=REPO, env=env,
      capture_output=True, text=True, timeout=timeout, check=False)


def _cli_tiny_compile(topology, mesh):
  """`train --compile_only` of the tiny CoT config; its output and report."""
  proc = _cli("--config=configs/gsm8k_cot.py:tiny", "--compile_only",
              f"--topology={topology}", f"--config.mesh={mesh}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  report = _json_line(proc.stdout)
  _check_numbers(report)
  return proc, report


def _json_line(stdout):
  line = [l for l in stdout.splitlines()
          if l.startswith("compile_check_json: ")]
  assert len(line) == 1, stdout
  return json.loads(line[0].split(": ", 1)[1])


@pytest.mark.skipif(not HAS_LIBTPU, reason="libtpu not installed "
                    "(pip install -e '.[tpu]')")
def test_cli_compiles_for_a_tpu_topology():
  """`train --compile_only` on a v5e-4 (through libtpu, no TPU needed)."""
  proc, report = _cli_tiny_compile("v5litepod-4", "(1,4,1)")
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


# -----------------------------------------------------------------------------
# NVIDIA GPUs, through the CUDA plugin's deviceless compiler (no GPU here).
# -----------------------------------------------------------------------------


def _gemma_2b_benchmark(attention, remat="dots_with_no_batch_dims_saveable"):
  """benchmarks/train_step.py's shape: Gemma-2B, batch 8 x 1024, full AdamW
  step, the whole [B, L, V] logits (no loss chunking)."""
  config = common.get_config("gsm8k", "solve", "")
  with config.unlocked():
    config.model.preset = "gemma_2b"
    config.batch_size, config.data.seq_len = 8, 1024
    config.model.attention_impl = attention
    config.model.remat_policy = remat
    config.loss_chunk_size = 0
  return config


@needs_cuda_plugin
def test_compile_for_an_h100_without_a_gpu(monkeypatch):
  """XLA's GPU pipeline for sm_90 (Triton GEMM fusions, GPU buffer
  assignment) on this CPU-only machine; the budget is 90% of the H100's."""
  monkeypatch.delenv("XLA_PYTHON_CLIENT_MEM_FRACTION", raising=False)
  report = compile_check.run(tiny(), "h100")
  _check_numbers(report)
  assert report["platform"] == "cuda" and report["num_devices"] == 1
  assert report["device_kind"] == "NVIDIA H100 80GB HBM3"
  assert report["hbm_bytes"] == int(0.9 * H100_BYTES)
  assert report["fits"] is True and report["mem_fraction"] == 0.9
  assert (report["cudnn_attention_fwd"], report["cudnn_attention_bwd"]) == (0, 0)
  text = compile_check.format_report(report)
  assert "XLA_PYTHON_CLIENT_MEM_FRACTION=0.90" in text
  assert "einsum/XLA attention" in text


@needs_cudnn
def test_gemma_2b_benchmark_step_on_an_h100():
  """The train-step benchmark's configuration, compiled for an H100: the
  cuDNN attention becomes cuDNN's fused kernels, forward and backward (XLA
  built their cuDNN graphs), and the step fits the 90% budget; without remat
  it would not (the check can say no)."""
  report = compile_check.run(_gemma_2b_benchmark("cudnn"), "h100")
  assert report["num_params"] > 2.5e9
  assert report["cudnn_attention_fwd"] >= 1 and report["cudnn_attention_bwd"] >= 1
  assert report["fits"] is True, report
  assert "cuDNN fused forward" in compile_check.format_report(report)
  report = compile_check.run(_gemma_2b_benchmark("einsum", remat="none"),
                             "h100")
  assert report["fits"] is False, report
  assert "--config.loss_chunk_size" in compile_check.format_report(report)


@needs_cudnn
def test_cudnn_attention_with_head_dim_256_needs_hopper():
  """Gemma-2B's head_dim 256 is cuDNN-fusable on an H100 (above), not on an
  A100: JAX's check answers for the target GPU, not the machine compiling."""
  with pytest.raises(NotImplementedError, match="head dim"):
    compile_check.run(_gemma_2b_benchmark("cudnn"), "a100")


@needs_cuda_plugin
def test_cli_compiles_for_eight_h100s():
  """`train --compile_only --topology=h100:8`: params and optimizer state
  sharded over 8 GPUs of one host."""
  proc, report = _cli_tiny_compile("h100:8", "(1,8,1)")
  assert report["platform"] == "cuda" and report["num_devices"] == 8
  assert report["mesh"] == {"data": 1, "fsdp": 8, "tensor": 1}
  assert "h100:8: 8 x NVIDIA H100 80GB HBM3" in proc.stdout
  assert "FITS" in proc.stdout
  # The plugin is initialised once: jax's discovery ran before it was on
  # sys.path (a second initialize() logged an ALREADY_EXISTS traceback).
  assert "Jax plugin configuration error" not in proc.stderr, proc.stderr[-2000:]


H100_GRAD_BATCH = (4, 512)


def _transposes(hlo_text, dtype, dims):
  """Lines of a compiled program's transposes (kernels or fused) whose
  `dtype` result has the sizes `dims` in any order (size-1 axes ignored)."""
  found = []
  for line in hlo_text.splitlines():
    m = re.match(rf"\s*%\S*transpose\S* = {dtype}\[([\d,]+)\]", line)
    if m and sorted(int(d) for d in m.group(1).split(",") if d != "1") == (
        sorted(d for d in dims if d != 1)):
      found.append(line)
  return found


def _h100_model_grad(num_layers, **overrides):
  """The gradient of a Gemma-2B-shaped model (`num_layers`, a 4096 vocab,
  bf16) on 4 x 512 tokens, compiled for an H100."""
  from genrm_jax.models import gemma  # pylint: disable=g-import-not-at-top
  target = compile_check.parse_topology("h100")
  on_gpu = jax.sharding.SingleDeviceSharding(
      compile_check.topology_devices(target)[0])
  cfg = gemma.get_config("gemma_2b", num_layers=num_layers, num_embed=4096,
                         dtype="bfloat16", **overrides)
  params = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=on_gpu),
      jax.eval_shape(lambda: gemma.init_params(cfg, 0)))

  def loss(p, tokens):
    logits = gemma.Transformer(cfg).apply({"params": p}, tokens).logits
    return jnp.mean(logits.astype(jnp.float32) ** 2)

  tokens = jax.ShapeDtypeStruct(H100_GRAD_BATCH, jnp.int32, sharding=on_gpu)
  return jax.jit(jax.grad(loss)).lower(params, tokens).compile()


@needs_cuda_plugin
def test_remat_policy_holds_when_the_layers_are_unrolled():
  """scan_unroll >= num_layers leaves no loop between the forward and the
  recomputing backward; XLA's GPU pipeline then merged the recomputation
  into the forward (remat 'full' compiled to the FLOPs and memory of
  'none'). The policy now holds: more FLOPs (the recomputed forward) and
  fewer bytes of temporaries than without remat."""
  compiled = lambda remat: _h100_model_grad(4, remat_policy=remat,
                                            scan_unroll=4)
  none, full = compiled("none"), compiled("full")
  assert (compile_check.xla_cost(full)["flops"] >
          1.15 * compile_check.xla_cost(none)["flops"])
  assert (full.memory_analysis().temp_size_in_bytes <
          none.memory_analysis().temp_size_in_bytes)


@needs_cuda_plugin
def test_einsum_attention_scores_are_never_transposed_on_an_h100():
  """The einsum attention writes its fp32 scores in the order the batched
  matmul produces them, so XLA's H100 program of the forward and backward
  has no transpose kernel of that size (with the scores as 'BKGTS' it had
  one a layer, and the Gemma-2B step moved 50 GB more)."""
  hlo = _h100_model_grad(2).as_text()
  # Scores: [B, K, T, G, S] in some order (K = 1 kv head, G = 8 queries).
  b, t = H100_GRAD_BATCH
  transposes = _transposes(hlo, "f32", [b, 8, t, t])
  assert not transposes, transposes[:2]


@needs_cuda_plugin
def test_decode_loop_never_copies_weights_or_cache_on_an_h100():
  """The sampler's own program compiled for an H100: no kernel of its
  decode loop writes as much as one layer's K cache. Each step writes the
  new tokens' k/v and small activations, never a copy of a weight or of the
  cache. Before: one einsum over the MLP's [2, D, F] gating weight made XLA
  transpose it every step; then two matmuls over its halves made it slice
  each half out (4.8 of a Gemma-2B step's 13.3 GB at batch 64); the q and
  kv projections transposed their weights (0.4 GB); the stacked KV cache
  made it copy each layer's k and v out of the stack (1.3 GB)."""
  from benchmarks import sampling_cost  # pylint: disable=g-import-not-at-top
  devices = compile_check.topology_devices(compile_check.parse_topology("h100"))
  compiled, params, cache, cfg = sampling_cost.compile_sampler(
      "gemma_2b", 16, devices, (("num_layers", 2), ("num_embed", 4096)))
  assert cfg.batched_projections
  layer_k = cache["k"][0]
  assert layer_k.shape == (16, sampling_cost.PROMPT + sampling_cost.NEW,
                           cfg.num_kv_heads, cfg.head_dim)  # one a layer
  slab = layer_k.size * layer_k.dtype.itemsize
  loop = sampling_cost.decode_loop_ops(compiled)
  copies = [(op.name, op.op_name, op.written) for op in loop
            if op.written >= slab]
  assert not copies, copies[:3]
  assert not _transposes(compiled.as_text(), "bf16",
                         [2, cfg.embed_dim, cfg.hidden_dim])
  # It does read every weight, once a step.
  weights = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(params))
  assert weights <= sum(op.read for op in loop) < 1.5 * weights


@needs_cuda_plugin
def test_continuous_batching_programs_update_the_state_in_place_on_an_h100():
  """Continuous batching's programs (refill, decode loop, cache shift)
  compiled for an H100, with the GPU's cache per layer: each writes its
  donated state in place (aliased whole; without a prefill, temporaries
  below two layers' k and v), and the decode loop, like the one-batch loop, writes no kernel
  as large as a layer's K cache."""
  import functools  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from benchmarks import sampling_cost  # pylint: disable=g-import-not-at-top
  devices = compile_check.topology_devices(compile_check.parse_topology("h100"))
  shape = (("num_layers", 2), ("num_embed", 4096))
  sampler, params, abstract = sampling_cost._abstract_sampler(  # pylint: disable=protected-access
      "gemma_2b", devices, shape)
  assert sampler.per_layer_cache
  slots, length, new = 16, sampling_cost.PROMPT, sampling_cost.NEW
  state = jax.tree.map(lambda x: abstract(x.shape, x.dtype), jax.eval_shape(
      lambda: sampler._stream_state(slots, length + new + 64, length, new, 2)))  # pylint: disable=protected-access
  state_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state))
  layer_k = state["cache"]["k"][0]
  slab = layer_k.size * layer_k.dtype.itemsize
  ids = abstract((4, length), jnp.int32)
  row = lambda dtype=jnp.int32: abstract((4,), dtype)
  programs = {
      f"insert (prefill={p})": jax.jit(functools.partial(
          sampler._insert, prefill=p), donate_argnums=(1,)).lower(  # pylint: disable=protected-access
              params, state, ids, ids, row(), row(), row(),
              abstract((4, 2), jnp.uint32), row(), abstract((2,), jnp.int32))
      for p in (True, False)}
  programs["compact"] = jax.jit(functools.partial(
      sampler._compact, shift=64), donate_argnums=(0,)).lower(state)  # pylint: disable=protected-access
  compiled_loop, _, _ = sampling_cost.compile_stream_decode(
      "gemma_2b", slots, devices, shape)
  for name, lowered in programs.items():
    memory = lowered.compile().memory_analysis()
    assert memory.alias_size_in_bytes == state_bytes, name
    if name != "insert (prefill=True)":  # (that one: the prefill's activations)
      # Not even k and v of two layers, let alone a copy of the state.
      assert memory.temp_size_in_bytes < slab * 2 * 2, (name, memory.temp_size_in_bytes)
  loop = sampling_cost.decode_loop_ops(compiled_loop)
  copies = [(op.name, op.op_name, op.written) for op in loop
            if op.written >= slab]
  assert not copies, copies[:3]
