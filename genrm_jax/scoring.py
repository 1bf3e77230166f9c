"""Verifier scores for candidate pools (the scores JSONL of DESIGN.md).

* `genrm` (direct): p(" Yes") right after "Verification: Is the answer
  correct (Yes/No)?", from one teacher-forced pass per candidate, read exactly
  from the logits (the full " Yes" token sequence's probability, so a
  vocabulary that splits it into several tokens is still exact); optionally
  renormalised over {" Yes", " No"}.
* `genrm_cot`: K sampled rationales per candidate; each is cut after its
  verification question and scored like `genrm`; the score is the mean
  p(Yes) over the K rationales (the paper's MajV@K). Rationales are kept.

Candidates are batched by length bucket; only the positions that predict
the verdict tokens are projected onto the vocabulary (no [B, L, V] buffer).
No TensorFlow.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from genrm_jax import candidates as candidates_lib
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

  def __post_init__(self):
    self._model = gemma.Transformer(self.config)
    self._fn = jax.jit(self._logprobs)

  def _logprobs(self, params, tokens, segment_ids, positions, targets):
    """Sum of log p(targets[b, j]) read at `positions[b, j]` (-1: unused)."""
    out = self._model.apply({"params": params}, tokens,
                            segment_ids=segment_ids, return_logits=False)
    idx = jnp.maximum(positions, 0)
    hidden = jnp.take_along_axis(out.hidden_states, idx[..., None], axis=1)
    logits = gemma.logits_from_hidden(self.config, params, hidden)
    logp = jax.nn.log_softmax(logits, axis=-1)
    picked = jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    return jnp.sum(jnp.where(positions >= 0, picked, 0.0), axis=-1)

  def score(self, prompts_ids: Sequence[Sequence[int]],
            continuations: Sequence[Sequence[int]]) -> np.ndarray:
    """log p(continuation_i | prompt_i) for every i (float64 array).

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
        batch = self.batch_size
        tokens = np.zeros((batch, length), np.int32)
        segments = np.zeros((batch, length), np.int32)
        positions = np.full((batch, cont_len), -1, np.int32)
        targets = np.zeros((batch, cont_len), np.int32)
        for r, i in enumerate(rows):
          seq = list(prompts_ids[i]) + list(continuations[i])
          tokens[r, :len(seq)] = seq
          segments[r, :len(seq)] = 1
          n = len(continuations[i])
          # Position t predicts token t + 1.
          positions[r, :n] = np.arange(len(prompts_ids[i]) - 1,
                                       len(prompts_ids[i]) - 1 + n)
          targets[r, :n] = continuations[i]
        out = np.asarray(self._fn(self.params, tokens, segments, positions,
                                  targets), np.float64)
        result[rows] = out[:len(rows)]
    return result


def yes_probabilities(scorer: ContinuationScorer, tokenizer,
                      verification_prompts: Sequence[str],
                      renormalize: bool = False) -> np.ndarray:
  """p(" Yes" | prompt) for prompts ending in the verification question."""
  ids = [tokenizer.encode(p, add_bos=True) for p in verification_prompts]
  yes = tokenizer.encode(prompts.YES)
  log_yes = scorer.score(ids, [yes] * len(ids))
  if not renormalize:
    return np.exp(log_yes)
  no = tokenizer.encode(prompts.NO)
  log_no = scorer.score(ids, [no] * len(ids))
  return 1.0 / (1.0 + np.exp(log_no - log_yes))


def score_direct(candidates: Iterable[candidates_lib.Candidate],
                 scorer: ContinuationScorer, tokenizer, *,
                 verifier: str = "genrm", renormalize: bool = False
                 ) -> list[candidates_lib.VerifierScore]:
  """Direct GenRM scores, one per candidate."""
  candidates = list(candidates)
  texts = [prompts.direct_verification_prompt(c.question, c.solution)
           for c in candidates]
  p_yes = yes_probabilities(scorer, tokenizer, texts, renormalize)
  return [candidates_lib.VerifierScore(
      problem_id=c.problem_id, candidate_id=c.candidate_id, verifier=verifier,
      score=float(p)) for c, p in zip(candidates, p_yes)]


def score_cot(candidates: Iterable[candidates_lib.Candidate],
              sampler: sampling.Sampler, scorer: ContinuationScorer,
              tokenizer, *, num_rationales: int = 32,
              sampling_params: sampling.SamplingParams | None = None,
              verifier: str = "genrm_cot", renormalize: bool = False,
              seed: int = 0) -> list[candidates_lib.VerifierScore]:
  """GenRM-CoT (MajV@K): K rationales per candidate, each scored for p(Yes)
  after its verification question; one score row per rationale (`k`), the
  evaluator averages them. A rationale that never asks the question gets
  the question appended (so every rationale yields a probability)."""
  candidates = list(candidates)
  params = sampling_params or sampling.SamplingParams(
      max_new_tokens=512, temperature=1.0)
  cot_prompts = [prompts.cot_verification_prompt(c.question, c.solution)
                 for c in candidates for _ in range(num_rationales)]
  texts = []
  for start in range(0, len(cot_prompts), 64):
    out = sampler.generate(cot_prompts[start:start + 64], params,
                           rng=jax.random.fold_in(jax.random.PRNGKey(seed),
                                                  start))
    texts += out.texts
  verification = []
  rationales = []
  for prompt, text in zip(cot_prompts, texts):
    cut = text.find(prompts.VERIFY_QUESTION)
    body = (text[:cut] if cut >= 0 else text.rstrip() + "\n")
    rationales.append(text)
    verification.append(prompt + body + prompts.VERIFY_QUESTION)
  p_yes = yes_probabilities(scorer, tokenizer, verification, renormalize)
  scores = []
  for i, c in enumerate(candidates):
    for k in range(num_rationales):
      j = i * num_rationales + k
      scores.append(candidates_lib.VerifierScore(
          problem_id=c.problem_id, candidate_id=c.candidate_id,
          verifier=verifier, score=float(p_yes[j]), k=k,
          rationale=rationales[j]))
  return scores
