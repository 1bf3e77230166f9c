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
