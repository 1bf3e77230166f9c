"""Flax Gemma 1 / 2 / 3 (text) for training and fast inference.

One module covers every Gemma family the paper used and the one we can load
for real (Gemma 3 270M):

* Gemma 1: global attention only, MQA (2B) or MHA (7B), GeGLU feed-forward.
* Gemma 2: local sliding-window / global alternation, attention-logit and
  final-logit soft-capping, post-attention and post-FFW norms, GQA.
* Gemma 3: QK-norm, separate RoPE bases (and scale factors) for local and
  global layers, 5:1 local/global pattern.

It differs from the official `gemma` package where training and serving need
it (DESIGN.md, "Own Flax Gemma"): the layers are one `nn.scan` (stacked
parameters with a leading `layers` axis, a configurable remat policy), packed
sequences are first-class (segment ids + positions, no attention across
segments), the KV cache is one stacked array per k/v, the final hidden states
are returned (value heads), the compute dtype is separate from the parameter
dtype, and parameters/activations carry logical-axis names so they shard over
a `(data, fsdp, tensor)` mesh. Inside each layer the parameter names and
shapes are the official ones, so `checkpoints.py` converts by stacking.

The numerics follow the official implementation (tests compare logits with
`gemma.transformer` to 1e-4 in fp32): RMSNorm with `(1 + scale)`, embeddings
scaled by sqrt(embed_dim) in the compute dtype, RoPE on the two halves of the
head dimension, query scaling after RoPE, masking with a large finite negative
number, tanh GELU.
"""

from __future__ import annotations

import dataclasses
import math
import functools
from typing import Any, NamedTuple, Sequence

import flax
from flax import linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from genrm_jax import sharding as sharding_lib

# The large negative number the official code masks logits with. Finite, so a
# query with nothing to attend to (padding) gets a uniform, NaN-free softmax.
K_MASK = -2.3819763e38

GLOBAL = "global"
LOCAL_SLIDING = "local_sliding"
ATTENTION_TYPES = (GLOBAL, LOCAL_SLIDING)

# How queries are scaled before the dot product (official
# `QueryPreAttentionNormalisation`, by lower-case name).
QUERY_PRE_ATTN_NORMS = (
    "by_one_over_sqrt_head_dim",
    "by_embed_dim_div_num_heads",
    "by_one_over_sqrt_embed_dim_div_num_heads",
)

REMAT_POLICIES = {
    "none": None,  # no rematerialisation: keep every activation
    "full": jax.checkpoint_policies.nothing_saveable,
    "nothing_saveable": jax.checkpoint_policies.nothing_saveable,
    "dots_saveable": jax.checkpoint_policies.dots_saveable,
    "dots_with_no_batch_dims_saveable": (
        jax.checkpoint_policies.dots_with_no_batch_dims_saveable
    ),
}

# How attention runs without a KV cache (`TransformerConfig.attention_impl`).
ATTENTION_IMPLS = ("einsum", "xla", "cudnn")

# The projections LoRA can adapt (`TransformerConfig.lora_targets`), by
# parameter name, with the einsum each computes (the weight is its right
# operand). `lora.merge` folds an adapter into its weight with the same
# equation, so the two cannot drift apart.
LORA_EQUATIONS = {
    "qkv_einsum": "BTD,SNDH->SBTNH",
    "q_einsum": "BTD,NDH->BTNH",
    "kv_einsum": "BSD,CKDH->CBSKH",
    "attn_vec_einsum": "BTNH,NHD->BTD",
    "gating_einsum": "MD,CDF->CMF",  # "MD,CFD->CMF" if transpose_gating_einsum
    "linear": "MF,FD->MD",
}
LORA_TARGETS = tuple(LORA_EQUATIONS)


def lora_equation(config: "TransformerConfig", name: str) -> str:
  """The einsum of projection `name` (LORA_EQUATIONS) in this model."""
  if name == "gating_einsum" and config.transpose_gating_einsum:
    return "MD,CFD->CMF"
  return LORA_EQUATIONS[name]

PAD_ID = 0
EOS_ID = 1
BOS_ID = 2


# -----------------------------------------------------------------------------
# Configuration.
# -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  """Architecture and execution settings.

  Architecture fields use the official `gemma` `TransformerConfig` names;
  `attention_types` holds `'global'` / `'local_sliding'` strings. The number of
  layers is `len(attention_types)`.
  """

  num_embed: int
  embed_dim: int
  hidden_dim: int
  num_heads: int
  head_dim: int
  num_kv_heads: int
  attention_types: tuple[str, ...]
  final_logit_softcap: float | None = None
  use_post_attn_norm: bool = False
  use_post_ffw_norm: bool = False
  query_pre_attn_norm: str = "by_one_over_sqrt_head_dim"
  attn_logits_soft_cap: float | None = None
  sliding_window_size: int | None = None
  transpose_gating_einsum: bool = False
  use_qk_norm: bool = False
  local_base_frequency: int = 10_000
  global_base_frequency: int = 10_000
  local_scale_factor: float = 1.0
  global_scale_factor: float = 1.0
  # Execution (not part of the checkpoint).
  dtype: str = "bfloat16"  # compute dtype
  param_dtype: str = "float32"  # dtype params are created in
  remat_policy: str = "none"
  scan_unroll: int = 1
  # True: the layers are one `nn.scan` over params stacked on a `layers` axis
  # (training, checkpoints). False: a Python loop over per-layer params named
  # `layer_N` (`unstack_layers(params)`), so each matmul reads its own
  # weight buffer; a scan slices every layer's weights out of the stack at
  # each call, which costs a weight-sized copy per decode step (sampling).
  scan_layers: bool = True
  # Attention without a KV cache (training, scoring forward passes):
  # "einsum" computes the [B, N, T, S] scores in fp32, masks and soft-maxes
  # them (the reference numerics); "xla" / "cudnn" call
  # `jax.nn.dot_product_attention` with that implementation and the same
  # mask. "cudnn" is cuDNN's fused flash attention on NVIDIA GPUs: the scores
  # never reach memory (bf16 / fp16 compute only, and no attention-logit
  # soft-cap, so not Gemma 2); "xla" is its portable reference, which runs
  # anywhere. Decoding with a cache always takes the einsum path.
  attention_impl: str = "einsum"
  # The projections whose stored weight leads with an axis the input lacks
  # (q [N, D, H], kv [2, K, D, H], qkv, the feed-forward's gate-and-up
  # [2, D, F]) as batched matmuls over that axis, which read the weight as
  # stored: the sampler's choice. Inside its decode loop XLA otherwise
  # transposed or sliced those weights at every step (5.1 of a Gemma-2B
  # step's 13.3 GB at batch 64 on an H100). False: plain matmuls (training:
  # the remat policies save their outputs, not batched ones). Same math.
  batched_projections: bool = False
  # Attention that reads a KV cache with the cache as the left operand of
  # both matmuls (`_cached_attention`): the sampler's choice on CPUs, where
  # XLA otherwise copies every layer's k and v cache, transposed, at each
  # decode step of a model with one kv head (the quickstart's model at
  # batch 256: 28.1 -> 25.2 ms a step, side by side on 2 cores). Not on
  # GPUs: an H100 decode loop fuses the soft-max over the scores' minor axis
  # into one kernel, which this layout loses (Gemma-2B at batch 256: 10.40
  # -> 10.51 GB a step). Same math.
  cache_left_attention: bool = False
  # SentencePiece `tokenizer.model` that goes with the weights (or None).
  tokenizer: str | None = None
  # LoRA (Hu et al. 2021): beside each projection named in `lora_targets`, a
  # rank-`lora_rank` update (lora_alpha / lora_rank) * x A B, B zero at
  # initialisation (the model starts as the base one). The trainer then
  # trains only the adapters (and a value head), with no optimizer state for
  # the frozen weights, and exports them folded into the weights
  # (`genrm_jax/lora.py`). 0: no adapters.
  lora_rank: int = 0
  lora_alpha: float = 16.0
  lora_targets: tuple[str, ...] = LORA_TARGETS

  def __post_init__(self):
    object.__setattr__(self, "attention_types", tuple(self.attention_types))
    bad = [t for t in self.attention_types if t not in ATTENTION_TYPES]
    if bad:
      raise ValueError(
          f"attention_types must be {ATTENTION_TYPES} strings, got {bad}."
      )
    if not self.attention_types:
      raise ValueError("attention_types is empty: a model needs >= 1 layer.")
    if LOCAL_SLIDING in self.attention_types and not self.sliding_window_size:
      raise ValueError(
          "attention_types has 'local_sliding' layers but sliding_window_size"
          " is not set: pass sliding_window_size=<int>."
      )
    if self.num_heads % self.num_kv_heads:
      raise ValueError(
          f"num_heads={self.num_heads} is not a multiple of"
          f" num_kv_heads={self.num_kv_heads}."
      )
    if self.head_dim % 2:
      raise ValueError(f"head_dim={self.head_dim} must be even (RoPE).")
    if self.query_pre_attn_norm not in QUERY_PRE_ATTN_NORMS:
      raise ValueError(
          f"query_pre_attn_norm={self.query_pre_attn_norm!r}; expected one of"
          f" {QUERY_PRE_ATTN_NORMS}."
      )
    if self.remat_policy not in REMAT_POLICIES:
      raise ValueError(
          f"remat_policy={self.remat_policy!r}; expected one of"
          f" {sorted(REMAT_POLICIES)}."
      )
    for name in ("dtype", "param_dtype"):
      try:
        jnp.dtype(getattr(self, name))
      except TypeError as e:
        raise ValueError(f"{name}={getattr(self, name)!r} is no dtype") from e
    object.__setattr__(self, "lora_targets", tuple(self.lora_targets))
    if self.lora_rank < 0:
      raise ValueError(f"lora_rank={self.lora_rank} must be >= 0 (0: no LoRA).")
    unknown = sorted(set(self.lora_targets) - set(LORA_TARGETS))
    if unknown or (self.lora_rank and not self.lora_targets):
      raise ValueError(
          f"lora_targets={self.lora_targets}: expected a non-empty subset of"
          f" {LORA_TARGETS}.")
    if self.attention_impl not in ATTENTION_IMPLS:
      raise ValueError(
          f"attention_impl={self.attention_impl!r}; expected one of"
          f" {ATTENTION_IMPLS}."
      )
    if self.attention_impl != "einsum" and self.attn_logits_soft_cap is not None:
      raise ValueError(
          f"attention_impl={self.attention_impl!r} cannot apply the"
          f" attention-logit soft-cap ({self.attn_logits_soft_cap}) of this"
          " model (Gemma 2): use attention_impl='einsum'."
      )
    if self.attention_impl == "cudnn" and jnp.dtype(self.dtype) not in (
        jnp.bfloat16, jnp.float16):
      raise ValueError(
          f"attention_impl='cudnn' needs a bfloat16 or float16 compute dtype,"
          f" not dtype={self.dtype!r}: set dtype='bfloat16' or"
          " attention_impl='einsum'."
      )

  @property
  def num_layers(self) -> int:
    return len(self.attention_types)

  @property
  def compute_dtype(self) -> jnp.dtype:
    return jnp.dtype(self.dtype)

  @property
  def params_dtype(self) -> jnp.dtype:
    return jnp.dtype(self.param_dtype)

  @property
  def lora_scale(self) -> float:
    return self.lora_alpha / self.lora_rank if self.lora_rank else 0.0

  def adapts(self, name: str) -> bool:
    """Whether projection `name` has a LoRA adapter."""
    return bool(self.lora_rank) and name in self.lora_targets

  def query_pre_attn_scalar(self) -> float:
    if self.query_pre_attn_norm == "by_embed_dim_div_num_heads":
      return self.embed_dim // self.num_heads
    if self.query_pre_attn_norm == "by_one_over_sqrt_embed_dim_div_num_heads":
      return (self.embed_dim // self.num_heads) ** -0.5
    return self.head_dim**-0.5

  def replace(self, **overrides) -> "TransformerConfig":
    return dataclasses.replace(self, **overrides)

  def init_cache(
      self, batch_size: int, cache_length: int, dtype: Any = None
  ) -> dict[str, jax.Array]:
    return init_cache(self, batch_size, cache_length, dtype)


def _pattern(pattern: Sequence[str], num_layers: int) -> tuple[str, ...]:
  """Repeats a local/global `pattern` to `num_layers` layers (truncating)."""
  reps = -(-num_layers // len(pattern))
  return (tuple(pattern) * reps)[:num_layers]


_G, _L = GLOBAL, LOCAL_SLIDING
_GEMMA2_PATTERN = (_L, _G)
_GEMMA3_PATTERN = (_L, _L, _L, _L, _L, _G)

# Fields Gemma 3 4B, 12B and 27B share (official `gemma3_4b/12b/27b`).
_GEMMA3_LARGE = dict(
    use_post_attn_norm=True, use_post_ffw_norm=True, use_qk_norm=True,
    sliding_window_size=1024, transpose_gating_einsum=True,
    local_base_frequency=10_000, global_base_frequency=1_000_000,
    global_scale_factor=8.0)

# Preset: (layer pattern, number of layers, other fields). Values are those of
# the official releases (gemma v3.0.2 `TransformerConfig.gemma_2b/7b`, v3.3.0
# `gm.nn.Gemma2_*` / `Gemma3_*`).
_PRESETS: dict[str, tuple[tuple[str, ...], int, dict[str, Any]]] = {
    "gemma_2b": ((_G,), 18, dict(
        num_embed=256128, embed_dim=2048, hidden_dim=16384, num_heads=8,
        head_dim=256, num_kv_heads=1)),
    "gemma_7b": ((_G,), 28, dict(
        num_embed=256128, embed_dim=3072, hidden_dim=24576, num_heads=16,
        head_dim=256, num_kv_heads=16)),
    "gemma2_2b": (_GEMMA2_PATTERN, 26, dict(
        num_embed=256128, embed_dim=2304, hidden_dim=9216, num_heads=8,
        head_dim=256, num_kv_heads=4, final_logit_softcap=30.0,
        use_post_attn_norm=True, use_post_ffw_norm=True,
        attn_logits_soft_cap=50.0, sliding_window_size=4096)),
    "gemma2_9b": (_GEMMA2_PATTERN, 42, dict(
        num_embed=256128, embed_dim=3584, hidden_dim=14336, num_heads=16,
        head_dim=256, num_kv_heads=8, final_logit_softcap=30.0,
        use_post_attn_norm=True, use_post_ffw_norm=True,
        attn_logits_soft_cap=50.0, sliding_window_size=4096,
        transpose_gating_einsum=True)),
    "gemma2_27b": (_GEMMA2_PATTERN, 46, dict(
        num_embed=256128, embed_dim=4608, hidden_dim=36864, num_heads=32,
        head_dim=128, num_kv_heads=16, final_logit_softcap=30.0,
        use_post_attn_norm=True, use_post_ffw_norm=True,
        query_pre_attn_norm="by_one_over_sqrt_embed_dim_div_num_heads",
        attn_logits_soft_cap=50.0, sliding_window_size=4096,
        transpose_gating_einsum=True)),
    "gemma3_270m": (_GEMMA3_PATTERN, 18, dict(
        num_embed=262144, embed_dim=640, hidden_dim=2048, num_heads=4,
        head_dim=256, num_kv_heads=1, use_post_attn_norm=True,
        use_post_ffw_norm=True, use_qk_norm=True, sliding_window_size=512,
        transpose_gating_einsum=True, local_base_frequency=10_000,
        global_base_frequency=1_000_000)),
    "gemma3_1b": (_GEMMA3_PATTERN, 26, dict(
        num_embed=262144, embed_dim=1152, hidden_dim=6 * 1152, num_heads=4,
        head_dim=256, num_kv_heads=1, use_post_attn_norm=True,
        use_post_ffw_norm=True, use_qk_norm=True, sliding_window_size=512,
        transpose_gating_einsum=True, local_base_frequency=10_000,
        global_base_frequency=1_000_000)),
    # Gemma 3 4B/12B/27B: the language model of the released multimodal
    # checkpoints (`load_params` leaves their SigLIP vision tower behind).
    # Their global layers stretch RoPE 8x (128K context): positions / 8.
    "gemma3_4b": (_GEMMA3_PATTERN, 34, dict(
        num_embed=262144, embed_dim=2560, hidden_dim=2560 * 8 // 2,
        num_heads=8, head_dim=256, num_kv_heads=4, **_GEMMA3_LARGE)),
    "gemma3_12b": (_GEMMA3_PATTERN, 48, dict(
        num_embed=262144, embed_dim=30 * 128, hidden_dim=8 * 30 * 128 // 2,
        num_heads=16, head_dim=256, num_kv_heads=8, **_GEMMA3_LARGE)),
    "gemma3_27b": (_GEMMA3_PATTERN, 62, dict(
        num_embed=262144, embed_dim=5376, hidden_dim=5376 * 8 // 2,
        num_heads=32, head_dim=128, num_kv_heads=16,
        query_pre_attn_norm="by_one_over_sqrt_embed_dim_div_num_heads",
        **_GEMMA3_LARGE)),
    # A CPU-sized model with every Gemma 2/3 feature switched on, for tests
    # and smoke runs (fp32 so tests compare tightly).
    "tiny": ((_L, _G), 2, dict(
        num_embed=512, embed_dim=64, hidden_dim=128, num_heads=4,
        head_dim=16, num_kv_heads=2, final_logit_softcap=30.0,
        use_post_attn_norm=True, use_post_ffw_norm=True,
        attn_logits_soft_cap=50.0, sliding_window_size=16, use_qk_norm=True,
        local_base_frequency=10_000, global_base_frequency=1_000_000,
        dtype="float32")),
}

PRESETS = tuple(_PRESETS)

# Official enum spellings accepted as override values.
_ATTENTION_TYPE_ALIASES = {
    "GLOBAL": GLOBAL, "LOCAL_SLIDING": LOCAL_SLIDING,
    "global": GLOBAL, "local_sliding": LOCAL_SLIDING, "local": LOCAL_SLIDING,
}


def _normalise_attention_type(t: Any) -> str:
  name = getattr(t, "name", t)  # official AttentionType enum -> its name
  if name not in _ATTENTION_TYPE_ALIASES:
    raise ValueError(
        f"Unknown attention type {t!r}: use 'global' or 'local_sliding'."
    )
  return _ATTENTION_TYPE_ALIASES[name]


def get_config(name: str, **overrides) -> TransformerConfig:
  """Returns the preset `name` with `overrides` (official field names).

  Overriding `num_layers` alone keeps the preset's local/global pattern;
  `attention_types` may be given as strings or official enum members.
  """
  if name not in _PRESETS:
    raise ValueError(f"Unknown Gemma preset {name!r}; known: {PRESETS}.")
  pattern, num_layers, fields = _PRESETS[name]
  fields = dict(fields)
  overrides = dict(overrides)
  if "attention_types" in overrides:
    types = tuple(
        _normalise_attention_type(t) for t in overrides.pop("attention_types")
    )
    if overrides.get("num_layers", len(types)) != len(types):
      raise ValueError(
          f"num_layers={overrides['num_layers']} but attention_types has"
          f" {len(types)} entries: give one, or make them agree."
      )
    overrides.pop("num_layers", None)
  else:
    types = _pattern(pattern, overrides.pop("num_layers", num_layers))
  if "query_pre_attn_norm" in overrides:
    q = overrides["query_pre_attn_norm"]
    overrides["query_pre_attn_norm"] = str(getattr(q, "name", q)).lower()
  for key in ("dtype", "param_dtype"):
    if key in overrides and not isinstance(overrides[key], str):
      overrides[key] = jnp.dtype(overrides[key]).name
  known = {f.name for f in dataclasses.fields(TransformerConfig)}
  unknown = sorted(set(overrides) - known)
  if unknown:
    raise ValueError(
        f"Unknown Gemma config field(s) {unknown}; known fields:"
        f" {sorted(known | {'num_layers'})}."
    )
  fields.update(overrides)
  return TransformerConfig(attention_types=types, **fields)


# -----------------------------------------------------------------------------
# Layers.
# -----------------------------------------------------------------------------


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def einsum_fp32_out(spec: str, a: jax.Array, b: jax.Array) -> jax.Array:
  """`jnp.einsum(spec, a, b)` with fp32 results (attention scores, logits),
  whose gradients are matmuls in the operands' dtype.

  Plain `preferred_element_type=float32` gives an fp32 cotangent, and the
  transposed einsums then multiply it with the operands converted to fp32:
  fp32 matmuls (at best TF32 on an NVIDIA GPU, half the bf16 rate) that read
  twice the bytes. On the Gemma-2B train step those were the two output
  projection gradients (17 of its 128 TFLOPs) and every layer's attention
  score gradients. Here the cotangent is rounded to the operands' dtype
  first, as bf16 training does for every other activation gradient; with
  fp32 operands nothing changes.
  """
  return jnp.einsum(spec, a, b, preferred_element_type=jnp.float32)


def _einsum_fp32_out_fwd(spec, a, b):
  return einsum_fp32_out(spec, a, b), (a, b)


def _einsum_fp32_out_bwd(spec, residuals, g):
  a, b = residuals
  # The einsum in the operands' dtype: its transposes take a cotangent of
  # that dtype (accumulating in fp32 on GPUs and TPUs).
  _, vjp = jax.vjp(functools.partial(jnp.einsum, spec), a, b)
  return vjp(g.astype(jnp.result_type(a, b)))


einsum_fp32_out.defvjp(_einsum_fp32_out_fwd, _einsum_fp32_out_bwd)


def _param(module: nn.Module, name: str, init, shape, names, dtype):
  """A parameter annotated with logical axis names (for sharding rules)."""
  return module.param(
      name, nn.with_logical_partitioning(init, names), shape, dtype
  )


class RMSNorm(nn.Module):
  """RMSNorm with a zero-initialised scale applied as `(1 + scale)`."""

  param_dtype: Any = jnp.float32
  axis_name: str = "norm"

  @nn.compact
  def __call__(self, x):
    scale = _param(self, "scale", nn.initializers.zeros_init(),
                   (x.shape[-1],), (self.axis_name,), self.param_dtype)
    # Normalise in fp32: bf16 variance loses too much precision.
    x32 = x.astype(jnp.float32)
    var = jnp.mean(jnp.square(x32), axis=-1, keepdims=True)
    normed = x32 * jax.lax.rsqrt(var + 1e-06)
    return (normed * (1 + scale.astype(jnp.float32))).astype(x.dtype)


class Einsum(nn.Module):
  """A parameterised einsum (official `layers.Einsum`), with axis names."""

  shape: tuple[int, ...]
  axis_names: tuple[str | None, ...]
  weight_name: str = "w"
  param_dtype: Any = jnp.float32
  dtype: Any = jnp.float32
  batched: bool = False  # TransformerConfig.batched_projections
  config: TransformerConfig | None = None  # for its LoRA adapter, if any

  @nn.compact
  def __call__(self, eqn: str, x: jax.Array) -> jax.Array:
    w = _param(self, self.weight_name, nn.initializers.normal(), self.shape,
               self.axis_names, self.param_dtype)
    einsum = batched_einsum if self.batched else jnp.einsum
    y = einsum(eqn, x, w.astype(self.dtype))
    if self.config is not None and self.config.adapts(self.name):
      y = y + lora_update(self, "", eqn, x, self.shape, self.axis_names,
                          self.config)
    return y


class LoraAxes(NamedTuple):
  """The axes of a projection's einsum 'lhs,rhs->out' (rhs: the weight)."""
  lhs: str
  rhs: str
  out: str
  contracted: str  # weight axes summed with the input's: A's leading axes
  free: str  # the weight's other axes: B's trailing axes
  kept: str  # the input's axes the weight lacks (batch, length)


def lora_axes(eqn: str) -> LoraAxes:
  lhs, rest = eqn.split(",")
  rhs, out = rest.split("->")
  return LoraAxes(lhs, rhs, out, "".join(a for a in rhs if a in lhs),
                  "".join(a for a in rhs if a not in lhs),
                  "".join(a for a in lhs if a not in rhs))


def lora_factors(module: nn.Module, prefix: str, eqn: str, shape: Sequence[int],
                 names: Sequence[str | None], config: TransformerConfig
                 ) -> tuple[jax.Array, jax.Array]:
  """The LoRA factors of the weight `eqn` multiplies its input by.

  A [contracted axes of the weight, rank] (named `{prefix}lora_a`, normal
  with variance 1 / fan-in), B [rank, its other axes] (`{prefix}lora_b`,
  zeros), both float32 whatever `param_dtype` is (a bf16 base, to save
  memory, still trains its small adapters in full precision); their logical
  axis names follow the weight's, the rank axis is replicated.
  """
  axes = lora_axes(eqn)
  dims, axis = dict(zip(axes.rhs, shape)), dict(zip(axes.rhs, names))
  contracted, free = axes.contracted, axes.free
  rank = config.lora_rank
  fan_in = math.prod(dims[c] for c in contracted)
  a = _param(module, prefix + "lora_a", nn.initializers.normal(fan_in**-0.5),
             tuple(dims[c] for c in contracted) + (rank,),
             tuple(axis[c] for c in contracted) + ("lora_rank",), jnp.float32)
  b = _param(module, prefix + "lora_b", nn.initializers.zeros_init(),
             (rank,) + tuple(dims[f] for f in free),
             ("lora_rank",) + tuple(axis[f] for f in free), jnp.float32)
  return a, b


def lora_update(module: nn.Module, prefix: str, eqn: str, x: jax.Array,
                shape: Sequence[int], names: Sequence[str | None],
                config: TransformerConfig) -> jax.Array:
  """`scale * (x A) B` (`lora_factors`): two thin einsums, the weight-sized
  update never formed."""
  a, b = lora_factors(module, prefix, eqn, shape, names, config)
  axes = lora_axes(eqn)
  dt = x.dtype
  xa = jnp.einsum(f"{axes.lhs},{axes.contracted}z->{axes.kept}z", x, a.astype(dt))
  update = jnp.einsum(f"{axes.kept}z,z{axes.free}->{axes.out}", xa, b.astype(dt))
  return update * jnp.asarray(config.lora_scale, dt)


def batched_einsum(eqn: str, x: jax.Array, w: jax.Array) -> jax.Array:
  """`jnp.einsum(eqn, x, w)` ('lhs,rhs->out', explicit axes), with the
  weight's leading axes that `x` lacks (the N of 'BTD,NDH->BTNH') as batch
  axes of the matmul: `x` broadcast over them, the weight read as stored.
  A plain matmul needs the weight's free axes next to each other, so XLA
  transposes an [N, D, H] weight to [D, N, H] first."""
  lhs, rest = eqn.split(",")
  rhs, out = rest.split("->")
  lead = ""
  for i, axis in enumerate(rhs):
    # A batch axis leads the weight, is not in `x`, and leaves a free
    # output axis behind it: in Gemma 2 9B's / Gemma 3's transposed gating
    # weight 'CFD' the batch is C alone, not C and F ('MD,CFD->CMF'; with
    # both, `x` was broadcast to [2, F, M, D], 2 x hidden_dim copies of the
    # activations: 10.7 GB for the 270M's prefill of 8 x 128 tokens).
    if axis in lhs or all(a in lhs for a in rhs[i + 1:]):
      break
    lead += axis
  if not lead:
    return jnp.einsum(eqn, x, w)
  sizes = tuple(w.shape[:len(lead)])
  rest_out = "".join(a for a in out if a not in lead)
  xb = jnp.broadcast_to(x, sizes + x.shape)
  y = jnp.einsum(f"{lead}{lhs},{rhs}->{lead}{rest_out}", xb, w)
  return jnp.einsum(f"{lead}{rest_out}->{out}", y)


def apply_rope(inputs, positions, timescale, scale_factor):
  """RoPE on the two halves of the last axis (official `apply_rope`).

  inputs [B, T, N, H]; positions [B, T]; timescale [H/2] (float32).
  """
  sinusoid = positions[..., None].astype(jnp.float32) / timescale
  sinusoid = sinusoid / scale_factor
  sinusoid = sinusoid[..., None, :]
  sin, cos = jnp.sin(sinusoid), jnp.cos(sinusoid)
  first, second = jnp.split(inputs, 2, axis=-1)
  out = jnp.concatenate(
      [first * cos - second * sin, second * cos + first * sin], axis=-1
  )
  return out.astype(inputs.dtype)


def rope_timescale(head_dim: int, base_frequency: float) -> np.ndarray:
  fraction = 2 * np.arange(0, head_dim // 2, dtype=np.float32) / head_dim
  return np.power(np.float32(base_frequency), fraction).astype(np.float32)


class Attention(nn.Module):
  """Multi-head / multi-query / grouped-query attention with RoPE."""

  config: TransformerConfig

  @nn.compact
  def __call__(self, x, layer, ctx, cache):
    cfg = self.config
    dt, pdt = cfg.compute_dtype, cfg.params_dtype
    n, k, h, d = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.embed_dim
    einsum = functools.partial(Einsum, param_dtype=pdt, dtype=dt,
                               batched=cfg.batched_projections, config=cfg)
    if n == k:  # official: one fused qkv projection when kv heads == heads
      q, key, value = einsum(
          (3, n, d, h), (None, "heads", "embed", "head_dim"),
          name="qkv_einsum")("BTD,SNDH->SBTNH", x)
    else:
      q = einsum((n, d, h), ("heads", "embed", "head_dim"),
                 name="q_einsum")("BTD,NDH->BTNH", x)
      key, value = einsum(
          (2, k, d, h), (None, "kv_heads", "embed", "head_dim"),
          name="kv_einsum")("BSD,CKDH->CBSKH", x)

    if cfg.use_qk_norm:
      q = RMSNorm(pdt, "head_dim", name="_query_norm")(q)
      key = RMSNorm(pdt, "head_dim", name="_key_norm")(key)

    timescale = jnp.where(layer["is_local"], ctx["local_timescale"],
                          ctx["global_timescale"])
    scale_factor = jnp.where(layer["is_local"], cfg.local_scale_factor,
                             cfg.global_scale_factor)
    q = apply_rope(q, ctx["positions"], timescale, scale_factor)
    q = q * jnp.asarray(cfg.query_pre_attn_scalar(), q.dtype)
    key = apply_rope(key, ctx["positions"], timescale, scale_factor)

    new_cache = None
    if cache is not None:
      # `cache` holds every layer's k/v ([layers, B, S, K, H]), carried
      # through the layer scan: this layer writes its new slots in place and
      # reads its own slice (no per-step copy of the whole cache); or, with
      # per-layer buffers (`init_cache(per_layer=True)`), this layer's own
      # [B, S, K, H] k/v, read where they are.
      stacked = cache["k"].ndim == 5
      start = ((layer["index"],) if stacked else ()) + (
          0, ctx["cache_index"], 0, 0)

      def write(buffer, new):
        new = new.astype(buffer.dtype)
        return jax.lax.dynamic_update_slice(
            buffer, new[None] if stacked else new, start)

      def read(buffer):
        if stacked:
          buffer = jax.lax.dynamic_index_in_dim(buffer, layer["index"], 0,
                                                False)
        return buffer.astype(dt)

      new_cache = {"k": write(cache["k"], key), "v": write(cache["v"], value)}
      key, value = read(new_cache["k"]), read(new_cache["v"])

    mask = jnp.where(layer["is_local"], ctx["local_mask"], ctx["global_mask"])
    if cache is None and cfg.attention_impl != "einsum":
      # One fused call; the queries are already scaled. Its grouping is ours
      # (query head n*G + g reads kv head n).
      encoded = jax.nn.dot_product_attention(
          q, key, value, mask=mask[:, None], scale=1.0,
          implementation=cfg.attention_impl)
    elif cache is not None and cfg.cache_left_attention:
      encoded = _cached_attention(cfg, q, key, value, mask)
    else:
      encoded = _einsum_attention(cfg, q, key, value, mask)
    out = einsum((n, h, d), ("heads", "head_dim", "embed"),
                 name="attn_vec_einsum")("BTNH,NHD->BTD", encoded)
    return out, new_cache


def soft_cap(x: jax.Array, cap: float | None) -> jax.Array:
  """Gemma 2's soft-cap, `tanh(x / cap) * cap`; x itself where cap is None."""
  return x if cap is None else jnp.tanh(x / cap) * cap


def _einsum_attention(cfg, q, key, value, mask):
  """[B, T, N, H] attention output; scores and soft-max in fp32."""
  b, t, n, h = q.shape
  k = key.shape[2]
  # Grouped-query layout: query head n*G + g reads kv head n.
  q = q.reshape(b, t, k, n // k, h)
  # Scores in the order the batched matmul produces them (batch axes B, K,
  # then the query's T, G, then S): any other order is a transpose of the
  # largest activation, [B, N, T, S] fp32, in the backward. With 'BKGTS',
  # XLA's H100 program of the Gemma-2B train step (8 x 1024) moved 550 GB
  # instead of 500 (benchmarks/train_step_cost.py).
  logits = einsum_fp32_out("BTKGH,BSKH->BKTGS", q, key)
  logits = soft_cap(logits, cfg.attn_logits_soft_cap)
  logits = jnp.where(mask[:, None, :, None, :], logits, K_MASK)
  probs = jax.nn.softmax(logits, axis=-1).astype(value.dtype)
  encoded = jnp.einsum("BKTGS,BSKH->BTKGH", probs, value)
  return encoded.reshape(b, t, n, h)


def _cached_attention(cfg, q, key, value, mask):
  """`_einsum_attention` for reading a KV cache (prefill and decoding) with
  `cache_left_attention`: the same arithmetic, with the cache as the left
  operand of both matmuls and the query's T and G axes as one row axis M.
  XLA:CPU's matmuls read the [B, S, K, H] cache in place only so: with the
  query on the left they copied every layer's k and v cache, transposed, at
  every decode step."""
  b, t, n, h = q.shape
  k = key.shape[2]
  g = n // k
  q = _swap_query_axes(q.reshape(b, t, k, g, h)).reshape(b, k, t * g, h)
  logits = einsum_fp32_out("BSKH,BKMH->BKSM", key, q).reshape(b, k, -1, t, g)
  logits = soft_cap(logits, cfg.attn_logits_soft_cap)
  logits = jnp.where(jnp.swapaxes(mask, 1, 2)[:, None, :, :, None], logits,
                     K_MASK)
  probs = jax.nn.softmax(logits, axis=2).astype(value.dtype)
  encoded = jnp.einsum("BKSM,BSKH->BKMH", probs.reshape(b, k, -1, t * g),
                       value)
  return _swap_query_axes(encoded.reshape(b, k, t, g, h)).reshape(b, t, n, h)


def _swap_query_axes(x):
  """[B, T, K, G, H] <-> [B, K, T, G, H]; a reshape where T or K is 1
  (decoding; multi-query models), so no transpose kernel."""
  b, x1, x2, g, h = x.shape
  if x1 == 1 or x2 == 1:
    return x.reshape(b, x2, x1, g, h)
  return x.transpose(0, 2, 1, 3, 4)


class FeedForward(nn.Module):
  """GeGLU feed-forward; parameter names as in the official checkpoints."""

  config: TransformerConfig

  @nn.compact
  def __call__(self, x):
    cfg = self.config
    dt, pdt = cfg.compute_dtype, cfg.params_dtype
    d, f = cfg.embed_dim, cfg.hidden_dim
    if cfg.transpose_gating_einsum:
      gate_shape, gate_names = (2, f, d), (None, "mlp", "embed")
      eqn = "MD,FD->MF"
    else:
      gate_shape, gate_names = (2, d, f), (None, "embed", "mlp")
      eqn = "MD,DF->MF"
    batched_eqn = lora_equation(cfg, "gating_einsum")
    w_gate = _param(self, "gating_einsum", nn.initializers.normal(),
                    gate_shape, gate_names, pdt)
    # Never one plain einsum over both halves ('...D,CDF->...CF'): XLA lays
    # the weight out as [D, 2, F] first, a copy of every layer's gating
    # weights (4.8 GB of a Gemma-2B decode step's 11.9 on an H100,
    # benchmarks/RESULTS.md).
    w_gate = w_gate.astype(dt)
    # On rows [B * T, D] (a bitcast): with two leading axes, XLA:CPU writes
    # the gating gradient transposed before the weight-gradient matmul, a
    # strided pass that was a quarter of the quickstart's train step
    # (benchmarks/RESULTS.md, "The CPU train step").
    rows = x.reshape(-1, x.shape[-1])
    if cfg.batched_projections:  # the halves as the matmul's batch axis
      gate, up = batched_einsum(batched_eqn, rows, w_gate)
    else:  # two matmuls over the halves
      gate, up = jnp.einsum(eqn, rows, w_gate[0]), jnp.einsum(eqn, rows, w_gate[1])
    if cfg.adapts("gating_einsum"):
      # One A for both halves, B [rank, 2, F] read a half at a time: an
      # update laid out [2, M, F] cost slices and transposes of
      # activation-sized arrays (88 of a Gemma-2B LoRA step's 504 GB on an
      # H100, by XLA's cost model; benchmarks/RESULTS.md).
      a, b = lora_factors(self, "gating_einsum_", batched_eqn, gate_shape,
                          gate_names, cfg)
      xa = jnp.einsum("MD,Dz->Mz", rows, a.astype(dt))
      scale = jnp.asarray(cfg.lora_scale, dt)
      gate = gate + jnp.einsum("Mz,zF->MF", xa, b[:, 0].astype(dt)) * scale
      up = up + jnp.einsum("Mz,zF->MF", xa, b[:, 1].astype(dt)) * scale
    hidden = (nn.gelu(gate) * up).reshape(x.shape[:-1] + (f,))
    hidden = nn.with_logical_constraint(hidden, ("batch", "length", "act_mlp"))
    w_out = _param(self, "linear", nn.initializers.normal(), (f, d),
                   ("mlp", "embed"), pdt)
    hidden_rows = hidden.reshape(-1, f)
    out = jnp.einsum("MF,FD->MD", hidden_rows, w_out.astype(dt))
    if cfg.adapts("linear"):
      out = out + lora_update(self, "linear_", "MF,FD->MD", hidden_rows, (f, d),
                              ("mlp", "embed"), cfg)
    return out.reshape(x.shape)


class Block(nn.Module):
  """One transformer layer. Called under `nn.scan`: returns (carry, ys)."""

  config: TransformerConfig

  @nn.compact
  def __call__(self, carry, layer, ctx):
    cfg = self.config
    pdt = cfg.params_dtype
    # The carry is x, or (x, stacked KV cache) when decoding with a cache.
    x, cache = carry if isinstance(carry, tuple) else (carry, None)
    normed = RMSNorm(pdt, "embed", name="pre_attention_norm")(x)
    attn, new_cache = Attention(cfg, name="attn")(normed, layer, ctx, cache)
    if cfg.use_post_attn_norm:
      attn = RMSNorm(pdt, "embed", name="post_attention_norm")(attn)
    x = x + attn
    normed = RMSNorm(pdt, "embed", name="pre_ffw_norm")(x)
    ffw = FeedForward(cfg, name="mlp")(normed)
    if cfg.use_post_ffw_norm:
      ffw = RMSNorm(pdt, "embed", name="post_ffw_norm")(ffw)
    x = x + ffw
    x = nn.with_logical_constraint(x, ("batch", "length", "act_embed"))
    if cache is None:
      return x, None
    return (x, new_cache), None


@flax.struct.dataclass
class Output:
  """What `Transformer.__call__` returns.

  logits: [B, L, V] float32 (None when `return_logits=False`).
  hidden_states: [B, L, D] final hidden states, after the final norm.
  cache: the updated KV cache, or None when called without one.
  """

  logits: jax.Array | None
  hidden_states: jax.Array
  cache: dict[str, Any] | None


def init_cache(config: TransformerConfig, batch_size: int, cache_length: int,
               dtype: Any = None, per_layer: bool = False
               ) -> dict[str, Any]:
  """An empty KV cache: k/v plus per-slot positions and segment ids.

  k and v are each one stacked [layers, B, S, K, H] array, or with
  `per_layer` (layers as a Python loop, `scan_layers=False`, only) a tuple
  of [B, S, K, H] arrays, one a layer. In a decode loop compiled for an
  H100, the stacked layout costs a copy of each layer's k and v out of the
  stack at every step (1.3 of a Gemma-2B step's 8.5 GB at batch 64); on
  XLA:CPU the per-layer one ran no faster and a TPU v5p program moved
  slightly more with it (benchmarks/RESULTS.md), so `Sampler` uses it on
  GPUs only. Slots are written left to right from
  `end_index`; a slot with segment id 0 is empty and never attended to.
  """
  dtype = jnp.dtype(dtype or config.dtype)
  shape = (config.num_layers, batch_size, cache_length, config.num_kv_heads,
           config.head_dim)
  if per_layer:
    if config.scan_layers:
      raise ValueError("A per-layer KV cache needs the layers as a Python "
                       "loop: config.replace(scan_layers=False) and "
                       "unstack_layers(params).")
    layers = lambda: tuple(jnp.zeros(shape[1:], dtype)
                           for _ in range(config.num_layers))
    kv = {"k": layers(), "v": layers()}
  else:
    kv = {"k": jnp.zeros(shape, dtype), "v": jnp.zeros(shape, dtype)}
  return {
      **kv,
      "positions": jnp.zeros((batch_size, cache_length), jnp.int32),
      "segment_ids": jnp.zeros((batch_size, cache_length), jnp.int32),
      "end_index": jnp.zeros((), jnp.int32),
  }


def cache_batch_axis(name: str, entry: jax.Array) -> int:
  """The batch axis of a KV-cache entry (`init_cache`): k / v stacked
  [layers, B, S, K, H] or one a layer [B, S, K, H]; positions and segment
  ids [B, S]. Its slot axis is the next one."""
  return entry.ndim - 4 if name in ("k", "v") else 0


def default_positions(segment_ids: jax.Array, start=None) -> jax.Array:
  """Positions counting valid tokens (official `build_positions_from_mask`)."""
  valid = (segment_ids != 0).astype(jnp.int32)
  positions = jnp.cumsum(valid, axis=-1)
  positions = positions - (positions >= 1)
  if start is not None:
    positions = positions + start[:, None]
  return positions


def attention_masks(q_pos, q_seg, kv_pos, kv_seg, window):
  """Global and sliding-window masks [B, T, S] from positions and segments.

  A query attends to keys of its own (non-zero) segment at positions not
  after its own; local layers also require `key > query - window`.
  """
  same = (q_seg[:, :, None] == kv_seg[:, None, :]) & (kv_seg[:, None, :] != 0)
  causal = kv_pos[:, None, :] <= q_pos[:, :, None]
  global_mask = same & causal
  if window is None:
    return global_mask, global_mask
  local = kv_pos[:, None, :] > q_pos[:, :, None] - window
  return global_mask, global_mask & local


class Transformer(nn.Module):
  """Gemma decoder.

  `apply({'params': p}, tokens)` returns an `Output` whose `.logits` are
  [B, L, V]. Optional inputs:
    positions [B, L]: RoPE positions (default: counted over non-pad tokens).
    segment_ids [B, L]: packing segments, 0 = padding (default:
      `tokens != 0`, as the official code treats token 0 as padding).
    cache: from `init_cache`; the tokens are written at `cache['end_index']`
      and attend to everything cached before them (incremental decoding).
    return_logits: False skips the vocabulary projection (value heads).
  """

  config: TransformerConfig

  @nn.compact
  def __call__(self, tokens, positions=None, segment_ids=None, cache=None,
               return_logits: bool = True) -> Output:
    cfg = self.config
    pdt = cfg.params_dtype
    if segment_ids is None:
      segment_ids = (tokens != PAD_ID).astype(jnp.int32)
    if positions is None:
      start = None
      if cache is not None:  # continue counting after the cached tokens
        start = jnp.sum(cache["segment_ids"] != 0, axis=-1).astype(jnp.int32)
      positions = default_positions(segment_ids, start)
    positions = positions.astype(jnp.int32)
    segment_ids = segment_ids.astype(jnp.int32)

    if cache is None:
      kv_pos, kv_seg, index = positions, segment_ids, None
    else:
      index = cache["end_index"]
      kv_pos = jax.lax.dynamic_update_slice(cache["positions"], positions, (0, index))
      kv_seg = jax.lax.dynamic_update_slice(cache["segment_ids"], segment_ids, (0, index))
    global_mask, local_mask = attention_masks(
        positions, segment_ids, kv_pos, kv_seg, cfg.sliding_window_size)

    ctx = {
        "positions": positions,
        "global_mask": global_mask,
        "local_mask": local_mask,
        "local_timescale": jnp.asarray(
            rope_timescale(cfg.head_dim, cfg.local_base_frequency)),
        "global_timescale": jnp.asarray(
            rope_timescale(cfg.head_dim, cfg.global_base_frequency)),
        "cache_index": index,
    }
    layers = {"is_local": jnp.asarray(
        [t == LOCAL_SLIDING for t in cfg.attention_types]),
              "index": jnp.arange(cfg.num_layers, dtype=jnp.int32)}

    embedder = Embedder(cfg, name="embedder")
    x = embedder.encode(tokens)
    x = nn.with_logical_constraint(x, ("batch", "length", "act_embed"))

    block = Block
    policy = REMAT_POLICIES[cfg.remat_policy]
    if cfg.remat_policy != "none":
      # prevent_cse=False is right inside a rolled scan: the forward and the
      # recomputing backward live in different loops, so XLA cannot merge
      # them. Unrolled (a Python loop, or scan_unroll >= num_layers, whose
      # one-trip loop XLA removes) they share one computation, and XLA's CSE
      # on GPU merged the recomputation into the forward: the policy was
      # silently ignored (Gemma-2B, remat 'full': the memory and FLOPs of
      # 'none'; benchmarks/RESULTS.md).
      unrolled = not cfg.scan_layers or cfg.scan_unroll >= cfg.num_layers
      block = nn.remat(Block, policy=policy, prevent_cse=unrolled)
    carry = x if cache is None else (x, {"k": cache["k"], "v": cache["v"]})
    per_layer_cache = cache is not None and isinstance(cache["k"],
                                                       (list, tuple))
    if cfg.scan_layers and per_layer_cache:
      raise ValueError("A per-layer KV cache (init_cache(per_layer=True)) "
                       "needs scan_layers=False; the layer scan carries one "
                       "stacked cache.")
    if cfg.scan_layers:
      scanned = nn.scan(
          block,
          variable_axes={"params": 0},
          split_rngs={"params": True},
          in_axes=(0, nn.broadcast),
          length=cfg.num_layers,
          unroll=cfg.scan_unroll,
          metadata_params={nn.PARTITION_NAME: "layers"},
      )
      carry, _ = scanned(cfg, name="layers")(carry, layers, ctx)
    elif per_layer_cache:
      # Per-layer cache buffers: each layer gets, and returns, its own.
      new_k, new_v = [], []
      for i in range(cfg.num_layers):
        (x, layer_cache), _ = block(cfg, name=f"layer_{i}")(
            (x, {"k": cache["k"][i], "v": cache["v"][i]}),
            jax.tree.map(lambda a, i=i: a[i], layers), ctx)
        new_k.append(layer_cache["k"])
        new_v.append(layer_cache["v"])
      carry = (x, {"k": tuple(new_k), "v": tuple(new_v)})
    else:
      for i in range(cfg.num_layers):
        carry, _ = block(cfg, name=f"layer_{i}")(
            carry, jax.tree.map(lambda a, i=i: a[i], layers), ctx)
    x, new_layer_cache = carry if cache is not None else (carry, None)

    x = RMSNorm(pdt, "embed", name="final_norm")(x)
    logits = (soft_cap(embedder.decode(x), cfg.final_logit_softcap)
              if return_logits else None)

    new_cache = None
    if cache is not None:
      new_cache = {
          "k": new_layer_cache["k"],
          "v": new_layer_cache["v"],
          "positions": kv_pos,
          "segment_ids": kv_seg,
          "end_index": index + tokens.shape[1],
      }
    return Output(logits=logits, hidden_states=x, cache=new_cache)


def unstack_layers(params: dict[str, Any]) -> dict[str, Any]:
  """Params stacked on the `layers` axis -> one `layer_N` subtree per layer
  (the official nested layout; what `scan_layers=False` reads). New buffers,
  each sharded as its slice of the stack; works on `jax.ShapeDtypeStruct`s."""
  def take(x, i):
    if isinstance(x, jax.ShapeDtypeStruct):
      return jax.ShapeDtypeStruct(x.shape[1:], x.dtype)
    return x[i]

  num_layers = jax.tree.leaves(params["layers"])[0].shape[0]
  nested = {k: v for k, v in params.items() if k != "layers"}
  for i in range(num_layers):
    nested[f"layer_{i}"] = jax.tree.map(lambda x, i=i: take(x, i),
                                        params["layers"])
  return nested


def cast_for_compute(config: TransformerConfig, params: dict[str, Any],
                     keep: Sequence[str] = ()) -> dict[str, Any]:
  """Every weight the model casts to the compute dtype at each use (einsum
  kernels, the embedding), cast once: the same values, so the same outputs
  bit for bit, but a bf16 decode step reads 2-byte weights instead of
  reading fp32 ones and writing their bf16 copies (a training export's fp32
  params). Norm scales, applied in fp32, stay as they are. New buffers
  with the same shardings; params already in the compute dtype are kept.
  Samplers and scorers hold their weights so; the training step casts so
  (`cast_params_once`) outside the layer scan, once a step, the gradient
  flowing back through the cast. `keep`: parameter names left as they are
  (training keeps `input_embedding`: see `train._compute_params`)."""
  dt = config.compute_dtype

  def cast(path, x):
    name = getattr(path[-1], "key", None)
    if (name == "scale" or name in keep or not jnp.issubdtype(x.dtype, jnp.floating)
        or jnp.finfo(x.dtype).bits <= jnp.finfo(dt).bits):
      return x
    return x.astype(dt)

  return jax.tree_util.tree_map_with_path(cast, params)


def logits_from_hidden(config: TransformerConfig, params, hidden) -> jax.Array:
  """The output projection (tied embedding + final soft-cap) on final hidden
  states, e.g. only the last position during sampling, so no [B, L, V]
  buffer is ever built."""
  table = params["embedder"]["input_embedding"].astype(config.compute_dtype)
  logits = einsum_fp32_out("...D,VD->...V",
                           hidden.astype(config.compute_dtype), table)
  return soft_cap(logits, config.final_logit_softcap)


class Embedder(nn.Module):
  """Token embedding, also the (tied) output projection."""

  config: TransformerConfig

  def setup(self):
    cfg = self.config
    self.input_embedding = _param(
        self, "input_embedding", nn.initializers.normal(),
        (cfg.num_embed, cfg.embed_dim), ("vocab", "embed"), cfg.params_dtype)

  def encode(self, tokens):
    dt = self.config.compute_dtype
    # Under fsdp the table's features are split over the fsdp axis and the
    # tokens' rows over data x fsdp: left to itself, XLA all-gathered the
    # looked-up [B, T, D] activations of the whole global batch onto every
    # device. Instead each device looks up its fsdp group's tokens (a small
    # int all-gather) in its own feature slice, and the caller's batch
    # layout moves the features back to their rows (one all-to-all of a
    # local batch's activations; the gradient takes the reverse path and the
    # table's stays fsdp-sharded).
    tokens = nn.with_logical_constraint(tokens, ("embed_lookup_batch", "length"))
    x = jnp.take(self.input_embedding, tokens, axis=0)
    x = nn.with_logical_constraint(
        x, ("embed_lookup_batch", "length", "embed_lookup_embed")).astype(dt)
    # Official: the scale is cast to the compute dtype before multiplying.
    return x * jnp.sqrt(self.config.embed_dim).astype(dt)

  def decode(self, x):
    table = self.input_embedding.astype(self.config.compute_dtype)
    logits = einsum_fp32_out("BTD,VD->BTV", x, table)
    return nn.with_logical_constraint(logits, ("batch", "length", "act_vocab"))


# -----------------------------------------------------------------------------
# Convenience.
# -----------------------------------------------------------------------------


def init_params(config: TransformerConfig, rng: jax.Array | int = 0,
                mesh: jax.sharding.Mesh | None = None,
                rules=sharding_lib.DEFAULT_RULES) -> dict[str, Any]:
  """Random parameters (plain arrays, no partitioning boxes).

  With a `mesh`, they are created already sharded by the logical-axis
  `rules` (`jax.jit(init, out_shardings=...)`): no device ever holds the
  whole model.
  """
  if isinstance(rng, int):
    rng = jax.random.PRNGKey(rng)

  def init(rng):
    tokens = jnp.ones((1, 4), jnp.int32)
    return nn.unbox(Transformer(config).init(rng, tokens)["params"])

  if mesh is None:
    return jax.jit(init)(rng)
  shardings = sharding_lib.logical_shardings(abstract_params(config), mesh,
                                             rules)
  return jax.jit(init, out_shardings=shardings)(rng)


def abstract_params(config: TransformerConfig) -> dict[str, Any]:
  """Parameter shapes/dtypes, boxed with their logical axis names."""
  tokens = jax.ShapeDtypeStruct((1, 4), jnp.int32)
  variables = jax.eval_shape(
      lambda t: Transformer(config).init(jax.random.PRNGKey(0), t), tokens)
  return variables["params"]


def count_params(params) -> int:
  return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(params))
