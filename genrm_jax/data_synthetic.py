"""A deterministic synthetic data source for every batch kind (no TensorFlow).

The toy task mirrors the paper's algorithmic tasks: a "problem" is a string
of digits, its answer is the digits reversed, a candidate answer is either
correct or has one digit changed. From it we build

* generative batches (`genrm`, `genrm_cot`, `unified`, `solve`), packed or
  padded, with the exact fields the seqio pipeline yields:
    genrm:     BOS q SEP cand QUERY | YES/NO EOS
    genrm_cot: BOS q SEP cand QUERY | THINK rev(q) SEP YES/NO EOS
    solve:     BOS q SEP            | rev(q) EOS
    unified:   genrm_cot, or solve with probability lambda / (1 + lambda)
  (`|` separates the prompt from the target tokens that carry loss weight);
* disc batches: BOS q SEP cand, label = candidate is correct;
* dpo batches: the correct answer (chosen) vs a corrupted one (rejected);
* bt batches: the same pair, each a whole disc-style row.

Every row of every batch is a pure function of (seed, split, step, row), so
a run restarted at step s reads exactly the batches an uninterrupted run
reads, each host can build only its own rows, and the global batch is the same
for any number of hosts.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np

PAD, EOS, BOS, SEP, QUERY, YES, NO, THINK = 0, 1, 2, 3, 4, 5, 6, 7
DIGIT0 = 10  # digits are tokens 10..19
VOCAB_SIZE_NEEDED = DIGIT0 + 10

SPLITS = {"train": 0, "eval": 1}


def _row_rng(seed: int, split: str, step: int, row: int):
  return np.random.default_rng([seed, SPLITS[split], step, row])


def _problem(rng, min_digits, max_digits):
  n = int(rng.integers(min_digits, max_digits + 1))
  q = rng.integers(0, 10, n)
  answer = q[::-1]
  corrupted = answer.copy()
  i = int(rng.integers(0, n))
  corrupted[i] = (corrupted[i] + int(rng.integers(1, 10))) % 10
  return q + DIGIT0, answer + DIGIT0, corrupted + DIGIT0


def _generative_example(rng, method, min_digits, max_digits, unified_lambda):
  """(prompt tokens, target tokens) for one example."""
  q, answer, corrupted = _problem(rng, min_digits, max_digits)
  if method == "unified":
    p_solve = unified_lambda / (1.0 + unified_lambda)
    method = "solve" if rng.random() < p_solve else "genrm_cot"
  if method == "solve":
    return [BOS, *q, SEP], [*answer, EOS]
  correct = bool(rng.random() < 0.5)
  cand = answer if correct else corrupted
  verdict = YES if correct else NO
  prompt = [BOS, *q, SEP, *cand, QUERY]
  if method == "genrm":
    return prompt, [verdict, EOS]
  if method == "genrm_cot":
    return prompt, [THINK, *answer, SEP, verdict, EOS]
  raise ValueError(f"no synthetic generative data for method={method!r}")


class SyntheticSource:
  """Builds host-local numpy batches for `config.method` at a given step."""

  def __init__(self, config):
    d = config.data
    self.method = config.method
    self.seed = int(config.seed)
    self.seq_len = int(d.seq_len)
    self.pack = bool(d.pack)
    self.min_digits = int(d.synthetic_min_digits)
    self.max_digits = int(d.synthetic_max_digits)
    self.unified_lambda = float(d.unified_lambda)
    longest = 3 * self.max_digits + 7  # genrm_cot, the longest kind
    if longest > self.seq_len:
      raise ValueError(
          f"data.seq_len={self.seq_len} is too short for synthetic examples of "
          f"up to {self.max_digits} digits ({longest} tokens): raise "
          "data.seq_len or lower data.synthetic_max_digits.")

  # --- rows -------------------------------------------------------------------

  def _generative_row(self, rng):
    length = self.seq_len
    tokens = np.zeros(length, np.int32)
    weights = np.zeros(length, np.float32)
    segments = np.zeros(length, np.int32)
    positions = np.zeros(length, np.int32)
    at, segment = 0, 1
    while True:
      prompt, target = _generative_example(
          rng, self.method, self.min_digits, self.max_digits,
          self.unified_lambda)
      n = len(prompt) + len(target)
      if at + n > length:
        break
      tokens[at:at + n] = prompt + target
      weights[at + len(prompt):at + n] = 1.0
      segments[at:at + n] = segment
      positions[at:at + n] = np.arange(n)
      at, segment = at + n, segment + 1
      if not self.pack:
        break
    return {"decoder_target_tokens": tokens, "decoder_loss_weights": weights,
            "decoder_segment_ids": segments, "decoder_positions": positions}

  def _value_row(self, q, answer_tokens):
    """BOS q SEP answer, padded: (tokens, segment ids) of a row whose last
    token the value head reads (disc and bt)."""
    seq = [BOS, *q, SEP, *answer_tokens]
    tokens = np.zeros(self.seq_len, np.int32)
    tokens[:len(seq)] = seq
    return tokens, (tokens != PAD).astype(np.int32)

  def _disc_row(self, rng):
    q, answer, corrupted = _problem(rng, self.min_digits, self.max_digits)
    label = bool(rng.random() < 0.5)
    tokens, segment_ids = self._value_row(q, answer if label else corrupted)
    return {"tokens": tokens, "segment_ids": segment_ids, "label": np.float32(label)}

  def _bt_row(self, rng):
    q, answer, corrupted = _problem(rng, self.min_digits, self.max_digits)
    row = {}
    for name, answer_tokens in (("chosen", answer), ("rejected", corrupted)):
      row[f"{name}_tokens"], row[f"{name}_segment_ids"] = self._value_row(q, answer_tokens)
    return row

  def _dpo_row(self, rng):
    q, answer, corrupted = _problem(rng, self.min_digits, self.max_digits)
    prompt = [BOS, *q, SEP]
    row = {}
    for name, answer_tokens in (("chosen", answer), ("rejected", corrupted)):
      seq = prompt + [*answer_tokens, EOS]
      tokens = np.zeros(self.seq_len, np.int32)
      tokens[:len(seq)] = seq
      weights = np.zeros(self.seq_len, np.float32)
      weights[len(prompt):len(seq)] = 1.0
      row[f"{name}_tokens"] = tokens
      row[f"{name}_loss_weights"] = weights
      row[f"{name}_segment_ids"] = (tokens != PAD).astype(np.int32)
    return row

  # --- batches ----------------------------------------------------------------

  def local_batch(self, step: int, global_batch_size: int, *,
                  split: str = "train", process_index: int = 0,
                  process_count: int = 1) -> dict[str, np.ndarray]:
    """This host's rows of global batch `step` (a contiguous block)."""
    if global_batch_size % process_count:
      raise ValueError(f"batch_size={global_batch_size} is not divisible by "
                       f"the {process_count} processes.")
    per_host = global_batch_size // process_count
    first = process_index * per_host
    kind = {"disc": self._disc_row, "bt": self._bt_row, "dpo": self._dpo_row}.get(
        self.method, self._generative_row)
    rows = [kind(_row_rng(self.seed, split, step, r))
            for r in range(first, first + per_host)]
    return {k: np.stack([r[k] for r in rows]) for k in rows[0]}

  def iterate(self, global_batch_size: int, *, split: str = "train",
              start_step: int = 0, num_steps: int | None = None,
              process_index: int = 0, process_count: int = 1
              ) -> Iterator[dict[str, np.ndarray]]:
    step = start_step
    while num_steps is None or step < start_step + num_steps:
      yield self.local_batch(step, global_batch_size, split=split,
                             process_index=process_index,
                             process_count=process_count)
      step += 1
