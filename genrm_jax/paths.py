"""Paths that are local or URLs (`gs://bucket/dir`), through `etils.epath`.

The TPU-pod launcher puts workdirs on GCS. `etils.epath.Path` (a dependency
of orbax) routes `gs://` through `tf.io.gfile` when TensorFlow is installed,
else fsspec, and local paths through `os`; so code doing its I/O through
`epath.Path` works on both. Local paths behave exactly as with `os`: made
absolute, written atomically (a temporary file, then `os.replace`).
"""

from __future__ import annotations

import os

from etils import epath


def is_url(path: str | os.PathLike) -> bool:
  """True for `scheme://...` paths (gs://, s3://, ...)."""
  return "://" in os.fspath(path)


def absolute(path: str | os.PathLike) -> str:
  """A local path made absolute; a URL as it is (`os.path.abspath` would make
  `gs://b/d` into `CWD/gs:/b/d`)."""
  path = os.fspath(path)
  return path if is_url(path) else os.path.abspath(path)


def write_atomic(path: str | os.PathLike, data: bytes | str) -> None:
  """Writes a whole file. Local: `PATH.tmp`, then `os.replace`, so a reader
  never sees it half-written. URL: one object write (a GCS object appears
  whole when its upload closes; a rename there is copy + delete)."""
  path = os.fspath(path)
  mode = "w" if isinstance(data, str) else "wb"
  if is_url(path):
    with epath.Path(path).open(mode) as f:
      f.write(data)
    return
  tmp = path + ".tmp"
  with open(tmp, mode) as f:
    f.write(data)
  os.replace(tmp, path)
