"""The sampler: greedy decoding equals step-by-step argmax of full forward
passes; stop tokens, buckets, log-probs, top-k/top-p and sharding."""

import codecs
import dataclasses

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from genrm_jax import sampling
from genrm_jax import sharding
from genrm_jax.models import gemma
from tests import gemma_reference as ref


@pytest.fixture(scope="module")
def model():
  config = ref.tiny_config("gemma2")
  return config, ref.random_params(config, seed=7)


def _greedy_by_full_passes(config, params, prompt, steps, padded_len=32):
  """Reference: rerun the whole sequence for every new token, as one
  compiled pass over a right-padded row (causal, so the padding after a
  token cannot change its logits): one compile for every length."""
  seq = list(prompt)
  lps = []
  for _ in range(steps):
    row = np.zeros((1, padded_len), np.int32)
    row[0, :len(seq)] = seq
    logits = ref.apply(config, params, row).logits[0, len(seq) - 1]
    tok = int(jnp.argmax(logits))
    lps.append(float(jax.nn.log_softmax(logits)[tok]))
    seq.append(tok)
  return seq[len(prompt):], lps


def test_greedy_matches_full_forward_passes(model):
  config, params = model
  prompts = [[2, 5, 9, 13, 4, 7], [2, 40], [2, 3, 3, 3]]
  sampler = sampling.Sampler(config, params, prompt_buckets=(8,))
  out = sampler.generate(prompts, sampling.SamplingParams(
      max_new_tokens=6, stop_tokens=()))
  for prompt, toks, lps in zip(prompts, out.tokens, out.logprobs):
    want, want_lps = _greedy_by_full_passes(config, params, prompt, 6)
    assert toks == want
    np.testing.assert_allclose(lps, want_lps, rtol=1e-4, atol=1e-5)
  assert out.finished == [False, False, False]


def test_stop_token_ends_row_and_excludes_it(model):
  config, params = model
  prompt = [2, 5, 9, 13]
  want, _ = _greedy_by_full_passes(config, params, prompt, 5)
  stop = want[2]
  first = want.index(stop)
  sampler = sampling.Sampler(config, params)
  out = sampler.generate([prompt], sampling.SamplingParams(
      max_new_tokens=5, stop_tokens=(stop,)))
  assert out.tokens[0] == want[:first] and out.finished == [True]


def test_one_compile_per_bucket(model):
  config, params = model
  sampler = sampling.Sampler(config, params, prompt_buckets=(8, 16))
  p = sampling.SamplingParams(max_new_tokens=3)
  sampler.generate([[2, 4, 5]], p)
  sampler.generate([[2, 4, 5, 6, 7, 8]] * 2, p)  # same buckets (8, batch 2?)
  sampler.generate([[2, 9]], p)
  assert len(sampler._compiled) == 2  # batch buckets 1 and 2, length 8


def test_temperature_sampling_is_seeded_and_top_k_1_is_greedy(model):
  config, params = model
  sampler = sampling.Sampler(config, params)
  prompts = [[2, 5, 9]] * 4
  hot = sampling.SamplingParams(max_new_tokens=8, temperature=1.0,
                                stop_tokens=())
  a = sampler.generate(prompts, hot, rng=1)
  b = sampler.generate(prompts, hot, rng=1)
  c = sampler.generate(prompts, hot, rng=2)
  assert a.tokens == b.tokens and a.tokens != c.tokens
  assert len({tuple(t) for t in a.tokens}) > 1  # rows differ
  greedy = sampler.generate(prompts[:1], sampling.SamplingParams(
      max_new_tokens=8, stop_tokens=()))
  top1 = sampler.generate(prompts[:1], sampling.SamplingParams(
      max_new_tokens=8, temperature=0.7, top_k=1, stop_tokens=()), rng=3)
  assert top1.tokens == greedy.tokens
  np.testing.assert_allclose(top1.sample_logprobs[0], 0.0, atol=1e-6)
  tiny_p = sampler.generate(prompts[:1], sampling.SamplingParams(
      max_new_tokens=8, temperature=1.0, top_p=1e-6, stop_tokens=()), rng=4)
  assert tiny_p.tokens == greedy.tokens


def test_filter_logits_top_p_keeps_smallest_nucleus():
  logits = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05]]))
  out = sampling._filter_logits(logits, 1.0, 0, True, 0.7)
  assert np.isfinite(np.asarray(out[0])).tolist() == [True, True, False, False]
  out = sampling._filter_logits(logits, 1.0, 3, False, 1.0)
  assert np.isfinite(np.asarray(out[0])).tolist() == [True, True, True, False]


def test_sharded_sampling_equals_single_device(model):
  config, params = model
  prompts = [[2, 5, 9, 13], [2, 40, 41], [2, 7]]
  p = sampling.SamplingParams(max_new_tokens=5, stop_tokens=())
  single = sampling.Sampler(config, params).generate(prompts, p)
  mesh = sharding.make_mesh((2, 2, 2))
  sharded_params = jax.device_put(params, sharding.logical_shardings(
      gemma.abstract_params(config), mesh))
  sharded = sampling.Sampler(config, sharded_params, mesh=mesh).generate(
      prompts, p, readout_ids=(5, 17))
  assert sharded.tokens == single.tokens
  want = sampling.Sampler(config, params).generate(prompts, p,
                                                   readout_ids=(5, 17))
  np.testing.assert_allclose(np.stack(sharded.readout_logprobs),
                             np.stack(want.readout_logprobs), rtol=1e-5,
                             atol=1e-6)


def test_repeated_prompts_are_prefilled_once(model):
  """N samples of one prompt share its prefill; results are unchanged."""
  config, params = model
  sampler = sampling.Sampler(config, params, prompt_buckets=(8,),
                             dedupe_prompts=True)
  p1, p2 = [2, 5, 9, 13], [2, 40, 41]
  greedy = sampling.SamplingParams(max_new_tokens=5, stop_tokens=())
  out = sampler.generate([p1, p1, p2, p1], greedy)
  alone = sampler.generate([p1, p2], greedy)
  assert out.tokens == [alone.tokens[0]] * 2 + [alone.tokens[1],
                                                alone.tokens[0]]
  # batch 4, but only 2 distinct prompts went through the prefill
  assert any(key[:2] == (4, 2) for key in sampler._compiled)
  hot = sampling.SamplingParams(max_new_tokens=6, temperature=1.0,
                                stop_tokens=())
  keys = sampling.row_keys(0, [("a", 0), ("a", 1), ("b", 0)])
  mixed = sampler.generate([p1, p1, p2], hot, rng=keys)
  single = sampler.generate([p1], hot, rng=keys[1:2])
  assert mixed.tokens[1] == single.tokens[0]
  np.testing.assert_allclose(mixed.logprobs[1], single.logprobs[0],
                             rtol=1e-5, atol=1e-6)


def test_per_layer_params_decode_like_the_layer_scan(model):
  """The sampler runs the layers as a loop over per-layer weights (no
  per-step slicing of the stacked weights); same logits and same samples as
  the scan over the stack."""
  config, params = model
  tokens = np.array([[2, 5, 9, 13, 4, 7], [2, 40, 41, 0, 0, 0]])
  scanned = gemma.Transformer(config).apply({"params": params}, tokens)
  loop = gemma.Transformer(config.replace(scan_layers=False)).apply(
      {"params": gemma.unstack_layers(params)}, tokens)
  np.testing.assert_allclose(loop.logits, scanned.logits, rtol=1e-5,
                             atol=1e-5)
  sp = sampling.SamplingParams(max_new_tokens=8, temperature=1.0,
                               stop_tokens=())
  prompts = [[2, 5, 9], [2, 40, 41, 42]]
  per_layer = sampling.Sampler(config, params, prompt_buckets=(8,))
  assert "layers" not in per_layer.params and "layer_0" in per_layer.params
  stacked = sampling.Sampler(config, params, prompt_buckets=(8,),
                             unstack_layers=False)
  a = per_layer.generate(prompts, sp, rng=3)
  b = stacked.generate(prompts, sp, rng=3)
  assert a.tokens == b.tokens
  np.testing.assert_allclose(a.logprobs[0], b.logprobs[0], rtol=1e-5,
                             atol=1e-6)


def test_per_layer_cache_samples_like_the_stacked_one(model):
  """The cache layout the sampler picks on a GPU (a buffer a layer) and the
  one it picks on a CPU (stacked): the same samples and log-probs, also
  with repeated prompts (the prefilled cache copied to their rows)."""
  config, params = model
  sp = sampling.SamplingParams(max_new_tokens=8, temperature=1.0,
                               stop_tokens=())
  prompts = [[2, 5, 9], [2, 40, 41, 42], [2, 5, 9]]
  assert not sampling.Sampler(config, params).per_layer_cache  # on a CPU
  out = {}
  for per_layer in (False, True):
    sampler = sampling.Sampler(config, params, prompt_buckets=(8,),
                               per_layer_cache=per_layer,
                               dedupe_prompts=True)
    assert sampler.per_layer_cache == per_layer
    assert sampler.config.batched_projections
    out[per_layer] = sampler.generate(prompts, sp, rng=3)
  assert out[True].tokens == out[False].tokens
  for a, b in zip(out[True].logprobs, out[False].logprobs):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", ["gemma1_mqa", "gemma2"])
def test_cache_left_attention_samples_like_the_query_left_one(family):
  """The attention the sampler picks on a CPU (the cache as the left
  operand) and on a GPU: the same samples and log-probs, for one kv head
  and for grouped queries with soft-capped scores and sliding windows."""
  config = ref.tiny_config(family)
  params = ref.random_params(config, seed=11)
  sp = sampling.SamplingParams(max_new_tokens=8, temperature=1.0,
                               stop_tokens=())
  prompts = [[2, 5, 9], [2, 40, 41, 42, 43, 44, 45], [2, 7]]
  assert sampling.Sampler(config, params).config.cache_left_attention
  out = {}
  for cache_left in (False, True):
    sampler = sampling.Sampler(config, params, prompt_buckets=(8,),
                               cache_left_attention=cache_left)
    assert sampler.config.cache_left_attention == cache_left
    out[cache_left] = sampler.generate(prompts, sp, rng=5)
  assert out[True].tokens == out[False].tokens
  for a, b in zip(out[True].logprobs, out[False].logprobs):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cache_left", [False, True])
def test_cpu_decode_step_reads_the_cache_in_place(cache_left):
  """One decode step compiled for the CPU, one kv head: with the query as
  the left operand XLA copies each layer's k and v cache transposed,
  [B, H, S], at every step; with the cache on the left (the sampler's CPU
  choice) it reads the [B, S, 1, H] buffers where they are."""
  config = ref.tiny_config("gemma1_mqa", head_dim=16).replace(
      scan_layers=False, batched_projections=True,
      cache_left_attention=cache_left)
  params = gemma.unstack_layers(ref.random_params(
      config.replace(scan_layers=True)))
  batch, slots = 8, 40
  cache = gemma.init_cache(config, batch, slots, jnp.float32, per_layer=True)

  def step(params, tokens, cache):
    return gemma.Transformer(config).apply({"params": params}, tokens,
                                           cache=cache).logits

  hlo = jax.jit(step).lower(params, np.ones((batch, 1), np.int32),
                            cache).compile().as_text()
  transposed_cache = f"f32[{batch},{config.head_dim},{slots}]"
  assert (transposed_cache in hlo) != cache_left, transposed_cache


def test_weights_cast_once_to_the_compute_dtype_decode_bit_identically(model):
  """fp32 params (a training export) with bf16 compute: the sampler holds
  the einsum and embedding weights in bf16 (norm scales stay fp32), and
  decodes exactly as with the weights cast at every use."""
  config, params = model
  config = config.replace(dtype="bfloat16")
  cast = gemma.cast_for_compute(config, params)
  dtypes = {"/".join(str(getattr(k, "key", k)) for k in path): x.dtype
            for path, x in jax.tree_util.tree_leaves_with_path(cast)}
  assert dtypes["embedder/input_embedding"] == jnp.bfloat16
  assert dtypes["layers/mlp/linear"] == jnp.bfloat16
  assert dtypes["layers/pre_attention_norm/scale"] == jnp.float32
  assert gemma.cast_for_compute(config.replace(dtype="float32"), params) \
      ["embedder"]["input_embedding"] is params["embedder"]["input_embedding"]
  sp = sampling.SamplingParams(max_new_tokens=8, temperature=1.0,
                               stop_tokens=())
  prompts = [[2, 5, 9], [2, 40, 41, 42]]
  once = sampling.Sampler(config, params, prompt_buckets=(8,))
  assert once.params["layer_0"]["attn"]["q_einsum"]["w"].dtype == jnp.bfloat16
  every_use = sampling.Sampler(config, params, prompt_buckets=(8,),
                               cast_params=False)
  assert every_use.params["layer_0"]["attn"]["q_einsum"]["w"].dtype == jnp.float32
  a = once.generate(prompts, sp, rng=3)
  b = every_use.generate(prompts, sp, rng=3)
  assert a.tokens == b.tokens
  np.testing.assert_array_equal(np.asarray(a.logprobs[1]),
                                np.asarray(b.logprobs[1]))


class _LetterTokenizer:
  """Each id is one letter: a stop string can end mid-generation."""

  token_bytes = tuple(chr(ord("a") + i % 26).encode() for i in range(128))

  def decode(self, ids):
    return "".join(chr(ord("a") + int(i) % 26) for i in ids)


@pytest.mark.parametrize("case", ["to_the_end", "stop_token", "stop_string",
                                  "sampled", "row_limits", "stream"])
def test_readout_logprobs_are_the_next_token_distribution(model, case):
  """`readout_ids`: log p of those ids as the token after each row's kept
  tokens (what GenRM-CoT reads after the verification question), equal to
  a full forward pass over prompt + kept tokens."""
  config, params = model
  prompts = [[2, 5, 9, 13, 4, 7], [2, 40], [2, 3, 3, 3]]
  readout = [5, 17, 40]
  steps = 6
  want_greedy, _ = _greedy_by_full_passes(config, params, prompts[0], steps)
  kw = dict(max_new_tokens=steps, stop_tokens=())
  rng = 0
  if case == "stop_token":
    kw["stop_tokens"] = (want_greedy[3],)
  elif case == "stop_string":
    kw["stop_strings"] = (_LetterTokenizer().decode(want_greedy[1:3]),)
  elif case == "sampled":
    kw["temperature"] = 1.0
    rng = sampling.row_keys(0, [("p", i) for i in range(len(prompts))])
  extra = {}
  if case == "row_limits":  # rows stop at their own limits, mid-loop
    extra = dict(row_max_new_tokens=[2, 6, 4])
  elif case == "stream":  # one slot: each row decodes in the last's slot
    kw["stop_strings"] = (_LetterTokenizer().decode(want_greedy[1:3]),)
    extra = dict(batch_size=1, row_max_new_tokens=[6, 3, 5])
  sampler = sampling.Sampler(config, params, prompt_buckets=(8,),
                             tokenizer=_LetterTokenizer(), stream_headroom=2)
  out = sampler.generate(prompts, sampling.SamplingParams(**kw), rng=rng,
                         readout_ids=readout, **extra)
  plain = sampler.generate(prompts, sampling.SamplingParams(**kw), rng=rng,
                           **extra)
  assert plain.tokens == out.tokens and plain.readout_logprobs is None
  if case in ("stop_token", "stop_string", "stream"):
    assert len(out.tokens[0]) < steps  # the row was cut
  if case in ("row_limits", "stream"):
    assert [len(t) for t in out.tokens][1:] == extra["row_max_new_tokens"][1:]
    assert out.finished[1:] == [False, False]
  for prompt, toks, got in zip(prompts, out.tokens, out.readout_logprobs):
    seq = list(prompt) + list(toks)
    row = np.zeros((1, 16), np.int32)
    row[0, :len(seq)] = seq
    logits = ref.apply(config, params, row).logits[0, len(seq) - 1]
    want = jax.nn.log_softmax(logits)[np.asarray(readout)]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("path", ["one_batch", "stream", "sharded_stream"])
def test_stop_strings_end_rows_inside_the_decode_loop(model, path):
  """A row stops at the step its text first holds a stop string, not at
  `max_new_tokens` as when only the host cut it: the same texts, tokens,
  log-probs and readouts, in fewer decode steps."""
  config, params = model
  prompts = _varied_prompts(12, seed=2)
  keys = sampling.row_keys(2, [("p", i) for i in range(len(prompts))])
  free = sampling.SamplingParams(max_new_tokens=16, temperature=1.0,
                                 stop_tokens=())
  kwargs = dict(prompt_buckets=(16,), tokenizer=_LetterTokenizer(),
                stream_headroom=3)
  host_only = sampling.Sampler(config, params, watch_stop_strings=False,
                               **kwargs)
  texts = host_only.generate(prompts, free, rng=keys).texts
  # Every row holds one of them by its 7th letter; some span 3 letters.
  stops = tuple(t[4:6] if i % 2 else t[3:6] for i, t in enumerate(texts))
  sp = dataclasses.replace(free, stop_strings=stops)
  extra = dict(batch_size=4) if "stream" in path else {}
  want = host_only.generate(prompts, sp, rng=keys, readout_ids=(5, 17),
                            **extra)
  if path == "sharded_stream":  # 4 slots over a 2x2x2 mesh's data axes
    kwargs["mesh"] = mesh = sharding.make_mesh((2, 2, 2))
    params = jax.device_put(params, sharding.logical_shardings(
        gemma.abstract_params(config), mesh))
  got = sampling.Sampler(config, params, **kwargs).generate(
      prompts, sp, rng=keys, readout_ids=(5, 17), **extra)
  assert all(want.finished) and max(map(len, want.tokens)) <= 6
  assert got.texts == want.texts and got.tokens == want.tokens
  assert got.finished == want.finished
  for a, b in zip(got.logprobs, want.logprobs):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.stack(got.readout_logprobs),
                             np.stack(want.readout_logprobs), rtol=1e-4,
                             atol=1e-5)
  if path == "one_batch":
    assert (got.decode_steps, want.decode_steps) == (
        max(map(len, got.tokens)), 16)
  else:  # 12 rows through 4 slots: 3 rounds of <= 6 steps, not of 16
    assert got.decode_steps <= 3 * 6 + 3 < 3 * 16 <= want.decode_steps


def test_stop_string_watch_never_joins_bytes_a_long_token_separates():
  """The watch keeps a token's last `_PIECE_BYTES` bytes; a longer token
  clears the window first, so its kept tail never seems to follow the
  bytes before it (a stop string is missed there, never falsely seen)."""
  long_tail = b"z" * 10 + b"c" + b"q" * (sampling._PIECE_BYTES - 1)
  pieces = [b"", b"ab", b"c", long_tail, b"\n\nQ", b":", "é".encode()]
  table, length, clear = sampling._piece_table(pieces, len(pieces))
  watch = dict(table=table, length=length, clear=clear,
               stops=sampling._stop_patterns(
                   ["bc", "\n\nQ:", "éé"], _LetterTokenizer()))
  width = sampling._watch_window(watch)

  def hits(ids):
    window = jnp.full((1, width), sampling._EMPTY, jnp.int16)
    seen = []
    for i in ids:
      window, hit = sampling._watch_step(window, jnp.asarray([i]),
                                         jnp.asarray([True]), watch)
      seen.append(bool(hit[0]))
    return seen

  assert hits([1, 2]) == [False, True]  # "abc"
  assert hits([4, 5]) == [False, True]  # "\n\nQ:" over two tokens
  assert hits([6, 6]) == [False, True]  # multi-byte characters
  assert hits([1, 3, 2]) == [False, False, False]  # "ab" + 42 bytes + "c"
  assert hits([1, 0, 2]) == [False, False, True]  # control ids add nothing


def _varied_prompts(n, seed=0):
  rs = np.random.RandomState(seed)
  prompts = [[2] + list(rs.randint(3, 100, size=rs.randint(1, 12)))
             for _ in range(n)]
  prompts[5] = prompts[6] = prompts[4]  # repeats: prefilled once if deduped
  return prompts


@pytest.mark.parametrize("variant", ["greedy", "sampled_dedupe",
                                     "gpu_layout"])
def test_continuous_batching_samples_like_one_batch(model, variant):
  """`generate(batch_size=B)` with more prompts than B: B slots, each
  refilled with the next prompt when its row stops (here at mixed lengths,
  with cache shifts every 3 steps); every row's tokens are those of the
  one-batch path, log-probs to float rounding."""
  config, params = model
  prompts = _varied_prompts(23)
  keys = sampling.row_keys(0, [("p", i) for i in range(len(prompts))])
  limits = [1 + (7 * i) % 12 for i in range(len(prompts))]
  sp = sampling.SamplingParams(
      max_new_tokens=12, temperature=0.0 if variant == "greedy" else 1.0,
      stop_tokens=(3, 4, 5))
  sampler = sampling.Sampler(
      config, params, prompt_buckets=(16,), stream_headroom=3,
      dedupe_prompts=variant == "sampled_dedupe",
      # A GPU's layout: a cache buffer per layer, the query-left attention.
      per_layer_cache=variant == "gpu_layout",
      cache_left_attention=variant != "gpu_layout")
  want = sampler.generate(prompts, sp, rng=keys, readout_ids=(5, 17),
                          row_max_new_tokens=limits)
  got = sampler.generate(prompts, sp, rng=keys, readout_ids=(5, 17),
                         row_max_new_tokens=limits, batch_size=4)
  (insert, _, _), = [v for k, v in sampler._compiled.items()
                      if k[0] == "stream"]
  # One program for the first fill, one a prefill size for the refills.
  assert insert[True]._cache_size() == 2 and insert[False]._cache_size() <= 1
  assert len({len(t) for t in want.tokens}) > 5  # rows stop at many steps
  # One batch: until its longest row stops. Four slots, each refilled as
  # soon as its row stops: every slot busy until the queue runs dry, then
  # at most one row's length (12 steps) of tail.
  row_steps = [len(t) + f for t, f in zip(want.tokens, want.finished)]
  assert want.decode_steps == max(row_steps)
  assert -(-sum(row_steps) // 4) <= got.decode_steps <= -(-sum(row_steps) // 4) + 12
  assert got.tokens == want.tokens
  assert got.finished == want.finished
  # (this random model's greedy rows repeat one token and never stop)
  assert any(want.finished) or variant != "sampled_dedupe"
  for a, b in zip(got.logprobs, want.logprobs):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
  np.testing.assert_allclose(np.stack(got.readout_logprobs),
                             np.stack(want.readout_logprobs), rtol=1e-4,
                             atol=1e-4)


def test_continuous_batching_sharded(model):
  """The slots split over a 2x2x2 mesh's data axes, as the one batch does."""
  config, params = model
  prompts = _varied_prompts(11, seed=1)
  keys = sampling.row_keys(1, [("p", i) for i in range(len(prompts))])
  limits = [1 + (5 * i) % 9 for i in range(len(prompts))]
  sp = sampling.SamplingParams(max_new_tokens=9, temperature=1.0,
                               stop_tokens=())
  want = sampling.Sampler(config, params, prompt_buckets=(16,)).generate(
      prompts, sp, rng=keys, row_max_new_tokens=limits)
  mesh = sharding.make_mesh((2, 2, 2))
  sharded_params = jax.device_put(params, sharding.logical_shardings(
      gemma.abstract_params(config), mesh))
  got = sampling.Sampler(config, sharded_params, mesh=mesh,
                         prompt_buckets=(16,), stream_headroom=4).generate(
                             prompts, sp, rng=keys, row_max_new_tokens=limits,
                             batch_size=2)
  assert got.tokens == want.tokens
  assert [len(t) for t in got.tokens] == limits


def test_generate_rejects_bad_row_limits_and_batch_size(model):
  config, params = model
  sampler = sampling.Sampler(config, params)
  with pytest.raises(ValueError, match="2 row_max_new_tokens for 1 prompts"):
    sampler.generate([[2, 5]], row_max_new_tokens=[1, 2])
  with pytest.raises(ValueError, match="row_max_new_tokens must be >= 1"):
    sampler.generate([[2, 5]], row_max_new_tokens=[0])
  with pytest.raises(ValueError, match="batch_size must be >= 1"):
    sampler.generate([[2, 5]], batch_size=0)


def test_prompt_store_reuses_held_prompts_and_never_evicts_one_in_use():
  store = sampling._PromptStore(3, share=True)
  assert store.place([(1,), (1,), (2,)]) == ([0, 0, 1], [(0, (1,)), (1, (2,))])
  assert store.place([(2,), (3,)]) == ([1, 2], [(2, (3,))])
  # (1,) is evicted for (4,); (2,), read by this call, is not (entry 1 is
  # next in line but skipped).
  assert store.place([(2,), (4,), (5,)]) == ([1, 0, 2],
                                             [(0, (4,)), (2, (5,))])
  assert store.place([(2,)]) == ([1], [])
  unshared = sampling._PromptStore(2, share=False)
  assert unshared.place([(1,), (1,)]) == ([0, 1], [(0, (1,)), (1, (1,))])
  with pytest.raises(ValueError, match="3 prompts for 2 entries"):
    unshared.place([(1,)] * 3)


def test_shortest_covering_prefix_equals_a_scan():
  """The stop-string cut's binary search finds the prefix a scan from the
  first token finds, also with characters split over tokens (a dangling
  byte shows as a replacement character, as in SentencePiece's byte
  fallback, so a prefix's text can be longer than the next one's)."""
  def scan(decode, toks, cut):
    return next(n for n in range(1, len(toks) + 1)
                if len(decode(toks[:n])) >= cut)

  pieces = [b"a", b"b", b" ", b"?", "\u20ac".encode(), b"\xe2", b"\x82",
            b"\xac", "\u00e9".encode(), b"\xc3", b"\xa9"]

  def decode(ids):
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    text = decoder.decode(b"".join(pieces[i] for i in ids), final=False)
    return text + "\ufffd" * len(decoder.getstate()[0])  # a dangling byte

  rs = np.random.RandomState(0)
  checked = 0
  for _ in range(300):
    toks = rs.randint(0, len(pieces), size=rs.randint(1, 30)).tolist()
    text = decode(toks)
    for cut in range(1, len(text) + 1):
      if len(decode(toks)) < cut:
        continue
      got = sampling._shortest_covering_prefix(decode, toks, text, cut)
      assert got == scan(decode, toks, cut), (toks, cut)
      checked += 1
  assert checked > 1000
  # A prefix that seems longer than the next: the search must not stop there.
  toks = [0, 5, 6, 7, 3]  # "a", then the three bytes of one character, "?"
  assert [len(decode(toks[:n])) for n in range(1, 6)] == [1, 2, 3, 2, 3]
  assert sampling._shortest_covering_prefix(decode, toks, decode(toks), 3) == 3


def test_top_p_zero_is_greedy_and_bad_values_are_refused(model):
  """top_p = 0 keeps the most likely token (an empty nucleus sampled PAD
  with NaN log-probs); out-of-range values fail where they are given."""
  config, params = model
  sampler = sampling.Sampler(config, params)
  prompts = [[2, 17, 33, 50], [2, 9]]
  greedy = sampler.generate(prompts, sampling.SamplingParams(max_new_tokens=5, stop_tokens=()))
  nucleus = sampler.generate(prompts, sampling.SamplingParams(
      max_new_tokens=5, temperature=1.0, top_p=0.0, stop_tokens=()), rng=3)
  assert nucleus.tokens == greedy.tokens
  assert np.all(np.asarray(nucleus.sample_logprobs) == 0.0)
  for bad in (dict(top_p=-0.1), dict(top_p=1.5), dict(top_k=-1), dict(temperature=-1.0)):
    with pytest.raises(ValueError, match=next(iter(bad))):
      sampling.SamplingParams(**bad)
  too_many = config.num_embed + 1
  with pytest.raises(ValueError, match=f"top_k={too_many} exceeds the vocabulary "
                     f".{config.num_embed} tokens"):
    sampler.generate(prompts, sampling.SamplingParams(temperature=1.0, top_k=too_many))


def test_kept_logprob_leaves_out_the_stop_string():
  """The generator stores the solution without its stop string, and its
  log-probability likewise (as the stop token's is left out)."""
  from genrm_jax.models import tokenizer  # pylint: disable=g-import-not-at-top
  tok = tokenizer.from_spec("byte")
  text = "abc\n\nQ:"
  toks = tok.encode(text, add_bos=False)
  lps = [-1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0][:len(toks)]
  assert sampling.kept_logprob(tok.decode, toks, lps, text, ("\n\nQ:",)) == -6.0
  assert sampling.kept_logprob(tok.decode, toks, lps, text, ("zz",)) == sum(lps)
  assert sampling.kept_logprob(tok.decode, toks[3:], lps[3:], "\n\nQ:", ("\n\nQ:",)) == 0.0
