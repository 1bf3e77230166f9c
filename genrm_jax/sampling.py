"""Batched sampling with a KV cache: prefill once, then decode in one jitted
`while_loop`.

* Prompts are left-padded to a length bucket and the batch to a size bucket,
  so a run over many batches compiles once per bucket, not once per batch.
* Memory does not grow with vocabulary x length: the prefill projects only
  the last position onto the vocabulary, and each decode step makes one
  [B, V] row of logits.
* Greedy (temperature 0), temperature, top-k and top-p; stops on EOS / stop
  tokens and on stop strings, in the loop, which exits as soon as every row
  is done: each row keeps the last bytes of its text (the tokenizer's bytes
  of each token) and stops once they hold a stop string; the host then cuts
  the text after the string's first occurrence. A base model prompted with
  few-shot examples otherwise wrote new questions until `max_new_tokens`.
* Continuous batching (`generate(..., batch_size=B)` with more than B
  prompts): B decode slots; a row that stops frees its slot for the next
  prompt, so the batch never waits for its longest row (a GSM8K CoT batch
  of 64 ran 2.04x the decode steps its rationales needed).
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

  def __post_init__(self):
    # Checked here, where a flag's value arrives, not deep inside a jit.
    if not 0.0 <= self.top_p <= 1.0:
      raise ValueError(f"top_p={self.top_p} must be in [0, 1] (1: no nucleus truncation).")
    if self.top_k < 0:
      raise ValueError(f"top_k={self.top_k} must be >= 0 (0: no top-k truncation).")
    if self.temperature < 0:
      raise ValueError(f"temperature={self.temperature} must be >= 0 (0: greedy).")


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
  # Decode-loop iterations the call ran (all batches / slots together): a
  # batch runs until its longest row stops; continuous batching refills.
  decode_steps: int = 0


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
    # Keep the smallest prefix whose mass reaches top_p, and always the most
    # likely token (top_p = 0 is then greedy, not an empty support).
    mass_before = jnp.cumsum(probs, axis=-1) - probs
    keep = (mass_before < top_p) | (jnp.arange(probs.shape[-1]) == 0)
    threshold = jnp.min(jnp.where(keep, sorted_logits, jnp.inf), axis=-1,
                        keepdims=True)
    logits = jnp.where(logits < threshold, -jnp.inf, logits)
  return logits


def _pick(logits, rng, *, temperature, top_p, top_k: int, use_top_p: bool,
          greedy: bool):
  """The next token of every row, its log p under the model and under the
  sampling distribution. `rng`: one key, or per-row keys [B, 2]."""
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


# Bytes of a token the stop-string watch keeps: a longer token (379 of Gemma
# 3's 262,144, e.g. runs of spaces or "=") keeps its last ones and clears the bytes before
# them, so a stop string across it is missed (the host still cuts there),
# never falsely seen.
_PIECE_BYTES = 32
_EMPTY, _ANY = -1, -2  # window byte not yet written; pattern padding


def _piece_table(token_bytes: Sequence[bytes], num_embed: int):
  """Each id's bytes [V, P] (left-aligned; P: the longest token's, at most
  _PIECE_BYTES), count, and whether it had more; ids past the tokenizer's
  (padded vocabularies) have none."""
  size = max(len(token_bytes), num_embed)
  width = max(1, min(_PIECE_BYTES, max(map(len, token_bytes), default=1)))
  table = np.zeros((size, width), np.uint8)
  length = np.zeros(size, np.int32)
  clear = np.zeros(size, bool)
  for i, piece in enumerate(token_bytes):
    tail = piece[-width:]
    table[i, :len(tail)] = np.frombuffer(tail, np.uint8)
    length[i], clear[i] = len(tail), len(piece) > width
  return table, length, clear


def _stop_patterns(stop_strings: Sequence[str], tokenizer) -> np.ndarray:
  """The stop strings' bytes [S, M] (right-aligned, padded with _ANY) the
  decode loop watches for. Empty where there is no tokenizer; a string
  that starts with whitespace is left out when `decode` drops the first
  token's leading space (the loop would see a space the text lacks): such
  strings are cut on the host only."""
  if tokenizer is None or not hasattr(tokenizer, "token_bytes"):
    return np.zeros((0, 1), np.int16)
  strips = getattr(tokenizer, "strips_leading_space", False)
  patterns = [s.encode("utf-8") for s in stop_strings
              if s and not (strips and s[0].isspace())]
  out = np.full((len(patterns), max(map(len, patterns), default=1)), _ANY,
                np.int16)
  for i, p in enumerate(patterns):
    out[i, out.shape[1] - len(p):] = np.frombuffer(p, np.uint8)
  return out


def no_watch() -> dict[str, np.ndarray]:
  """The decode loop's stop-string arguments when it watches for none."""
  return dict(stops=np.zeros((0, 1), np.int16),
              table=np.zeros((1, 1), np.uint8), length=np.zeros(1, np.int32),
              clear=np.zeros(1, bool))


def _watch_window(watch) -> int:
  """Bytes a row's window keeps: any stop string the newest token
  completes lies within them (0: nothing to watch)."""
  num, longest = watch["stops"].shape
  return longest + watch["table"].shape[1] if num else 0


def _watch_step(window, token, emit, watch):
  """Appends each emitting row's token bytes to its window [B, W]; returns
  the windows and which rows' windows now hold a stop string."""
  width = window.shape[1]
  piece = jnp.take(watch["table"], token, axis=0).astype(jnp.int16)
  count = jnp.take(watch["length"], token)
  both = jnp.concatenate([window, piece], axis=1)
  new = jnp.take_along_axis(
      both, count[:, None] + jnp.arange(width)[None, :], axis=1)
  cleared = (jnp.take(watch["clear"], token)[:, None] &
             (jnp.arange(width)[None, :] < width - count[:, None]))
  new = jnp.where(cleared, _EMPTY, new)
  window = jnp.where(emit[:, None], new, window)
  # A string the new token completes ends within its bytes: at one of the
  # window's last P positions (before them, the row would have stopped).
  stops = watch["stops"]
  longest, newest = stops.shape[1], watch["table"].shape[1]
  ends = width - newest + 1 + jnp.arange(newest)
  spans = window[:, ends[:, None] - longest + jnp.arange(longest)[None, :]]
  pattern = stops[None, :, None, :]  # [1, S, 1, M] against [B, 1, P, M]
  match = (pattern == _ANY) | (spans[:, None] == pattern)
  return window, emit & jnp.any(jnp.all(match, axis=-1), axis=(1, 2))


def eos_stop_tokens(tokenizer) -> tuple[int, ...]:
  """A row's stop tokens: Gemma's EOS and the tokenizer's own."""
  return tuple(sorted({gemma.EOS_ID, tokenizer.eos_id}))


def without_stop_string(text: str, stop_strings: Sequence[str]) -> str:
  """`text` without the stop string it ends with (the sampler's cut keeps
  the string; callers that store the text drop it)."""
  return next((text[:-len(s)] for s in stop_strings if s and text.endswith(s)),
              text)


def without_stop_string_tokens(decode, toks: Sequence[int], text: str,
                               stop_strings: Sequence[str]) -> list[int]:
  """The tokens that make `text` without the stop string it ends with (the
  sampler keeps it). `decode`: the tokenizer's decode; `toks`, `text`: one
  row of `SampleOutput`."""
  kept = without_stop_string(text, stop_strings)
  if len(kept) == len(text) or not toks:
    return list(toks)
  if not kept:
    return []
  return list(toks[:_shortest_covering_prefix(decode, toks, text, len(kept))])


def kept_logprob(decode, toks, logprobs, text: str, stop_strings: Sequence[str]) -> float:
  """The summed log p of the tokens that make `text` without its stop string
  (what callers store; the stop string's own tokens excluded, as the stop
  token's are)."""
  n = len(without_stop_string_tokens(decode, toks, text, stop_strings))
  return float(sum(logprobs[:n]))


def _read(logits, readout):
  """log p of the readout ids, [B, len(readout)]."""
  return jnp.take(jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1),
                  readout, axis=-1)


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
               cache_left_attention: bool | None = None,
               stream_headroom: int = 64, watch_stop_strings: bool = True):
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
    # Continuous batching (`generate(batch_size=...)`): cache columns beyond
    # prompt + max_new_tokens; the cache is shifted once every this many
    # steps, and attention reads this many more columns per step.
    if stream_headroom < 1:
      raise ValueError(f"stream_headroom must be >= 1, not {stream_headroom}.")
    self.stream_headroom = int(stream_headroom)
    # Stop strings end rows inside the decode loop (False: only the host's
    # cut after decoding, as before; same outputs, more decode steps).
    self.watch_stop_strings = watch_stop_strings
    self._pieces = None  # the tokenizer's bytes per id, on device (lazily)
    self._model = gemma.Transformer(config)
    self._compiled: dict[tuple, Any] = {}

  # ---------------------------------------------------------------------------
  def generate(self, prompts: Sequence[str] | Sequence[Sequence[int]],
               params: SamplingParams = SamplingParams(),
               rng: jax.Array | int = 0, add_bos: bool = True,
               readout_ids: Sequence[int] = (),
               batch_size: int | None = None,
               row_max_new_tokens: Sequence[int] | None = None
               ) -> SampleOutput:
    """Samples one continuation per prompt (repeat prompts for N samples).

    `rng`: an int or a key for the whole batch, or per-row keys
    (uint32 [len(prompts), 2], e.g. `row_keys(...)`): then row i's samples
    depend on its key alone, not on the batch it shares.
    `readout_ids`: token ids whose log-probs are recorded at every step,
    returned for the position after each row's kept tokens
    (`SampleOutput.readout_logprobs`).
    `batch_size`: with more prompts than this, decode `batch_size` rows at a
    time with continuous batching: a row that stops frees its slot for the
    next prompt (in order). With per-row keys a row's tokens are those of
    the one-batch path (to float rounding); with one key, the stream draws
    a key per row from it (`jax.random.split`), so its samples differ.
    `row_max_new_tokens`: a smaller limit per row (the benchmarks give rows
    the lengths of real rationales); `params.max_new_tokens` bounds them.
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
    if params.top_k > self.config.num_embed:
      raise ValueError(f"top_k={params.top_k} exceeds the vocabulary "
                       f"({self.config.num_embed} tokens).")
    if per_row and len(rng) != len(prompts):
      raise ValueError(f"{len(rng)} row keys for {len(prompts)} prompts.")
    limits = np.full(len(prompts), params.max_new_tokens, np.int32)
    if row_max_new_tokens is not None:
      if len(row_max_new_tokens) != len(prompts):
        raise ValueError(f"{len(row_max_new_tokens)} row_max_new_tokens for "
                         f"{len(prompts)} prompts.")
      limits = np.minimum(limits, np.asarray(row_max_new_tokens, np.int32))
      if limits.min() < 1:
        raise ValueError("row_max_new_tokens must be >= 1.")
    stop = np.full((max(len(params.stop_tokens), 1),), -1, np.int32)
    stop[:len(params.stop_tokens)] = params.stop_tokens
    stop = (stop, self._watch(params.stop_strings))
    readout = np.asarray(readout_ids, np.int32).reshape(-1)
    if batch_size is not None and batch_size < 1:
      raise ValueError(f"batch_size must be >= 1, not {batch_size}.")
    if batch_size is not None and len(prompts) > batch_size:
      keys = (np.asarray(rng, np.uint32) if per_row else
              np.asarray(jax.random.split(rng, len(prompts)), np.uint32))
      arrays, steps = self._stream(prompts, params, keys, limits, stop,
                                   readout, batch_size)
    else:
      arrays, steps = self._one_batch(prompts, params, rng, per_row, limits,
                                      stop, readout)
      steps = int(steps)
    out = self._output(len(prompts), arrays, params, len(readout))
    out.decode_steps = steps
    return out

  def _watch(self, stop_strings) -> dict[str, Any]:
    """The decode loop's stop-string arguments: the patterns, and the
    tokenizer's bytes per id (empty stand-ins when there is nothing to
    watch)."""
    if not self.watch_stop_strings:
      return no_watch()
    stops = _stop_patterns(stop_strings, self.tokenizer)
    if not len(stops):
      return no_watch()
    if self._pieces is None:  # once: on the device (every mesh device)
      where = None if self.mesh is None else jax.sharding.NamedSharding(
          self.mesh, jax.sharding.PartitionSpec())
      self._pieces = dict(zip(("table", "length", "clear"), jax.device_put(
          _piece_table(self.tokenizer.token_bytes, self.config.num_embed),
          where)))
    return dict(self._pieces, stops=stops)

  def _one_batch(self, prompts, params, rng, per_row, limits, stop, readout):
    """Every prompt in one batch: prefill, then decode until all stop."""
    batch = _bucket(len(prompts), self.batch_buckets)
    if self.mesh is not None:  # the batch must split over the data axes
      batch = _round_to(batch, _batch_shards(self.mesh))
    length = _bucket(max(len(p) for p in prompts), self.prompt_buckets)
    tokens, segments, row_of = self._prefill_inputs(prompts, length, batch)
    prefill_batch = tokens.shape[0]
    live = np.arange(batch) < len(prompts)  # dummy rows start done
    row_limit = np.ones(batch, np.int32)
    row_limit[:len(prompts)] = limits
    if per_row:
      keys = np.zeros((batch, 2), np.uint32)  # dummy rows: any key
      keys[:len(prompts)] = np.asarray(rng, np.uint32)
      rng = keys
    fn = self._get_fn(batch, prefill_batch, length, params, per_row,
                      len(readout))
    args = (self.params, tokens, segments, row_of, live, row_limit, rng,
            np.float32(params.temperature), np.float32(params.top_p), stop,
            readout)
    if self.mesh is not None:
      rows = sharding_lib.batch_sharding(self.mesh)
      args = (args[0], jax.device_put(tokens, rows),
              jax.device_put(segments, rows), *args[3:])
    return jax.device_get(self._run_fn(fn, *args))

  def _prefill_inputs(self, prompts, length: int, batch: int):
    """Left-padded prompt rows [P, length] and their segment ids, and for
    each of `batch` rows the prompt row it continues (`row_of`).

    With `dedupe_prompts`, each distinct prompt is prefilled once and its
    cache copied to every row that repeats it (N samples, K rationales).
    The prefill's batch shape then depends on how many prompts repeat,
    which can move logits in their last bits: off by default, so a row's
    samples reproduce bit for bit however rows are batched."""
    if self.dedupe_prompts:
      index: dict[tuple[int, ...], int] = {}
      row_of = [index.setdefault(tuple(p), len(index)) for p in prompts]
      distinct = [list(p) for p in index]
      prefill_batch = _bucket(len(distinct), self.batch_buckets)
      if self.mesh is not None:
        prefill_batch = _round_to(prefill_batch, _batch_shards(self.mesh))
    else:
      row_of, distinct, prefill_batch = list(range(len(prompts))), prompts, batch
    # Dummy rows (batch padding) read prompt 0; their results are dropped.
    row_of = np.asarray(row_of + [0] * (batch - len(prompts)), np.int32)
    tokens, segments = _left_padded(distinct, length, prefill_batch)
    return tokens, segments, row_of

  def _output(self, n: int, arrays, params: SamplingParams,
              num_readout: int) -> SampleOutput:
    out_tokens, logprobs, sample_lp, lengths, finished, readout_lp = arrays
    result = SampleOutput([], [], [], [], [] if self.tokenizer else None,
                          [] if num_readout else None)
    for i in range(n):
      k = int(lengths[i])
      toks = out_tokens[i, :k].tolist()
      lps = logprobs[i, :k].tolist()
      slps = sample_lp[i, :k].tolist()
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
      if num_readout:  # the distribution after the kept tokens
        result.readout_logprobs.append(readout_lp[i, len(toks)])
    return result

  def _cut_at_stop_string(self, text, toks, lps, slps, stop_strings):
    cuts = [text.find(s) + len(s) for s in stop_strings if s in text]
    if not cuts:
      return text, toks, lps, slps, False
    cut = min(cuts)
    n = _shortest_covering_prefix(self.tokenizer.decode, toks, text, cut)
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

  def _sample(self, params, tokens, segments, row_of, live, row_limit, rng,
              temperature, top_p, stop, readout,
              *, max_new_tokens: int, top_k: int, use_top_p: bool,
              greedy: bool):
    cfg = self.config
    stop, watch = stop
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

    pick = functools.partial(_pick, temperature=temperature, top_p=top_p,
                             top_k=top_k, use_top_p=use_top_p, greedy=greedy)

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
        # The last bytes of each row's text, for its stop strings.
        window=jnp.full((batch, _watch_window(watch)), _EMPTY, jnp.int16),
        rng=rng,
    )

    read = functools.partial(_read, readout=readout)

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
      window, hit = s["window"], jnp.zeros_like(emit)
      if window.shape[1]:
        window, hit = _watch_step(window, token, emit, watch)
      # Done after a stop token or string, or the row's own token limit.
      done = s["done"] | is_stop | hit | (step + 1 >= row_limit)
      out = self._model.apply(
          {"params": params}, token[:, None], positions=s["pos"][:, None],
          segment_ids=jnp.ones((batch, 1), jnp.int32), cache=s["cache"],
          return_logits=False)
      logits = gemma.logits_from_hidden(cfg, params, out.hidden_states[:, 0])
      return dict(
          step=step + 1, cache=out.cache, logits=logits, pos=s["pos"] + 1,
          done=done, lengths=s["lengths"] + emit.astype(jnp.int32),
          finished=s["finished"] | (active & is_stop) | hit, tokens=tokens,
          logprobs=logprobs, sample_lp=slp, readout=readout_lp,
          window=window, rng=rng)

    s = jax.lax.while_loop(cond, body, state)
    readout_lp = s["readout"]
    if readout.shape[0]:  # after the last step (rows that ran to their limit)
      readout_lp = readout_lp.at[:, s["step"]].set(read(s["logits"]))
    return (s["tokens"], s["logprobs"], s["sample_lp"], s["lengths"],
            s["finished"], readout_lp), s["step"]

  # ---------------------------------------------------------------------------
  # Continuous batching.
  #
  # `slots` rows decode together, as in `_sample`, but a row that stops is
  # replaced by the next prompt: its slot's cache row is refilled with the
  # new prompt's prefilled KV (`_insert`) while the other rows keep theirs.
  # Every row writes its next token at one shared cache column (`end_index`,
  # as the model's cache expects), so a new prompt is written just before
  # that column, [end - L, end), where L is the prompt bucket; its earlier
  # columns are marked empty. When the columns run out, every row's cache is
  # shifted left (`_compact`): a live row spans at most its prompt bucket
  # plus `max_new_tokens` columns, so the cache needs L + max_new_tokens +
  # `stream_headroom` columns, and one shift every `stream_headroom` steps.
  # Prefilled prompts wait in a store of `slots` entries (first in, first
  # out); with `dedupe_prompts`, a prompt still there is copied, not
  # prefilled again, however its rows are split between refills (the K
  # rationales of a candidate arrive a few at a time). The host refills
  # slots between jitted decode loops, each of which runs until `want` rows
  # have stopped.
  # ---------------------------------------------------------------------------
  def _stream(self, prompts, params: SamplingParams, keys, limits, stop,
              readout, slots: int):
    n, max_new = len(prompts), params.max_new_tokens
    if self.mesh is not None:
      slots = _round_to(slots, _batch_shards(self.mesh))
    # Every slot's cache spans the longest prompt: the bucket, or the next
    # multiple of 128 where that is shorter. A stream is one program
    # however its rows vary (not one per batch), and attention reads every
    # column at every step: GSM8K CoT prompts of up to 577 tokens took the
    # 1,024 bucket, and a tiny model's step 1.4x the time of 640.
    most = max(len(p) for p in prompts)
    length = min(_bucket(most, self.prompt_buckets), _round_to(most, 128))
    columns = length + max_new + self.stream_headroom
    shift = self.stream_headroom
    state = self._stream_state(slots, columns, length, max_new, len(readout),
                               _watch_window(stop[1]))
    insert, decode, compact = self._stream_fns(params, len(readout), shift)
    scalars = (np.float32(params.temperature), np.float32(params.top_p), stop,
               readout)
    store = _PromptStore(slots, self.dedupe_prompts)

    result = (np.zeros((n, max_new), np.int32),
              np.zeros((n, max_new), np.float32),
              np.zeros((n, max_new), np.float32), np.zeros(n, np.int32),
              np.zeros(n, bool), np.zeros((n, max_new + 1, len(readout)),
                                          np.float32))
    owner = np.full(slots, -1)  # the prompt each slot decodes, -1: free
    end, queued = length, 0  # the cache's write column; prompts started
    # Refill once an eighth of the slots are free: each refill is a call
    # and a host round trip.
    refill_every = max(1, slots // 8)
    steps = 0
    while True:
      free = np.flatnonzero(owner < 0)
      if queued < n and len(free):
        take = min(len(free), n - queued)
        # The first fill in one call (its prompts deduplicated together);
        # refills `refill_every` rows a call, padded, so one program of
        # each prefill size serves them all: each is a compile of the model.
        per_call = slots if queued == 0 else refill_every
        for lo in range(0, take, per_call):
          rows = list(range(queued + lo, queued + min(lo + per_call, take)))
          state = self._insert_rows(insert, state, store, prompts, rows,
                                    free[lo:lo + len(rows)], keys, limits,
                                    length, readout, per_call)
        owner[free[:take]] = range(queued, queued + take)
        queued += take
      if not (owner >= 0).any():
        break
      if end == columns:
        state = self._run_fn(compact, state)
        end -= shift
      want = min(refill_every, n - queued) if queued < n else slots + 1
      state = self._run_fn(decode, self.params, state, np.int32(want),
                           *scalars)
      done, new_end = jax.device_get((state["done"],
                                      state["cache"]["end_index"]))
      steps += int(new_end) - end
      end = int(new_end)
      stopped = np.flatnonzero((owner >= 0) & done)
      if len(stopped):
        got = jax.device_get(tuple(state[k] for k in _STREAM_OUTPUTS))
        for out, part in zip(result, got):
          out[owner[stopped]] = part[stopped]
        owner[stopped] = -1
    return result, steps

  def _run_fn(self, fn, *args):
    """`fn(*args)`, under the sampler's mesh when it has one."""
    if self.mesh is None:
      return fn(*args)
    with sharding_lib.use_mesh(self.mesh):
      return fn(*args)

  def _insert_rows(self, insert, state, store, prompts, rows, slots, keys,
                   limits, length, readout, batch):
    """Starts prompts `rows` in cache rows `slots` (a call of `batch` rows,
    padded), prefilling those the store does not hold."""
    entries, fresh = store.place([tuple(prompts[r]) for r in rows])
    batch = _bucket(batch, self.batch_buckets)
    prefill_batch = _bucket(max(len(fresh), 1), self.batch_buckets)
    if self.mesh is not None:
      batch = _round_to(batch, _batch_shards(self.mesh))
      prefill_batch = _round_to(prefill_batch, _batch_shards(self.mesh))
    num_slots = state["pos"].shape[0]
    tokens, segments = _left_padded([p for _, p in fresh], length,
                                    prefill_batch)
    # Out-of-range slots and entries mark padding rows: their writes drop.
    fresh_entry = np.full(prefill_batch, num_slots, np.int32)
    fresh_entry[:len(fresh)] = [entry for entry, _ in fresh]
    row_entry = np.zeros(batch, np.int32)
    row_entry[:len(rows)] = entries
    slot_of = np.full(batch, num_slots, np.int32)
    slot_of[:len(rows)] = slots
    new_keys = np.zeros((batch, 2), np.uint32)
    new_keys[:len(rows)] = keys[rows]
    new_limits = np.ones(batch, np.int32)
    new_limits[:len(rows)] = limits[rows]
    if self.mesh is not None:
      rows_sharding = sharding_lib.batch_sharding(self.mesh)
      tokens, segments = jax.device_put((tokens, segments), rows_sharding)
    return self._run_fn(insert[bool(fresh)], self.params, state, tokens,
                        segments, fresh_entry, row_entry, slot_of, new_keys,
                        new_limits, readout)

  def _stream_state(self, slots, columns, length, max_new, num_readout,
                    window: int = 0):
    cfg = self.config
    cache = gemma.init_cache(cfg, slots, columns, self.cache_dtype,
                             per_layer=self.per_layer_cache)
    cache["end_index"] = jnp.asarray(length, jnp.int32)
    store = gemma.init_cache(cfg, slots, length, self.cache_dtype,
                             per_layer=self.per_layer_cache)
    del store["end_index"]
    store["logits"] = jnp.zeros((slots, cfg.num_embed), jnp.float32)
    state = dict(
        cache=cache,
        store=store,  # prefilled prompts: KV, and logits after the last
        logits=jnp.zeros((slots, cfg.num_embed), jnp.float32),
        pos=jnp.zeros((slots,), jnp.int32),
        done=jnp.ones((slots,), bool),  # empty slots count as stopped
        steps=jnp.zeros((slots,), jnp.int32),  # decode steps of the row
        limit=jnp.ones((slots,), jnp.int32),
        keys=jnp.zeros((slots, 2), jnp.uint32),
        lengths=jnp.zeros((slots,), jnp.int32),
        finished=jnp.zeros((slots,), bool),
        tokens=jnp.zeros((slots, max_new), jnp.int32),
        logprobs=jnp.zeros((slots, max_new), jnp.float32),
        sample_lp=jnp.zeros((slots, max_new), jnp.float32),
        readout=jnp.zeros((slots, max_new + 1, num_readout), jnp.float32),
        window=jnp.full((slots, window), _EMPTY, jnp.int16))
    if self.mesh is None:
      return state
    spec = sharding_lib.batch_sharding(self.mesh).spec[0]

    def put(path, x):
      if x.ndim == 0:
        return jax.device_put(x, jax.sharding.NamedSharding(
            self.mesh, jax.sharding.PartitionSpec()))
      name = getattr(path[1] if len(path) > 1 else path[0], "key", "")
      axis = (gemma.cache_batch_axis(name, x)
              if path[0].key in ("cache", "store") else 0)
      return jax.device_put(x, jax.sharding.NamedSharding(
          self.mesh, jax.sharding.PartitionSpec(*([None] * axis), spec)))
    return jax.tree_util.tree_map_with_path(put, state)

  def _stream_fns(self, params: SamplingParams, num_readout: int,
                  shift: int):
    key = ("stream", params.max_new_tokens, params.top_k, params.top_p < 1.0,
           params.temperature == 0.0, len(params.stop_tokens), num_readout,
           shift)
    if key not in self._compiled:
      # The state is donated: each call updates the cache in place.
      insert = {prefill: jax.jit(functools.partial(self._insert,
                                                   prefill=prefill),
                                 donate_argnums=(1,))
                for prefill in (False, True)}
      self._compiled[key] = (
          insert,
          jax.jit(functools.partial(
              self._decode, max_new_tokens=params.max_new_tokens,
              top_k=params.top_k, use_top_p=params.top_p < 1.0,
              greedy=params.temperature == 0.0), donate_argnums=(1,)),
          jax.jit(functools.partial(self._compact, shift=shift),
                  donate_argnums=(0,)))
    return self._compiled[key]

  def _insert(self, params, state, tokens, segments, fresh_entry, row_entry,
              slot_of, new_keys, new_limits, readout, *, prefill: bool):
    """Prefills `tokens` into store entries `fresh_entry` (with `prefill`),
    then copies store entry `row_entry[r]` into cache row `slot_of[r]`."""
    cfg = self.config
    length = tokens.shape[1]
    store = state["store"]
    if prefill:
      cache = gemma.init_cache(cfg, tokens.shape[0], length, self.cache_dtype,
                               per_layer=self.per_layer_cache)
      out = self._model.apply({"params": params}, tokens,
                              segment_ids=segments, cache=cache,
                              return_logits=False)

      def keep(name, buffer, new):
        lead = (slice(None),) * gemma.cache_batch_axis(name, buffer)
        return buffer.at[lead + (fresh_entry,)].set(new.astype(buffer.dtype),
                                                   mode="drop")

      store = {name: jax.tree.map(functools.partial(keep, name), store[name],
                                  out.cache[name])
               for name in ("k", "v", "positions", "segment_ids")}
      store["logits"] = state["store"]["logits"].at[fresh_entry].set(
          gemma.logits_from_hidden(cfg, params, out.hidden_states[:, -1]),
          mode="drop")
    main = state["cache"]
    # Row r's prompt goes to columns [end - length, end) of cache row
    # slot_of[r] (out of range for padding rows: dropped).
    cols = main["end_index"] - length + jnp.arange(length)
    at = (slot_of[:, None], cols[None, :])

    def put(name, buffer, new):
      new = jnp.take(new, row_entry, axis=gemma.cache_batch_axis(name, new))
      lead = (slice(None),) * gemma.cache_batch_axis(name, buffer)
      return buffer.at[lead + at].set(new.astype(buffer.dtype), mode="drop")

    new_cache = {
        name: jax.tree.map(functools.partial(put, name), main[name],
                           store[name]) for name in ("k", "v", "positions")}
    # The slot's earlier columns (its last row's) are empty from now on.
    segment_ids = main["segment_ids"].at[slot_of].set(0, mode="drop")
    new_cache["segment_ids"] = put("segment_ids", segment_ids,
                                   store["segment_ids"])
    new_cache["end_index"] = main["end_index"]

    def fill(x, value):
      return x.at[slot_of].set(value, mode="drop")

    logits = jnp.take(store["logits"], row_entry, axis=0)
    prompt_len = jnp.take(jnp.sum(store["segment_ids"], axis=-1), row_entry)
    new = dict(state, cache=new_cache, store=store,
               logits=fill(state["logits"], logits),
               pos=fill(state["pos"], prompt_len.astype(jnp.int32)),
               done=fill(state["done"], False), steps=fill(state["steps"], 0),
               limit=fill(state["limit"], new_limits),
               keys=fill(state["keys"], new_keys),
               lengths=fill(state["lengths"], 0),
               finished=fill(state["finished"], False),
               window=fill(state["window"], _EMPTY))
    if readout.shape[0]:  # log p of the readout ids before any new token
      new["readout"] = state["readout"].at[slot_of, 0].set(
          _read(logits, readout), mode="drop")
    return new

  def _decode(self, params, state, want, temperature, top_p, stop, readout,
              *, max_new_tokens: int, top_k: int, use_top_p: bool,
              greedy: bool):
    """Decodes every slot until `want` rows have stopped, all have, or the
    cache's columns run out. Row i's step t uses its key folded with t, as
    `_sample` does with per-row keys."""
    cfg = self.config
    stop, watch = stop
    slots = state["pos"].shape[0]
    columns = state["cache"]["segment_ids"].shape[1]
    rows = jnp.arange(slots)
    pick = functools.partial(_pick, temperature=temperature, top_p=top_p,
                             top_k=top_k, use_top_p=use_top_p, greedy=greedy)

    def cond(c):
      s, stopped = c
      return ((stopped < want) & ~jnp.all(s["done"]) &
              (s["cache"]["end_index"] < columns))

    def body(c):
      s, stopped = c
      step_keys = jax.vmap(jax.random.fold_in)(s["keys"], s["steps"])
      token, model_lp, sample_lp = pick(s["logits"], step_keys)
      is_stop = jnp.any(token[:, None] == stop[None, :], axis=-1)
      active = ~s["done"]
      emit = active & ~is_stop
      col = jnp.minimum(s["steps"], max_new_tokens - 1)

      # This step's entry of the rows that emit, as a select over the
      # buffer: on a CPU a scatter of one entry a row cost 15% of a tiny
      # model's step.
      here = emit[:, None] & (jnp.arange(max_new_tokens)[None, :] ==
                              col[:, None])

      def put(buffer, value):
        return jnp.where(here, value[:, None], buffer)

      steps = s["steps"] + active.astype(jnp.int32)
      lengths = s["lengths"] + emit.astype(jnp.int32)
      window, hit = s["window"], jnp.zeros_like(emit)
      if window.shape[1]:
        window, hit = _watch_step(window, token, emit, watch)
      done = s["done"] | is_stop | hit | (steps >= s["limit"])
      out = self._model.apply(
          {"params": params}, token[:, None], positions=s["pos"][:, None],
          segment_ids=jnp.ones((slots, 1), jnp.int32), cache=s["cache"],
          return_logits=False)
      logits = gemma.logits_from_hidden(cfg, params, out.hidden_states[:, 0])
      readout_lp = s["readout"]
      if readout.shape[0]:  # the distribution after the new token
        after = emit[:, None] & (jnp.arange(max_new_tokens + 1)[None, :] ==
                                 lengths[:, None])
        readout_lp = jnp.where(after[:, :, None],
                               _read(logits, readout)[:, None], readout_lp)
      new = dict(
          s, cache=out.cache, logits=logits, pos=s["pos"] + 1, done=done,
          steps=steps, lengths=lengths, window=window,
          finished=s["finished"] | (active & is_stop) | hit,
          tokens=put(s["tokens"], token), logprobs=put(s["logprobs"], model_lp),
          sample_lp=put(s["sample_lp"], sample_lp), readout=readout_lp)
      return new, stopped + jnp.sum(done & active).astype(jnp.int32)

    state, _ = jax.lax.while_loop(cond, body, (state, jnp.zeros((), jnp.int32)))
    return state

  def _compact(self, state, *, shift: int):
    """Shifts every cache row `shift` columns left (the columns it drops
    belong to no live row) and marks the freed right end empty."""
    cache = state["cache"]

    def left(name, x):
      return jnp.roll(x, -shift, axis=gemma.cache_batch_axis(name, x) + 1)

    new = {name: jax.tree.map(functools.partial(left, name), cache[name])
           for name in ("k", "v", "positions")}
    new["segment_ids"] = left("segment_ids", cache["segment_ids"]).at[
        :, -shift:].set(0)
    new["end_index"] = cache["end_index"] - shift
    return dict(state, cache=new)


class _PromptStore:
  """Which prompt each of `size` store entries holds (host side of
  `Sampler._stream`'s store): entries are reused first in, first out."""

  def __init__(self, size: int, share: bool):
    self.size, self.share = size, share
    self.entry_of: dict[tuple[int, ...], int] = {}
    self.held: list = [None] * size
    self.next = 0

  def place(self, prompts):
    """Entries for `prompts` (at most `size`): those held already (when
    sharing), else new ones; returns (entry per prompt, [(entry, prompt)
    to prefill])."""
    if len(prompts) > self.size:
      raise ValueError(f"{len(prompts)} prompts for {self.size} entries.")
    entries, fresh = [], []
    for p in prompts:
      if self.share and p in self.entry_of:
        entries.append(self.entry_of[p])
        continue
      # Never an entry this call reads: its prefill would overwrite it
      # before the copy.
      while self.next in entries:
        self.next = (self.next + 1) % self.size
      entry = self.next
      self.next = (self.next + 1) % self.size
      if self.held[entry] is not None:
        self.entry_of.pop(self.held[entry], None)
      self.held[entry] = p
      if self.share:
        self.entry_of[p] = entry
      entries.append(entry)
      fresh.append((entry, p))
    return entries, fresh


def _shortest_covering_prefix(decode, toks, text: str, cut: int) -> int:
  """The fewest tokens whose decoded text has at least `cut` characters
  (`text`: all of them decoded).

  A prefix's text grows with it, except that a character split over
  tokens shows as up to 3 replacement characters until it is complete, so
  a prefix can seem to reach `cut` early only where one of the 3
  characters before `cut` has several bytes. Elsewhere (our stop strings
  are ASCII) a binary search finds the prefix; a scan from the first token
  decoded every prefix, a quadratic cost that was a third of the
  quickstart's GenRM-CoT sampling (2,048 rationales of ~170 tokens: 353K
  decodes, 9.7 s)."""
  covers = lambda n: len(decode(toks[:n])) >= cut
  if not text[max(0, cut - 3):cut].isascii():
    return next(n for n in range(1, len(toks) + 1) if covers(n))
  lo, hi = 1, len(toks)  # covers(len(toks)) holds: the text has the string
  while lo < hi:
    mid = (lo + hi) // 2
    if covers(mid):
      hi = mid
    else:
      lo = mid + 1
  return lo


# What a stopped row's slot holds of its results, in `_output`'s order.
_STREAM_OUTPUTS = ("tokens", "logprobs", "sample_lp", "lengths", "finished",
                   "readout")


def continuous_batching_default() -> bool:
  """Whether callers stream rows through `generate(batch_size=...)` unless
  told: on accelerators, where a decode step reads every weight whatever
  the batch does, so steps saved are time saved (XLA's H100 program of a
  Gemma-2B continuous-batching step moves 1.3% more bytes than a one-batch
  step, at batch 64), and a batch of GSM8K rationales decodes 2.04x the
  steps its rows need. Not on a CPU, where a toy model's steps are too
  cheap for the refills to pay: the quickstart's GenRM-CoT scoring took
  37.0 s with it, 27.5 s without (24.6 and 23.3 s once compiled;
  benchmarks/RESULTS.md)."""
  return jax.default_backend() != "cpu"


# `--continuous_batching` of the CLIs that sample (auto: the default above).
CONTINUOUS_BATCHING_FLAG = {"auto": None, "true": True, "false": False}


def define_flags(*, temperature: float, max_new_tokens: int, what: str = "",
                 continuous_batching: bool = False) -> None:
  """The sampling flags of the CLIs that sample (`what`: whose, e.g.
  "Rationale "): --temperature, --top_k, --top_p, --max_new_tokens, --seed,
  and --continuous_batching (read it with `CONTINUOUS_BATCHING_FLAG`)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_float("temperature", temperature,
                     f"{what}sampling temperature (0: greedy).")
  flags.DEFINE_integer("top_k", 0, f"{what}top-k (0: no truncation).")
  flags.DEFINE_float("top_p", 1.0, f"{what}top-p (1: no truncation).")
  flags.DEFINE_integer("max_new_tokens", max_new_tokens,
                       f"{what}length at most, in tokens.")
  flags.DEFINE_integer("seed", 0, f"{what}sampling seed.")
  if continuous_batching:
    flags.DEFINE_enum(
        "continuous_batching", "auto", list(CONTINUOUS_BATCHING_FLAG),
        "Decode --batch_size rows at a time, a finished row taking the next "
        "one (auto: on except on a CPU); 'false': each batch waits for its "
        "longest row.")


def call_sizes(batch_size: int, continuous_batching: bool | None = None
               ) -> tuple[int, int | None]:
  """How a caller with many rows to sample splits them: (rows per
  `generate` call, its `batch_size` argument). One sampler batch a call;
  with continuous batching (None: `continuous_batching_default()`) 8
  batches' worth a call, streamed through `batch_size` rows, so a call's
  tail, where slots run dry, is an eighth of it."""
  if continuous_batching is None:
    continuous_batching = continuous_batching_default()
  if continuous_batching:
    return 8 * batch_size, batch_size
  return batch_size, None


def _left_padded(prompts, length: int, rows: int):
  """Token and segment-id rows [rows, length] of `prompts`, left-padded so
  generation starts aligned; rows past them (batch padding) hold one BOS."""
  tokens = np.zeros((rows, length), np.int32)
  segments = np.zeros((rows, length), np.int32)
  for u, p in enumerate(prompts):
    tokens[u, length - len(p):] = p
    segments[u, length - len(p):] = 1
  tokens[len(prompts):, -1] = gemma.BOS_ID
  segments[len(prompts):, -1] = 1
  return tokens, segments


def _round_to(n: int, multiple: int) -> int:
  return -(-n // multiple) * multiple


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
