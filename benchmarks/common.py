"""Shared benchmark helpers: shapes, timing, MFU and result records.

Every benchmark prints a table and appends one JSON line per measurement to
`--out` (default `$OUT/benchmarks.jsonl` where `$OUT` is set, else
`/tmp/genrm_benchmarks.jsonl`), with the device, library versions, shapes and
figures. Compare only figures measured side by side in one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any, Callable, Optional

# H100 SXM dense bf16 peak (the DESIGN.md MFU reference).
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}


@dataclasses.dataclass(frozen=True)
class Shape:
  preset: str
  batch: int
  seq_len: int
  overrides: tuple = ()

  def model_overrides(self) -> dict:
    return dict(self.overrides)


# Gemma-2B-shaped, batch 8 x 1024 tokens (the DESIGN.md targets), and a tiny
# shape that runs on a CPU in seconds (what the tests exercise). Like
# Gemma-2B, the tiny model has no attention-logit soft-cap, so every
# `attention_impl` runs on it.
FULL = Shape("gemma_2b", 8, 1024)
TINY = Shape("tiny", 2, 64, (("num_embed", 300), ("attn_logits_soft_cap", None)))


def default_out() -> str:
  out = os.environ.get("OUT")
  return os.path.join(out, "benchmarks.jsonl") if out else (
      "/tmp/genrm_benchmarks.jsonl")


def device_info() -> dict[str, Any]:
  info = {"host": platform.node(), "python": platform.python_version()}
  try:
    import jax  # pylint: disable=g-import-not-at-top
    dev = jax.devices()[0]
    info.update(jax=jax.__version__, platform=dev.platform,
                device=getattr(dev, "device_kind", str(dev)),
                device_count=jax.device_count())
  except Exception:  # pylint: disable=broad-except
    pass
  return info


def peak_device_bytes() -> int | None:
  """Peak bytes in use on JAX's first device so far (None where the backend
  keeps no memory statistics, e.g. CPU)."""
  try:
    import jax  # pylint: disable=g-import-not-at-top
    stats = jax.devices()[0].memory_stats() or {}
  except Exception:  # pylint: disable=broad-except
    return None
  return stats.get("peak_bytes_in_use")


def torch_device_info() -> dict[str, Any]:
  import torch  # pylint: disable=g-import-not-at-top
  info = {"host": platform.node(), "python": platform.python_version(),
          "torch": torch.__version__}
  try:
    import transformers  # pylint: disable=g-import-not-at-top
    info["transformers"] = transformers.__version__
  except ImportError:
    pass
  if torch.cuda.is_available():
    info.update(platform="gpu", device=torch.cuda.get_device_name(0))
  else:
    info.update(platform="cpu", device="cpu")
  return info


def hf_gemma(cfg, max_positions: int = 8192):
  """A randomly initialised HF `GemmaForCausalLM` (sdpa) shaped like our
  Gemma 1 config `cfg`, on the GPU in bf16 (else CPU, fp32); returns
  (model, device)."""
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  device = "cuda" if torch.cuda.is_available() else "cpu"
  dtype = torch.bfloat16 if device == "cuda" else torch.float32
  hf_cfg = transformers.GemmaConfig(
      vocab_size=cfg.num_embed, hidden_size=cfg.embed_dim,
      intermediate_size=cfg.hidden_dim, num_hidden_layers=cfg.num_layers,
      num_attention_heads=cfg.num_heads, head_dim=cfg.head_dim,
      num_key_value_heads=cfg.num_kv_heads, hidden_act="gelu_pytorch_tanh",
      max_position_embeddings=max(8192, max_positions))
  hf_cfg._attn_implementation = "sdpa"  # pylint: disable=protected-access
  with torch.device(device):
    model = transformers.GemmaForCausalLM(hf_cfg).to(dtype)
  return model, device


def peak_tflops(device: str) -> float | None:
  for name, peak in PEAK_TFLOPS.items():
    if name in device:
      return peak
  return None


def train_flops_per_token(num_params: int, num_layers: int, num_heads: int,
                          head_dim: int, seq_len: int, weight_grads: bool = True
                          ) -> float:
  """PaLM's formula: 6N + 12 L H Q T (fwd + bwd, attention included).
  `weight_grads=False` (LoRA: frozen weights get no gradient, activations
  still do): 4N + 12 L H Q T, the adapters' own FLOPs left out."""
  return ((6.0 if weight_grads else 4.0) * num_params +
          12.0 * num_layers * num_heads * head_dim * seq_len)


def time_it(fn: Callable[[], Any], sync: Callable[[Any], Any], warmup: int,
            repeats: int) -> tuple[float, float]:
  """(first call seconds incl. compile, mean seconds of `repeats` calls)."""
  start = time.perf_counter()
  sync(fn())
  first = time.perf_counter() - start
  for _ in range(max(warmup - 1, 0)):
    sync(fn())
  start = time.perf_counter()
  for _ in range(repeats):
    out = fn()
  sync(out)
  return first, (time.perf_counter() - start) / repeats


def train_step_timer(step, state, batch, ref_params, steps: int):
  """(first call s, mean step s, `one`, holder) for a jitted train step
  that donates its state: `one()` runs one more step on the same batch,
  returning its loss; `holder["state"]` is the latest state."""
  import jax  # pylint: disable=g-import-not-at-top
  rng = jax.random.PRNGKey(1)
  holder = {"state": state}

  def one():
    holder["state"], metrics = step(holder["state"], batch, ref_params, rng)
    return metrics["loss"]

  first, secs = time_it(one, jax.block_until_ready, 2, steps)
  return first, secs, one, holder


def profile_steps(fn: Callable[[], Any], sync: Callable[[Any], Any],
                  directory: str, steps: int = 3, top: int = 12) -> dict:
  """Runs `fn` `steps` more times under `jax.profiler.trace(directory)` and
  returns where the time went (`trace_summary.summarize`), so the row
  carries it even where the trace files stay behind."""
  import jax  # pylint: disable=g-import-not-at-top
  from benchmarks import trace_summary  # pylint: disable=g-import-not-at-top
  with jax.profiler.trace(directory, create_perfetto_trace=True):
    for _ in range(steps):
      out = fn()
    sync(out)
  summary = trace_summary.summarize(directory, top)
  summary["steps"] = steps
  return summary


def profile_row(profile_dir: str, name: str, fn: Callable[[], Any],
                sync: Callable[[Any], Any], steps: int = 3) -> dict:
  """A row's `{"profile": ...}` (`profile_steps` into PROFILE_DIR/NAME), or
  {} when no --profile_dir was given."""
  if not profile_dir:
    return {}
  return {"profile": profile_steps(fn, sync, os.path.join(profile_dir, name),
                                   steps)}


def print_profile(label: str, row: dict) -> None:
  """Where the time goes, under the table, for a row that was profiled."""
  if "profile" in row:
    from benchmarks import trace_summary  # pylint: disable=g-import-not-at-top
    print(f"\n{label}: where the time goes")
    print(trace_summary.format_summary(row["profile"]))


def record(out_path: str, entry: dict[str, Any]) -> None:
  os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
  with open(out_path, "a") as f:
    f.write(json.dumps(entry, sort_keys=True) + "\n")


# What each peer implementation imports: where one is missing (torch on a
# CPU machine), its row says so instead of a worker's traceback.
PEER_PACKAGES = {"hf": ("torch", "transformers"), "official": ("gemma",)}


def not_installed(impl: str) -> Optional[dict]:
  """An error record naming the missing packages of `impl`, or None."""
  missing = [p for p in PEER_PACKAGES.get(impl, ())
             if importlib.util.find_spec(p) is None]
  if not missing:
    return None
  return {"error": f"skipped: {', '.join(missing)} not installed "
                   f"(pip install {' '.join(missing)})"}


def run_subprocess(args: list[str], timeout: float, env=None) -> dict:
  """Runs one measurement in its own process (JAX and PyTorch both grab GPU
  memory); returns its last JSON line, or an error record."""
  try:
    proc = subprocess.run([sys.executable, *args], capture_output=True,
                          text=True, timeout=timeout, env=env)
  except subprocess.TimeoutExpired:
    return {"error": f"timed out after {timeout:.0f}s"}
  lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
  if proc.returncode or not lines:
    tail = (proc.stderr or proc.stdout)[-1500:]
    return {"error": f"exit {proc.returncode}", "stderr_tail": tail}
  return json.loads(lines[-1])


def add_run_args(parser, timeout: float) -> None:
  """--timeout (per worker process), --out (the JSONL) and the hidden
  --worker flag every subprocess benchmark takes."""
  parser.add_argument("--timeout", type=float, default=timeout,
                      help="seconds a worker process may take")
  parser.add_argument("--out", default=default_out())
  parser.add_argument("--worker", default="", help=argparse.SUPPRESS)


def print_table(title: str, rows: list[dict], columns: list[str]) -> None:
  print(f"\n{title}")
  widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns]
  print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
  for r in rows:
    print("  ".join(_fmt(r.get(c)).ljust(w) for c, w in zip(columns, widths)))


def _fmt(v) -> str:
  if v is None:
    return "-"
  if isinstance(v, float):
    return f"{v:,.3g}" if abs(v) < 100 else f"{v:,.0f}"
  return str(v)
