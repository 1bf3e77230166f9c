"""Metrics to `metrics.jsonl` and TensorBoard, from process 0 only.

TensorBoard events are written as TFRecords of tensorboard's own `Event`
protos through its `RecordWriter`, on a plain file. (tensorboard's
`EventFileWriter` would do, but it imports all of TensorFlow when TF is
installed — seconds of start-up, and the train step must not import TF.)
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from typing import Any, Mapping

import jax
import numpy as np


def _scalar(v: Any) -> float | int:
  v = np.asarray(v)
  if v.dtype.kind in "iub":
    return int(v)
  return float(v)


class MetricWriter:
  """Appends one JSON object per `write` to `DIR/metrics.jsonl` and writes the
  same scalars as TensorBoard events in `DIR`. No-op on processes != 0."""

  def __init__(self, workdir: str, *, active: bool | None = None,
               resume_step: int | None = None):
    self.active = jax.process_index() == 0 if active is None else active
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb = None
    if not self.active:
      return
    os.makedirs(workdir, exist_ok=True)
    # A run killed after its last checkpoint logged steps that the resumed
    # run logs again: drop them so the file reads as one uninterrupted run.
    truncate_after(self.path, resume_step if resume_step is not None else 0)
    # pylint: disable=g-import-not-at-top
    from tensorboard.compat.proto import event_pb2
    from tensorboard.summary.writer import record_writer
    name = (f"events.out.tfevents.{time.time():.0f}.{socket.gethostname()}."
            f"{os.getpid()}.genrm")
    self._file = open(os.path.join(workdir, name), "wb")
    self._tb = record_writer.RecordWriter(self._file)
    self._tb.write(event_pb2.Event(
        wall_time=time.time(), file_version="brain.Event:2"
    ).SerializeToString())

  def write(self, step: int, metrics: Mapping[str, Any]) -> None:
    if not self.active:
      return
    record = {"step": int(step)}
    record.update({k: _scalar(v) for k, v in metrics.items()})
    with open(self.path, "a") as f:
      f.write(json.dumps(record, allow_nan=True) + "\n")
    from tensorboard.compat.proto import event_pb2, summary_pb2
    values = [summary_pb2.Summary.Value(tag=k, simple_value=float(v))
              for k, v in record.items() if k != "step"
              and isinstance(v, (int, float)) and math.isfinite(float(v))]
    self._tb.write(event_pb2.Event(
        wall_time=time.time(), step=int(step),
        summary=summary_pb2.Summary(value=values)).SerializeToString())

  def flush(self) -> None:
    if self._tb is not None:
      self._tb.flush()

  def close(self) -> None:
    if self._tb is not None:
      self._tb.close()  # closes the file
      self._tb = None


def truncate_after(path: str, step: int) -> None:
  """Drops records with `step` > `step` from a metrics.jsonl file."""
  if not os.path.exists(path):
    return
  kept = []
  with open(path) as f:
    for line in f:
      line = line.strip()
      if not line:
        continue
      try:
        if json.loads(line).get("step", 0) <= step:
          kept.append(line)
      except json.JSONDecodeError:
        pass  # a line cut short by a kill -9
  with open(path + ".tmp", "w") as f:
    f.write("".join(l + "\n" for l in kept))
  os.replace(path + ".tmp", path)


def read_metrics(path: str) -> list[dict[str, Any]]:
  """All records of a metrics.jsonl file."""
  with open(path) as f:
    return [json.loads(l) for l in f if l.strip()]
