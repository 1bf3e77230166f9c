"""Traces a window of training steps with `jax.profiler` (maxtext's
`profiler` / `skip_first_n_steps_for_profiler` / `profiler_steps`).

`--config.profile.start_step=S --config.profile.num_steps=N` records steps
S .. S+N-1 into `WORKDIR/profile`: open it with TensorBoard's Profile tab
(`tensorboard --logdir WORKDIR/profile`, the `tensorboard-plugin-profile`
package), or in Perfetto (`perfetto_trace.json.gz`), or rank the device's
operations without either: `python -m benchmarks.trace_summary
WORKDIR/profile`. Pick S after the first step, whose compilation would
otherwise fill the trace.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import jax

from genrm_jax import paths



def check_window(start_step: int, num_steps: int) -> None:
  """ValueError unless `profile.start_step`, `num_steps` name a window."""
  if start_step < 0 or (start_step and num_steps < 1):
    raise ValueError(f"profile.start_step={start_step}, num_steps={num_steps}: "
                     "start_step >= 1 and num_steps >= 1 trace those steps "
                     "(start_step=0: no trace).")

class StepProfiler:
  """Starts a trace before step `start_step` and stops it after step
  `start_step + num_steps - 1`, the step's results waited for so the trace
  holds its device work; `start_step=0` does nothing."""

  def __init__(self, directory: str, start_step: int, num_steps: int, *,
               first_step: int, total_steps: int,
               log: Callable[[str], Any] = print):
    check_window(start_step, num_steps)
    self.directory, self._log = directory, log
    self.start = start_step
    self.stop = min(start_step + num_steps - 1, total_steps)
    self.active = False
    if start_step and not first_step <= start_step <= total_steps:
      log(f"profile.start_step={start_step} is outside this run's steps "
          f"{first_step}..{total_steps} (resumed past it, or beyond total_steps): "
          "no trace.")
      self.start = 0

  def before(self, step: int) -> None:
    if self.start and step == self.start:
      if not paths.is_url(self.directory):
        os.makedirs(self.directory, exist_ok=True)
      jax.profiler.start_trace(self.directory, create_perfetto_trace=True)
      self.active = True

  def after(self, step: int, outputs: Any) -> None:
    if self.active and step == self.stop:
      self.finish(outputs)

  def finish(self, outputs: Any = None) -> None:
    """Stops a trace still running (the run ended or was preempted inside
    the window)."""
    if not self.active:
      return
    jax.block_until_ready(outputs)
    jax.profiler.stop_trace()
    self.active = False
    self._log(f"profiled steps {self.start}..{self.stop} into {self.directory}: "
              f"tensorboard --logdir {self.directory}, or python -m "
              f"benchmarks.trace_summary {self.directory}")
