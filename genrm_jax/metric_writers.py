"""Metrics to `metrics.jsonl` and TensorBoard, from process 0 only; also to
Weights & Biases where `config.wandb.project` is set (`wandb_logging.py`).

TensorBoard events are written as TFRecords of tensorboard's own `Event`
protos through its `RecordWriter`, on a plain file. (tensorboard's
`EventFileWriter` would do, but it imports all of TensorFlow when TF is
installed — seconds of start-up, and the train step must not import TF.)

The workdir may be local or a URL (`gs://bucket/run`, through
`etils.epath`):

* Local: each `write` appends a line to `metrics.jsonl` (closed at once, so
  a kill -9 loses nothing written); events stream to their file.
* URL: objects on GCS cannot be appended to. The writer keeps the whole
  `metrics.jsonl` (the records kept from the previous run, then this run's)
  and the whole events file in memory, and `flush()` rewrites both objects
  whole: on the first `write` `remote_flush_secs` after the last flush, at
  every step the trainer saves a checkpoint (before the save, after that
  step's eval), and on `close()`. A resumed run therefore finds every record
  up to its checkpoint; records after it are dropped on resume anyway
  (`truncate_after`, and a SessionLog START event for TensorBoard). Both
  files are small (one line per logged step), so rewriting them is cheap.
"""

from __future__ import annotations

import io
import json
import math
import os
import socket
import time
from typing import Any, Mapping

from etils import epath
import jax
import numpy as np

from genrm_jax import paths
from genrm_jax import wandb_logging

METRICS_FILE = "metrics.jsonl"


def _scalar(v: Any) -> float | int:
  v = np.asarray(v)
  if v.dtype.kind in "iub":
    return int(v)
  return float(v)


class MetricWriter:
  """Appends one JSON object per `write` to `DIR/metrics.jsonl` and writes the
  same scalars as TensorBoard events in `DIR`. No-op on processes != 0.
  `DIR` may be a URL (see the module docstring). `wandb` (`config.wandb`)
  with a project mirrors every record into a W&B run with `run_config`."""

  def __init__(self, workdir: str, *, active: bool | None = None,
               resume_step: int | None = None,
               remote_flush_secs: float = 60.0,
               wandb: Mapping[str, Any] | None = None,
               run_config: Mapping[str, Any] | None = None):
    self.active = jax.process_index() == 0 if active is None else active
    self.path = os.path.join(workdir, METRICS_FILE)
    self.remote = paths.is_url(workdir)
    self._remote_flush_secs = float(remote_flush_secs)
    self._tb = None
    self._wandb = None
    if not self.active:
      return
    if wandb_logging.enabled(wandb):
      self._wandb = wandb_logging.WandbMirror(wandb, workdir,
                                              run_config=run_config)
    epath.Path(workdir).mkdir(parents=True, exist_ok=True)
    # A run killed after its last checkpoint logged steps that the resumed
    # run logs again: drop them so the file reads as one uninterrupted run.
    kept = truncate_after(self.path,
                          resume_step if resume_step is not None else 0)
    # pylint: disable=g-import-not-at-top
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer import record_writer
    name = (f"events.out.tfevents.{time.time():.0f}.{socket.gethostname()}."
            f"{os.getpid()}.genrm")
    self._events_path = os.path.join(workdir, name)
    suffix = 1  # a resume in the same second and process: a new file, not this one
    while epath.Path(self._events_path).exists():
      suffix += 1
      self._events_path = os.path.join(workdir, f"{name}{suffix}")
    if self.remote:
      self._lines = [l + "\n" for l in kept]  # the whole metrics.jsonl
      self._file = io.BytesIO()  # the whole events file
      self._last_flush = time.monotonic()
    else:
      self._file = open(self._events_path, "wb")
    self._tb = record_writer.RecordWriter(self._file)
    self._tb.write(event_pb2.Event(
        wall_time=time.time(), file_version="brain.Event:2"
    ).SerializeToString())
    if resume_step is not None:
      # TensorBoard drops the events of steps >= a SessionLog START's step
      # read before it: those a killed run logged after its checkpoint, as
      # `truncate_after` drops them from metrics.jsonl.
      self._tb.write(event_pb2.Event(
          wall_time=time.time(), step=int(resume_step) + 1,
          session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START)
      ).SerializeToString())

  def write(self, step: int, metrics: Mapping[str, Any]) -> None:
    if not self.active:
      return
    record = {"step": int(step)}
    record.update({k: _scalar(v) for k, v in metrics.items()})
    line = json.dumps(record, allow_nan=True) + "\n"
    if self.remote:
      self._lines.append(line)
    else:
      with open(self.path, "a") as f:
        f.write(line)
    from tensorboard.compat.proto import event_pb2, summary_pb2
    values = [summary_pb2.Summary.Value(tag=k, simple_value=float(v))
              for k, v in record.items() if k != "step"
              and isinstance(v, (int, float)) and math.isfinite(float(v))]
    self._tb.write(event_pb2.Event(
        wall_time=time.time(), step=int(step),
        summary=summary_pb2.Summary(value=values)).SerializeToString())
    if self._wandb is not None:
      self._wandb.log(step, {k: v for k, v in record.items() if k != "step"})
    if (self.remote and time.monotonic() - self._last_flush
        >= self._remote_flush_secs):
      self.flush()

  def flush(self) -> None:
    if self._tb is None:
      return
    self._tb.flush()
    if self.remote:  # rewrite both objects whole
      paths.write_atomic(self.path, "".join(self._lines))
      paths.write_atomic(self._events_path, self._file.getvalue())
      self._last_flush = time.monotonic()

  def close(self) -> None:
    if self._wandb is not None:
      self._wandb.close()
      self._wandb = None
    if self._tb is not None:
      self.flush()
      self._tb.close()  # closes the file
      self._tb = None


def _read_lines(path: str) -> list[str] | None:
  """The non-empty lines of a file (None if there is none)."""
  p = epath.Path(path)
  if not p.exists():
    return None
  with p.open("r") as f:
    return [l.strip() for l in f if l.strip()]


def truncate_after(path: str, step: int) -> list[str]:
  """Drops records with `step` > `step` from a metrics.jsonl file (local or
  URL); returns the lines kept."""
  lines = _read_lines(path)
  if lines is None:
    return []
  kept = []
  for line in lines:
    try:
      if json.loads(line).get("step", 0) <= step:
        kept.append(line)
    except json.JSONDecodeError:
      pass  # a line cut short by a kill -9
  paths.write_atomic(path, "".join(l + "\n" for l in kept))
  return kept


def read_metrics(path: str) -> list[dict[str, Any]]:
  """All records of a metrics.jsonl file (local or URL)."""
  lines = _read_lines(path)
  if lines is None:
    raise FileNotFoundError(f"No metrics file {path}.")
  return [json.loads(l) for l in lines]
