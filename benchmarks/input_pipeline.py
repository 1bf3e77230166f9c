r"""seqio input pipeline throughput: packed tokens/s per host (CPU).

  python -m benchmarks.input_pipeline                  # Gemma 3 tokenizer
  python -m benchmarks.input_pipeline --vocabulary=/path/tokenizer.model
  python -m benchmarks.input_pipeline --tiny           # byte vocabulary

The GSM8K GenRM-CoT task of `configs/gsm8k_cot.py` (`gsm8k_genrm_cot`, the
paper's released critiques; `--task=gsm8k_genrm_cot_unified` for the unified
mixture), read exactly as the trainer reads it:
`genrm_jax.input_pipeline.make_local_iterator` (tokenise, BOS, left-trim,
EOS, seqio's packing `PrefixLMFeatureConverter`), one host's rows
(`batch_size` x `seq_len`, default the config's 64 x 1024).
`--vocabulary=gemma3` (the full default) builds Gemma 3's SentencePiece
`tokenizer.model` from the installed GGUF weights packages (the same file
`python -m genrm_jax.models.import_gguf` writes, in about a second, without
converting the weights) into `--tokenizer_dir`. Reports the first batch's
seconds (building the dataset; TF and seqio imports apart) and, after
`--warmup` untimed batches, over the next `--batches`: token slots/s
(batch x seq_len), real (non-padding) tokens/s and target tokens/s, and how
many hosts like this one keep one accelerator fed at `--consume_tokens_per_s`
(default: our H200 train step, Gemma-2B, benchmarks/RESULTS.md). Needs the
released data (`$GENRM_DATA_DIR`). `--tiny`: byte vocabulary, the validation
split, 8 x 1024, a few batches.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import common  # noqa: E402

# Tokens/s one accelerator consumes: our full training step on one H200,
# Gemma-2B shape, 8 x 1024 (benchmarks/RESULTS.md, 2026-11-26).
H200_TRAIN_TOKENS_PER_S = 24_479


def gemma3_tokenizer(directory: str) -> str:
  """Path of Gemma 3's tokenizer.model in `directory`, built from the GGUF
  weights packages (`import_gguf.build_tokenizer_model`) if not there."""
  from genrm_jax.models import import_gguf  # pylint: disable=g-import-not-at-top
  path = os.path.join(os.path.expanduser(directory),
                      import_gguf.TOKENIZER_FILE)
  if not os.path.exists(path):
    gfile = import_gguf.read_gguf(import_gguf.locate_gguf())
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".tmp", "wb") as fh:
      fh.write(import_gguf.build_tokenizer_model(gfile))
    os.replace(path + ".tmp", path)
  return path


def run(args) -> dict:
  import numpy as np  # pylint: disable=g-import-not-at-top
  from configs import gsm8k_cot  # pylint: disable=g-import-not-at-top
  from genrm_jax import input_pipeline as ip  # pylint: disable=g-import-not-at-top

  vocabulary = args.vocabulary or ("byte" if args.tiny else "gemma3")
  if vocabulary == "gemma3":
    vocabulary = gemma3_tokenizer(args.tokenizer_dir)
  config = gsm8k_cot.get_config()
  config.data.source = "seqio"
  config.data.vocabulary = vocabulary
  if args.task:
    config.data.task = args.task
  config.batch_size = args.batch_size or (8 if args.tiny else config.batch_size)
  if args.seq_len:
    config.data.seq_len = args.seq_len
  split = args.split or ("validation" if args.tiny else "train")
  batches = args.batches or (3 if args.tiny else 30)
  warmup = args.warmup if args.warmup >= 0 else (0 if args.tiny else 20)

  start = time.perf_counter()
  ip._seqio()  # pylint: disable=protected-access  # TF + seqio imports
  import_s = time.perf_counter() - start
  start = time.perf_counter()
  it = ip.make_local_iterator(config, split=split,
                              num_steps=1 + warmup + batches)
  first = next(it)
  first_s = time.perf_counter() - start
  for _ in range(warmup):  # past the shuffle buffer filled before batch 1
    next(it)
  start = time.perf_counter()
  timed = list(it)  # the batches only; counted below, untimed
  secs = time.perf_counter() - start
  slots = real = targets = segments = 0
  for batch in timed:
    seg = batch["decoder_segment_ids"]
    slots += seg.size
    real += int(np.sum(seg != 0))
    targets += int(np.sum(batch["decoder_loss_weights"] > 0))
    segments += sum(len(set(row.tolist()) - {0}) for row in seg)
  rows = batches * config.batch_size
  shape = first["decoder_target_tokens"].shape
  return dict(
      benchmark="input_pipeline", impl="seqio", task=config.data.task,
      split=split, vocabulary=("byte" if vocabulary == "byte" else
                               os.path.basename(os.path.dirname(vocabulary))
                               + "/" + os.path.basename(vocabulary)),
      batch=shape[0], seq_len=shape[1], pack=bool(config.data.pack),
      batches=batches, warmup=warmup, import_s=import_s, first_batch_s=first_s,
      seconds=secs,
      token_slots_per_s=slots / secs, real_tokens_per_s=real / secs,
      target_tokens_per_s=targets / secs, rows_per_s=rows / secs,
      fill=real / max(slots, 1), segments_per_row=segments / max(rows, 1),
      consume_tokens_per_s=args.consume_tokens_per_s,
      accelerators_fed=slots / secs / args.consume_tokens_per_s,
      cpu_count=os.cpu_count(), **_host_info())


def _host_info() -> dict:
  """Host, CPU and library versions (no JAX: this runs on the host CPU)."""
  import platform  # pylint: disable=g-import-not-at-top
  out = {"host": platform.node(), "python": platform.python_version(),
         "platform": "cpu", "device": platform.processor() or "cpu"}
  try:
    with open("/proc/cpuinfo") as fh:
      names = [l.split(":", 1)[1].strip() for l in fh
               if l.startswith("model name")]
    if names:
      out["device"] = names[0]
  except OSError:
    pass
  for name in ("seqio", "tensorflow"):
    try:
      out[name] = __import__(name).__version__
    except Exception:  # pylint: disable=broad-except
      pass
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--tiny", action="store_true")
  parser.add_argument("--vocabulary", default="",
                      help="'byte', a SentencePiece tokenizer.model path, or "
                      "'gemma3' (built from the GGUF packages); default: "
                      "byte with --tiny, else gemma3")
  parser.add_argument("--tokenizer_dir",
                      default="~/.cache/genrm_jax/gemma3_tokenizer",
                      help="where --vocabulary=gemma3 keeps tokenizer.model")
  parser.add_argument("--task", default="",
                      help="seqio task / mixture (default: the config's, "
                      "gsm8k_genrm_cot)")
  parser.add_argument("--split", default="",
                      help="default: train (tiny: validation)")
  parser.add_argument("--batch_size", type=int, default=0,
                      help="rows per batch, one host (0: the config's 64; "
                      "tiny 8)")
  parser.add_argument("--seq_len", type=int, default=0,
                      help="0: the config's (1024)")
  parser.add_argument("--batches", type=int, default=0,
                      help="timed batches after the first (0: 30; tiny 3)")
  parser.add_argument("--warmup", type=int, default=-1,
                      help="untimed batches after the first: seqio fills "
                      "its 1000-example shuffle buffer before batch 1, so "
                      "the next ~1000 examples come cheap (-1: 20; tiny 0)")
  parser.add_argument("--consume_tokens_per_s", type=float,
                      default=H200_TRAIN_TOKENS_PER_S,
                      help="what one accelerator consumes (default: our "
                      "H200 train step, Gemma-2B, 8 x 1024)")
  parser.add_argument("--out", default=common.default_out())
  args = parser.parse_args()
  row = run(args)
  common.record(args.out, row)
  common.print_table(
      f"input pipeline, {row['task']} ({row['split']}), "
      f"{row['vocabulary']}, {row['batch']} x {row['seq_len']}, one host "
      f"({row['cpu_count']} CPUs)", [row],
      ["impl", "token_slots_per_s", "real_tokens_per_s",
       "target_tokens_per_s", "fill", "segments_per_row", "import_s",
       "first_batch_s", "seconds", "accelerators_fed"])
  print(f"one accelerator consumes {row['consume_tokens_per_s']:,.0f} "
        f"tokens/s: this host feeds {row['accelerators_fed']:.2f} of them.")


if __name__ == "__main__":
  main()
