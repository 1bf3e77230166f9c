"""Verifier scoring: exact p(Yes) from teacher-forced passes."""

import numpy as np
import pytest

import jax

from genrm_jax import candidates as candidates_lib
from genrm_jax import prompts
from genrm_jax import sampling
from genrm_jax import scoring
from genrm_jax.models import gemma
from genrm_jax.models import tokenizer as tokenizer_lib
from tests import gemma_reference as ref


@pytest.fixture(scope="module")
def model():
  config = ref.tiny_config("gemma3", num_embed=300)
  return config, ref.random_params(config, seed=3)


def _full_logprob(config, params, prompt, continuation):
  seq = np.array([list(prompt) + list(continuation)])
  logits = gemma.Transformer(config).apply({"params": params}, seq).logits[0]
  logp = jax.nn.log_softmax(logits, axis=-1)
  n = len(prompt)
  return float(sum(logp[n - 1 + j, t] for j, t in enumerate(continuation)))


@pytest.mark.parametrize("readout_chunk", [32, 2])
def test_continuation_logprobs_match_full_forward(model, readout_chunk):
  """Also when the continuation is read out in chunks of positions (no
  [batch, length, vocabulary] logits), padding the last chunk."""
  config, params = model
  scorer = scoring.ContinuationScorer(config, params, batch_size=2,
                                      readout_chunk=readout_chunk)
  prompts_ids = [[2, 50, 60, 70], [2, 9], [2, 11, 12, 13, 14, 15, 16]]
  conts = [[5, 6], [7], [8, 9, 10, 11, 12]]
  got = scorer.score(prompts_ids, conts)
  want = [_full_logprob(config, params, p, c) for p, c in zip(prompts_ids,
                                                              conts)]
  np.testing.assert_allclose(got, want, rtol=1e-5)


def test_bf16_scores_equal_the_fp32_params_they_come_from(model):
  """The scorer casts fp32 params to the bf16 compute dtype once: the same
  log-probs, bit for bit, as casting them at every use."""
  config, params = model
  config = config.replace(dtype="bfloat16")
  prompts_ids, conts = [[2, 50, 60, 70], [2, 9]], [[5, 6], [7, 8, 9]]
  scorer = scoring.ContinuationScorer(config, params, batch_size=2)
  assert scorer.params["layers"]["mlp"]["linear"].dtype == np.dtype("bfloat16")
  got = scorer.score(prompts_ids, conts)
  apply = jax.jit(lambda p, t, s, pos, tg: scorer._logprobs(p, t, s, pos, tg))  # pylint: disable=protected-access
  tokens, segments, positions, targets = scorer._rows_batch(  # pylint: disable=protected-access
      prompts_ids, conts, [0, 1], 0, 8, 4)
  want = np.asarray(apply(params, tokens, segments, positions, targets))
  np.testing.assert_array_equal(got, want)


def test_direct_scores_are_p_yes_and_renormalise(model):
  config, params = model
  tok = tokenizer_lib.ByteTokenizer()
  scorer = scoring.ContinuationScorer(config, params)
  cands = [candidates_lib.Candidate(
      problem_id="p", candidate_id=i, question="What is 2+2?",
      solution=f"2+2={i}. The answer is {i}.", answer=str(i), reference="4",
      correct=i == 4) for i in (3, 4)]
  raw = scoring.score_direct(cands, scorer, tok)
  assert [s.verifier for s in raw] == ["genrm", "genrm"]
  text = prompts.direct_verification_prompt(cands[0].question,
                                            cands[0].solution)
  want = np.exp(_full_logprob(config, params, tok.encode(text, add_bos=True),
                              tok.encode(" Yes")))
  np.testing.assert_allclose(raw[0].score, want, rtol=1e-4)
  norm = scoring.score_direct(cands, scorer, tok, renormalize=True)
  p_no = np.exp(_full_logprob(config, params, tok.encode(text, add_bos=True),
                              tok.encode(" No")))
  np.testing.assert_allclose(norm[0].score, want / (want + p_no), rtol=1e-4)


def test_cot_scores_one_row_per_rationale(model):
  config, params = model
  tok = tokenizer_lib.ByteTokenizer()
  sampler = sampling.Sampler(config, params, tokenizer=tok)
  scorer = scoring.ContinuationScorer(config, params)
  cand = candidates_lib.Candidate(
      problem_id="p", candidate_id=0, question="Q?", solution="The answer "
      "is 1.", answer="1", reference="1", correct=True)
  sp = scoring.cot_stop_params(tok, max_new_tokens=8, temperature=1.0)
  scores = scoring.score_cot([cand], sampler, scorer, tok, num_rationales=3,
                             sampling_params=sp)
  assert [s.k for s in scores] == [0, 1, 2]
  assert all(0.0 <= s.score <= 1.0 and s.rationale is not None
             for s in scores)
  # Rationale k depends on (seed, problem, candidate, k) alone.
  again = scoring.score_cot([cand, cand], sampler, scorer, tok,
                            num_rationales=3, sampling_params=sp)
  assert [s.rationale for s in again[:3]] == [s.rationale for s in scores]
  with pytest.raises(ValueError, match="cot_stop_params"):
    scoring.score_cot([cand], sampler, scorer, tok, num_rationales=1,
                      sampling_params=sampling.SamplingParams(max_new_tokens=8))


def test_shared_question_prefix_gives_the_same_scores(model):
  """A problem's header + question computed once for its candidates."""
  config, params = model
  tok = tokenizer_lib.ByteTokenizer()
  scorer = scoring.ContinuationScorer(config, params, batch_size=4)
  cands = [candidates_lib.Candidate(
      problem_id=f"p{q}", candidate_id=i, question=f"What is {q}+{q}?",
      solution=f"{q}+{q}={q + i}. The answer is {q + i}." + " ok" * i,
      answer=str(q + i), reference=str(2 * q), correct=i == q)
           for q in (1, 2) for i in range(5)]
  shared = scoring.score_direct(cands, scorer, tok, renormalize=True)
  plain = scoring.score_direct(cands, scorer, tok, renormalize=True,
                               share_prefix=False)
  np.testing.assert_allclose([s.score for s in shared],
                             [s.score for s in plain], rtol=1e-5, atol=1e-7)
  assert len({round(s.score, 6) for s in shared}) > 2  # not degenerate
  # A prefix the prompt does not start with falls back to the full pass.
  ids = [[2, 5, 6, 7, 8], [2, 5, 6, 9]]
  conts = [[3], [4, 5]]
  got = scorer.score(ids, conts, prefixes=[[2, 5, 6], [2, 9]])
  np.testing.assert_allclose(got, scorer.score(ids, conts), rtol=1e-5)


def test_prefix_sharing_halves_the_tokens_run_on_a_gsm8k_shaped_pool(model):
  """The released GSM8K prompt format: 16 candidates per question share the
  header and question, so more than 2x fewer tokens go through the model."""
  config, params = model
  tok = tokenizer_lib.ByteTokenizer()
  question = ("Natalia sold clips to 48 of her friends in April, and then "
              "she sold half as many clips in May. How many clips did "
              "Natalia sell altogether in April and May?")
  cands = [candidates_lib.Candidate(
      problem_id="p", candidate_id=i, question=question,
      solution=f"She sold 48/2 = {24 + i} clips in May. The answer is "
      f"{72 + i}.", answer=str(72 + i), reference="72", correct=i == 0)
           for i in range(16)]
  runs = {}
  for share in (True, False):
    scorer = scoring.ContinuationScorer(config, params, batch_size=16)
    scoring.score_direct(cands, scorer, tok, share_prefix=share)
    runs[share] = scorer.tokens_run
  assert runs[False] / runs[True] > 2.0, runs


def test_rows_of_different_prefixes_share_a_batch_and_do_not_depend_on_it(
    model):
  """Suffix rows of prefixes of different lengths run in one batch, each on
  its own prefix's cache (its positions continue after its own prefix);
  each distinct prefix is prefilled once per call; and a row's score is bit
  for bit the same whichever rows it is scored with (resumed scoring)."""
  config, params = model
  rng = np.random.default_rng(0)
  prefixes = [[2] + rng.integers(3, 300, size=n).tolist() for n in (5, 11, 17)]
  ids, conts, shared = [], [], []
  for prefix in prefixes:
    for length in (3, 4, 6):
      ids.append(prefix + rng.integers(3, 300, size=length).tolist())
      conts.append(rng.integers(3, 300, size=2).tolist())
      shared.append(prefix)
  scorer = scoring.ContinuationScorer(config, params, batch_size=16)
  got = scorer.score(ids, conts, shared)
  real = sum(map(len, ids)) + sum(map(len, conts))
  # Prefixes run once each: every real token minus 2 of each prefix's 3 runs.
  assert scorer.tokens_run == real - 2 * sum(map(len, prefixes))
  want = [_full_logprob(config, params, p, c) for p, c in zip(ids, conts)]
  np.testing.assert_allclose(got, want, rtol=1e-5)
  order = rng.permutation(len(ids))
  for part in (order[:4], order[4:]):
    again = scorer.score([ids[i] for i in part], [conts[i] for i in part],
                         [shared[i] for i in part])
    np.testing.assert_array_equal(again, got[part])
  few = scoring.ContinuationScorer(config, params, batch_size=16,
                                   max_cached_prefixes=1)
  np.testing.assert_array_equal(few.score(ids, conts, shared), got)


def test_a_judge_turn_that_ends_unasked_is_asked_inside_the_turn():
  """An instruction-tuned judge (chat template) that closes its turn without
  the verification question: the question is asked in its turn, before the
  end marker the sampler kept, not after it."""
  tok = tokenizer_lib.ByteTokenizer()
  text = "Step 1 checks out.<end_of_turn>"

  class Sampler:
    def generate(self, cot_prompts, params, rng=None, readout_ids=(), batch_size=None):
      del params, rng, readout_ids, batch_size
      n = len(cot_prompts)
      toks = tok.encode(text)
      return sampling.SampleOutput(tokens=[toks] * n, logprobs=[[0.0] * len(toks)] * n,
                                   sample_logprobs=[[0.0] * len(toks)] * n,
                                   finished=[True] * n, texts=[text] * n)

  seen = []

  class Scorer:
    def score(self, rows, continuations, prefixes=None):
      del continuations, prefixes
      seen.extend(tok.decode(r) for r in rows)
      return np.full(len(rows), -1.0)

  cot = prompts.as_chat(prompts.cot_verification_prompt("Q?", "A."), "gemma")
  params = scoring.cot_stop_params(tok, max_new_tokens=8,
                                   more_stop_strings=prompts.chat_stop_strings("gemma"))
  p, rationales = scoring.cot_yes_probabilities(Sampler(), Scorer(), tok, [cot],
                                                np.zeros((1, 2), np.uint32), params,
                                                renormalize=True)
  assert seen[-1].endswith("model\nStep 1 checks out.\n\n" + prompts.VERIFY_QUESTION)
  assert p[0] == pytest.approx(0.5) and rationales == [text]
