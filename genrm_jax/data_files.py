"""Where the datasets live: `$GENRM_DATA_DIR`, else `~/.cache/genrm_jax/data`.

`launch/download_data.sh` fills that directory at home; its layout is the
repository's shared data (`gsm8k/`, `math/`, `bbh/`, `last_letters/`,
`genrm_critiques/`, see that README). A missing file is an error that says how
to get it.
"""

from __future__ import annotations

import os
from typing import Optional

DATA_DIR_ENV = 'GENRM_DATA_DIR'


class DataNotFoundError(FileNotFoundError):
  """A data file is missing; the message says how to get it."""


def default_data_dir() -> str:
  cache = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
  return os.path.join(cache, 'genrm_jax', 'data')


def resolve_data_dir(data_dir: Optional[str] = None) -> str:
  """The data directory: `data_dir`, else `$GENRM_DATA_DIR`, else the user cache dir."""
  return os.fspath(data_dir) if data_dir else (os.environ.get(DATA_DIR_ENV) or
                                               default_data_dir())


def data_path(*parts: str, data_dir: Optional[str] = None) -> str:
  """Path of a data file (or directory) under the data directory, which must exist.

  Raises:
    DataNotFoundError: saying which file is missing and how to get the data.
  """
  path = os.path.join(resolve_data_dir(data_dir), *parts)
  if not os.path.exists(path):
    # (Callers may pass the resolved default on: that is no override.)
    if data_dir and os.path.abspath(data_dir) != os.path.abspath(resolve_data_dir(None)):
      where = f'data_dir={data_dir}'
    elif os.environ.get(DATA_DIR_ENV):
      where = f'{DATA_DIR_ENV}={os.environ[DATA_DIR_ENV]}'
    else:
      where = f'the default, as {DATA_DIR_ENV} is not set'
    raise DataNotFoundError(
        f'Missing data file {path} (data directory: {where}). Run '
        f'`bash launch/download_data.sh` to fetch the datasets into '
        f'${{{DATA_DIR_ENV}:-~/.cache/genrm_jax/data}}, or set {DATA_DIR_ENV} to a '
        f'directory that has them (e.g. the repository\'s ../shared/data).')
  return path
