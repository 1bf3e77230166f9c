"""Meshes and logical-axis sharding rules.

One mesh with axes `(data, fsdp, tensor)` serves 1 CPU, 8 fake CPU devices, a
GPU and a pod. Parameters and activations carry logical axis names (see
`models/gemma.py`); `DEFAULT_RULES` maps them onto mesh axes as t5x/maxtext
do. A mapping that does not divide a dimension (e.g. one MQA kv head over a
tensor axis of 2) falls back to replication for that dimension instead of
failing, so one rule set works for every model size.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Sequence

from flax import linen as nn
import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
import numpy as np

MESH_AXES = ("data", "fsdp", "tensor")

Rules = Sequence[tuple[str, Any]]

DEFAULT_RULES: tuple[tuple[str, Any], ...] = (
    # Activations.
    ("batch", ("data", "fsdp")),
    # The embedding lookup's own layout (gemma.Embedder.encode): the batch
    # over data only and the features over fsdp, as the table is sharded.
    ("embed_lookup_batch", "data"),
    ("embed_lookup_embed", "fsdp"),
    ("length", None),
    ("kv_length", None),
    ("act_embed", None),
    ("act_mlp", "tensor"),
    ("act_vocab", "tensor"),
    # Parameters.
    ("layers", None),
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv_heads", "tensor"),
    ("head_dim", None),
    ("norm", None),
)


def make_mesh(shape: Sequence[int] = (-1, 1, 1),
              devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A `(data, fsdp, tensor)` mesh; one entry of `shape` may be -1 (the rest)."""
  devices = list(devices if devices is not None else jax.devices())
  shape = list(shape)
  if len(shape) != len(MESH_AXES):
    raise ValueError(f"mesh shape {shape} must have {len(MESH_AXES)} entries "
                     f"for axes {MESH_AXES}.")
  if shape.count(-1) > 1:
    raise ValueError(f"mesh shape {shape}: at most one -1.")
  if any(not isinstance(s, int) or (s < 1 and s != -1) for s in shape):
    raise ValueError(f"mesh shape {shape}: each entry is a positive integer, or -1 "
                     "for the devices left.")
  known = math.prod(s for s in shape if s != -1)
  if -1 in shape:
    if len(devices) % known:
      raise ValueError(f"mesh shape {shape} does not divide {len(devices)} "
                       "devices.")
    shape[shape.index(-1)] = len(devices) // known
  if math.prod(shape) != len(devices):
    raise ValueError(f"mesh shape {shape} needs {math.prod(shape)} devices; "
                     f"{len(devices)} are available.")
  return Mesh(device_grid(shape, devices), MESH_AXES)


def device_grid(shape: Sequence[int], devices: Sequence[Any]) -> np.ndarray:
  """`devices` arranged as the mesh `shape` (data, fsdp, tensor), in
  `jax.devices()` order.

  That order is process-tiled (each host's devices are consecutive), so the
  innermost axes (tensor, then fsdp) stay within a host and every host
  holds whole data shards, which it feeds with its own rows
  (`train.make_global_batch`). `mesh_utils.create_device_mesh`'s physical
  layout was tried: on v5p-64 at (1, 8, 4) it splits each tensor group
  over two hosts, which would feed one shard two hosts' rows.

  Devices of several TPU slices (multislice) must differ by slice along the
  data axis only: fsdp's all-gathers and tensor's all-reduces run at every
  layer, too often for the slow links between slices (DCN); data's gradient
  all-reduce runs once a step.
  """
  grid = np.asarray(devices).reshape([int(s) for s in shape])
  slices_of = lambda devs: {getattr(d, "slice_index", None) or 0 for d in devs}
  slices = slices_of(devices)
  if len(slices) > 1:
    mixed = [i for i in range(grid.shape[0]) if len(slices_of(grid[i].flat)) > 1]
    if mixed:
      n = len(slices)
      raise ValueError(
          f"mesh shape {list(shape)} over {n} TPU slices puts the fsdp or tensor "
          f"axis across slices (data index {mixed[0]} spans several), whose links "
          f"(DCN) are too slow for the per-layer collectives: make the data axis "
          f"a multiple of {n} (e.g. config.mesh=({n}, -1, {grid.shape[2]})), with "
          "the devices in slice order (jax.devices()).")
  return grid


def _mesh_axes_for(name: str | None, rules: Rules) -> tuple[str, ...]:
  if name is None:
    return ()
  for logical, mesh_axes in rules:
    if logical == name:
      if mesh_axes is None:
        return ()
      return (mesh_axes,) if isinstance(mesh_axes, str) else tuple(mesh_axes)
  return ()  # no rule: replicated (as flax does)


def spec_for(shape: Sequence[int], names: Sequence[str | None], mesh: Mesh,
             rules: Rules = DEFAULT_RULES) -> P:
  """PartitionSpec for an array with logical `names`, dropping mesh axes that
  do not divide the dimension or that an earlier dimension already uses."""
  used: set[str] = set()
  spec = []
  for dim, name in zip(shape, names):
    axes = []
    size = 1
    for axis in _mesh_axes_for(name, rules):
      n = mesh.shape[axis]
      if axis in used or n == 1 or dim % (size * n):
        continue
      axes.append(axis)
      size *= n
    used.update(axes)
    spec.append(None if not axes else axes[0] if len(axes) == 1 else tuple(axes))
  return P(*spec)


def logical_shardings(boxed_tree, mesh: Mesh, rules: Rules = DEFAULT_RULES):
  """NamedShardings for a tree of `nn.LogicallyPartitioned` leaves (e.g. from
  `jax.eval_shape(model.init, ...)`); unboxed leaves are replicated."""

  def one(leaf):
    if isinstance(leaf, nn.LogicallyPartitioned):
      value = leaf.value
      return NamedSharding(mesh, spec_for(value.shape, leaf.names, mesh, rules))
    return NamedSharding(mesh, P())

  return jax.tree.map(one, boxed_tree,
                      is_leaf=lambda x: isinstance(x, nn.LogicallyPartitioned))


def batch_sharding(mesh: Mesh, ndim: int = 2,
                   rules: Rules = DEFAULT_RULES) -> NamedSharding:
  """Sharding of a [batch, ...] input array."""
  axes = tuple(a for a in _mesh_axes_for("batch", rules) if mesh.shape[a] > 1)
  first = None if not axes else axes[0] if len(axes) == 1 else axes
  return NamedSharding(mesh, P(first, *([None] * (ndim - 1))))


def flax_rules(rules: Rules = DEFAULT_RULES):
  """Context for `nn.with_logical_constraint` inside jitted functions."""
  return nn.logical_axis_rules(list(rules))


@contextlib.contextmanager
def use_mesh(mesh: Mesh, rules: Rules = DEFAULT_RULES):
  """Makes `mesh` current and the logical rules active: the context a jitted
  step whose activations carry logical constraints runs in."""
  with jax.set_mesh(mesh), flax_rules(rules):
    yield mesh
