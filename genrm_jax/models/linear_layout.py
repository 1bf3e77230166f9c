"""Gemma weights stored as `nn.Linear` matrices -> this model's parameters.

HF transformers checkpoints and llama.cpp GGUF files both store a Gemma as
PyTorch-style linear weights, `[out_features, in_features]`, one matrix per
projection and per layer, under their own names. `build_params` maps such a
set of arrays onto our stacked parameter tree (official Flax layout, a
leading `layers` axis); the importers only say what each tensor is called
and how their norms are stored.

Layouts (N heads, K kv heads, H head dim, D embed, F hidden):
  q [N*H, D]        -> attn/q_einsum/w [N, D, H]
  k, v [K*H, D]     -> attn/kv_einsum/w [2, K, D, H]
                       (N == K: q, k, v -> attn/qkv_einsum/w [3, N, D, H])
  o [D, N*H]        -> attn/attn_vec_einsum/w [N, H, D]
  gate, up [F, D]   -> mlp/gating_einsum [2, F, D] (transpose_gating_einsum)
                       or [2, D, F]
  down [D, F]       -> mlp/linear [F, D]
  norms [X]         -> .../scale [X] = weight - norm_offset
  embed [V, D]      -> embedder/input_embedding (also the output projection)
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

import numpy as np

from genrm_jax.models import gemma

# Semantic per-layer names -> our path inside a layer (norms).
NORM_PATHS = {
    "pre_attn_norm": "pre_attention_norm/scale",
    "post_attn_norm": "post_attention_norm/scale",
    "pre_ffw_norm": "pre_ffw_norm/scale",
    "post_ffw_norm": "post_ffw_norm/scale",
    "q_norm": "attn/_query_norm/scale",
    "k_norm": "attn/_key_norm/scale",
}
MATRICES = ("q", "k", "v", "o", "gate", "up", "down")


def _needed_norms(config: gemma.TransformerConfig) -> list[str]:
  norms = ["pre_attn_norm", "pre_ffw_norm"]
  if config.use_post_attn_norm:
    norms.append("post_attn_norm")
  if config.use_post_ffw_norm:
    norms.append("post_ffw_norm")
  if config.use_qk_norm:
    norms += ["q_norm", "k_norm"]
  return norms


def _fill(stacked: dict[str, Any], layer: dict[str, Any], index: int, num_layers: int,
          dtype: Any) -> None:
  """Writes one layer's arrays into `stacked` ([layers, ...] arrays, made
  on the first layer): the model is held once, in `dtype`, not as a list of
  float32 layers and then a stacked copy (a 9B import at home)."""
  for key, value in layer.items():
    if isinstance(value, dict):
      _fill(stacked.setdefault(key, {}), value, index, num_layers, dtype)
    else:
      if key not in stacked:
        stacked[key] = np.empty((num_layers,) + value.shape, dtype)
      stacked[key][index] = value


def build_params(tensors: Mapping[str, np.ndarray], config: gemma.TransformerConfig,
                 layer_name: Callable[[int, str], str], embed_name: str,
                 final_norm_name: str, *, norm_offset: float, source: str,
                 ignored: Callable[[str], bool] = lambda name: False,
                 dtype: Any = np.float32) -> dict[str, Any]:
  """Our stacked parameter tree (numpy, `dtype`) from linear-layout tensors.

  Args:
    tensors: name -> array (`[out, in]` matrices, 1-d norms).
    config: the model they are for (shapes are checked against it).
    layer_name: (layer index, semantic name of MATRICES / NORM_PATHS) -> the
      tensor's name.
    embed_name, final_norm_name: the embedding table's and final norm's names.
    norm_offset: what the stored norm weights add to our `scale` (llama.cpp
      folds Gemma's `1 +` into them: 1; HF stores `scale` itself: 0).
    source: for error messages (the file or format).
    ignored: names that may be present and are not the language model (a
      multimodal checkpoint's vision tower); anything else left over is an
      error.
    dtype: of the returned arrays (norms are computed in float32 first).
  """
  n, k, h = config.num_heads, config.num_kv_heads, config.head_dim
  d, f = config.embed_dim, config.hidden_dim
  used: set[str] = set()

  def get(name: str, shape: tuple[int, ...]) -> np.ndarray:
    if name not in tensors:
      raise KeyError(f"{source}: tensor {name!r} missing (have e.g. "
                     f"{sorted(tensors)[:8]}).")
    x = np.asarray(tensors[name])
    if tuple(x.shape) != shape:
      raise ValueError(f"{source}: tensor {name} has shape {tuple(x.shape)}; expected "
                       f"{shape} for this model ({config.num_layers} layers, D={d}, "
                       f"F={f}, {n} heads, {k} kv heads of {h}).")
    used.add(name)
    return x.astype(np.float32)

  def proj_in(w: np.ndarray, heads: int) -> np.ndarray:  # [heads*H, D]
    return w.reshape(heads, h, d).transpose(0, 2, 1)  # -> [heads, D, H]

  stacked: dict[str, Any] = {}
  for i in range(config.num_layers):
    name = lambda what: layer_name(i, what)  # pylint: disable=cell-var-from-loop
    q = proj_in(get(name("q"), (n * h, d)), n)
    kk = proj_in(get(name("k"), (k * h, d)), k)
    v = proj_in(get(name("v"), (k * h, d)), k)
    attn = ({"qkv_einsum": {"w": np.stack([q, kk, v])}} if n == k else
            {"q_einsum": {"w": q}, "kv_einsum": {"w": np.stack([kk, v])}})
    attn["attn_vec_einsum"] = {"w": get(name("o"), (d, n * h)).T.reshape(n, h, d)}
    gating = np.stack([get(name("gate"), (f, d)), get(name("up"), (f, d))])  # [2, F, D]
    if not config.transpose_gating_einsum:
      gating = gating.transpose(0, 2, 1)  # [2, D, F]
    layer = {"attn": attn,
             "mlp": {"gating_einsum": gating,
                     "linear": get(name("down"), (d, f)).T}}  # [F, D]
    for norm in _needed_norms(config):
      size = h if norm in ("q_norm", "k_norm") else d
      scale = get(name(norm), (size,)) - np.float32(norm_offset)
      node = layer
      *parents, leaf = NORM_PATHS[norm].split("/")
      for key in parents:
        node = node.setdefault(key, {})
      node[leaf] = scale
    _fill(stacked, layer, i, config.num_layers, dtype)

  params = {
      "embedder": {"input_embedding":
                   get(embed_name, (config.num_embed, d)).astype(dtype)},
      "final_norm": {"scale": (get(final_norm_name, (d,)) -
                               np.float32(norm_offset)).astype(dtype)},
      "layers": stacked,
  }
  unused = sorted(name for name in set(tensors) - used if not ignored(name))
  if unused:
    raise ValueError(f"{source}: tensors not mapped onto the model: {unused[:12]}"
                     + (f" ... ({len(unused)} in all)" if len(unused) > 12 else "")
                     + ". Is it the model the config describes?")
  return params


def to_linear(params: dict[str, Any], config: gemma.TransformerConfig,
              layer_name: Callable[[int, str], str], embed_name: str,
              final_norm_name: str, *, norm_offset: float,
              dtype: Any = np.float32) -> dict[str, np.ndarray]:
  """The inverse of `build_params`: our stacked params (numpy or jax
  arrays) -> linear-layout tensors under the given names, in `dtype`."""
  n, k, h = config.num_heads, config.num_kv_heads, config.head_dim
  d = config.embed_dim
  layers = params["layers"]
  attn, mlp = layers["attn"], layers["mlp"]
  as_np = lambda x: np.asarray(x, dtype=np.float32)
  rows = lambda w, heads: w.transpose(0, 2, 1).reshape(heads * h, d)  # [heads, D, H]
  out = {embed_name: as_np(params["embedder"]["input_embedding"]),
         final_norm_name: as_np(params["final_norm"]["scale"]) + np.float32(norm_offset)}
  for i in range(config.num_layers):
    if n == k:
      q, kk, v = as_np(attn["qkv_einsum"]["w"][i])
    else:
      q = as_np(attn["q_einsum"]["w"][i])
      kk, v = as_np(attn["kv_einsum"]["w"][i])
    gating = as_np(mlp["gating_einsum"][i])
    if not config.transpose_gating_einsum:
      gating = gating.transpose(0, 2, 1)  # [2, D, F] -> [2, F, D]
    tensors = {"q": rows(q, n), "k": rows(kk, k), "v": rows(v, k),
               "o": as_np(attn["attn_vec_einsum"]["w"][i]).reshape(n * h, d).T,
               "gate": gating[0], "up": gating[1],
               "down": as_np(mlp["linear"][i]).T}
    for norm in _needed_norms(config):
      node = layers
      for key in NORM_PATHS[norm].split("/"):
        node = node[key]
      tensors[norm] = as_np(node[i]) + np.float32(norm_offset)
    out.update({layer_name(i, what): value for what, value in tensors.items()})
  return {name: np.ascontiguousarray(value.astype(dtype)) for name, value in out.items()}


def check_params(params: dict[str, Any], config: gemma.TransformerConfig,
                 source: str) -> None:
  """Checks keys and shapes against the model (lists any mismatch)."""
  from genrm_jax.models import checkpoints  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from flax import linen as nn  # pylint: disable=g-import-not-at-top
  abstract = jax.tree.map(
      lambda b: b.value if isinstance(b, nn.LogicallyPartitioned) else b,
      gemma.abstract_params(config),
      is_leaf=lambda b: isinstance(b, nn.LogicallyPartitioned))
  checkpoints.check_structure(params, abstract, source, "stacked")
