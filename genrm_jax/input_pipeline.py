"""seqio input pipeline: vocabularies, preprocessors, feature conversion and
per-host batches for the trainer (`config.data.source = 'seqio'`).

Tasks are registered by a task module the config names (t5x style,
`config.data.task_module`, default `tasks.registry`), which this module
imports and, if it defines `register(data_config)`, calls with the data
config (vocabulary, candidate stores, lambda, ...).

Batch kinds (see `genrm_jax.losses`):
* generative tasks (`inputs` -> `targets` strings): tokenised, BOS prepended
  to inputs, EOS appended to targets, inputs trimmed from the *left* (the
  end of a verification prompt is what matters), then seqio's
  `PrefixLMFeatureConverter(pack=..., loss_on_targets_only=True)`:
  `decoder_target_tokens`, `decoder_loss_weights`, `decoder_segment_ids`,
  `decoder_positions` (packed like t5x).
* disc (`inputs`, `label`): `tokens`, `segment_ids`, `label`.
* dpo (`inputs`, `chosen`, `rejected`): `chosen_tokens`,
  `chosen_loss_weights`, `chosen_segment_ids`, likewise `rejected_*`.

TensorFlow is imported lazily (and hidden from GPUs/TPUs) so the rest of the
library never needs it.
"""

from __future__ import annotations

import functools
import importlib
import os
from typing import Iterator

import numpy as np

BOS_ID = 2  # Gemma's BOS; in seqio's ByteVocabulary 2 is an unused UNK id

GENERATIVE, DISC, DPO = "generative", "disc", "dpo"
PAIRWISE = "pairwise"  # Bradley-Terry: two disc-style rows, chosen and rejected


def _tf():
  """Imports TensorFlow for input pipelines only, never on accelerators."""
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], "GPU")
  try:
    tf.config.set_visible_devices([], "TPU")
  except (RuntimeError, ValueError):
    pass
  return tf


def _seqio():
  _tf()
  import seqio  # pylint: disable=g-import-not-at-top
  return seqio


# -----------------------------------------------------------------------------
# Vocabularies.
# -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def get_vocabulary(spec: str):
  """'byte' -> seqio.ByteVocabulary; else the path of a SentencePiece
  `tokenizer.model` (Gemma's, or one trained for tiny runs)."""
  seqio = _seqio()
  if spec == "byte":
    return seqio.ByteVocabulary()
  if not spec:
    raise ValueError(
        "config.data.vocabulary is empty: set it to the path of the model's "
        "SentencePiece tokenizer.model (it comes with the Kaggle checkpoint), "
        "or 'byte' for tiny byte-level runs.")
  if not os.path.exists(spec) and "://" not in spec:
    raise FileNotFoundError(
        f"config.data.vocabulary={spec!r} does not exist: point it at the "
        "model's SentencePiece tokenizer.model.")
  return seqio.SentencePieceVocabulary(spec)


def verdict_ids(vocabulary) -> tuple[int, int]:
  """Token ids telling ' Yes' from ' No': the first token where their
  encodings differ (the whole word for Gemma's vocabulary, 'Y'/'N' bytes
  for the byte vocabulary)."""
  yes = list(vocabulary.encode(" Yes"))
  no = list(vocabulary.encode(" No"))
  for a, b in zip(yes, no):
    if a != b:
      return int(a), int(b)
  raise ValueError(f"' Yes' and ' No' encode alike ({yes}, {no}).")


# -----------------------------------------------------------------------------
# Preprocessors (used by task modules).
# -----------------------------------------------------------------------------


def prepend_bos(dataset, output_features, sequence_length=None,
                key: str = "inputs"):
  """BOS before the prompt: Gemma always sees BOS first (seqio adds none)."""
  del output_features, sequence_length
  tf = _tf()

  def fn(ex):
    ex = dict(ex)
    ex[key] = tf.concat([[BOS_ID], tf.cast(ex[key], tf.int32)], 0)
    return ex

  return dataset.map(fn, num_parallel_calls=tf.data.AUTOTUNE)


def trim_inputs_left(dataset, output_features, sequence_length,
                     key: str = "inputs"):
  """Keeps BOS and the *last* tokens of an over-long prompt, so the
  verification question at its end survives (seqio trims from the right)."""
  del output_features
  tf = _tf()
  if not sequence_length or sequence_length.get(key) is None:
    return dataset
  limit = int(sequence_length[key])

  def fn(ex):
    ex = dict(ex)
    x = ex[key]
    ex[key] = tf.cond(
        tf.size(x) > limit,
        lambda: tf.concat([x[:1], x[tf.size(x) - (limit - 1):]], 0),
        lambda: x)
    return ex

  return dataset.map(fn, num_parallel_calls=tf.data.AUTOTUNE)


def generative_preprocessors():
  seqio = _seqio()
  return [seqio.preprocessors.tokenize, prepend_bos, trim_inputs_left,
          seqio.preprocessors.append_eos_after_trim]


def generative_features(vocabulary):
  seqio = _seqio()
  return {"inputs": seqio.Feature(vocabulary, add_eos=False),
          "targets": seqio.Feature(vocabulary, add_eos=True)}


def disc_features(vocabulary):
  seqio = _seqio()
  tf = _tf()
  return {"inputs": seqio.Feature(vocabulary, add_eos=False),
          "label": seqio.Feature(seqio.PassThroughVocabulary(2),
                                 add_eos=False, dtype=tf.int32, rank=0)}


def pairwise_features(vocabulary):
  seqio = _seqio()
  return {"chosen": seqio.Feature(vocabulary, add_eos=False),
          "rejected": seqio.Feature(vocabulary, add_eos=False)}


def pairwise_preprocessors():
  """Tokenise, then BOS before each row (each is a whole disc-style row)."""
  seqio = _seqio()

  def bos_both(dataset, output_features, sequence_length=None):
    for key in ("chosen", "rejected"):
      dataset = prepend_bos(dataset, output_features, sequence_length, key=key)
    return dataset
  return [seqio.preprocessors.tokenize, bos_both]


def dpo_features(vocabulary):
  seqio = _seqio()
  return {"inputs": seqio.Feature(vocabulary, add_eos=False),
          "chosen": seqio.Feature(vocabulary, add_eos=True),
          "rejected": seqio.Feature(vocabulary, add_eos=True)}


def batch_kind(task_or_mixture) -> str:
  features = set(task_or_mixture.output_features)
  if "label" in features:
    return DISC
  if "chosen" in features:
    return DPO if "inputs" in features else PAIRWISE
  return GENERATIVE


# -----------------------------------------------------------------------------
# Batches.
# -----------------------------------------------------------------------------


# A direct GenRM example's target is its verdict (" Yes"/" No" + EOS: 2
# tokens in Gemma's vocabulary, 5 in bytes); its prompt gets the rest.
DIRECT_VERDICT_TOKENS = 8


def default_inputs_len(data_config, task: str | None = None) -> int:
  """`data.inputs_len` when it is 0, for `task` (default `data.task`; the
  eval task may be another): half of seq_len, except for direct GenRM
  (`<task>_genrm`), whose question + solution get all but the verdict's few
  tokens (half would trim long prompts from the left, dropping the
  question, while the targets' half stayed empty)."""
  seq_len = int(data_config.seq_len)
  if str(task or data_config.get("task", "")).endswith("_genrm"):
    return max(seq_len - DIRECT_VERDICT_TOKENS, seq_len // 2)
  return seq_len // 2


def feature_lengths(data_config, kind: str, task: str | None = None) -> dict[str, int]:
  """Per-feature lengths of `task` (default `data.task`) from `seq_len` (and
  optional `inputs_len`)."""
  seq_len = int(data_config.seq_len)
  inputs_len = (int(data_config.get("inputs_len", 0) or 0)
                or default_inputs_len(data_config, task))
  if kind == DISC:
    return {"inputs": seq_len}
  if kind == PAIRWISE:
    return {"chosen": seq_len, "rejected": seq_len}
  if not 0 < inputs_len < seq_len:
    raise ValueError(f"data.inputs_len={inputs_len} must be in (0, "
                     f"seq_len={seq_len}).")
  if kind == DPO:
    return {"inputs": inputs_len, "chosen": seq_len - inputs_len,
            "rejected": seq_len - inputs_len}
  return {"inputs": inputs_len, "targets": seq_len - inputs_len}


def register_tasks(data_config) -> None:
  """Imports the config's task module and lets it register (t5x style)."""
  module = importlib.import_module(data_config.task_module)
  if hasattr(module, "register"):
    module.register(data_config)


def _pad(rows: list[np.ndarray], length: int) -> np.ndarray:
  out = np.zeros((len(rows), length), np.int32)
  for i, r in enumerate(rows):
    out[i, :min(len(r), length)] = r[:length]
  return out


def _pair_example(ex, length: int, prefix: str, inputs_len: int):
  """One DPO row: prompt + completion, `length` tokens at most. A pair with
  an over-long row first loses its prompt's start beyond `inputs_len` (BOS
  kept, as `trim_inputs_left` does for the generative tasks: the question's
  end and the completion survive), in both rows alike (DPO compares the two
  completions given one prompt), then a row loses its completion's end; a
  pair whose rows fit keeps all of both, however they split the length."""
  prompt, completion = np.asarray(ex["inputs"]), np.asarray(ex[prefix])
  longest = max(len(ex["chosen"]), len(ex["rejected"]))
  if len(prompt) + longest > length and len(prompt) > inputs_len:
    prompt = np.concatenate([prompt[:1], prompt[len(prompt) - (inputs_len - 1):]])
  tokens = np.concatenate([prompt, completion])[:length]
  weights = np.concatenate([np.zeros(len(prompt)), np.ones(len(completion))])
  return tokens, weights[:length]


def _value_rows(rows: list, limit: int) -> np.ndarray:
  """Disc-style rows padded to `limit`; an over-long one keeps BOS and its
  end, where the value head reads."""
  rows = [np.asarray(r) for r in rows]
  return _pad([r if len(r) <= limit else np.concatenate([r[:1], r[1 - limit:]])
               for r in rows], limit)


def _to_batch(examples: list[dict], kind: str, lengths: dict[str, int]):
  """Pads tokenised disc / pairwise / dpo examples into a numpy batch."""
  if kind == DISC:
    tokens = _value_rows([e["inputs"] for e in examples], lengths["inputs"])
    return {"tokens": tokens, "segment_ids": (tokens != 0).astype(np.int32),
            "label": np.asarray([e["label"] for e in examples], np.float32)}
  if kind == PAIRWISE:
    batch = {}
    for prefix in ("chosen", "rejected"):
      tokens = _value_rows([e[prefix] for e in examples], lengths[prefix])
      batch[f"{prefix}_tokens"] = tokens
      batch[f"{prefix}_segment_ids"] = (tokens != 0).astype(np.int32)
    return batch
  total = lengths["inputs"] + lengths["chosen"]
  batch = {}
  for prefix in ("chosen", "rejected"):
    pairs = [_pair_example(e, total, prefix, lengths["inputs"])
             for e in examples]
    tokens = _pad([p[0] for p in pairs], total)
    weights = np.zeros_like(tokens, np.float32)
    for i, (_, w) in enumerate(pairs):
      weights[i, :len(w)] = w
    batch[f"{prefix}_tokens"] = tokens
    batch[f"{prefix}_loss_weights"] = weights
    batch[f"{prefix}_segment_ids"] = (tokens != 0).astype(np.int32)
  return batch


def task_and_split(data_config, split: str) -> tuple[str, str]:
  """(task or mixture name, dataset split) the trainer's `split` reads:
  'train' -> data.task's train split; else data.eval_task (or data.task)'s
  data.eval_split."""
  if split == "train":
    return data_config.task, "train"
  return (data_config.get("eval_task") or data_config.task,
          data_config.eval_split)


def _unconverted_dataset(config, name: str, dataset_split: str, shard, *,
                         shuffle: bool, num_epochs: int | None):
  """The tokenised disc / dpo examples (padded later, by `_to_batch`)."""
  seqio = _seqio()
  return seqio.get_dataset(
      name, task_feature_lengths=None, dataset_split=dataset_split,
      shuffle=shuffle, num_epochs=num_epochs, shard_info=shard,
      seed=config.seed, feature_converter=seqio.PassThroughFeatureConverter())


def local_example_rows(config, *, split: str, process_index: int = 0,
                       process_count: int = 1
                       ) -> Iterator[dict[str, np.ndarray]]:
  """Every disc / dpo example of this host's shard of `split` once, in
  order, each as one row ([L] arrays) padded exactly as the training batches
  pad it (`_to_batch`): the same task, preprocessing and shard as
  `make_local_iterator`, without shuffle or repeat. (For DPO's precomputed
  reference log-probs, genrm_jax/dpo_reference.py.)"""
  seqio = _seqio()
  data = config.data
  register_tasks(data)
  name, dataset_split = task_and_split(data, split)
  kind = batch_kind(seqio.get_mixture_or_task(name))
  if kind == GENERATIVE:
    raise ValueError(f"{name} is a generative task: its packed rows are not "
                     "examples.")
  lengths = feature_lengths(data, kind, name)
  shard = seqio.ShardInfo(index=process_index, num_shards=process_count)
  ds = _unconverted_dataset(config, name, dataset_split, shard, shuffle=False,
                            num_epochs=1)
  for ex in ds.as_numpy_iterator():
    yield {k: v[0] for k, v in _to_batch([ex], kind, lengths).items()}


def make_local_iterator(config, *, split: str, start_step: int = 0,
                        num_steps: int | None = None, process_index: int = 0,
                        process_count: int = 1
                        ) -> Iterator[dict[str, np.ndarray]]:
  """This host's rows of each global batch, from `start_step` on.

  Deterministic in (config.seed, step): the dataset is shuffled with the
  config's seed, repeated, and `start_step` batches are skipped, so a
  resumed run reads exactly what an uninterrupted one reads.
  """
  seqio = _seqio()
  data = config.data
  register_tasks(data)
  name, dataset_split = task_and_split(data, split)
  train = split == "train"
  task = seqio.get_mixture_or_task(name)
  kind = batch_kind(task)
  if config.batch_size % process_count:
    raise ValueError(f"batch_size={config.batch_size} does not split over "
                     f"{process_count} hosts.")
  local_batch = config.batch_size // process_count
  lengths = feature_lengths(data, kind, name)
  shard = seqio.ShardInfo(index=process_index, num_shards=process_count)

  if kind == GENERATIVE:
    converter = seqio.PrefixLMFeatureConverter(
        pack=bool(data.pack), loss_on_targets_only=True)
    ds = seqio.get_dataset(
        name, task_feature_lengths=lengths, dataset_split=dataset_split,
        shuffle=train, num_epochs=None, shard_info=shard, seed=config.seed,
        feature_converter=converter)
    keep = ("decoder_target_tokens", "decoder_loss_weights",
            "decoder_segment_ids", "decoder_positions")
    ds = ds.map(lambda ex: {k: ex[k] for k in keep if k in ex})
    ds = ds.batch(local_batch, drop_remainder=True).skip(start_step)
    if num_steps is not None:
      ds = ds.take(num_steps)
    for batch in ds.as_numpy_iterator():
      if "decoder_segment_ids" not in batch:  # unpacked: one segment a row
        tokens = batch["decoder_target_tokens"]
        batch["decoder_segment_ids"] = (tokens != 0).astype(np.int32)
        batch["decoder_positions"] = np.broadcast_to(
            np.arange(tokens.shape[1], dtype=np.int32), tokens.shape).copy()
      yield {k: np.asarray(v) for k, v in batch.items()}
    return

  ds = _unconverted_dataset(config, name, dataset_split, shard, shuffle=train,
                            num_epochs=None)
  it = ds.skip(start_step * local_batch).as_numpy_iterator()
  step = 0
  while num_steps is None or step < num_steps:
    examples = [next(it) for _ in range(local_batch)]
    yield _to_batch(examples, kind, lengths)
    step += 1
