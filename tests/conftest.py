"""Shared test setup: CPU only, fp32 matmuls, the data dir for data tests."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# 8 fake CPU devices, so sharding tests run the same code a pod runs.
# Unsharded computations still use one device.
if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                             " --xla_force_host_platform_device_count=8")

# LLVM at -O0: the tests check numbers and programs, not the CPU code's
# speed, and on the 2-core machine LLVM's optimisation was about half of
# every compile (the smoke pipeline's compiles: 27.4 s -> 14.9 s). A cold
# suite (no compilation cache, as on a new machine): 689 s -> 480 s. XLA's
# own (HLO) passes still run, so the programs the structural tests read do
# not change. Subprocesses the tests start inherit it; an explicit
# --xla_backend_optimization_level in XLA_FLAGS wins.
if "xla_backend_optimization_level" not in os.environ["XLA_FLAGS"]:
  os.environ["XLA_FLAGS"] += " --xla_backend_optimization_level=0"

import jax  # noqa: E402

jax.config.update("jax_default_matmul_precision", "highest")
