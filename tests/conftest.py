"""Shared test setup: CPU only, fp32 matmuls, the data dir for data tests."""

import os
from importlib import metadata


def _jaxlib_version() -> tuple[int, ...]:
  """jaxlib's (major, minor), read without importing jax (XLA_FLAGS first)."""
  try:
    return tuple(int(p) for p in metadata.version("jaxlib").split(".")[:2])
  except (metadata.PackageNotFoundError, ValueError):
    return (0, 0)


os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# 8 fake CPU devices, so sharding tests run the same code a pod runs.
# Unsharded computations still use one device.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             " --xla_force_host_platform_device_count=8")

# Compile speed over code speed: the tests check numbers and programs, not
# how fast the CPU code runs, and on the 2-core machine a cold suite (no
# compilation cache, as on a new machine) spent most of its time in XLA:CPU
# compiles. LLVM at -O0 halved them (the smoke pipeline's: 27.4 s -> 14.9 s)
# and the older elemental emitters in place of the MLIR fusion emitters cut
# another third of what was left (one train step and one sampler: 18.6 s ->
# 12.1 s). The cold suite in two workers: 689 s, 480 s with -O0, 361 s with
# both (and the reference forward passes jitted). XLA's HLO passes still
# run; the structural tests that read CPU programs pass with or without
# these flags. Subprocesses the tests start inherit them; a value already
# in XLA_FLAGS wins (XLA_FLAGS=--xla_backend_optimization_level=2
# --xla_cpu_use_fusion_emitters=true tests what users run).
# jaxlib 0.11 dropped the elemental emitters and with them the flag, which
# XLA then rejects as unknown (a fatal error): set it only where it exists.
_FAST_COMPILE_FLAGS = [("xla_backend_optimization_level", "0")]
if _jaxlib_version() < (0, 11):
  _FAST_COMPILE_FLAGS.append(("xla_cpu_use_fusion_emitters", "false"))
for _flag, _value in _FAST_COMPILE_FLAGS:
  if _flag not in os.environ["XLA_FLAGS"]:
    os.environ["XLA_FLAGS"] += f" --{_flag}={_value}"

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")
