"""Official Gemma checkpoints <-> this model's stacked parameter tree.

Layouts understood (all orbax PyTree checkpoints):

* ``kaggle`` — the official flat layout that `gemma.params.format_and_save_params`
  writes and Kaggle ships: top-level keys ``transformer/embedder``,
  ``transformer/layer_N/attn/q_einsum``, ``transformer/layer_N/mlp/linear``,
  ``transformer/final_norm``, each a dict of leaves (``w``, ``scale``,
  ``input_embedding``).
* ``nested`` — the nested tree `gm.ckpts.save_params` writes (and the official
  Flax param tree): ``{embedder, layer_N, final_norm}``, where the MLP weights
  are leaves directly (``layer_N/mlp/linear``), without ``w``.
* ``stacked`` — this model's own tree (``layers/...`` with a leading layer axis).

`load_params` detects the layout, checks every key and shape against the
config (listing missing, unexpected and mis-shaped keys), restores each array
with its target sharding so it lands directly on the mesh, and stacks the
layers. `save_params` writes any of the layouts.

Checkpoints that hold more than the language model load too, as the official
`gm.ckpts.load_params(text_only=True)` does: the multimodal Gemma 3 releases
(4B/12B/27B: a SigLIP tower `SigLiPFromPatches_0/...` or `vision_encoder`, and
`mm_*` / `audio_*` projections in the embedder) and Kauldron trainer
checkpoints (`{params, opt_state, step, ...}`, possibly under a
`default/` item directory). Those arrays are never read (orbax partial
restore); the log lists what was left out.
"""

from __future__ import annotations

import os
import re
from typing import Any, Callable

from absl import logging
from flax import traverse_util
import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from genrm_jax import sharding as sharding_lib
from genrm_jax.models import gemma

LAYOUTS = ("kaggle", "nested", "stacked")
_LAYER_RE = re.compile(r"^layer_(\d+)$")
_MLP_LEAVES = ("gating_einsum", "linear")
# Not part of the language model: multimodal encoders (top-level modules) and
# the embedder's projections of their outputs (official `_remove_mm_params`).
_NON_TEXT_MODULES = ("SigLiPFromPatches_0", "vision_encoder", "audio_encoder")
_NON_TEXT_EMBEDDER_PREFIXES = ("mm_", "audio_")
# Top-level keys of a Kauldron `kd.train.Trainer` checkpoint (it also has
# `collections`, which orbax may not record when empty).
_KAULDRON_KEYS = frozenset({"opt_state", "params", "step"})


class CheckpointMismatchError(ValueError):
  """A checkpoint's keys or shapes do not match the model config."""

  def __init__(self, path, missing, unexpected, mis_shaped, layout):
    self.missing, self.unexpected, self.mis_shaped = missing, unexpected, mis_shaped
    lines = [f"Checkpoint {path} ({layout} layout) does not match the model "
             "config:"]
    if missing:
      lines.append(f"  missing keys ({len(missing)}): " + ", ".join(missing))
    if unexpected:
      lines.append(f"  unexpected keys ({len(unexpected)}): "
                   + ", ".join(unexpected))
    if mis_shaped:
      lines.append(f"  mis-shaped keys ({len(mis_shaped)}): " + ", ".join(
          f"{k} checkpoint {c} vs config {e}" for k, c, e in mis_shaped))
    lines.append("Fix: pick the preset that matches the checkpoint (e.g. "
                 "gemma.get_config('gemma2_2b')) or override the differing "
                 "fields.")
    super().__init__("\n".join(lines))


# -----------------------------------------------------------------------------
# Layout conversions (work on arrays and on jax.ShapeDtypeStruct alike).
# -----------------------------------------------------------------------------


def stacked_to_nested(params: dict[str, Any]) -> dict[str, Any]:
  """Our stacked tree -> the official nested tree `{embedder, layer_N, ...}`."""
  return gemma.unstack_layers(params)


def nested_to_stacked(nested: dict[str, Any],
                      stack: Callable = None) -> dict[str, Any]:
  """The official nested tree -> our stacked tree (layers stacked on axis 0)."""
  stack = stack or (lambda xs: jnp.stack(xs))
  layer_keys = sorted((k for k in nested if _LAYER_RE.match(k)),
                      key=lambda k: int(_LAYER_RE.match(k).group(1)))
  params = {k: v for k, v in nested.items() if not _LAYER_RE.match(k)}
  layers = [nested[k] for k in layer_keys]
  params["layers"] = jax.tree.map(lambda *xs: stack(list(xs)), *layers)
  return params


def nested_to_kaggle(nested: dict[str, Any]) -> dict[str, Any]:
  """Nested tree -> the flat `transformer/...` layout (official
  `flatten_and_remap_params`: MLP weights get back their `w` leaf)."""
  flat = traverse_util.flatten_dict(nested, sep="/")
  out: dict[str, dict[str, Any]] = {}
  for path, value in flat.items():
    parts = path.split("/")
    if len(parts) >= 2 and parts[-2] == "mlp" and parts[-1] in _MLP_LEAVES:
      parts.append("w")
    module, leaf = "/".join(["transformer"] + parts[:-1]), parts[-1]
    out.setdefault(module, {})[leaf] = value
  return out


def kaggle_to_nested(flat: dict[str, Any]) -> dict[str, Any]:
  """The flat `transformer/...` layout -> nested tree (official
  `param_remapper` + `nest_params`)."""
  nested: dict[str, Any] = {}
  for module, leaves in flat.items():
    parts = module.split("/")
    if parts[0] == "transformer":
      parts = parts[1:]
    if len(parts) >= 2 and parts[-2] == "mlp" and parts[-1] in _MLP_LEAVES:
      # `.../mlp/linear: {w: x}` -> `.../mlp/linear: x`
      sub = nested
      for key in parts[:-1]:
        sub = sub.setdefault(key, {})
      sub[parts[-1]] = leaves["w"] if isinstance(leaves, dict) else leaves
      continue
    sub = nested
    for key in parts:
      sub = sub.setdefault(key, {})
    sub.update(leaves)
  return nested


def detect_layout(tree: dict[str, Any]) -> str:
  keys = list(tree)
  if keys and all(k.startswith("transformer/") for k in keys):
    return "kaggle"
  if "layers" in tree:
    return "stacked"
  if any(_LAYER_RE.match(k) for k in keys):
    return "nested"
  raise ValueError(
      f"Unrecognised Gemma checkpoint layout; top-level keys: {keys[:10]}. "
      "Expected `transformer/...` (Kaggle), `layer_N` (nested) or `layers` "
      "(stacked).")


def _is_text_path(path: tuple[str, ...]) -> bool:
  """Whether a stored array belongs to the language model. `path` is its key
  path; a key may itself hold `/` (the Kaggle layout's module names)."""
  parts = "/".join(path).split("/")
  if any(p in _NON_TEXT_MODULES for p in parts):
    return False
  return not any(a == "embedder" and b.startswith(_NON_TEXT_EMBEDDER_PREFIXES)
                 for a, b in zip(parts, parts[1:]))


def split_language_model(stored: dict[str, Any]
                         ) -> tuple[dict[str, Any], tuple[str, ...], list[str]]:
  """(the language model's subtree, its key path in `stored`, the paths left
  out) of a stored tree: drops multimodal towers and projections, and takes
  `params` out of a Kauldron trainer checkpoint."""
  prefix: tuple[str, ...] = ()
  left_out = []
  tree = stored
  while isinstance(tree, dict):
    if _KAULDRON_KEYS <= set(tree):
      left_out += sorted(k for k in tree if k != "params")
      prefix += ("params",)
      tree = tree["params"]
    elif len(tree) == 1 and next(iter(tree)) in ("params", "transformer"):
      prefix += (next(iter(tree)),)
      tree = tree[prefix[-1]]
    else:
      break
  flat = traverse_util.flatten_dict(tree)
  text = {k: v for k, v in flat.items() if _is_text_path(k)}
  left_out += sorted("/".join(k) for k in flat if k not in text)
  return traverse_util.unflatten_dict(text), prefix, left_out


def _nest_under(prefix: tuple[str, ...], tree: dict[str, Any]) -> dict[str, Any]:
  for key in reversed(prefix):
    tree = {key: tree}
  return tree


def _summarise(paths: list[str], limit: int = 6) -> str:
  """The left-out paths' groups (top-level module, or `transformer/` module
  and its child), the first `limit` of them: 'a, b, ... (N groups)'."""
  groups = sorted({p.split("/")[0] if not p.startswith("transformer/")
                   else "/".join(p.split("/")[:3]) for p in paths})
  more = f", ... ({len(groups)} groups)" if len(groups) > limit else ""
  return ", ".join(groups[:limit]) + more


def to_layout(params: dict[str, Any], layout: str) -> dict[str, Any]:
  if layout == "stacked":
    return params
  nested = stacked_to_nested(params)
  return nested if layout == "nested" else nested_to_kaggle(nested)


# -----------------------------------------------------------------------------
# Save / load.
# -----------------------------------------------------------------------------


def save_params(params: dict[str, Any], path: str | os.PathLike,
                layout: str = "kaggle", force: bool = False) -> None:
  """Writes `params` (our stacked tree) as an orbax checkpoint in `layout`."""
  if layout not in LAYOUTS:
    raise ValueError(f"layout={layout!r}; expected one of {LAYOUTS}.")
  tree = to_layout(params, layout)
  ocp.PyTreeCheckpointer().save(_orbax_path(path), tree, force=force)


def _orbax_path(path: str | os.PathLike) -> str:
  """An absolute local path (orbax cannot read item metadata through a
  relative one, e.g. the launchers' `runs/gemma3_270m/params`); URLs as
  given."""
  path = os.fspath(path)
  return path if "://" in path else os.path.abspath(path)


def _item_path(path: str) -> str:
  """A Kauldron checkpoint step directory keeps its params item in
  `default/`; other checkpoints are the item itself."""
  if "://" in path or os.path.exists(os.path.join(path, "_METADATA")):
    return path
  default = os.path.join(path, "default")
  return default if os.path.exists(os.path.join(default, "_METADATA")) else path


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
  """The checkpoint's tree of `jax.ShapeDtypeStruct`s, as stored."""
  path = _orbax_path(path)
  if not os.path.exists(path) and "://" not in path:
    raise FileNotFoundError(
        f"No checkpoint at {path}. Official Gemma checkpoints come from "
        "Kaggle (kaggle.com/models/google/gemma); pass the directory that "
        "holds `_METADATA` / `manifest.ocdbt`.")
  meta = ocp.PyTreeCheckpointer().metadata(_item_path(path))
  meta = getattr(meta, "item_metadata", meta)
  meta = getattr(meta, "tree", meta)
  if meta is None:
    raise FileNotFoundError(
        f"{path} holds no orbax checkpoint (no `_METADATA`): pass the directory "
        "that does, e.g. a Kaggle checkpoint's, or an HF directory with config.json "
        "and *.safetensors.")
  return jax.tree.map(lambda m: jax.ShapeDtypeStruct(tuple(m.shape), m.dtype),
                      dict(meta))


def _flat_shapes(tree) -> dict[str, tuple[int, ...]]:
  flat = traverse_util.flatten_dict(tree, sep="/")
  return {k: tuple(v.shape) for k, v in flat.items()}


def shape_differences(got: dict[str, tuple], want: dict[str, tuple], key=None
                      ) -> tuple[list[str], list[str], list[tuple[str, tuple, tuple]]]:
  """(missing, unexpected, mis-shaped (key, got, want)) between two
  {key: shape} maps, each sorted by `key` (default: the key itself)."""
  key = key or (lambda k: k)
  missing = sorted(set(want) - set(got), key=key)
  unexpected = sorted(set(got) - set(want), key=key)
  mis_shaped = [(k, got[k], want[k]) for k in sorted(set(got) & set(want), key=key)
                if got[k] != want[k]]
  return missing, unexpected, mis_shaped


def check_structure(stored: dict[str, Any], expected: dict[str, Any],
                    path: str, layout: str) -> None:
  """Raises CheckpointMismatchError unless keys and shapes agree."""
  missing, unexpected, mis_shaped = shape_differences(_flat_shapes(stored),
                                                      _flat_shapes(expected))
  if missing or unexpected or mis_shaped:
    raise CheckpointMismatchError(path, missing, unexpected, mis_shaped, layout)


def load_params(path: str | os.PathLike, config: gemma.TransformerConfig,
                mesh: jax.sharding.Mesh | None = None,
                rules=sharding_lib.DEFAULT_RULES,
                dtype: Any = None) -> dict[str, Any]:
  """Reads an official (or our own) Gemma checkpoint into our stacked tree.

  Args:
    path: orbax checkpoint directory (or a bundle directory: its params/).
    config: the model config; keys and shapes are checked against it.
    mesh: if given, every array is restored straight into its sharding on
      this mesh (logical-axis rules `rules`); else onto the default device.
    dtype: parameter dtype to restore as (default `config.param_dtype`).

  Returns:
    The parameter tree `gemma.Transformer(config)` expects.

  An HF transformers checkpoint directory (config.json and *.safetensors)
  is read too (`import_hf`), converted in memory.
  """
  from genrm_jax.models import import_hf  # pylint: disable=g-import-not-at-top
  if import_hf.is_hf_dir(path):
    return import_hf.load_params(os.fspath(path), config, mesh=mesh, rules=rules,
                                 dtype=dtype)
  bundle_params = os.path.join(os.fspath(path), "params")
  if (os.path.isfile(os.path.join(os.fspath(path), "model.json"))
      and os.path.isdir(bundle_params)):
    # A bundle (`import_hf --out`, `import_gguf --out`, a training export):
    # its weights are the checkpoint in params/.
    path = bundle_params
  path = _orbax_path(path)
  dtype = jnp.dtype(dtype or config.param_dtype)
  stored, prefix, left_out = split_language_model(read_metadata(path))
  path = _item_path(path)
  layout = detect_layout(stored)
  if left_out:
    logging.info("load_params: %s holds more than the language model; not "
                 "reading %d arrays: %s.", path, len(left_out),
                 _summarise(left_out))

  boxed = gemma.abstract_params(config)
  if mesh is None:
    device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    stacked_shardings = jax.tree.map(lambda _: device, boxed, is_leaf=_is_box)
  else:
    stacked_shardings = sharding_lib.logical_shardings(boxed, mesh, rules)
  abstract = jax.tree.map(lambda b: b.value if _is_box(b) else b, boxed,
                          is_leaf=_is_box)
  expected = to_layout(abstract, layout)
  check_structure(stored, expected, path, layout)

  # Restore target in the checkpoint's layout: per-layer arrays take the
  # stacked sharding minus its leading (layer) axis.
  def per_layer(s):
    if isinstance(s, jax.sharding.NamedSharding):
      return jax.sharding.NamedSharding(s.mesh, jax.sharding.PartitionSpec(
          *tuple(s.spec)[1:]))
    return s

  layer_shardings = jax.tree.map(per_layer, stacked_shardings["layers"])
  target_shardings = dict(stacked_shardings, layers=layer_shardings)
  nested_shardings = {k: v for k, v in target_shardings.items() if k != "layers"}
  for i in range(config.num_layers):
    nested_shardings[f"layer_{i}"] = layer_shardings
  if layout == "stacked":
    ckpt_shardings = stacked_shardings
  elif layout == "nested":
    ckpt_shardings = nested_shardings
  else:
    ckpt_shardings = nested_to_kaggle(nested_shardings)

  target = jax.tree.map(
      lambda m, s: jax.ShapeDtypeStruct(m.shape, dtype, sharding=s),
      stored, ckpt_shardings)
  target = _nest_under(prefix, target)
  restore_args = ocp.checkpoint_utils.construct_restore_args(target)
  restored = ocp.PyTreeCheckpointer().restore(
      path, args=ocp.args.PyTreeRestore(item=target, restore_args=restore_args,
                                        partial_restore=bool(left_out)))
  for key in prefix:
    restored = restored[key]

  if layout == "stacked":
    return restored
  nested = restored if layout == "nested" else kaggle_to_nested(restored)
  layers = [nested[f"layer_{i}"] for i in range(config.num_layers)]
  stack = jax.jit(lambda *xs: jax.tree.map(lambda *ys: jnp.stack(ys), *xs),
                  out_shardings=stacked_shardings["layers"])
  params = {k: v for k, v in nested.items() if not _LAYER_RE.match(k)}
  params["layers"] = stack(*layers)
  return params


def _is_box(x) -> bool:
  from flax import linen as nn  # local: keep the module import light
  return isinstance(x, nn.LogicallyPartitioned)
