"""The mesh's device layout: TPU chips by physical topology, slices over DCN."""

import dataclasses

import jax
import numpy as np
import pytest

from genrm_jax import compile_check
from genrm_jax import sharding

_has_libtpu = compile_check._module_found("libtpu")  # pylint: disable=protected-access


@pytest.mark.skipif(not _has_libtpu, reason="libtpu (the tpu extra) describes v5p-64")
def test_tpu_mesh_keeps_each_tensor_group_within_a_host():
  """v5p-64 (32 chips, 4 a host), mesh (1, 8, 4): each tensor group is one
  host's chips, so each host holds whole data shards (it feeds them its own
  rows). mesh_utils' physical layout splits them over two hosts."""
  from jax.experimental import mesh_utils  # pylint: disable=g-import-not-at-top
  devices = compile_check.topology_devices(compile_check.parse_topology("v5p-64"))
  assert len(devices) == 32 and devices[0].platform == "tpu"
  hosts = lambda grid: [{d.process_index for d in g} for g in grid.reshape(-1, 4)]
  physical = mesh_utils.create_device_mesh((1, 8, 4), devices,
                                           allow_split_physical_axes=True)
  assert any(len(h) > 1 for h in hosts(physical))  # what it would do
  mesh = sharding.make_mesh((1, -1, 4), devices)
  assert dict(mesh.shape) == {"data": 1, "fsdp": 8, "tensor": 4}
  assert all(len(h) == 1 for h in hosts(mesh.devices))


@dataclasses.dataclass(frozen=True)
class _FakeTpu:
  id: int
  coords: tuple
  slice_index: int
  process_index: int
  core_on_chip: int = 0
  platform: str = "tpu"
  device_kind: str = "TPU v4"


def _two_slices():
  """Two v4 slices of 2x2x1 chips, one host each."""
  return [_FakeTpu(4 * s + 2 * y + x, (x, y, 0), s, s)
          for s in range(2) for y in range(2) for x in range(2)]


def test_multislice_meshes_split_slices_along_the_data_axis_only():
  grid = sharding.device_grid((2, 2, 2), _two_slices())
  assert [{d.slice_index for d in grid[i].flat} for i in range(2)] == [{0}, {1}]
  grid = sharding.device_grid((4, 1, 2), _two_slices())  # two shards a slice
  assert [{d.slice_index for d in grid[i].flat} for i in range(4)] == [{0}, {0}, {1}, {1}]
  with pytest.raises(ValueError, match=r"over 2 TPU slices puts the fsdp or tensor axis "
                     r"across slices .* multiple of 2 \(e\.g\. config\.mesh=\(2, -1, 2\)\)"):
    sharding.device_grid((1, 4, 2), _two_slices())


def test_other_platforms_keep_jax_devices_order():
  devices = jax.devices()[:8]
  mesh = sharding.make_mesh((2, 2, 2), devices)
  assert list(mesh.devices.flat) == devices


def test_embedding_lookup_under_fsdp_moves_no_global_batch():
  """data x fsdp (2, 4): the table's features are fsdp-sharded and the
  tokens' rows data x fsdp-sharded. The lookup used to all-gather the whole
  global batch's [B, T, D / 4] activations onto every device; now each
  device looks up its fsdp group's tokens and one all-to-all moves the
  features back to their rows."""
  import re  # pylint: disable=g-import-not-at-top
  text = _train_step_program(mesh=(2, 4, 1), batch=32, seq_len=64)
  global_batch = [l for l in text.splitlines()
                  if re.search(r"= \(?\w+\[32,6[34],", l) and " all-gather(" in l]
  assert not global_batch, global_batch
  assert any(" all-to-all(" in l and "embedder.encode" in l for l in text.splitlines())


def test_loss_at_target_positions_is_row_local_under_fsdp():
  """The loss's gather of target positions and its scatter back stay on
  each row's device (with explicit row indices the scatter gathered its
  indices and summed the [B, T] result over every device)."""
  import re  # pylint: disable=g-import-not-at-top
  text = _train_step_program(mesh=(2, 4, 1), batch=32, seq_len=64,
                             loss_positions=32)
  assert "cond/branch_1_fun" in text  # the target-positions branch is there
  moved = [m.group(1) for m in re.finditer(
      r" (?:all-gather|all-reduce|all-to-all)\(.*op_name=\"([^\"]+)\"", text)
      if re.search(r"branch_\d_fun/(?:checkpoint/)?(?:rematted_computation/)?"
                   r"(?:scatter|gather|sort)", m.group(1))]
  assert not moved, moved


@pytest.mark.parametrize("loss_positions", [0, 32])
def test_chunked_loss_moves_the_table_once_a_step(loss_positions):
  """The chunked loss's loop gathered the fsdp-sharded table, and reduced its
  gradient, at every chunk; now each device loops over its own rows against
  a table gathered once, and the gradient is reduced after the loop."""
  import re  # pylint: disable=g-import-not-at-top
  from benchmarks import hlo_ops  # pylint: disable=g-import-not-at-top
  text = _train_step_program(mesh=(2, 4, 1), batch=32, seq_len=64,
                             loss_chunk_size=8, loss_positions=loss_positions)
  computations, _ = hlo_ops._computations(text)  # pylint: disable=protected-access
  bodies = {body for insts in computations.values() for inst in insts
            if inst.opcode == "while"
            for body in re.findall(r"body=%([\w.\-]+)", inst.attrs)}
  assert bodies
  collectives = ("all-gather", "all-reduce", "reduce-scatter", "all-to-all")
  table = [f"{inst.name} = {inst.shape} {inst.opcode}" for body in bodies
           for inst in computations[body]
           if inst.opcode in collectives and "512," in inst.shape]  # [vocab, ...]
  assert not table, table
  assert "shard_map" in text


def _train_step_program(mesh, batch, seq_len, **overrides) -> str:
  """The compiled text of the tiny solution-SFT train step on 8 CPU devices."""
  from genrm_jax import compile_check as cc  # pylint: disable=g-import-not-at-top
  from tests import train_utils as tu  # pylint: disable=g-import-not-at-top
  config = tu.tiny_config("last_letter_solve", mesh=mesh, batch_size=batch,
                          **overrides)
  config.data.seq_len = seq_len
  compiled, _ = cc.compile_train_step(config, jax.devices()[:8])
  return compiled.as_text()
