"""Verifier scores for candidate pools (the scores JSONL of DESIGN.md).

* `genrm` (direct): p(" Yes") right after "Verification: Is the answer
  correct (Yes/No)?", from one teacher-forced pass per candidate, read exactly
  from the logits (the full " Yes" token sequence's probability, so a
  vocabulary that splits it into several tokens is still exact); optionally
  renormalised over {" Yes", " No"}.
* `genrm_cot`: K sampled rationales per candidate; each stops at its
  verification question, and p(Yes) is read off the sampler's next-token
  distribution there (or, where the verdict is not one token or a rationale
  never asked, by a teacher-forced pass like `genrm`'s); the score is the
  mean p(Yes) over the K rationales (the paper's MajV@K). Rationales are
  kept. `cot_yes_probabilities` is what the `genrm_cot` verifier runs.

Candidates are batched by length bucket; only the positions that predict
the verdict tokens are projected onto the vocabulary (no [B, L, V] buffer).
Text that many rows start with (a problem's header + question, a CoT
candidate's prompt) is prefilled once into a KV cache that its rows' suffixes
attend to. Every program has a fixed batch, so a row's score never depends on
the rows scored with it (resumed scoring reproduces it bit for bit).
No TensorFlow.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from genrm_jax import candidates as candidates_lib
from genrm_jax import losses
from genrm_jax import prompts
from genrm_jax import sampling
from genrm_jax.models import gemma


def _bucket(n: int, minimum: int = 32) -> int:
  return max(minimum, 1 << (n - 1).bit_length())


@dataclasses.dataclass
class ContinuationScorer:
  """log p(continuation | prompt) for batches of token sequences."""

  config: gemma.TransformerConfig
  params: Any
  batch_size: int = 16
  # Shared prefixes whose KV caches are held at once (a problem's header +
  # question, or a CoT candidate's prompt: each [layers, 1, bucket, kv, dim]).
  max_cached_prefixes: int = 64
  # Continuation positions projected onto the vocabulary at a time.
  readout_chunk: int = 32

  def __post_init__(self):
    # Weights in the compute dtype once, not cast at every batch (the same
    # scores bit for bit; half the bytes read from a training export's fp32
    # params at bf16).
    self.params = gemma.cast_for_compute(self.config, self.params)
    self._model = gemma.Transformer(self.config)
    self._fn = jax.jit(self._logprobs)
    self._prefill_fn = jax.jit(self._prefill_logic)
    self._suffix_fn = jax.jit(self._suffix_logprobs)
    # Real (unpadded) tokens run through the model: what sharing saves.
    self.tokens_run = 0

  def _logprobs(self, params, tokens, segment_ids, positions, targets):
    """Sum of log p(targets[b, j]) read at `positions[b, j]` (-1: unused)."""
    out = self._model.apply({"params": params}, tokens,
                            segment_ids=segment_ids, return_logits=False)
    return self._read_logprobs(params, out.hidden_states, positions, targets)

  def _read_logprobs(self, params, hidden_states, positions, targets):
    idx = jnp.maximum(positions, 0)
    hidden = jnp.take_along_axis(hidden_states, idx[..., None], axis=1)
    # `readout_chunk` continuation positions at a time: a whole solution's
    # [batch, length, vocabulary] fp32 logits would be 17 GB at 64 x 256 x
    # 262K (DPO and likelihood scoring read every solution token).
    logp = losses.chunked_token_stats(self.config, params, hidden, targets,
                                      self.readout_chunk)["logp"]
    return jnp.sum(jnp.where(positions >= 0, logp, 0.0), axis=-1)

  def score(self, prompts_ids: Sequence[Sequence[int]],
            continuations: Sequence[Sequence[int]],
            prefixes: Sequence[Sequence[int]] | None = None) -> np.ndarray:
    """log p(continuation_i | prompt_i) for every i (float64 array).

    With `prefixes`, row i's prompt starts with `prefixes[i]` (e.g. the
    header and question a problem's N candidates share): each distinct
    prefix is prefilled once (batch 1) into a KV cache, then every row runs
    only its own suffix on top of its prefix's cache. Suffix rows are batched
    like unshared rows (by length bucket, `batch_size` rows, whatever their
    prefix), so one prefill serves all of a problem's candidates and no batch
    is padded to a group's size. A row whose prompt does not start with its
    prefix token for token (tokenisation merged across the boundary) is
    scored unshared.
    """
    if prefixes is None:
      return self._score_unshared(prompts_ids, continuations)
    result = np.zeros(len(prompts_ids))
    plain, by_prefix, prefix_of = [], {}, {}
    for i, (prompt, prefix) in enumerate(zip(prompts_ids, prefixes)):
      prompt, prefix = list(prompt), tuple(prefix)
      if 0 < len(prefix) < len(prompt) and tuple(prompt[:len(prefix)]) == prefix:
        by_prefix.setdefault(prefix, []).append(i)
        prefix_of[i] = prefix
      else:
        plain.append(i)
    if plain:
      result[plain] = self._score_unshared(
          [prompts_ids[i] for i in plain], [continuations[i] for i in plain])
    # Prefix caches are held on the device for `max_cached_prefixes` prefixes
    # at a time (their rows are scored before the next ones are prefilled).
    distinct = list(by_prefix)
    for lo in range(0, len(distinct), self.max_cached_prefixes):
      caches, groups = {}, {}
      for prefix in distinct[lo:lo + self.max_cached_prefixes]:
        caches[prefix] = self._prefill(prefix)
        for i in by_prefix[prefix]:
          suffix = len(prompts_ids[i]) - len(prefix) + len(continuations[i])
          key = (_bucket(len(prefix)), _bucket(suffix, 8),
                 _bucket(len(continuations[i]), 1))
          groups.setdefault(key, []).append(i)
      for (_, suffix_len, cont_len), members in sorted(groups.items()):
        for start in range(0, len(members), self.batch_size):
          rows = members[start:start + self.batch_size]
          tokens, segments, positions, targets = self._rows_batch(
              prompts_ids, continuations, rows,
              [len(prefix_of[i]) for i in rows], suffix_len, cont_len)
          # Padding rows reuse the first row's prefix (their output is dropped).
          row_caches = [caches[prefix_of[i]] for i in rows]
          row_caches += row_caches[:1] * (self.batch_size - len(rows))
          prefix_cache = {k: jax.tree.map(
              lambda *xs, k=k: jnp.concatenate(
                  xs, axis=gemma.cache_batch_axis(k, xs[0])),
              *[c[k] for c in row_caches])
                          for k in ("k", "v", "positions", "segment_ids")}
          out = np.asarray(self._suffix_fn(self.params, prefix_cache, tokens,
                                           segments, positions, targets),
                           np.float64)
          self.tokens_run += int(segments.sum())
          result[rows] = out[:len(rows)]
    return result

  def _prefill(self, prefix: Sequence[int]) -> dict:
    """The KV cache of one prefix (right-padded to its length bucket)."""
    prefix_tokens = np.zeros((1, _bucket(len(prefix))), np.int32)
    prefix_tokens[0, :len(prefix)] = prefix
    prefix_segments = (np.arange(prefix_tokens.shape[1]) <
                       len(prefix)).astype(np.int32)[None]
    self.tokens_run += len(prefix)
    return self._prefill_fn(self.params, prefix_tokens, prefix_segments)

  def _prefill_logic(self, params, prefix_tokens, prefix_segments):
    cache = gemma.init_cache(self.config, 1, prefix_tokens.shape[1])
    cache = self._model.apply({"params": params}, prefix_tokens,
                              segment_ids=prefix_segments, cache=cache,
                              return_logits=False).cache
    return {k: cache[k] for k in ("k", "v", "positions", "segment_ids")}

  def _rows_batch(self, prompts_ids, continuations, rows, skip,
                  length: int, cont_len: int):
    """Right-padded [batch_size, ...] arrays for `rows`: each row's prompt
    (minus its first `skip[r]` tokens, already in a cache; `skip` 0: none)
    then continuation, and where each continuation token is read (-1:
    unused)."""
    b = self.batch_size
    skip = [skip] * len(rows) if isinstance(skip, int) else skip
    tokens = np.zeros((b, length), np.int32)
    segments = np.zeros((b, length), np.int32)
    positions = np.full((b, cont_len), -1, np.int32)
    targets = np.zeros((b, cont_len), np.int32)
    for r, (i, s) in enumerate(zip(rows, skip)):
      seq = list(prompts_ids[i])[s:] + list(continuations[i])
      tokens[r, :len(seq)] = seq
      segments[r, :len(seq)] = 1
      n = len(continuations[i])
      first = len(prompts_ids[i]) - s - 1  # position t predicts token t+1
      positions[r, :n] = np.arange(first, first + n)
      targets[r, :n] = continuations[i]
    return tokens, segments, positions, targets

  def _suffix_logprobs(self, params, prefix_cache, tokens, segments,
                       positions, targets):
    """Every row's suffix on top of its own prefix's cache ([B, Lp] slots,
    extended by the suffix's length)."""
    suffix_len = tokens.shape[1]
    pad = lambda x, axis: jnp.pad(x, [(0, suffix_len if a == axis else 0)
                                      for a in range(x.ndim)])
    # Every entry's slot axis (after its batch axis) grows by the suffix.
    cache = {k: jax.tree.map(
        lambda x, k=k: pad(x, gemma.cache_batch_axis(k, x) + 1), entry)
             for k, entry in prefix_cache.items()}
    cache["end_index"] = jnp.asarray(prefix_cache["positions"].shape[1],
                                     jnp.int32)
    # Positions continue after each row's own prefix (the model's default
    # with a cache: the count of its non-empty slots).
    out = self._model.apply({"params": params}, tokens, segment_ids=segments,
                            cache=cache, return_logits=False)
    return self._read_logprobs(params, out.hidden_states, positions, targets)

  def _score_unshared(self, prompts_ids: Sequence[Sequence[int]],
                      continuations: Sequence[Sequence[int]]) -> np.ndarray:
    """log p(continuation_i | prompt_i), each row in full.

    A row's result does not depend on the other rows: rows are grouped by
    their own (length, continuation length) buckets and every batch is padded
    to `batch_size` rows, so each row runs in the same program whatever its
    neighbours (resumed or re-batched scoring reproduces it bit for bit).
    """
    result = np.zeros(len(prompts_ids))
    groups: dict[tuple[int, int], list[int]] = {}
    for i in range(len(prompts_ids)):
      key = (_bucket(len(prompts_ids[i]) + len(continuations[i])),
             _bucket(len(continuations[i]), 1))
      groups.setdefault(key, []).append(i)
    for (length, cont_len), members in sorted(groups.items()):
      for start in range(0, len(members), self.batch_size):
        rows = members[start:start + self.batch_size]
        tokens, segments, positions, targets = self._rows_batch(
            prompts_ids, continuations, rows, 0, length, cont_len)
        out = np.asarray(self._fn(self.params, tokens, segments, positions,
                                  targets), np.float64)
        self.tokens_run += int(segments.sum())
        result[rows] = out[:len(rows)]
    return result


def yes_probabilities(scorer: ContinuationScorer, tokenizer,
                      verification_prompts: Sequence[str],
                      renormalize: bool = False,
                      shared_prefixes: Sequence[str] | None = None
                      ) -> np.ndarray:
  """p(" Yes" | prompt) for prompts ending in the verification question.

  `shared_prefixes[i]`: text that prompt i starts with and other prompts
  share (a problem's header + question), computed once per distinct prefix.
  """
  ids = [tokenizer.encode(p, add_bos=True) for p in verification_prompts]
  prefixes = None
  if shared_prefixes is not None:
    encoded = {p: tokenizer.encode(p, add_bos=True)
               for p in set(shared_prefixes)}
    prefixes = [encoded[p] for p in shared_prefixes]
  yes = tokenizer.encode(prompts.YES)
  log_yes = scorer.score(ids, [yes] * len(ids), prefixes)
  if not renormalize:
    return np.exp(log_yes)
  no = tokenizer.encode(prompts.NO)
  log_no = scorer.score(ids, [no] * len(ids), prefixes)
  return 1.0 / (1.0 + np.exp(log_no - log_yes))


def score_direct(candidates: Iterable[candidates_lib.Candidate],
                 scorer: ContinuationScorer, tokenizer, *,
                 verifier: str = "genrm", renormalize: bool = False,
                 share_prefix: bool = True
                 ) -> list[candidates_lib.VerifierScore]:
  """Direct GenRM scores, one per candidate; a problem's header + question
  is computed once for all its candidates (`share_prefix`)."""
  candidates = list(candidates)
  texts = [prompts.direct_verification_prompt(c.question, c.solution)
           for c in candidates]
  shared = [prompts.solution_prompt(c.question) for c in candidates]
  p_yes = yes_probabilities(scorer, tokenizer, texts, renormalize,
                            shared_prefixes=shared if share_prefix else None)
  return [candidates_lib.VerifierScore(
      problem_id=c.problem_id, candidate_id=c.candidate_id, verifier=verifier,
      score=float(p)) for c, p in zip(candidates, p_yes)]


def cot_stop_params(tokenizer, more_stop_strings=(),
                    **kwargs) -> sampling.SamplingParams:
  """Sampling settings for GenRM-CoT rationales: they stop at EOS or at
  the verification question (the string the verdict follows), or at
  `more_stop_strings` (e.g. a chat turn's end)."""
  return sampling.SamplingParams(
      stop_tokens=sampling.eos_stop_tokens(tokenizer),
      stop_strings=(prompts.VERIFY_QUESTION, *more_stop_strings), **kwargs)


def cot_yes_probabilities(sampler: sampling.Sampler,
                          scorer: ContinuationScorer, tokenizer,
                          cot_prompts: Sequence[str], keys: np.ndarray,
                          params: sampling.SamplingParams, *,
                          renormalize: bool = False, fused_readout: bool = True,
                          share_prefix: bool = True,
                          batch_size: int | None = None
                          ) -> tuple[np.ndarray, list[str]]:
  """GenRM-CoT: one rationale per prompt (row i sampled with `keys[i]`),
  then p(Yes) after its verification question. Returns (p, rationales).

  `fused_readout`: when " Yes" and " No" are one token each, p(Yes) is read
  off the sampler's own distribution after the question (the same number as
  a teacher-forced pass over prompt + rationale, to float rounding) instead
  of that pass. Rationales that never ask the question get it appended and
  the pass, with the prompt shared across its rows (`share_prefix`).
  `batch_size`: continuous batching through that many sampler rows."""
  if prompts.VERIFY_QUESTION not in params.stop_strings:
    raise ValueError("GenRM-CoT rationales stop at the verification question: "
                     "params=scoring.cot_stop_params(tokenizer, ...).")
  yes = tokenizer.encode(prompts.YES)
  no = tokenizer.encode(prompts.NO)
  readout_ids = ((yes + no) if fused_readout and len(yes) == len(no) == 1
                 else ())
  out = sampler.generate(list(cot_prompts), params, rng=keys,
                         readout_ids=readout_ids, batch_size=batch_size)
  log_yes = np.zeros(len(cot_prompts))
  log_no = np.zeros(len(cot_prompts))
  ask = tokenizer.encode("\n\n" + prompts.VERIFY_QUESTION)
  encoded = {p: tokenizer.encode(p, add_bos=True) for p in set(cot_prompts)}
  prompt_ids = [encoded[p] for p in cot_prompts]
  readouts, rest = [], []  # prompt + rationale up to its verification question
  for i, (ids, text, toks) in enumerate(zip(prompt_ids, out.texts, out.tokens)):
    asked = text.endswith(prompts.VERIFY_QUESTION)
    if asked and readout_ids:
      log_yes[i], log_no[i] = out.readout_logprobs[i]
      continue
    if not asked:  # never asked: ask it, inside the model's turn (a chat
      # template's end marker, kept by the sampler, goes first)
      toks = sampling.without_stop_string_tokens(
          tokenizer.decode, toks, text,
          [s for s in params.stop_strings if s != prompts.VERIFY_QUESTION])
      # As the training rationales put it: after a blank line, encoded
      # together (a task vocabulary holds "\n\n" + the question as one piece).
      ids = ids + toks + ask
    else:
      ids = ids + list(toks)
    readouts.append(ids)
    rest.append(i)
  if rest:
    # A candidate's K rationales share its question + solution.
    shared = [prompt_ids[i] for i in rest] if share_prefix else None
    log_yes[rest] = scorer.score(readouts, [yes] * len(readouts), shared)
    if renormalize:
      log_no[rest] = scorer.score(readouts, [no] * len(readouts), shared)
  if renormalize:
    p = 1.0 / (1.0 + np.exp(log_no - log_yes))
  else:
    p = np.exp(log_yes)
  return p, list(out.texts)


def score_cot(candidates: Iterable[candidates_lib.Candidate],
              sampler: sampling.Sampler, scorer: ContinuationScorer,
              tokenizer, *, num_rationales: int = 32,
              sampling_params: sampling.SamplingParams | None = None,
              verifier: str = "genrm_cot", renormalize: bool = False,
              seed: int = 0, fused_readout: bool = True,
              share_prefix: bool = True,
              batch_size: int | None = None
              ) -> list[candidates_lib.VerifierScore]:
  """GenRM-CoT (MajV@K): K rationales per candidate, each scored for p(Yes)
  after its verification question; one score row per rationale (`k`), the
  evaluator averages them. Rationale k of a candidate uses the key of
  (seed, problem, candidate, k) alone, as the `genrm_cot` verifier's
  (`verifiers.score_store`, which runs `cot_yes_probabilities` too).
  `sampling_params`: default `cot_stop_params(tokenizer, max_new_tokens=512,
  temperature=1.0)`; must stop at the verification question."""
  candidates = list(candidates)
  params = sampling_params or cot_stop_params(
      tokenizer, max_new_tokens=512, temperature=1.0)
  work = [(c, k) for c in candidates for k in range(num_rationales)]
  cot_prompts = [prompts.cot_verification_prompt(c.question, c.solution)
                 for c, _ in work]
  keys = sampling.row_keys(seed, [(c.problem_id, str(c.candidate_id), k)
                                  for c, k in work])
  p_yes, texts = cot_yes_probabilities(
      sampler, scorer, tokenizer, cot_prompts, keys, params,
      renormalize=renormalize, fused_readout=fused_readout,
      share_prefix=share_prefix, batch_size=batch_size)
  return [candidates_lib.VerifierScore(
      problem_id=c.problem_id, candidate_id=c.candidate_id, verifier=verifier,
      score=float(p), k=k, rationale=text)
          for (c, k), p, text in zip(work, p_yes, texts)]
