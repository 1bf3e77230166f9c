"""Orbax checkpoints of the train state, with maxtext's policy.

* The state is a plain pytree `{'params': {'model': ..., ['value_head': ...]},
  'opt_state': ..., 'step': int32}` saved with `StandardSave`; one
  `CheckpointManager` under `WORKDIR/checkpoints/<step>`.
* Saves every `checkpoint_every` steps, at the last step, and when a
  preemption sync point is reached (`reached_preemption`); asynchronous (the
  device->host copy is synchronous, so the next step may donate the buffers);
  the last `max_to_keep` are kept; `wait_until_finished()` before exit.
* Restore is topology-agnostic: the target is the *current* run's abstract
  state (`jax.ShapeDtypeStruct`s carrying the current shardings), so a
  checkpoint written on 8 devices restores onto 1 and vice versa
  (orbax#648/#683 pain points).
* The directory may be a URL (`gs://bucket/run/checkpoints`): orbax writes
  there itself; local paths are made absolute.
* Nothing is saved after a non-finite loss (train.py checks before calling
  `save`), so the latest checkpoint is always the last good one.
"""

from __future__ import annotations

import math
from typing import Any

from absl import logging
import jax
import orbax.checkpoint as ocp

from genrm_jax import paths
from genrm_jax.models import checkpoints as model_checkpoints


def abstract_like(shapes: Any, shardings: Any) -> Any:
  """ShapeDtypeStructs with `shardings` attached: a restore target."""
  return jax.tree.map(
      lambda s, sh: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sh),
      shapes, shardings)


class Checkpointer:
  """A thin policy layer over `ocp.CheckpointManager`."""

  def __init__(self, directory: str, *, save_every: int, max_to_keep: int = 3,
               async_save: bool = True):
    self.directory = paths.absolute(directory)
    self.save_every = int(save_every)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep,
        enable_async_checkpointing=async_save,
        create=True,
    )
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def reached_preemption(self, step: int) -> bool:
    return self._manager.reached_preemption(step)

  def should_save(self, step: int, total_steps: int) -> bool:
    """Interval and final steps; never with `save_every <= 0` (benchmarks).
    (Preemption is checked separately so the caller can also stop.)"""
    if self.save_every <= 0:
      return False
    return step % self.save_every == 0 or step == total_steps

  def save(self, step: int, state: Any) -> None:
    if step in self._manager.all_steps():
      return  # e.g. the final step coincides with a preemption save
    # `force=True`: the decision is ours (should_save / preemption), not the
    # manager's default policy, which would also save the very first step.
    self._manager.save(step, args=ocp.args.StandardSave(state), force=True)

  def restore(self, step: int, abstract_state: Any) -> Any:
    logging.info("Restoring step %d from %s", step, self.directory)
    return self._manager.restore(
        step, args=ocp.args.StandardRestore(abstract_state))

  def wait_until_finished(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


class BestCheckpointer:
  """Keeps the params of the best evaluation so far (`WORKDIR/best/<step>`),
  by one eval metric, beside the last-N checkpoints. Orbax stores each
  step's metrics, so a resumed run still compares against the old best."""

  def __init__(self, directory: str, metric: str, mode: str = "max"):
    if mode not in ("max", "min"):
      raise ValueError(f"best_mode={mode!r}; expected 'max' or 'min'.")
    self.directory = paths.absolute(directory)
    self.metric = metric
    options = ocp.CheckpointManagerOptions(
        max_to_keep=1, best_fn=lambda metrics: metrics[metric],
        best_mode=mode, keep_checkpoints_without_metrics=False, create=True,
        enable_async_checkpointing=False)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def save(self, step: int, params: Any, eval_metrics: dict[str, float]
           ) -> None:
    if self.metric not in eval_metrics:
      raise KeyError(
          f"config.best_metric={self.metric!r} is not an eval metric; this "
          f"run's eval metrics are {sorted(eval_metrics)}.")
    value = float(eval_metrics[self.metric])
    if not math.isfinite(value) or step in self._manager.all_steps():
      return
    self._manager.save(step, args=ocp.args.StandardSave({"params": params}),
                       metrics={self.metric: value}, force=True)

  def best_step(self) -> int | None:
    return self._manager.best_step()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def export_params(model_params: Any, path: str) -> None:
  """Writes the final LM params as an official-layout (Kaggle) Gemma
  checkpoint: `checkpoints.load_params(path, config)` reads it back, as does
  the official `gemma` package."""
  model_checkpoints.save_params(model_params, path,
                                layout="kaggle", force=True)
