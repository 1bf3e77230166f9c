r"""Sampling throughput: our Sampler vs HF `generate` vs the official gemma
`Sampler`, new tokens/s.

  python -m benchmarks.sampling                 # Gemma-2B, batch 16,64,256
  python -m benchmarks.sampling --tiny          # tiny model on a CPU
  python -m benchmarks.sampling --impls=ours,ours_scan --preset=gemma3_270m \
      --dtype=float32 --batches=16              # a real shape, on a CPU

128-token prompts, 256 new tokens (no early stop), greedy, bf16 weights.
Each implementation and batch runs in its own process (a failure, e.g. out of
memory, is recorded as that row's error). Also prints the HBM roofline: every
decode step reads all weights plus the KV cache once.

`ours` decodes with per-layer weight buffers (the Sampler's default,
`unstack_layers=True`); `ours_scan` runs the same sampler over the layer scan
of stacked weights, which slices each layer's weights out of the stack at
every step.
`official` is `gemma.sampler.Sampler` (the gemma package's 2.0.8 legacy
sampler, the one its colab uses) on the same weights: one `while_loop` that
feeds the prompt one token a step too (no batched prefill), its default cache
layout, `return_logits=False` (its default keeps [B, steps, V] fp32 logits:
100 GB at batch 256). Its vocabulary is a stand-in that maps space-separated
ids to ids, with no EOS, so every row runs all 256 steps.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402

HBM_TB_S = {"H100": 3.35, "H200": 4.8}


# --preset / --dtype (e.g. a real shape on a CPU); set by main() for the worker.
_MODEL = {"preset": "", "dtype": "bfloat16"}


def _shape(tiny: bool):
  shape = ("tiny", 16, 24, (("num_embed", 300),)) if tiny else (
      "gemma_2b", 128, 256, ())
  if _MODEL["preset"]:
    shape = (_MODEL["preset"],) + shape[1:3] + ((),)
  return shape


def run_ours(batch: int, tiny: bool, unstack_layers: bool = True,
             profile_dir: str = "") -> dict:
  import numpy as np  # pylint: disable=g-import-not-at-top
  from genrm_jax import sampling  # pylint: disable=g-import-not-at-top
  from genrm_jax.models import gemma  # pylint: disable=g-import-not-at-top
  preset, prompt_len, new, overrides = _shape(tiny)
  cfg = gemma.get_config(preset, dtype=_MODEL["dtype"],
                         param_dtype=_MODEL["dtype"], **dict(overrides))
  params = gemma.init_params(cfg, 0)
  prompts = np.random.default_rng(0).integers(
      3, cfg.num_embed, size=(batch, prompt_len)).tolist()
  sampler = sampling.Sampler(cfg, params, prompt_buckets=(prompt_len,),
                             unstack_layers=unstack_layers)
  sp = sampling.SamplingParams(max_new_tokens=new, stop_tokens=())
  first, secs = common.time_it(lambda: sampler.generate(prompts, sp),
                               lambda _: None, 1, 2)
  impl = "ours" if unstack_layers else "ours_scan"
  # One more generate call, traced (with --profile_dir).
  profile = common.profile_row(profile_dir, f"{impl}_batch{batch}",
                               lambda: sampler.generate(prompts, sp),
                               lambda _: None, steps=1)
  return _result(impl, cfg, batch, prompt_len, new, first, secs,
                 common.device_info(), **profile)


def run_hf(batch: int, tiny: bool) -> dict:
  import torch  # pylint: disable=g-import-not-at-top
  from genrm_jax.models import gemma  # pylint: disable=g-import-not-at-top
  preset, prompt_len, new, overrides = _shape(tiny)
  cfg = gemma.get_config(preset, **dict(overrides))
  model, device = common.hf_gemma(cfg)
  model.eval()
  ids = torch.randint(3, cfg.num_embed, (batch, prompt_len), device=device)

  def one():
    with torch.no_grad():
      return model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                            max_new_tokens=new, min_new_tokens=new,
                            do_sample=False, pad_token_id=0)

  sync = (lambda _: torch.cuda.synchronize()) if device == "cuda" else (
      lambda _: None)
  first, secs = common.time_it(one, sync, 1, 2)
  return _result("hf", cfg, batch, prompt_len, new, first, secs,
                 common.torch_device_info())


class _IdVocab:
  """The SentencePiece calls the official Sampler makes, on ids: "5 7 9"
  -> [5, 7, 9]; no EOS (-1 matches no token), so no row stops early."""

  def EncodeAsIds(self, text):  # pylint: disable=invalid-name
    return [int(t) for t in text.split()]

  def DecodeIds(self, ids):  # pylint: disable=invalid-name
    return " ".join(map(str, ids))

  def pad_id(self):
    return 0

  def bos_id(self):
    return 2

  def eos_id(self):
    return -1


def run_official(batch: int, tiny: bool) -> dict:
  import numpy as np  # pylint: disable=g-import-not-at-top
  from gemma import sampler as official_sampler  # pylint: disable=g-import-not-at-top
  from gemma import transformer as official  # pylint: disable=g-import-not-at-top
  from genrm_jax.models import checkpoints, gemma  # pylint: disable=g-import-not-at-top
  from tests import gemma_reference  # pylint: disable=g-import-not-at-top
  preset, prompt_len, new, overrides = _shape(tiny)
  cfg = gemma.get_config(preset, dtype=_MODEL["dtype"],
                         param_dtype=_MODEL["dtype"], **dict(overrides))
  params = checkpoints.stacked_to_nested(gemma.init_params(cfg, 0))
  model = official.Transformer(gemma_reference.official_config(cfg))
  sampler = official_sampler.Sampler(model, _IdVocab(), params,
                                     cache_length=prompt_len + new)
  # The Sampler adds BOS: prompts of prompt_len tokens in all.
  prompts = [" ".join(map(str, row)) for row in np.random.default_rng(
      0).integers(3, cfg.num_embed, size=(batch, prompt_len - 1))]
  first, secs = common.time_it(
      lambda: sampler(prompts, new, return_logits=False), lambda _: None, 1, 2)
  return _result("official", cfg, batch, prompt_len, new, first, secs,
                 common.device_info())


def _result(impl, cfg, batch, prompt_len, new, first, secs, info,
            **extra) -> dict:
  import jax  # pylint: disable=g-import-not-at-top
  from genrm_jax.models import gemma  # pylint: disable=g-import-not-at-top
  params = gemma.count_params(jax.tree.map(
      lambda b: b.value, gemma.abstract_params(cfg),
      is_leaf=lambda x: hasattr(x, "names")))
  device = str(info.get("device", ""))
  hbm = next((v for k, v in HBM_TB_S.items() if k in device), None)
  roofline = None
  if hbm:  # bytes read per decode step: bf16 weights + mean KV cache
    kv = (2 * cfg.num_layers * batch * (prompt_len + new / 2) *
          cfg.num_kv_heads * cfg.head_dim * 2)
    roofline = batch / ((2 * params + kv) / (hbm * 1e12))
  return dict(benchmark="sampling", impl=impl,
              shape=f"{cfg.num_layers}L-{cfg.embed_dim}d", batch=batch, prompt_len=prompt_len,
              new_tokens=new, seconds=secs, first_call_s=first,
              new_tokens_per_s=batch * new / secs,
              hbm_roofline_tokens_per_s=roofline, **info, **extra)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--tiny", action="store_true")
  parser.add_argument("--impls", default="ours,hf,official")
  parser.add_argument("--batches", default="16,64,256")
  parser.add_argument("--preset", default="",
                      help="model shape (default gemma_2b; tiny with --tiny)")
  parser.add_argument("--dtype", default="bfloat16",
                      help="ours and official (e.g. float32 on a CPU)")
  parser.add_argument("--profile_dir", default="",
                      help="ours / ours_scan: trace one more generate call "
                      "into DIR/<impl>_batch<B>/ and add its top device ops "
                      "to the row (benchmarks.trace_summary)")
  common.add_run_args(parser, timeout=300)
  args = parser.parse_args()
  batches = [int(b) for b in args.batches.split(",")]

  if args.worker:
    _MODEL.update(preset=args.preset, dtype=args.dtype)
    fn = {"ours": functools.partial(run_ours, profile_dir=args.profile_dir),
          "hf": run_hf, "official": run_official,
          "ours_scan": functools.partial(run_ours, unstack_layers=False,
                                         profile_dir=args.profile_dir)
          }[args.worker]
    print(json.dumps(fn(batches[0], args.tiny)))
    return

  rows = []
  for batch in batches:
    for impl in args.impls.split(","):
      row = common.not_installed(impl) or common.run_subprocess(
          ["-m", "benchmarks.sampling", f"--worker={impl}",
           f"--batches={batch}", f"--preset={args.preset}",
           f"--dtype={args.dtype}", f"--profile_dir={args.profile_dir}"
           ] + (["--tiny"] if args.tiny else []),
          args.timeout)
      row.setdefault("impl", impl)
      row.setdefault("batch", batch)
      row.setdefault("benchmark", "sampling")
      rows.append(row)
  for r in rows:  # ours / each implementation, same batch, same run
    ours = next((o for o in rows if o["impl"] == "ours" and
                 o["batch"] == r["batch"] and "new_tokens_per_s" in o), None)
    if ours and "new_tokens_per_s" in r:
      r["ours_speedup"] = ours["new_tokens_per_s"] / r["new_tokens_per_s"]
    common.record(args.out, r)
  common.print_table(f"sampling ({rows[0].get('device', '?')})", rows,
                     ["impl", "batch", "new_tokens_per_s",
                      "hbm_roofline_tokens_per_s", "seconds", "first_call_s",
                      "ours_speedup", "error"])
  for r in rows:
    if "error" in r:
      print(f"{r['impl']} batch {r['batch']}: {r['error']}\n"
            f"{r.get('stderr_tail', '')}")
    common.print_profile(f"{r['impl']} batch {r['batch']}", r)


if __name__ == "__main__":
  main()
