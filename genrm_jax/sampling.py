"""Batched sampling with a KV cache: prefill once, then decode in one jitted
`while_loop`.

* Prompts are left-padded to a length bucket and the batch to a size bucket,
  so a run over many batches compiles once per bucket, not once per batch.
* Memory does not grow with vocabulary x length: the prefill projects only
  the last position onto the vocabulary, and each decode step makes one
  [B, V] row of logits.
* Greedy (temperature 0), temperature, top-k and top-p; stops on EOS / stop
  tokens (in the loop, which exits as soon as every row is done) and on stop
  strings (cut on the host after decoding).
* Returns the sampled tokens and their log-probabilities under the model's
  *unmodified* distribution (temperature 1, no truncation), as scorers
  expect; `sample_logprobs` has those of the distribution actually sampled.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from genrm_jax import sharding as sharding_lib
from genrm_jax.models import gemma


@dataclasses.dataclass(frozen=True)
class SamplingParams:
  max_new_tokens: int = 256
  temperature: float = 0.0  # 0: greedy
  top_k: int = 0  # 0: no top-k truncation
  top_p: float = 1.0  # 1: no nucleus truncation
  stop_tokens: tuple[int, ...] = (gemma.EOS_ID,)
  stop_strings: tuple[str, ...] = ()


@dataclasses.dataclass
class SampleOutput:
  tokens: list[list[int]]  # new tokens, stop token excluded
  logprobs: list[list[float]]  # model log p of each new token
  sample_logprobs: list[list[float]]  # log p under the sampling distribution
  finished: list[bool]  # True if a stop token / string ended the row
  texts: list[str] | None = None
  # With `generate(readout_ids=...)`: row i's log p of each readout id as
  # the token after its returned `tokens[i]` (after a stop-string cut, the
  # token after the stop string), [len(readout_ids)] floats. GenRM-CoT
  # reads p(Yes) after the verification question here instead of a second
  # forward pass over prompt + rationale.
  readout_logprobs: list[np.ndarray] | None = None


def _bucket(n: int, buckets: Sequence[int]) -> int:
  for b in buckets:
    if n <= b:
      return b
  top = buckets[-1]
  return -(-n // top) * top  # beyond the largest: a multiple of it


def _filter_logits(logits, temperature, top_k: int, use_top_p: bool, top_p):
  """Tempered, truncated logits to sample from ([B, V], float32)."""
  logits = logits / jnp.maximum(temperature, 1e-6)
  if top_k:
    kth = jax.lax.top_k(logits, top_k)[0][:, -1:]
    logits = jnp.where(logits < kth, -jnp.inf, logits)
  if use_top_p:
    sorted_logits = jnp.sort(logits, axis=-1)[:, ::-1]
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    # Keep the smallest prefix whose mass reaches top_p (always >= 1 token).
    mass_before = jnp.cumsum(probs, axis=-1) - probs
    keep = mass_before < top_p
    threshold = jnp.min(jnp.where(keep, sorted_logits, jnp.inf), axis=-1,
                        keepdims=True)
    logits = jnp.where(logits < threshold, -jnp.inf, logits)
  return logits


class Sampler:
  """Samples continuations of token prompts from a Gemma model.

  Example:
    sampler = Sampler(config, params, tokenizer=tok)
    out = sampler.generate(["Q: 2+2?"], SamplingParams(max_new_tokens=32))
  """

  def __init__(self, config: gemma.TransformerConfig, params,
               tokenizer=None, mesh: jax.sharding.Mesh | None = None,
               prompt_buckets: Sequence[int] = (32, 64, 128, 256, 512, 1024,
                                                2048),
               batch_buckets: Sequence[int] = (1, 2, 4, 8, 16, 32, 64, 128,
                                               256),
               cache_dtype: Any = None, dedupe_prompts: bool = False,
               unstack_layers: bool = True, cast_params: bool = True,
               per_layer_cache: bool | None = None,
               cache_left_attention: bool | None = None):
    if cast_params:
      # Decoding reads every weight once a step: in the compute dtype, not
      # fp32 cast anew at each step (bit-identical outputs).
      params = gemma.cast_for_compute(config, params)
    if unstack_layers and config.scan_layers and "layers" in params:
      # Under the layer scan each step first slices every layer's weights
      # out of the stacked arrays (a copy of the weights per step);
      # per-layer buffers are read in place. Costs one copy of the layer
      # weights beside the caller's stacked ones (none when cast_params
      # already copied them).
      config = config.replace(scan_layers=False)
      params = gemma.unstack_layers(params)
    # Projections as batched matmuls over their weights' leading axes (heads,
    # gate/up): with plain ones XLA transposed or sliced those weights at
    # every decode step (`batched_projections`; same outputs).
    config = config.replace(batched_projections=True)
    # On a CPU, attention reads the KV cache in place (`cache_left_attention`;
    # with the query on the left XLA:CPU copies each layer's cache, transposed,
    # at every step). Same outputs.
    if cache_left_attention is None:
      cache_left_attention = jax.default_backend() == "cpu"
    config = config.replace(cache_left_attention=bool(cache_left_attention))
    # One KV-cache buffer per layer (`gemma.init_cache(per_layer=True)`)
    # where the layers are a Python loop, on GPUs: in an H100 decode loop
    # the stacked cache costs a copy of each layer's k and v at every step.
    # Not on a CPU, where they ran no faster (2.0-2.2 s against 1.95-2.0 s
    # for a tiny model's 256 x 192 tokens), nor on a TPU, whose v5p decode
    # loop (compiled offline) moved 9.4 GB a Gemma-2B step with them and
    # 9.1 without, at batch 64. Same outputs.
    if per_layer_cache is None:
      per_layer_cache = jax.default_backend() == "gpu"
    self.per_layer_cache = bool(per_layer_cache) and not config.scan_layers
    self.config = config
    self.params = params
    self.tokenizer = tokenizer
    self.mesh = mesh
    self.prompt_buckets = tuple(prompt_buckets)
    self.batch_buckets = tuple(batch_buckets)
    self.cache_dtype = jnp.dtype(cache_dtype or config.dtype)
    # Prefill each distinct prompt once and copy its cache to the rows that
    # repeat it (N samples of a problem, K rationales of a candidate).
    self.dedupe_prompts = dedupe_prompts
    self._model = gemma.Transformer(config)
    self._compiled: dict[tuple, Any] = {}

  # ---------------------------------------------------------------------------
  def generate(self, prompts: Sequence[str] | Sequence[Sequence[int]],
               params: SamplingParams = SamplingParams(),
               rng: jax.Array | int = 0, add_bos: bool = True,
               readout_ids: Sequence[int] = ()) -> SampleOutput:
    """Samples one continuation per prompt (repeat prompts for N samples).

    `rng`: an int or a key for the whole batch, or per-row keys
    (uint32 [len(prompts), 2], e.g. `row_keys(...)`): then row i's samples
    depend on its key alone, not on the batch it shares.
    `readout_ids`: token ids whose log-probs are recorded at every step,
    returned for the position after each row's kept tokens
    (`SampleOutput.readout_logprobs`).
    """
    if isinstance(rng, int):
      rng = jax.random.PRNGKey(rng)
    per_row = np.ndim(rng) == 2
    texts_in = prompts and isinstance(prompts[0], str)
    if texts_in:
      if self.tokenizer is None:
        raise ValueError("Text prompts need a tokenizer: Sampler(..., "
                         "tokenizer=genrm_jax.models.tokenizer.load(path)).")
      prompts = [self.tokenizer.encode(p, add_bos=add_bos) for p in prompts]
    prompts = [list(map(int, p)) for p in prompts]
    if not prompts or min(len(p) for p in prompts) == 0:
      raise ValueError("Every prompt needs at least one token.")

    batch = _bucket(len(prompts), self.batch_buckets)
    if self.mesh is not None:  # the batch must split over the data axes
      shards = _batch_shards(self.mesh)
      batch = -(-batch // shards) * shards
    length = _bucket(max(len(p) for p in prompts), self.prompt_buckets)
    # With `dedupe_prompts`, each distinct prompt is prefilled once and its
    # cache copied to every row that repeats it (N samples, K rationales).
    # The prefill's batch shape then depends on how many prompts repeat,
    # which can move logits in their last bits: off by default, so a row's
    # samples reproduce bit for bit however rows are batched.
    if self.dedupe_prompts:
      index: dict[tuple[int, ...], int] = {}
      row_of = [index.setdefault(tuple(p), len(index)) for p in prompts]
      distinct = [list(p) for p in index]
      prefill_batch = _bucket(len(distinct), self.batch_buckets)
      if self.mesh is not None:
        prefill_batch = -(-prefill_batch // shards) * shards
    else:
      row_of, distinct, prefill_batch = list(range(len(prompts))), prompts, batch
    # Dummy rows (batch padding) read prompt 0; their results are dropped.
    row_of = np.asarray(row_of + [0] * (batch - len(prompts)), np.int32)
    tokens = np.zeros((prefill_batch, length), np.int32)
    segments = np.zeros((prefill_batch, length), np.int32)
    for u, p in enumerate(distinct):  # left-pad: generation starts aligned
      tokens[u, length - len(p):] = p
      segments[u, length - len(p):] = 1
    tokens[len(distinct):, -1] = gemma.BOS_ID  # dummy rows
    segments[len(distinct):, -1] = 1
    live = np.arange(batch) < len(prompts)  # dummy rows start done

    if per_row:
      if len(rng) != len(prompts):
        raise ValueError(f"{len(rng)} row keys for {len(prompts)} prompts.")
      keys = np.zeros((batch, 2), np.uint32)  # dummy rows: any key
      keys[:len(prompts)] = np.asarray(rng, np.uint32)
      rng = keys
    fn = self._get_fn(batch, prefill_batch, length, params, per_row,
                      len(readout_ids))
    stop = np.full((max(len(params.stop_tokens), 1),), -1, np.int32)
    stop[:len(params.stop_tokens)] = params.stop_tokens
    readout = np.asarray(readout_ids, np.int32).reshape(-1)
    args = (self.params, tokens, segments, row_of, live, rng,
            np.float32(params.temperature), np.float32(params.top_p), stop,
            readout)
    if self.mesh is not None:
      rows = sharding_lib.batch_sharding(self.mesh)
      args = (args[0], jax.device_put(tokens, rows),
              jax.device_put(segments, rows), *args[3:])
      with sharding_lib.use_mesh(self.mesh):
        outs = fn(*args)
    else:
      outs = fn(*args)
    (out_tokens, logprobs, sample_lp, lengths, finished,
     readout_lp) = jax.device_get(outs)

    result = SampleOutput([], [], [], [], [] if self.tokenizer else None,
                          [] if len(readout) else None)
    for i in range(len(prompts)):
      n = int(lengths[i])
      toks = out_tokens[i, :n].tolist()
      lps = logprobs[i, :n].tolist()
      slps = sample_lp[i, :n].tolist()
      done = bool(finished[i])
      text = None
      if self.tokenizer is not None:
        text = self.tokenizer.decode(toks)
        text, toks, lps, slps, hit = self._cut_at_stop_string(
            text, toks, lps, slps, params.stop_strings)
        done = done or hit
        result.texts.append(text)
      result.tokens.append(toks)
      result.logprobs.append(lps)
      result.sample_logprobs.append(slps)
      result.finished.append(done)
      if len(readout):  # the distribution after the kept tokens
        result.readout_logprobs.append(readout_lp[i, len(toks)])
    return result

  def _cut_at_stop_string(self, text, toks, lps, slps, stop_strings):
    cuts = [text.find(s) + len(s) for s in stop_strings if s in text]
    if not cuts:
      return text, toks, lps, slps, False
    cut = min(cuts)
    # Keep the shortest token prefix whose text covers the stop string.
    for n in range(1, len(toks) + 1):
      if len(self.tokenizer.decode(toks[:n])) >= cut:
        break
    return text[:cut], toks[:n], lps[:n], slps[:n], True

  # ---------------------------------------------------------------------------
  def _get_fn(self, batch: int, prefill_batch: int, length: int,
              params: SamplingParams, per_row: bool = False,
              num_readout: int = 0):
    key = (batch, prefill_batch, length, params.max_new_tokens, params.top_k,
           params.top_p < 1.0, params.temperature == 0.0,
           len(params.stop_tokens), per_row, num_readout)
    if key not in self._compiled:
      self._compiled[key] = jax.jit(functools.partial(
          self._sample, max_new_tokens=params.max_new_tokens,
          top_k=params.top_k, use_top_p=params.top_p < 1.0,
          greedy=params.temperature == 0.0))
    return self._compiled[key]

  def _sample(self, params, tokens, segments, row_of, live, rng, temperature,
              top_p, stop, readout,
              *, max_new_tokens: int, top_k: int, use_top_p: bool,
              greedy: bool):
    cfg = self.config
    batch = row_of.shape[0]
    length = tokens.shape[1]
    cache = gemma.init_cache(cfg, tokens.shape[0], length + max_new_tokens,
                             self.cache_dtype, per_layer=self.per_layer_cache)
    out = self._model.apply({"params": params}, tokens, segment_ids=segments,
                            cache=cache, return_logits=False)
    # Row r continues distinct prompt row_of[r]: copy its prefilled cache.
    cache = {k: v if k == "end_index" else jax.tree.map(
        lambda a, k=k: jnp.take(a, row_of, axis=gemma.cache_batch_axis(k, a)),
        v) for k, v in out.cache.items()}
    out = out.replace(cache=cache)
    logits = gemma.logits_from_hidden(
        cfg, params, jnp.take(out.hidden_states[:, -1], row_of, axis=0))
    # Next position of every row: the count of its real prompt tokens.
    next_pos = jnp.take(jnp.sum(segments, axis=-1).astype(jnp.int32), row_of)

    def pick(logits, rng):
      log_p = jax.nn.log_softmax(logits, axis=-1)
      if greedy:
        token = jnp.argmax(logits, axis=-1)
        sample_lp = jnp.zeros(token.shape, jnp.float32)
      else:
        filtered = _filter_logits(logits, temperature, top_k, use_top_p, top_p)
        if rng.ndim == 2:  # per-row keys
          token = jax.vmap(jax.random.categorical)(rng, filtered)
        else:
          token = jax.random.categorical(rng, filtered, axis=-1)
        sample_lp = jnp.take_along_axis(
            jax.nn.log_softmax(filtered, axis=-1), token[:, None], 1)[:, 0]
      model_lp = jnp.take_along_axis(log_p, token[:, None], 1)[:, 0]
      return token.astype(jnp.int32), model_lp, sample_lp

    state = dict(
        step=jnp.zeros((), jnp.int32),
        cache=out.cache,
        logits=logits,
        pos=next_pos,
        done=~live,
        lengths=jnp.zeros((batch,), jnp.int32),
        finished=jnp.zeros((batch,), bool),
        tokens=jnp.zeros((batch, max_new_tokens), jnp.int32),
        logprobs=jnp.zeros((batch, max_new_tokens), jnp.float32),
        sample_lp=jnp.zeros((batch, max_new_tokens), jnp.float32),
        # [:, t]: log p of the readout ids given the prompt and t new tokens
        # (t = max_new_tokens is filled after the loop).
        readout=jnp.zeros((batch, max_new_tokens + 1, readout.shape[0]),
                          jnp.float32),
        rng=rng,
    )

    def read(logits):
      return jnp.take(jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1),
                      readout, axis=-1)

    def cond(s):
      return (s["step"] < max_new_tokens) & ~jnp.all(s["done"])

    def body(s):
      if s["rng"].ndim == 2:  # per-row keys: row i's step key is its own
        rng = s["rng"]
        step_rng = jax.vmap(jax.random.fold_in, (0, None))(rng, s["step"])
      else:
        rng, step_rng = jax.random.split(s["rng"])
      token, model_lp, sample_lp = pick(s["logits"], step_rng)
      is_stop = jnp.any(token[:, None] == stop[None, :], axis=-1)
      active = ~s["done"]
      emit = active & ~is_stop
      step = s["step"]
      tokens = s["tokens"].at[:, step].set(jnp.where(emit, token, 0))
      logprobs = s["logprobs"].at[:, step].set(jnp.where(emit, model_lp, 0.))
      slp = s["sample_lp"].at[:, step].set(jnp.where(emit, sample_lp, 0.))
      readout_lp = s["readout"]
      if readout.shape[0]:
        readout_lp = readout_lp.at[:, step].set(read(s["logits"]))
      done = s["done"] | is_stop
      out = self._model.apply(
          {"params": params}, token[:, None], positions=s["pos"][:, None],
          segment_ids=jnp.ones((batch, 1), jnp.int32), cache=s["cache"],
          return_logits=False)
      logits = gemma.logits_from_hidden(cfg, params, out.hidden_states[:, 0])
      return dict(
          step=step + 1, cache=out.cache, logits=logits, pos=s["pos"] + 1,
          done=done, lengths=s["lengths"] + emit.astype(jnp.int32),
          finished=s["finished"] | (active & is_stop), tokens=tokens,
          logprobs=logprobs, sample_lp=slp, readout=readout_lp, rng=rng)

    s = jax.lax.while_loop(cond, body, state)
    readout_lp = s["readout"]
    if readout.shape[0]:  # after all max_new_tokens (rows that ran to the end)
      readout_lp = readout_lp.at[:, max_new_tokens].set(read(s["logits"]))
    return (s["tokens"], s["logprobs"], s["sample_lp"], s["lengths"],
            s["finished"], readout_lp)


def _batch_shards(mesh: jax.sharding.Mesh) -> int:
  spec = sharding_lib.batch_sharding(mesh).spec[0]
  if spec is None:
    return 1
  axes = (spec,) if isinstance(spec, str) else spec
  return int(np.prod([mesh.shape[a] for a in axes]))


def row_keys(seed: int, rows: Sequence[tuple]) -> np.ndarray:
  """Per-row keys uint32 [N, 2] from a seed and, per row, a tuple of ids
  (ints or strings, hashed stably), e.g. `row_keys(0, [(pid, i), ...])`."""
  import hashlib  # pylint: disable=g-import-not-at-top
  out = np.zeros((len(rows), 2), np.uint32)
  for r, parts in enumerate(rows):
    text = "\x1f".join([str(seed)] + [repr(p) for p in parts])
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    out[r] = np.frombuffer(digest[:8], np.uint32)
  return out
