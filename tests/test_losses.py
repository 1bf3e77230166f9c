"""Losses against hand computations; AUROC against brute force."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from genrm_jax import losses
from genrm_jax.models import gemma
from tests import jaxprs


def _log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _forward(model, params, tokens, **kw):
  return jax.jit(lambda p, t, kw: model.apply({"params": p}, t, **kw))(
      params, tokens, kw)


@pytest.fixture(scope="module")
def tiny():
  config = gemma.get_config("tiny", num_embed=32)
  model = gemma.Transformer(config)
  params = {"model": gemma.init_params(config, 0)}
  return config, model, params


def test_segment_positions():
  seg = jnp.array([[1, 1, 1, 2, 2, 0, 0], [1, 1, 1, 1, 1, 1, 1]])
  np.testing.assert_array_equal(
      losses.segment_positions(seg),
      [[0, 1, 2, 0, 1, 0, 0], [0, 1, 2, 3, 4, 5, 6]])


def test_generative_ce_masking_by_hand(tiny):
  config, model, params = tiny
  # Two packed segments and padding; targets are marked by loss weights.
  tokens = np.array([[2, 7, 8, 9, 2, 5, 6, 0, 0],
                     [2, 3, 4, 5, 6, 7, 8, 9, 10]], np.int32)
  seg = np.array([[1, 1, 1, 1, 2, 2, 2, 0, 0],
                  [1, 1, 1, 1, 1, 1, 1, 1, 1]], np.int32)
  pos = np.array([[0, 1, 2, 3, 0, 1, 2, 0, 0],
                  list(range(9))], np.int32)
  w = np.array([[0, 0, 1, 1, 1, 0, 1, 0, 0],  # w at a segment start ignored
                [0, 0, 0, 0, 0, 1, 1, 1, 1]], np.float32)
  batch = {"decoder_target_tokens": tokens, "decoder_loss_weights": w,
           "decoder_segment_ids": seg, "decoder_positions": pos}
  loss_sum, count, sums = jax.jit(
      lambda p, b: losses.generative_loss(model, p, b))(params, batch)
  logits = np.asarray(_forward(model, params["model"], tokens,
                               positions=pos, segment_ids=seg).logits)
  logp = _log_softmax(logits.astype(np.float64))
  total, n, correct = 0.0, 0, 0
  for b in range(2):
    for t in range(8):
      if w[b, t + 1] and seg[b, t + 1] == seg[b, t] and seg[b, t + 1]:
        total -= logp[b, t, tokens[b, t + 1]]
        n += 1
        correct += int(np.argmax(logits[b, t]) == tokens[b, t + 1])
  assert n == 7  # 2 + 1 (not the segment start) + 4
  assert float(count) == n
  np.testing.assert_allclose(float(loss_sum), total, rtol=1e-5)
  acc = losses.finalize(sums)["token_accuracy"]
  np.testing.assert_allclose(float(acc), correct / n, rtol=1e-6)


def test_token_stats_equal_the_gather_formulation():
  """log p(target) as a masked sum equals log_softmax gathered at the
  target; 'correct' equals argmax == target, and a tie for the top logit
  counts as right."""
  rng = np.random.default_rng(0)
  logits = rng.normal(0, 4, (3, 5, 50)).astype(np.float32)
  targets = rng.integers(0, 50, (3, 5))
  targets[0, 0] = np.argmax(logits[0, 0])  # at least one right
  logp, is_top = jax.jit(losses._target_stats)(logits, targets)  # pylint: disable=protected-access
  expect = np.take_along_axis(_log_softmax(logits.astype(np.float64)),
                              targets[..., None], -1)[..., 0]
  np.testing.assert_allclose(logp, expect, rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(is_top, np.argmax(logits, -1) == targets)
  tied = np.zeros((1, 1, 4), np.float32)
  _, is_top = losses._target_stats(tied, np.array([[3]]))  # pylint: disable=protected-access
  assert bool(is_top[0, 0])
  np.testing.assert_allclose(losses.token_log_probs(tied, np.array([[3]])),
                             [[np.log(0.25)]], rtol=1e-6)


def test_loss_gradient_makes_no_vocab_sized_scatter_or_pad(tiny):
  """The loss's backward writes the logits' gradient in one pass: no
  scatter-add (the gradient of a gather at the targets) and no pad (the
  gradient of slicing the logits to T - 1 positions) of a [B, T, V] buffer.
  Each was a further 17 GB of a Gemma-2B step (benchmarks/RESULTS.md)."""
  config, model, params = tiny
  tokens = np.tile(np.arange(2, 10, dtype=np.int32), (2, 1))
  batch = {"decoder_target_tokens": tokens,
           "decoder_loss_weights": np.ones(tokens.shape, np.float32),
           "decoder_segment_ids": np.ones_like(tokens)}
  grad = jax.grad(lambda p: losses.generative_loss(model, p, batch)[0])
  jaxpr = jax.make_jaxpr(grad)(params).jaxpr
  vocab_sized = [
      e.primitive.name for e in jaxprs.all_eqns(jaxpr)
      if e.primitive.name in ("scatter-add", "scatter_add", "pad")
      and any(getattr(v.aval, "shape", ())[-1:] == (config.num_embed,)
              for v in e.outvars)]
  assert not vocab_sized, vocab_sized


def test_last_verdict_mask():
  yes, no = 5, 6
  targets = jnp.array([[5, 3, 6, 9, 5, 4, 6, 0]])
  weights = jnp.array([[1, 1, 1, 1, 1, 1, 1, 0]], jnp.float32)
  segs = jnp.array([[1, 1, 1, 1, 2, 2, 2, 0]])
  mask = losses.last_verdict_mask(targets, weights, segs, yes, no)
  # Segment 1: the verdict is the No at index 2 (not the Yes at 0);
  # segment 2: the No at index 6.
  np.testing.assert_array_equal(np.asarray(mask)[0],
                                [0, 0, 1, 0, 0, 0, 1, 0])


def test_verdict_mask_needs_the_verdict_to_end_the_targets():
  """Unified batches pack solution segments beside verification ones: a Yes
  or No inside a solution ("Nancy" in bytes), or in a rationale cut before
  its verdict line, is no verdict."""
  yes, no = 5, 6  # and 1 = EOS
  # seg 1: verification, " Yes" + EOS (2 targets); seg 2: a solution whose No
  # is followed by 4 more targets; seg 3: bytes "Y" "e" "s" EOS; seg 4: a
  # verdict followed by 4 targets (a cut rationale), then padding.
  targets = jnp.array([[9, 5, 1, 6, 9, 9, 9, 1, 5, 8, 8, 1, 6, 9, 9, 9, 1, 0]])
  segs = jnp.array([[1, 1, 1, 2, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 4, 0]])
  weights = (segs > 0).astype(jnp.float32)
  mask = np.asarray(losses.last_verdict_mask(targets, weights, segs, yes, no))[0]
  assert list(np.flatnonzero(mask)) == [1, 8]


def test_yes_no_accuracy(tiny):
  config, model, params = tiny
  yes, no = 5, 6
  tokens = np.array([[2, 9, 9, 5, 1], [2, 8, 8, 6, 1]], np.int32)
  w = np.array([[0, 0, 0, 1, 1], [0, 0, 0, 1, 1]], np.float32)
  seg = np.ones_like(tokens)
  batch = {"decoder_target_tokens": tokens, "decoder_loss_weights": w,
           "decoder_segment_ids": seg,
           "decoder_positions": np.tile(np.arange(5), (2, 1))}
  _, _, sums = jax.jit(lambda p, b: losses.generative_loss(
      model, p, b, yes_id=yes, no_id=no))(params, batch)
  logits = np.asarray(_forward(model, params["model"], tokens).logits)
  hits = [(logits[0, 2, yes] > logits[0, 2, no]),
          (logits[1, 2, yes] <= logits[1, 2, no])]
  s, c = sums["yes_no_accuracy"]
  assert float(c) == 2
  assert float(s) == sum(hits)


def test_bce_by_hand():
  logits = jnp.array([-3.0, -0.5, 0.0, 2.0])
  labels = jnp.array([0.0, 1.0, 1.0, 0.0])
  p = 1 / (1 + np.exp(-np.asarray(logits, np.float64)))
  y = np.asarray(labels)
  expect = -(y * np.log(p) + (1 - y) * np.log(1 - p))
  np.testing.assert_allclose(losses.bce_with_logits(logits, labels), expect,
                             rtol=1e-6)
  # Stable far from 0: log(1 + e^-40) instead of log(0) = -inf.
  far = losses.bce_with_logits(jnp.array([40.0, -40.0]), jnp.array([1., 0.]))
  np.testing.assert_allclose(far, [np.exp(-40.0)] * 2, rtol=1e-5)


def test_disc_value_head_at_last_token(tiny):
  config, model, params = tiny
  key = jax.random.PRNGKey(3)
  params = dict(params, value_head={
      "kernel": jax.random.normal(key, (config.embed_dim, 1)),
      "bias": jnp.array([0.25])})
  tokens = np.array([[2, 7, 8, 9, 0, 0], [2, 3, 4, 5, 6, 7]], np.int32)
  seg = (tokens != 0).astype(np.int32)
  label = np.array([1.0, 0.0], np.float32)
  loss_sum, n, _ = jax.jit(lambda p, b: losses.disc_loss(model, p, b))(
      params, {"tokens": tokens, "segment_ids": seg, "label": label})
  hidden = np.asarray(_forward(model, params["model"], tokens,
                               segment_ids=seg).hidden_states)
  k = np.asarray(params["value_head"]["kernel"])[:, 0]
  z = np.array([hidden[0, 3] @ k + 0.25, hidden[1, 5] @ k + 0.25])
  p = 1 / (1 + np.exp(-z))
  expect = -(np.log(p[0]) + np.log(1 - p[1]))
  assert float(n) == 2
  np.testing.assert_allclose(float(loss_sum), expect, rtol=1e-5)


def test_bradley_terry_by_hand(tiny):
  """bt: the disc value head on the chosen and the rejected row (each at its
  own last token), -log sigmoid(r_c - r_r); AUROC labels chosen 1."""
  config, model, params = tiny
  params = dict(params, value_head={
      "kernel": jax.random.normal(jax.random.PRNGKey(4), (config.embed_dim, 1)),
      "bias": jnp.array([-0.5])})
  chosen = np.array([[2, 7, 8, 9, 0, 0], [2, 3, 4, 5, 6, 7]], np.int32)
  rejected = np.array([[2, 7, 8, 10, 11, 0], [2, 3, 4, 0, 0, 0]], np.int32)
  batch = {"chosen_tokens": chosen, "chosen_segment_ids": (chosen != 0).astype(np.int32),
           "rejected_tokens": rejected,
           "rejected_segment_ids": (rejected != 0).astype(np.int32)}
  loss_sum, n, sums, out = jax.jit(lambda p, b: losses.compute_loss(
      "bt", model, p, b, with_eval_outputs=True))(params, batch)
  value = lambda tokens: np.asarray(jax.jit(lambda p, t: losses.value_logits(
      model, p, t, (t != 0).astype(np.int32)))(params, tokens))
  r_c, r_r = value(chosen), value(rejected)
  margin = r_c - r_r
  assert float(n) == 2
  np.testing.assert_allclose(float(loss_sum), np.sum(np.log1p(np.exp(-margin))), rtol=1e-5)
  np.testing.assert_allclose(float(sums["margin"][0]), margin.sum(), rtol=1e-5)
  assert float(sums["accuracy"][0]) == np.sum(margin > 0)
  np.testing.assert_allclose(np.asarray(out["score"]), np.concatenate([r_c, r_r]),
                             rtol=1e-5)
  assert np.asarray(out["label"]).tolist() == [True, True, False, False]
  assert losses.batch_kind("bt") == "pairwise"
  # TRL's center_rewards_coefficient: + c * (r_c + r_r)^2 per pair.
  centred, _, _ = jax.jit(lambda p, b: losses.compute_loss(
      "bt", model, p, b, center_rewards=0.01))(params, batch)
  np.testing.assert_allclose(float(centred) - float(loss_sum),
                             0.01 * np.sum((r_c + r_r) ** 2), rtol=1e-4)


def test_dpo_loss_by_hand():
  pi_c, pi_r = jnp.array([-5.0, -2.0]), jnp.array([-6.0, -1.0])
  ref_c, ref_r = jnp.array([-5.5, -2.5]), jnp.array([-5.0, -1.5])
  beta = 0.5
  loss, rc, rr = losses.dpo_from_log_probs(pi_c, pi_r, ref_c, ref_r, beta)
  # Example 0: margin = 0.5*(0.5) - 0.5*(-1.0) = 0.75.
  # Example 1: margin = 0.5*(0.5) - 0.5*(0.5) = 0.
  np.testing.assert_allclose(rc - rr, [0.75, 0.0], rtol=1e-6)
  np.testing.assert_allclose(loss, [np.log1p(np.exp(-0.75)), np.log(2.0)],
                             rtol=1e-6)


def _dpo_batch():
  chosen = np.array([[2, 11, 3, 12, 1, 0], [2, 13, 14, 3, 15, 1]], np.int32)
  rejected = np.array([[2, 11, 3, 17, 1, 0], [2, 13, 14, 3, 19, 1]], np.int32)
  w = np.array([[0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 1, 1]], np.float32)
  return {"chosen_tokens": chosen, "rejected_tokens": rejected,
          "chosen_loss_weights": w, "rejected_loss_weights": w,
          "chosen_segment_ids": (chosen != 0).astype(np.int32),
          "rejected_segment_ids": (rejected != 0).astype(np.int32)}


def test_dpo_zero_margin_when_policy_is_reference(tiny):
  _, model, params = tiny
  loss_sum, n, sums = jax.jit(lambda p, b: losses.dpo_loss(
      model, p, b, ref_params=p["model"], beta=0.1))(params, _dpo_batch())
  np.testing.assert_allclose(float(loss_sum) / float(n), np.log(2.0),
                             rtol=1e-6)
  m = losses.finalize(sums)
  assert abs(float(m["reward_margin"])) < 1e-6
  assert float(m["reward_accuracy"]) == 0.0  # margin 0 is not > 0


def test_dpo_sequence_log_probs_and_precomputed_ref(tiny):
  _, model, params = tiny
  batch = _dpo_batch()
  seq_logps = jax.jit(lambda p, t, w, s: losses.sequence_log_probs(
      model, p, t, w, s))
  logps = seq_logps(params, batch["chosen_tokens"],
                    batch["chosen_loss_weights"], batch["chosen_segment_ids"])
  logits = np.asarray(_forward(model, params["model"],
                               batch["chosen_tokens"]).logits)
  lp = _log_softmax(logits.astype(np.float64))
  t = batch["chosen_tokens"]
  expect = [lp[0, 2, t[0, 3]] + lp[0, 3, t[0, 4]],
            lp[1, 3, t[1, 4]] + lp[1, 4, t[1, 5]]]
  np.testing.assert_allclose(np.asarray(logps), expect, rtol=1e-5)
  # Precomputed reference log-probs replace the reference forward pass.
  pre = dict(batch, chosen_ref_logps=np.asarray(logps) - 1.0,
             rejected_ref_logps=np.zeros(2, np.float32))
  pi_r = seq_logps(params, batch["rejected_tokens"],
                   batch["rejected_loss_weights"],
                   batch["rejected_segment_ids"])
  loss_sum, _, _ = jax.jit(lambda p, b: losses.dpo_loss(model, p, b,
                                                        beta=0.2))(params, pre)
  margin = 0.2 * 1.0 - 0.2 * np.asarray(pi_r)
  np.testing.assert_allclose(float(loss_sum),
                             np.sum(np.log1p(np.exp(-margin))), rtol=1e-5)


def _auroc_brute(scores, labels):
  pos = [s for s, l in zip(scores, labels) if l]
  neg = [s for s, l in zip(scores, labels) if not l]
  total = sum(1.0 if p > n else 0.5 if p == n else 0.0
              for p, n in itertools.product(pos, neg))
  return total / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(5))
def test_auroc_matches_brute_force_with_ties(seed):
  rng = np.random.default_rng(seed)
  n = int(rng.integers(5, 60))
  scores = rng.integers(0, 6, n).astype(np.float32)  # many ties
  labels = rng.random(n) < 0.4
  labels[0], labels[1] = True, False
  assert losses.auroc(scores, labels) == pytest.approx(
      _auroc_brute(scores, labels), abs=1e-12)


def test_auroc_edge_cases():
  assert losses.auroc([0.1, 0.9], [0, 1]) == 1.0
  assert losses.auroc([0.9, 0.1], [0, 1]) == 0.0
  assert losses.auroc([0.5, 0.5], [0, 1]) == 0.5
  assert np.isnan(losses.auroc([0.1, 0.2], [1, 1]))


# -----------------------------------------------------------------------------
# Chunked cross-entropy (loss_chunk_size > 0) equals the unchunked loss.
# -----------------------------------------------------------------------------


def _packed_verdict_batch(vocab, yes, no, seed=0):
  """Two rows: three packed segments + padding, and one full segment; each
  segment's targets end in a Yes/No verdict (the soft-capped tiny model)."""
  rng = np.random.default_rng(seed)
  length = 23
  tokens = rng.integers(3, vocab, size=(2, length)).astype(np.int32)
  seg = np.array([[1] * 7 + [2] * 6 + [3] * 6 + [0] * 4, [1] * length],
                 np.int32)
  pos = np.array([list(range(7)) + list(range(6)) * 2 + [0] * 4,
                  list(range(length))], np.int32)
  w = np.zeros((2, length), np.float32)
  for b in range(2):
    for s in set(seg[b].tolist()) - {0}:
      idx = np.flatnonzero(seg[b] == s)
      tokens[b, idx[0]] = 2  # BOS
      w[b, idx[len(idx) // 2:]] = 1
      tokens[b, idx[-1]] = yes if (s + b) % 2 else no
  tokens[seg == 0] = 0
  return {"decoder_target_tokens": tokens, "decoder_loss_weights": w,
          "decoder_segment_ids": seg, "decoder_positions": pos}


def _big_vocab_arrays(fn, *args, min_size):
  """Shapes of every intermediate with the vocabulary as its last axis and
  at least `min_size` elements, in the jaxpr of `fn(*args)` (sub-jaxprs of
  scans, remats and custom derivatives included)."""
  vocab = min_size[-1]
  return [shape
          for eqn in jaxprs.all_eqns(jax.make_jaxpr(fn)(*args))
          for shape in (getattr(v.aval, "shape", ()) for v in eqn.outvars)
          if shape and shape[-1] == vocab
          and np.prod(shape) >= np.prod(min_size)]


def test_chunked_generative_loss_equals_unchunked(tiny):
  """Loss, metrics, eval outputs and every gradient, for a chunk that pads
  the 22 positions (5) and one that divides them (11)."""
  config, model, params = tiny
  assert config.final_logit_softcap  # the soft-cap is exercised
  yes, no = 5, 6
  batch = _packed_verdict_batch(config.num_embed, yes, no)

  def run(p, chunk_size):
    loss_sum, count, sums, outputs = losses.generative_loss(
        model, p, batch, yes_id=yes, no_id=no, with_eval_outputs=True,
        loss_chunk_size=chunk_size)
    return loss_sum / count, (count, sums, outputs)

  grad = jax.jit(jax.value_and_grad(run, has_aux=True), static_argnums=1)
  (ref_loss, (ref_n, ref_sums, ref_out)), ref_g = grad(params, 0)
  assert float(ref_sums["yes_no_accuracy"][1]) == 4  # one per segment
  flat_ref = jax.tree_util.tree_leaves_with_path(ref_g)
  for chunk in (5, 11):
    (loss, (n, sums, out)), g = grad(params, chunk)
    assert float(n) == float(ref_n) > 0
    np.testing.assert_allclose(float(loss), float(ref_loss), rtol=1e-5)
    for k in ref_sums:  # token accuracy, Yes/No accuracy, target tokens
      np.testing.assert_allclose(np.asarray(sums[k]),
                                 np.asarray(ref_sums[k]), rtol=1e-6)
    np.testing.assert_allclose(out["score"], ref_out["score"], rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_array_equal(out["mask"], ref_out["mask"])
    flat = jax.tree.leaves(g)
    assert len(flat) == len(flat_ref)
    for (path, r), x in zip(flat_ref, flat):
      np.testing.assert_allclose(
          np.asarray(x), np.asarray(r), rtol=1e-5,
          atol=1e-5 * float(jnp.max(jnp.abs(r))),
          err_msg=f"chunk {chunk}: {jax.tree_util.keystr(path)}")


def test_chunked_loss_never_builds_full_logits(tiny):
  config, model, params = tiny
  batch = _packed_verdict_batch(config.num_embed, 5, 6)
  b, l = batch["decoder_target_tokens"].shape
  full = (b, l - 1, config.num_embed)

  def loss_grad(chunk_size):
    return lambda p: jax.grad(lambda q: losses.generative_loss(
        model, q, batch, yes_id=5, no_id=6,
        loss_chunk_size=chunk_size)[0])(p)

  assert _big_vocab_arrays(loss_grad(0), params, min_size=full)  # detector
  assert not _big_vocab_arrays(loss_grad(4), params, min_size=full)


def test_chunked_dpo_log_probs_equal_unchunked(tiny):
  """DPO with a chunk longer than the sequence (one clipped chunk)."""
  _, model, params = tiny
  batch = _dpo_batch()
  ref = jax.jit(lambda p, b: losses.dpo_loss(
      model, p, b, ref_params=jax.tree.map(lambda x: x * 0.9, p["model"])))
  chunked = jax.jit(lambda p, b: losses.dpo_loss(
      model, p, b, ref_params=jax.tree.map(lambda x: x * 0.9, p["model"]),
      loss_chunk_size=64))
  (l0, _, s0), (l1, _, s1) = ref(params, batch), chunked(params, batch)
  np.testing.assert_allclose(float(l1), float(l0), rtol=1e-5)
  for k in s0:
    np.testing.assert_allclose(float(s1[k][0]), float(s0[k][0]), rtol=1e-5,
                               atol=1e-6)


def test_chunk_size_must_be_positive(tiny):
  config, _, params = tiny
  with pytest.raises(ValueError, match="chunk_size"):
    losses.chunked_token_stats(config, params["model"],
                               jnp.zeros((1, 4, config.embed_dim)),
                               jnp.zeros((1, 4), jnp.int32), 0)


# Logits at target positions only (loss_positions > 0) equal the full loss.
# -----------------------------------------------------------------------------


def test_target_indices_by_hand():
  w = jnp.array([[0, 1, 0, 1, 1, 0], [0, 0, 0, 0, 0, 1], [1, 1, 1, 1, 0, 0]],
                jnp.float32)
  np.testing.assert_array_equal(losses.target_indices(w, 3),
                                [[1, 3, 4], [5, 0, 1], [0, 1, 2]])


@pytest.mark.parametrize("chunk,positions", [(0, 12), (5, 12), (0, 8), (0, 40)])
def test_target_position_loss_equals_full(tiny, chunk, positions):
  """Loss, metrics, eval outputs and every gradient. The rows hold 10 and
  11 weighted targets: 12 reads only those, 8 falls back to the whole batch,
  40 (past the length) is the plain path."""
  config, model, params = tiny
  yes, no = 5, 6
  batch = _packed_verdict_batch(config.num_embed, yes, no)

  def run(p, chunk_size, loss_positions):
    loss_sum, count, sums, outputs = losses.generative_loss(
        model, p, batch, yes_id=yes, no_id=no, with_eval_outputs=True,
        loss_chunk_size=chunk_size, loss_positions=loss_positions)
    return loss_sum / count, (count, sums, outputs)

  grad = jax.jit(jax.value_and_grad(run, has_aux=True), static_argnums=(1, 2))
  (ref_loss, (ref_n, ref_sums, ref_out)), ref_g = grad(params, 0, 0)
  (loss, (n, sums, out)), g = grad(params, chunk, positions)
  assert float(n) == float(ref_n) > 0
  np.testing.assert_allclose(float(loss), float(ref_loss), rtol=1e-5)
  for k in ref_sums:
    np.testing.assert_allclose(np.asarray(sums[k]), np.asarray(ref_sums[k]),
                               rtol=1e-6)
  np.testing.assert_array_equal(out["mask"], ref_out["mask"])
  mask = np.asarray(ref_out["mask"])
  assert mask.sum() == 4
  np.testing.assert_allclose(np.asarray(out["score"])[mask],
                             np.asarray(ref_out["score"])[mask], rtol=1e-5,
                             atol=1e-5)
  for (path, r), x in zip(jax.tree_util.tree_leaves_with_path(ref_g),
                          jax.tree.leaves(g)):
    np.testing.assert_allclose(
        np.asarray(x), np.asarray(r), rtol=1e-5,
        atol=1e-5 * float(jnp.max(jnp.abs(r))),
        err_msg=f"{chunk}, {positions}: {jax.tree_util.keystr(path)}")


def test_target_position_stats_take_the_branch_the_batch_allows(tiny):
  """At most K weighted positions a row: statistics only there (0 elsewhere);
  one row of more: the whole batch's, as without the option."""
  config, _, params = tiny
  rng = np.random.default_rng(0)
  hidden = jnp.asarray(rng.normal(size=(2, 9, config.embed_dim)), jnp.float32)
  targets = jnp.asarray(rng.integers(0, config.num_embed, (2, 9)), jnp.int32)
  weights = jnp.zeros((2, 9)).at[0, 2:5].set(1).at[1, 6:8].set(1)
  stats = lambda k: losses.token_stats_from_hidden(
      config, params["model"], hidden, targets, weights, loss_positions=k,
      yes_id=5, no_id=6)
  full = jax.jit(stats, static_argnums=0)(0)
  on = np.asarray(weights) > 0
  sparse = jax.jit(stats, static_argnums=0)(3)
  for k in ("logp", "correct", "score"):
    np.testing.assert_allclose(np.asarray(sparse[k])[on],
                               np.asarray(full[k])[on], rtol=1e-6)
    assert not np.asarray(sparse[k])[~on].any(), k
  assert (np.asarray(full["logp"]) < 0).all()
  fallback = jax.jit(stats, static_argnums=0)(2)  # row 0 has 3
  for k in ("logp", "correct", "score"):
    np.testing.assert_allclose(np.asarray(fallback[k]), np.asarray(full[k]),
                               rtol=1e-6)


def test_target_position_dpo_equals_full(tiny):
  _, model, params = tiny
  batch = _dpo_batch()
  ref_params = jax.tree.map(lambda x: x * 0.9, params["model"])
  loss = jax.jit(lambda p, k: losses.dpo_loss(
      model, p, batch, ref_params=ref_params, loss_positions=k)[0],
                 static_argnums=1)
  full_w = np.concatenate([batch["chosen_loss_weights"],
                           batch["rejected_loss_weights"]])
  most = int((full_w[:, 1:] > 0).sum(1).max())
  assert 0 < most < full_w.shape[1] - 1
  l0, g0 = jax.value_and_grad(loss)(params, 0)
  l1, g1 = jax.value_and_grad(loss)(params, most)
  np.testing.assert_allclose(float(l1), float(l0), rtol=1e-6)
  for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g0)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5,
                               atol=1e-6 * float(jnp.max(jnp.abs(b))))
