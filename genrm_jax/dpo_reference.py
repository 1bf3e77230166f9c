"""DPO's reference log-probs, computed once before training
(`config.dpo.precompute_reference`, like TRL's `precompute_ref_log_probs`).

Without it, a DPO run keeps the frozen reference model's params on the
device for the whole run and runs its forward pass over chosen + rejected at
every step. With it, `train.py` calls `load_or_compute` before the loop:

1. every distinct DPO row the run's iterators can yield (the train split, and
   the eval split if eval is on) is enumerated once, finitely, tokenised and
   padded exactly as the batches are (`input_pipeline.local_example_rows`,
   `data_python.local_example_rows`; the synthetic source: the rows of steps
   [0, total_steps) and [0, eval_steps));
2. the reference's sequence log-probs of each row (`losses._pair_log_probs`
   with the reference's params, as `losses.dpo_loss` computes them) come from
   a jitted forward pass over batches of `config.batch_size` rows sharded
   like the train batch, each host feeding its own rows; every host gets the
   whole table;
3. the table, keyed by a hash of the row's chosen and rejected arrays
   (`row_key`), is written atomically to `WORKDIR/reference_logps.npz`
   with a fingerprint of what its values depend on (`fingerprint`); a
   resumed run loads it, and a table whose fingerprint differs from the
   run's is recomputed (and logged), never reused;
4. the reference params are deleted, and `ReferenceTable.attach` adds
   `chosen_ref_logps` / `rejected_ref_logps` (float32 [batch]) to every
   train and eval batch by lookup, which `losses.dpo_loss` uses instead of a
   reference forward pass.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import time
import zipfile
from typing import Any, Callable, Iterable, Iterator

from etils import epath
import jax
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding, PartitionSpec as P
import numpy as np

from genrm_jax import data_synthetic
from genrm_jax import input_pipeline as ip
from genrm_jax import losses
from genrm_jax import paths
from genrm_jax import sharding as sharding_lib

TABLE_FILE = "reference_logps.npz"
FORMAT = 1
# The arrays of a DPO row, in the order they are hashed, and their dtypes.
ROW_FIELDS = {f"{side}_{name}": dtype
              for side in ("chosen", "rejected")
              for name, dtype in (("tokens", np.int32),
                                  ("loss_weights", np.float32),
                                  ("segment_ids", np.int32))}
KEY_BYTES = 16


class MissingReferenceError(LookupError):
  """A batch row without a precomputed reference log-prob."""


def enabled(config) -> bool:
  return config.method == "dpo" and bool(
      config.dpo.get("precompute_reference", False))


def table_path(workdir: str) -> str:
  return os.path.join(workdir, TABLE_FILE)


def row_key(row: dict[str, np.ndarray]) -> bytes:
  """16-byte hash of one row's chosen and rejected tokens, loss weights and
  segment ids (the padded arrays' bytes, in fixed dtypes)."""
  h = hashlib.blake2b(digest_size=KEY_BYTES)
  for name, dtype in ROW_FIELDS.items():
    a = np.ascontiguousarray(row[name], dtype=dtype)
    h.update(np.int64(a.size).tobytes())
    h.update(a.tobytes())
  return h.digest()


def batch_keys(batch: dict[str, np.ndarray]) -> list[bytes]:
  n = len(batch["chosen_tokens"])
  return [row_key({k: batch[k][i] for k in ROW_FIELDS}) for i in range(n)]


def splits_of(config) -> list[str]:
  """The trainer's splits the table covers: 'train', and the eval split
  when periodic eval is on (train.py's `eval_enabled`)."""
  out = ["train"]
  if config.eval_every > 0 and config.data.eval_split:
    out.append(config.data.eval_split)
  return out


def fingerprint(config) -> dict[str, Any]:
  """What the table's rows and values depend on; a stored table is reused
  only if its fingerprint equals the run's."""
  fp = {"format": FORMAT, "method": config.method,
        "init_from": str(config.init_from),
        "model": config.model.to_dict(), "data": config.data.to_dict(),
        "loss_chunk_size": int(config.get("loss_chunk_size", 0)),
        # As set: with the model (above), what decides the projection.
        "loss_positions": int(config.get("loss_positions", 0)),
        "splits": splits_of(config)}
  if not config.init_from or config.data.source == "synthetic":
    fp["seed"] = int(config.seed)  # the random init; the synthetic rows
  if config.data.source == "synthetic":  # rows of the steps a run reads
    fp["synthetic_rows"] = {"batch_size": int(config.batch_size),
                            "train_steps": int(config.total_steps),
                            "eval_steps": int(config.eval_steps)}
  # Canonical JSON values (tuples -> lists), as the table stores them.
  return json.loads(json.dumps(fp, sort_keys=True, default=repr))


def _flatten(d, prefix=""):
  out = {}
  for k, v in d.items():
    if isinstance(v, dict):
      out.update(_flatten(v, f"{prefix}{k}."))
    else:
      out[f"{prefix}{k}"] = v
  return out


def fingerprint_diff(stored: dict, wanted: dict) -> list[str]:
  """'key: stored -> wanted' for each differing (dotted) key."""
  a, b = _flatten(stored), _flatten(wanted)
  return [f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in sorted(set(a) | set(b))
          if a.get(k) != b.get(k)]


# -----------------------------------------------------------------------------
# The table.
# -----------------------------------------------------------------------------


class ReferenceTable:
  """Row key -> (chosen, rejected) reference log-probs."""

  def __init__(self, keys: np.ndarray, chosen: np.ndarray,
               rejected: np.ndarray, path: str = ""):
    self.keys = np.asarray(keys, np.uint8).reshape(-1, KEY_BYTES)
    self.chosen = np.asarray(chosen, np.float32)
    self.rejected = np.asarray(rejected, np.float32)
    self.path = path
    self._index = {k.tobytes(): i for i, k in enumerate(self.keys)}

  def __len__(self) -> int:
    return len(self._index)

  def lookup(self, batch: dict[str, np.ndarray], *, where: str = "a batch"
             ) -> dict[str, np.ndarray]:
    """{'chosen_ref_logps', 'rejected_ref_logps'} (float32 [rows])."""
    idx = []
    for row, key in enumerate(batch_keys(batch)):
      i = self._index.get(key)
      if i is None:
        head = batch["chosen_tokens"][row][:12].tolist()
        where_file = self.path or "the reference table"
        raise MissingReferenceError(
            f"DPO reference log-probs: row {row} of {where} (chosen tokens "
            f"{head}...) is not in the precomputed table {where_file} "
            f"({len(self)} rows): the table does not match this run's data "
            f"(changed data files or candidate stores?). Delete "
            f"{where_file} to rebuild it (the next run recomputes it), or "
            "set config.dpo.precompute_reference=False.")
      idx.append(i)
    return {"chosen_ref_logps": self.chosen[idx],
            "rejected_ref_logps": self.rejected[idx]}

  def attach(self, batches: Iterable[dict[str, np.ndarray]], *, split: str,
             start_step: int = 0) -> Iterator[dict[str, np.ndarray]]:
    """`batches` (host-local numpy) with the reference log-probs added."""
    for step, batch in enumerate(batches, start_step):
      where = f"this host's {split} batch {step}"
      yield {**batch, **self.lookup(batch, where=where)}

  def to_bytes(self, fp: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, keys=self.keys, chosen=self.chosen, rejected=self.rejected,
             fingerprint=np.asarray(json.dumps(fp, sort_keys=True)))
    return buf.getvalue()

  @classmethod
  def read(cls, path: str) -> tuple["ReferenceTable", dict[str, Any]]:
    """(table, its fingerprint) from a file `to_bytes` wrote."""
    with np.load(io.BytesIO(epath.Path(path).read_bytes()),
                 allow_pickle=False) as f:
      table = cls(f["keys"], f["chosen"], f["rejected"], path=path)
      return table, json.loads(str(f["fingerprint"]))


# -----------------------------------------------------------------------------
# Enumerating the rows and the reference forward pass.
# -----------------------------------------------------------------------------


def local_rows(config, split: str, process_index: int, process_count: int
               ) -> Iterator[dict[str, np.ndarray]]:
  """This host's share of every DPO row `split` can yield (one row at a
  time, [L] arrays, padded as the batches are); duplicates possible."""
  source = config.data.source
  if source == "synthetic":  # infinite: the rows of the steps a run reads
    src = data_synthetic.SyntheticSource(config)
    train = split == "train"
    steps = int(config.total_steps) if train else int(config.eval_steps)
    for step in range(steps):
      batch = src.local_batch(step, config.batch_size,
                              split="train" if train else "eval",
                              process_index=process_index,
                              process_count=process_count)
      for i in range(len(batch["chosen_tokens"])):
        yield {k: v[i] for k, v in batch.items()}
  elif source == "seqio":
    yield from ip.local_example_rows(config, split=split,
                                     process_index=process_index,
                                     process_count=process_count)
  elif source == "python":
    from genrm_jax import data_python  # pylint: disable=g-import-not-at-top
    yield from data_python.local_example_rows(config, split=split,
                                              process_index=process_index,
                                              process_count=process_count)
  else:
    raise ValueError(f"config.data.source={source!r}; expected 'synthetic', "
                     "'seqio' or 'python'.")


def _unique(rows: Iterable[dict[str, np.ndarray]]
            ) -> Iterator[tuple[bytes, dict[str, np.ndarray]]]:
  seen = set()
  for row in rows:
    key = row_key(row)
    if key not in seen:
      seen.add(key)
      yield key, row


def _padded_batch(chunk, size: int, seq_len: int):
  """`chunk`'s (key, row) pairs as a batch of `size` rows: filler rows (BOS
  alone, no target) after them; `valid` tells which are real."""
  batch = {k: np.zeros((size, seq_len), dtype) for k, dtype in ROW_FIELDS.items()}
  for side in ("chosen", "rejected"):
    batch[f"{side}_tokens"][:, 0] = ip.BOS_ID
    batch[f"{side}_segment_ids"][:, 0] = 1
  keys = np.zeros((size, KEY_BYTES), np.uint8)
  for i, (key, row) in enumerate(chunk):
    for k in ROW_FIELDS:
      batch[k][i] = row[k]
    keys[i] = np.frombuffer(key, np.uint8)
  valid = (np.arange(size) < len(chunk)).astype(np.int32)
  # Keys travel with their rows as int32 words (the global row order on the
  # way back is the device's, not necessarily the hosts').
  return batch, {"key": keys.view(np.int32), "valid": valid}


def _max_over_hosts(n: int) -> int:
  if jax.process_count() == 1:
    return n
  return int(np.max(multihost_utils.process_allgather(np.int32(n))))


def compute_table(config, *, mesh, model, ref_params, model_shardings,
                  loss_chunk_size: int = 0, loss_positions: int = 0,
                  log: Callable[..., None] = print) -> ReferenceTable:
  """The reference log-probs of every distinct row of `splits_of(config)`.

  Each host feeds its own rows in batches of `config.batch_size` (global)
  sharded like the train batch; the results come back replicated, so every
  host holds the whole table. Hosts stop together, after the batch where
  the last of them ran out of rows.
  """
  from genrm_jax import train  # pylint: disable=g-import-not-at-top
  pi, pc = jax.process_index(), jax.process_count()
  local = int(config.batch_size) // pc
  seq_len = int(config.data.seq_len)
  rows = itertools.chain.from_iterable(
      local_rows(config, split, pi, pc) for split in splits_of(config))
  unique = _unique(rows)
  replicated = NamedSharding(mesh, P())

  def fn(params, batch, aux):
    # As losses.dpo_loss computes the reference's log-probs in the step.
    chosen, rejected = losses._pair_log_probs(  # pylint: disable=protected-access
        model, {"model": params}, batch, loss_chunk_size, loss_positions)
    return chosen, rejected, aux

  batch_shardings = {k: sharding_lib.batch_sharding(mesh, 2) for k in ROW_FIELDS}
  aux_shardings = {"key": sharding_lib.batch_sharding(mesh, 2),
                   "valid": sharding_lib.batch_sharding(mesh, 1)}
  jitted = jax.jit(fn, in_shardings=(model_shardings, batch_shardings,
                                     aux_shardings),
                   out_shardings=replicated)
  outputs = []
  t0 = time.perf_counter()
  with sharding_lib.use_mesh(mesh):
    while True:
      chunk = list(itertools.islice(unique, local))
      if _max_over_hosts(len(chunk)) == 0:
        break
      batch, aux = _padded_batch(chunk, local, seq_len)
      outputs.append(jitted(ref_params, train.make_global_batch(batch, mesh),
                            train.make_global_batch(aux, mesh)))
      if len(outputs) % 100 == 0:
        log(f"Reference log-probs: {len(outputs)} batches "
            f"({time.perf_counter() - t0:.0f} s).")
  keys, chosen, rejected = [], [], []
  for c, r, aux in outputs:  # replicated: every host has all rows
    valid = np.asarray(aux["valid"].addressable_data(0)) > 0
    keys.append(np.asarray(aux["key"].addressable_data(0))[valid])
    chosen.append(np.asarray(c.addressable_data(0))[valid])
    rejected.append(np.asarray(r.addressable_data(0))[valid])
  if not keys:
    raise ValueError(f"{config.data.task}: no DPO rows to compute reference "
                     "log-probs for.")
  keys = np.ascontiguousarray(np.concatenate(keys)).view(np.uint8)
  # Hosts may share rows: keep each key once.
  _, first = np.unique(keys, axis=0, return_index=True)
  first = np.sort(first)
  return ReferenceTable(keys[first], np.concatenate(chosen)[first],
                        np.concatenate(rejected)[first])


def _delete(tree) -> None:
  """Frees the device buffers of `tree` now (not when the GC gets to it)."""
  for x in jax.tree.leaves(tree):
    if isinstance(x, jax.Array) and not x.is_deleted():
      x.delete()


def load_or_compute(config, workdir: str, *, mesh, model, model_shardings,
                    reference_params: Callable[[], Any],
                    loss_chunk_size: int = 0, loss_positions: int = 0,
                    log: Callable[..., None] = print) -> ReferenceTable:
  """The run's table: `WORKDIR/reference_logps.npz` if its fingerprint is
  the run's, else computed with the params `reference_params()` returns
  (deleted afterwards) and written there atomically by process 0."""
  path = table_path(workdir)
  wanted = fingerprint(config)
  table, reason = None, None
  if jax.process_index() == 0:
    if not epath.Path(path).exists():
      reason = f"no table at {path}"
    else:
      try:
        table, stored = ReferenceTable.read(path)
      except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:
        reason = f"{path} is unreadable ({e})"
      else:
        diff = fingerprint_diff(stored, wanted)
        if diff:
          table = None
          reason = (f"{path} was computed for another config ("
                    + "; ".join(diff) + ")")
  reuse = reason is None
  if jax.process_count() > 1:  # every host computes, or none
    reuse = bool(multihost_utils.broadcast_one_to_all(np.int32(reuse)))
    if reuse and table is None:
      table, _ = ReferenceTable.read(path)
  if reuse:
    log(f"DPO reference log-probs: loaded {len(table)} rows from {path} "
        "(no reference model needed).")
    return table
  log(f"DPO reference log-probs: computing them ({reason or 'see process 0'}).")
  t0 = time.perf_counter()
  params = reference_params()
  try:
    table = compute_table(config, mesh=mesh, model=model, ref_params=params,
                          model_shardings=model_shardings,
                          loss_chunk_size=loss_chunk_size,
                          loss_positions=loss_positions, log=log)
  finally:
    _delete(params)
    del params
  table.path = path
  if jax.process_index() == 0:
    paths.write_atomic(path, table.to_bytes(wanted))
  log(f"DPO reference log-probs: computed {len(table)} rows in "
      f"{time.perf_counter() - t0:.1f} s; saved to {path}; the reference "
      "params are freed.")
  read = int(config.total_steps) * int(config.batch_size)
  if len(table) > read:
    # The table covers the whole dataset (TRL's precompute does too); a
    # short run reads less of it than it took to compute.
    log(f"Note: this run's {config.total_steps} steps read {read} training "
        f"rows, fewer than the {len(table)} computed: for runs this short, "
        "config.dpo.precompute_reference=False runs fewer reference passes "
        "(a longer run, or a rerun that resumes, reuses the table).")
  return table
