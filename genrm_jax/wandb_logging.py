"""Optional Weights & Biases logging of training metrics (`config.wandb`).

Off unless `config.wandb.project` is set. When set, process 0 mirrors every
record that `metric_writers.MetricWriter` writes to `metrics.jsonl` (train and
eval scalars, at the same steps) into one W&B run, with the whole config.
`metrics.jsonl` and TensorBoard stay the record of the run; W&B is a mirror
for those who follow runs there (TRL's `report_to="wandb"`).

Resuming: the run's id is kept in `WORKDIR/wandb_run_id`, so a resumed
training continues the same W&B run (`resume="allow"`). A killed run logged
steps after its last checkpoint that the resumed run logs again, with the
same values (resume equals an uninterrupted run); W&B accepts only
increasing steps, so those are not sent twice.

`mode='offline'` (or `WANDB_MODE=offline`) writes the run under
`WORKDIR/wandb/` for a later `wandb sync` — on machines without internet
access, e.g. TPU pod workers.

The evaluator (`evaluate --wandb_project=NAME`, `log_evaluation`) sends one
run per evaluation: each method's Best-of-n curve with W&B's step = n (so
the curves plot against n), the curves as a table with their 95% intervals,
AUROC and pair accuracy in the summary, and the PNG plots.
"""

from __future__ import annotations

import os
import secrets
from typing import Any, Mapping, Sequence

from etils import epath

from genrm_jax import paths

RUN_ID_FILE = "wandb_run_id"
# config.wandb's keys (configs/common.py); '' leaves each to W&B's default.
FIELDS = ("project", "entity", "name", "group", "tags", "notes", "mode", "id")


def enabled(wandb_config: Mapping[str, Any] | None) -> bool:
  return bool(wandb_config and wandb_config.get("project"))


def check(wandb_config: Mapping[str, Any] | None) -> None:
  """Fails at start-up, naming the fix, rather than after init and compile."""
  if not enabled(wandb_config):
    return
  unknown = sorted(set(wandb_config.keys()) - set(FIELDS))
  if unknown:
    raise ValueError(f"config.wandb has unknown keys {unknown}; known: "
                     f"{list(FIELDS)}.")
  mode = wandb_config.get("mode") or ""
  if mode not in ("", "online", "offline", "disabled"):
    raise ValueError(f"W&B mode {mode!r} (config.wandb.mode, evaluate "
                     "--wandb_mode): expected '', 'online', 'offline' or "
                     "'disabled'.")
  try:
    import wandb  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError as e:
    raise ImportError(
        f"W&B project {wandb_config['project']!r} (config.wandb.project, "
        "evaluate --wandb_project): Weights & Biases is not installed: "
        "pip install -e '.[wandb]' (or pip install wandb), or leave the "
        "project empty.") from e


def _tags(value) -> list[str]:
  if isinstance(value, str):
    return [t for t in (s.strip() for s in value.split(",")) if t]
  return [str(t) for t in (value or ())]


def run_id(workdir: str, wanted: str = "") -> str:
  """The W&B run id of this workdir: read back on resume, else created."""
  path = epath.Path(workdir) / RUN_ID_FILE
  if path.exists():
    kept = path.read_text().strip()
    if wanted and wanted != kept:
      raise ValueError(
          f"config.wandb.id={wanted!r}, but {path} holds {kept!r} from an "
          "earlier run in this workdir: drop the flag, or delete the file to "
          "start another W&B run.")
    return kept
  new = wanted or secrets.token_hex(4)
  path.parent.mkdir(parents=True, exist_ok=True)
  paths.write_atomic(str(path), new + "\n")
  return new


def _init(wandb_config: Mapping[str, Any], directory: str, **kwargs):
  check(wandb_config)
  import wandb  # pylint: disable=g-import-not-at-top
  get = lambda k: wandb_config.get(k) or None  # '' -> W&B's default
  return wandb.init(
      project=wandb_config["project"], entity=get("entity"),
      name=get("name") or os.path.basename(directory.rstrip("/")),
      group=get("group"), tags=_tags(wandb_config.get("tags")),
      notes=get("notes"), mode=get("mode"),
      dir=None if paths.is_url(directory) else directory, **kwargs)


class WandbMirror:
  """One W&B run fed the records of `metrics.jsonl` (process 0 only)."""

  def __init__(self, wandb_config: Mapping[str, Any], workdir: str, *,
               run_config: Mapping[str, Any] | None = None):
    self.run = _init(wandb_config, workdir, job_type="train",
                     id=run_id(workdir, wandb_config.get("id") or ""),
                     resume="allow", config=dict(run_config or {}))
    # W&B's next step: a resumed online run continues after its last step.
    self._next_step = int(getattr(self.run, "step", 0) or 0)

  def log(self, step: int, record: Mapping[str, Any]) -> None:
    if step < self._next_step:  # already sent before a kill (same values)
      return
    self.run.log(dict(record), step=int(step))
    self._next_step = int(step)  # more records of this step may follow

  def close(self) -> None:
    if self.run is not None:
      self.run.finish()
      self.run = None


def log_evaluation(wandb_config: Mapping[str, Any], out_dir: str,
                   results: Mapping[str, Any],
                   table: tuple[Sequence[str], Sequence[Sequence[Any]]],
                   images: list[str]) -> None:
  """One W&B run of an evaluation's `results.json` (module docstring);
  `table`: (columns, rows) of its curves, as curves.csv has them."""
  import wandb  # pylint: disable=g-import-not-at-top
  run = _init(wandb_config, out_dir, job_type="evaluate",
              config=dict(results.get("args", {})))
  curves = results["curves"]
  for n in range(1, int(results["n_max"]) + 1):
    run.log({f"best_of_n/{m}": curves[m][str(n)] for m in results["methods"]},
            step=n)
  columns, rows = table
  extras = {"best_of_n_table": wandb.Table(columns=list(columns),
                                           data=[list(r) for r in rows])}
  extras.update({os.path.splitext(os.path.basename(p))[0]: wandb.Image(p)
                 for p in images})
  run.log(extras, step=int(results["n_max"]))  # beside the last curve point
  n_max = str(results["n_max"])
  for m in results["methods"]:
    run.summary[f"best_of_{n_max}/{m}"] = curves[m][n_max]
  for metric in ("auroc", "pair_accuracy"):
    for m, value in (results.get(metric) or {}).items():
      if value is not None:
        run.summary[f"{metric}/{m}"] = value
  run.summary["first_sample"] = results["first_sample"]["accuracy"]
  run.summary["n_problems"] = results["n_problems"]
  run.finish()
