"""Training batches from the GenRM tasks in plain Python: no seqio, no TF.

`config.data.source = 'python'` serves the same examples as the seqio tasks
of `tasks/registry.py` (built by `tasks/examples.py`), tokenised the same way
(BOS first, prompts trimmed from the left keeping BOS, targets trimmed then
EOS, as `genrm_jax.input_pipeline`'s preprocessors), packed greedily into
`seq_len` rows with per-segment positions (seqio's PrefixLM layout: loss on
targets only) and batched in the same fields. It exists for machines where
TensorFlow is not installed (GPU images): unpacked and disc/DPO batches equal
seqio's row for row on an eval split; shuffling and packing order differ.

Deterministic in (config.seed, step): epoch e is a permutation seeded by
(seed, e); a resumed run rebuilds the stream and skips `start_step` batches.
Each host takes its slice of every global batch.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np

from genrm_jax import input_pipeline as ip
from genrm_jax.models import tokenizer as tokenizer_lib

_SUFFIXES = ("genrm_cot_unified", "genrm_unified", "genrm_cot", "genrm",
             "disc", "bt", "dpo", "solve", "sft")


def _parse(name: str) -> tuple[str, str]:
  from tasks import sources  # pylint: disable=g-import-not-at-top
  for family in sources.TASKS:
    for suffix in _SUFFIXES:
      if name == f"{family}_{suffix}":
        return family, suffix
  raise ValueError(f"data.task={name!r} is not a GenRM task: expected "
                   f"<task>_<{'|'.join(_SUFFIXES)}> with <task> in "
                   f"{sources.TASKS} (tasks/registry.py lists them).")


def task_examples(data, name: str, split: str) -> list[list[dict]]:
  """The string examples of task `name` / `split`; a unified mixture gives
  [verification examples, solve examples]."""
  from tasks import examples  # pylint: disable=g-import-not-at-top
  from tasks import sources  # pylint: disable=g-import-not-at-top
  family, suffix = _parse(name)
  if suffix == "sft":
    options = sources.problem_options(family, data.get("problems", None))
    return [examples.sft_examples(family, split, tuple(sorted(options.items())))]
  config_family, _ = _parse(data.task)
  own = family == config_family
  stores = tuple(sorted((k, v) for k, v in dict(data.candidates).items()
                        if v and own))
  rationales = tuple(sorted((k, v) for k, v in dict(
      data.get("rationales", {}) or {}).items() if v and own))

  def build(kind):
    return examples.verification_examples(
        kind, family, stores, int(data.max_correct), int(data.max_incorrect),
        int(data.get("seed", 0) or 0), split, rationales,
        str(data.get("balance_by", "") or ""),
        int(data.get("train_problems", 0) or 0),
        int(data.get("rationales_per_solution", 0) or 0))

  if suffix.endswith("_unified"):
    return [build(suffix[:-len("_unified")]), build("solve")]
  return [build(suffix)]


def _kind(suffix: str) -> str:
  return {"disc": ip.DISC, "bt": ip.PAIRWISE, "dpo": ip.DPO}.get(suffix, ip.GENERATIVE)


class _Encoder:
  """Tokenises string examples as the seqio preprocessors do."""

  def __init__(self, tok, kind: str, lengths: dict[str, int]):
    self.tok, self.kind, self.lengths = tok, kind, lengths

  def untrimmed(self, ex: dict) -> dict:
    """BOS + prompt, and each completion + EOS, at their full lengths (a
    Bradley-Terry pair: BOS + each whole row)."""
    tok = self.tok
    if self.kind == ip.PAIRWISE:
      return {k: [ip.BOS_ID] + tok.encode(ex[k]) for k in ("chosen", "rejected")}
    inputs = [ip.BOS_ID] + tok.encode(ex["inputs"])
    if self.kind == ip.DISC:
      return {"inputs": inputs, "label": int(ex["label"])}
    completions = ("chosen", "rejected") if self.kind == ip.DPO else ("targets",)
    return {"inputs": inputs,
            **{k: tok.encode(ex[k]) + [tok.eos_id] for k in completions}}

  def __call__(self, ex: dict) -> dict:
    encoded = self.untrimmed(ex)
    if self.kind != ip.GENERATIVE:  # disc / pairwise / DPO rows are cut in _to_batch
      return encoded
    inputs, targets = encoded["inputs"], encoded["targets"]
    limit = self.lengths["inputs"]
    if len(inputs) > limit:  # keep BOS and the end (trim_inputs_left)
      inputs = inputs[:1] + inputs[len(inputs) - (limit - 1):]
    limit = self.lengths["targets"]
    if len(targets) > limit:  # keep the EOS
      targets = targets[:limit - 1] + targets[-1:]
    return {"inputs": inputs, "targets": targets}


def _example_stream(sources: list[list[dict]], rate: float, seed: int,
                    shuffle: bool) -> Iterator[dict]:
  """Endless examples: each epoch a seeded permutation (train); a mixture
  draws its second source with probability rate / (1 + rate)."""
  if any(not s for s in sources):
    raise ValueError("a task of this config has no examples.")
  epoch = [0] * len(sources)
  orders = [None] * len(sources)
  pos = [0] * len(sources)
  rng = np.random.default_rng([seed, 7919])

  def next_from(i):
    if orders[i] is None or pos[i] == len(sources[i]):
      n = len(sources[i])
      orders[i] = (np.random.default_rng([seed, i, epoch[i]]).permutation(n)
                   if shuffle else np.arange(n))
      epoch[i] += 1
      pos[i] = 0
    pos[i] += 1
    return sources[i][orders[i][pos[i] - 1]]

  while True:
    if len(sources) == 1 or rng.random() >= rate / (1.0 + rate):
      yield next_from(0)
    else:
      yield next_from(1)


def _generative_rows(encoded: Iterator[dict], seq_len: int, pack: bool
                     ) -> Iterator[dict[str, np.ndarray]]:
  """PrefixLM rows: prompt + targets per segment, loss on targets only."""
  pending = None
  while True:
    row = {k: np.zeros(seq_len, np.int32) for k in (
        "decoder_target_tokens", "decoder_loss_weights", "decoder_segment_ids",
        "decoder_positions")}
    used, segment = 0, 0
    while True:
      ex = pending if pending is not None else next(encoded)
      pending = None
      tokens = ex["inputs"] + ex["targets"]
      if segment and (not pack or used + len(tokens) > seq_len):
        pending = ex
        break
      n = len(tokens)
      segment += 1
      row["decoder_target_tokens"][used:used + n] = tokens
      row["decoder_loss_weights"][used + len(ex["inputs"]):used + n] = 1
      row["decoder_segment_ids"][used:used + n] = segment
      row["decoder_positions"][used:used + n] = np.arange(n)
      used += n
      if not pack:
        break
    yield row


def _split_examples(data, split: str):
  """(batch kind, feature lengths, string examples, encoder) of the
  trainer's `split` ('train' or the eval split)."""
  name, dataset_split = ip.task_and_split(data, split)
  kind = _kind(_parse(name)[1])
  lengths = ip.feature_lengths(data, kind, name)
  encode = _Encoder(tokenizer_lib.from_spec(data.vocabulary or "byte"), kind,
                    lengths)
  return kind, lengths, task_examples(data, name, dataset_split), encode


def local_example_rows(config, *, split: str, process_index: int = 0,
                       process_count: int = 1
                       ) -> Iterator[dict[str, np.ndarray]]:
  """Every disc / dpo example of `split` once, in order, each as one row
  ([L] arrays) padded as the training batches pad it; host i takes examples
  i, i + process_count, ... (any host's batches may hold any example: the
  stream is one permutation for all hosts). The same contract as
  `input_pipeline.local_example_rows`."""
  kind, lengths, sources, encode = _split_examples(config.data, split)
  if kind == ip.GENERATIVE:
    raise ValueError(f"{config.data.task}: generative rows are packed, not "
                     "examples.")
  for i, ex in enumerate(sources[0]):
    if i % process_count == process_index:
      row = ip._to_batch([encode(ex)], kind, lengths)  # pylint: disable=protected-access
      yield {k: v[0] for k, v in row.items()}


def make_local_iterator(config, *, split: str, start_step: int = 0,
                        num_steps: int | None = None, process_index: int = 0,
                        process_count: int = 1
                        ) -> Iterator[dict[str, np.ndarray]]:
  """This host's rows of each global batch, from `start_step` on (same
  contract as `input_pipeline.make_local_iterator`)."""
  data = config.data
  train = split == "train"
  if config.batch_size % process_count:
    raise ValueError(f"batch_size={config.batch_size} does not split over "
                     f"{process_count} hosts.")
  local = config.batch_size // process_count
  kind, lengths, sources, encode = _split_examples(data, split)
  rate = float(data.get("unified_lambda", 1.0))
  stream = map(encode, _example_stream(sources, rate, int(config.seed), train))
  if kind == ip.GENERATIVE:
    rows = _generative_rows(stream, int(data.seq_len), bool(data.pack))
  else:
    rows = stream
  for _ in range(start_step * config.batch_size):
    next(rows)
  step = 0
  while num_steps is None or step < num_steps:
    batch = [next(rows) for _ in range(config.batch_size)]
    mine = batch[process_index * local:(process_index + 1) * local]
    if kind == ip.GENERATIVE:
      yield {k: np.stack([r[k] for r in mine]) for k in mine[0]}
    else:
      yield ip._to_batch(mine, kind, lengths)  # pylint: disable=protected-access
    step += 1


# -----------------------------------------------------------------------------
# Do the examples fit the feature lengths?
# -----------------------------------------------------------------------------


# A run may cut at most this fraction of its examples (config.data.
# max_truncated_fraction overrides it): a long tail of a real dataset is cut
# as seqio always did, but a setting that cuts a verification rationale
# before its verdict in many examples trains on the wrong thing.
MAX_TRUNCATED_FRACTION = 0.01


def _part_lengths(encoded: dict, kind: str) -> dict[str, int]:
  """One example's lengths (`_Encoder.untrimmed`), as its batch lays it out."""
  if kind == ip.DPO:  # prompt + completion share one row
    return {f"inputs + {k}": len(encoded["inputs"]) + len(encoded[k])
            for k in ("chosen", "rejected")}
  return {k: len(v) for k, v in encoded.items() if k != "label"}


def _part_limits(kind: str, lengths: dict[str, int]) -> dict[str, int]:
  if kind == ip.DPO:
    total = lengths["inputs"] + lengths["chosen"]
    return {"inputs + chosen": total, "inputs + rejected": total}
  return dict(lengths)


def length_report(config, split: str = "train", max_examples: int = 2000,
                  seed: int = 0) -> dict:
  """How many of the task's examples `config.data`'s lengths would cut.

  Tokenises up to `max_examples` examples (a seeded sample of each source)
  with the config's vocabulary, untrimmed, and compares them with the
  feature lengths both data sources use (`input_pipeline.feature_lengths`).
  Returns {'examples', 'cut' (examples with any part cut), 'by_part':
  {part: n cut}, 'longest': {part: tokens}, 'limits': {part: tokens},
  'lengths' (the feature lengths)}. Parts: inputs (trimmed from the left,
  so the prompt's start goes), targets (cut at the end, so a rationale loses
  its verdict); DPO: inputs + chosen / rejected (one row, cut at the end);
  bt: chosen, rejected (each a row, trimmed from the left as disc's).
  """
  data = config.data
  _, suffix = _parse(data.task)
  kind = _kind(suffix)
  lengths = ip.feature_lengths(data, kind)
  encoder = _Encoder(tokenizer_lib.from_spec(data.vocabulary or "byte"), kind, lengths)
  sources = task_examples(data, data.task, split)
  rng = np.random.default_rng(seed)
  per_source = max(1, max_examples // len(sources))
  limits = _part_limits(kind, lengths)
  report = {"examples": 0, "cut": 0, "by_part": {}, "longest": {},
            "lengths": lengths, "limits": limits,
            "source_examples": [len(source) for source in sources]}
  row_lengths = []  # each sampled example's tokens in its batch row
  for source in sources:
    picks = (range(len(source)) if len(source) <= per_source
             else rng.choice(len(source), per_source, replace=False))
    for i in picks:
      sizes = _part_lengths(encoder.untrimmed(source[int(i)]), kind)
      if kind == ip.GENERATIVE:
        row_lengths.append(sum(min(n, limits[part]) for part, n in sizes.items()))
      for part, n in sizes.items():
        report["longest"][part] = max(report["longest"].get(part, 0), n)
      parts = [part for part, n in sizes.items() if n > limits[part]]
      report["examples"] += 1
      report["cut"] += bool(parts)
      for part in parts:
        report["by_part"][part] = report["by_part"].get(part, 0) + 1
  report["examples_per_row"] = (_examples_per_packed_row(row_lengths, int(data.seq_len))
                                if kind == ip.GENERATIVE and data.get("pack", False)
                                else 1.0)
  return report


def _examples_per_packed_row(row_lengths: list[int], seq_len: int) -> float:
  """Examples per row when these are packed in order, as `_generative_rows` does."""
  rows, used = 0, seq_len
  for n in row_lengths:
    if used + n > seq_len:
      rows, used = rows + 1, 0
    used += n
  return len(row_lengths) / max(rows, 1)


# More passes than this over the training examples get a note in the log:
# the quickstart's GenRM-CoT once read its 480 examples 10 times and
# memorised them (training loss 0.03; the word list copied right for 80% of
# its own problems, 37% of held-out ones).
MANY_EPOCHS = 5.0


def training_epochs(config, report: dict) -> list[float]:
  """How many times the run reads each source's examples (`length_report`'s
  sizes and packing): total_steps x batch_size rows, a mixture's second
  source drawn with probability unified_lambda / (1 + unified_lambda)."""
  reads = int(config.total_steps) * int(config.batch_size) * report["examples_per_row"]
  sizes = report["source_examples"]
  rate = float(config.data.get("unified_lambda", 1.0))
  shares = [1.0] if len(sizes) == 1 else [1.0 / (1.0 + rate), rate / (1.0 + rate)]
  return [reads * share / max(size, 1) for share, size in zip(shares, sizes)]


def check_example_lengths(config, log=print, max_examples: int = 2000) -> dict | None:
  """Fails before training when `data.seq_len` / `data.inputs_len` would cut
  more than `data.max_truncated_fraction` of the examples; logs any cut.

  Only for the GenRM tasks (tasks/registry.py); other tasks are skipped.
  """
  data = config.data
  try:
    _parse(data.task)
  except ValueError:
    return None  # a task of the user's own: its lengths are theirs to check
  report = length_report(config, max_examples=max_examples)
  report["epochs"] = training_epochs(config, report)
  sizes = " + ".join(f"{size:,}" for size in report["source_examples"])
  passes = " and ".join(f"{e:.1f}" for e in report["epochs"])
  note = (f"{data.task}: {sizes} training examples; {config.total_steps} steps x "
          f"{config.batch_size} rows (~{report['examples_per_row']:.1f} examples a row) "
          f"read them ~{passes} times.")
  if max(report["epochs"]) > MANY_EPOCHS:
    note += (" That many passes over so few examples can memorise them (training "
             "loss near 0, held-out accuracy far below): more training problems or "
             "candidates, or fewer steps.")
  log(note)
  n, cut = report["examples"], report["cut"]
  if not cut:
    return report
  allowed = float(data.get("max_truncated_fraction", MAX_TRUNCATED_FRACTION))
  lengths = report["lengths"]
  parts = ", ".join(
      f"{part} of {count} (longer than {report['limits'][part]} tokens; the "
      f"longest {report['longest'][part]})"
      for part, count in sorted(report["by_part"].items()))
  message = (f"{data.task}: {cut} of {n} examples checked ({cut / n:.1%}) do not fit "
             f"data.seq_len={data.seq_len} (feature lengths {lengths}): the batches "
             f"would cut the {parts}. A cut prompt loses its start (the question); a "
             "cut target loses its end (a rationale's verdict).")
  if cut / n > allowed:
    raise ValueError(
        f"{message} Raise data.seq_len, or set data.inputs_len (the prompt's share "
        f"of seq_len, now {lengths.get('inputs')}), or accept the cut with "
        f"data.max_truncated_fraction={math.ceil(cut / n * 100) / 100:.2f} "
        f"(now {allowed}).")
  log(message + f" Within data.max_truncated_fraction={allowed}: training goes on.")
  return report
