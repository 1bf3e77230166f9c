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
import os
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


def _plain(tree: Any) -> Any:
  """The containers as orbax stores them: named tuples (optax's states) as
  dicts of their fields, other tuples as lists."""
  if isinstance(tree, dict):
    return {k: _plain(v) for k, v in tree.items()}
  if isinstance(tree, tuple) and hasattr(tree, "_fields"):
    return {k: _plain(getattr(tree, k)) for k in tree._fields}
  if isinstance(tree, (list, tuple)):
    return [_plain(v) for v in tree]
  return tree


def _leaf_shapes(tree: Any) -> dict[str, tuple]:
  def name(path):
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)
  leaves = jax.tree_util.tree_flatten_with_path(_plain(tree))[0]
  return {name(path): tuple(leaf.shape) for path, leaf in leaves}


_MAX_LISTED = 8


def check_matches(item_dir: str, abstract_state: Any) -> None:
  """Raises ValueError listing what differs (missing, unexpected, other
  shapes) when the checkpoint in `item_dir` is not of `abstract_state`'s
  structure: a workdir resumed with other model, method, optimizer or LoRA
  settings than the run that wrote it. (Orbax's own error buries that under
  every array's sharding.) Silent when the metadata cannot be read."""
  try:
    metadata = ocp.StandardCheckpointer().metadata(item_dir)
  except Exception:  # pylint: disable=broad-except
    return
  stored = _leaf_shapes(getattr(metadata, "item_metadata", metadata))
  wanted = _leaf_shapes(abstract_state)
  missing, unexpected, shapes = model_checkpoints.shape_differences(
      stored, wanted, key=lambda k: (not k.startswith("params/"), k))  # params first
  if not (missing or unexpected or shapes):
    return
  listed = lambda keys, fmt=str: "; ".join(fmt(k) for k in keys[:_MAX_LISTED]) + (
      f"; ... ({len(keys)} in all)" if len(keys) > _MAX_LISTED else "")
  parts = []
  if missing:
    parts.append(f"this run needs {len(missing)} arrays the checkpoint lacks: "
                 f"{listed(missing)}")
  if unexpected:
    parts.append(f"the checkpoint has {len(unexpected)} arrays this run does not: "
                 f"{listed(unexpected)}")
  if shapes:
    parts.append(f"{len(shapes)} arrays differ in shape (checkpoint vs this run): "
                 + listed(shapes, lambda d: f"{d[0]} {d[1]} vs {d[2]}"))
  raise ValueError(
      f"The checkpoint {item_dir} does not fit this run's state: "
      + "; ".join(parts) + ". It was written with other model, method, optimizer "
      "or LoRA settings: resume with the settings that wrote it, or start a new "
      "--workdir.")


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
    check_matches(os.path.join(self.directory, str(step), "default"),
                  abstract_state)
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

  def check_metric(self, eval_metrics) -> None:
    """ValueError unless the metric is one of `eval_metrics` (names)."""
    if self.metric not in eval_metrics:
      raise ValueError(
          f"config.best_metric={self.metric!r} is not an eval metric; this "
          f"run's eval metrics are {sorted(eval_metrics)}.")

  def save(self, step: int, params: Any, eval_metrics: dict[str, float]
           ) -> None:
    self.check_metric(eval_metrics)
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
