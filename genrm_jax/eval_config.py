"""Evaluation configs: which candidates, which verifiers (for `evaluate --config`).

A config file (`configs/eval/<name>.py`) defines `get_config(arg=None)`
returning an `ml_collections.ConfigDict` with

  candidates  a candidate-store path, or 'released:gsm8k/validation' (the
              paper's released GSM8K validation solutions, written to
              OUT/candidates.jsonl)
  task        grading task of the candidates (majority-vote keys)
  out         default output directory ('' = --out required)
  n_max       0 = the smallest pool
  bootstrap   bootstrap resamples
  weighted_vote  (optional) also each verifier's weighted vote
              (`evaluate --weighted_vote`)
  verifiers   a list of {name, kind, checkpoint, options: {...}}
              (kinds and options: `genrm_jax.verifiers`)

`python -m genrm_jax.evaluate --config=configs/eval/last_letter.py --out=DIR`
scores the candidates with every verifier into `DIR/scores/<name>.jsonl`
(resumable: rerun to continue a killed run) and then runs the file-only
evaluation on those files.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from typing import Callable, Optional

import ml_collections as mlc

from genrm_jax import candidates as candidates_lib
from genrm_jax import grading
from genrm_jax import prompts

RELEASED_PREFIX = 'released:'
RELEASED = ('gsm8k/validation', 'gsm8k/train')


def load(spec: str) -> mlc.ConfigDict:
  """Loads `path.py[:arg]` by calling its `get_config(arg)`."""
  path, _, arg = spec.partition(':')
  if not os.path.isfile(path):
    raise FileNotFoundError(f'No eval config {path}; see configs/eval/ for examples.')
  module_spec = importlib.util.spec_from_file_location('_genrm_eval_config', path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  if not hasattr(module, 'get_config'):
    raise ValueError(f'{path} defines no get_config(arg=None).')
  return module.get_config(arg) if arg else module.get_config()


def _as_dict(value) -> dict:
  return value.to_dict() if hasattr(value, 'to_dict') else dict(value)


def verifier_specs(config):
  from genrm_jax import verifiers  # pylint: disable=g-import-not-at-top
  specs = []
  for i, v in enumerate(config.get('verifiers', []) or []):
    v = _as_dict(v)
    missing = [k for k in ('name', 'kind', 'checkpoint') if not v.get(k)]
    if missing:
      raise ValueError(f'verifiers[{i}] lacks {missing}: every verifier needs name, kind and '
                       'checkpoint (set the checkpoint with --config file or edit the config).')
    specs.append(verifiers.VerifierSpec(name=v['name'], kind=v['kind'],
                                        checkpoint=v['checkpoint'],
                                        options=_as_dict(v.get('options') or {})))
  names = [s.name for s in specs]
  if len(set(names)) != len(names):
    raise ValueError(f'verifier names repeat: {names}')
  return specs


def require_checkpoints(specs) -> None:
  """Fails before anything is scored when a verifier's checkpoint (or a DPO
  verifier's reference) is missing, naming every missing one: scoring the
  others first would take an hour and then stop at the missing one."""
  from etils import epath  # pylint: disable=g-import-not-at-top
  from genrm_jax import paths  # pylint: disable=g-import-not-at-top
  from genrm_jax import verifiers  # pylint: disable=g-import-not-at-top
  missing = []
  for spec in specs:
    exists = lambda path: epath.Path(paths.absolute(path)).exists()
    if not exists(spec.checkpoint):
      missing.append(f'{spec.name}: checkpoint {spec.checkpoint}')
    elif spec.kind == 'dpo':  # given, or recorded by its training export
      reference = verifiers.dpo_reference(spec)
      if not exists(reference):
        missing.append(f'{spec.name}: reference_checkpoint {reference}')
  if missing:
    raise FileNotFoundError(
        'No checkpoint directory for ' + '; '.join(missing) + '. Train those verifiers '
        'first (python -m genrm_jax.train ... --workdir=W exports W/export), point the '
        "config at the right directories, or leave them out (configs/eval/<task>.py: "
        "':root=RUNS,only=NAME+NAME').")


def released_candidates(which: str, data_dir: Optional[str] = None):
  """The paper's released GSM8K direct-verification solutions as candidates."""
  from genrm_jax import verification_data as vd  # pylint: disable=g-import-not-at-top
  if which not in RELEASED:
    raise ValueError(f'{RELEASED_PREFIX}{which}: known released stores: {RELEASED}')
  split = which.split('/')[1]
  out, seen = [], set()
  for row in vd.released_direct_examples(split, data_dir=data_dir):
    question, solution = prompts.parse_verification_inputs(row['inputs'])
    key = (row['question_id'], str(row['model_output_id']))
    if key in seen:
      continue
    seen.add(key)
    out.append(candidates_lib.Candidate(
        problem_id=f'gsm8k/{row["question_id"]}', candidate_id=str(row['model_output_id']),
        question=question, solution=solution,
        answer=grading.extract_answer('gsm8k', solution), reference='',
        correct=bool(row['correct']), task='gsm8k', generator='released'))
  return out


def resolve_candidates(config, out_dir: str, override: Optional[str] = None) -> str:
  """The candidate-store path (materialising a released store into OUT)."""
  path = override or config.get('candidates', '')
  if not path:
    raise ValueError('No candidates: set config.candidates or pass --candidates=C.jsonl.')
  if path.startswith(RELEASED_PREFIX):
    # Materialised once; `.source` says from what, so that a store of
    # anything else left at that path is not taken for it.
    target = os.path.join(out_dir, 'candidates.jsonl')
    source = target + '.source'
    released = lambda: released_candidates(path[len(RELEASED_PREFIX):])
    if not os.path.exists(target):
      candidates_lib.write_candidates(target, released())
    else:
      ids = lambda cands: sorted((c.problem_id, str(c.candidate_id)) for c in cands)
      recorded = (open(source).read().strip() if os.path.exists(source) else
                  # written before `.source`: recognised by its rows
                  path if ids(candidates_lib.read_candidates(target)) == ids(released())
                  else None)
      if recorded != path:
        raise ValueError(f'{target} exists, but holds {recorded or "another store"}, not '
                         f'{path}: use another --out, or delete it.')
    with open(source, 'w') as f:
      f.write(path + '\n')
    return target
  return path


def run_scorers(config, candidates_path: str, out_dir: str,
                log: Callable[[str], None] = logging.info) -> list[str]:
  """Scores with every verifier of the config into OUT/scores/<name>.jsonl."""
  from genrm_jax import verifiers  # pylint: disable=g-import-not-at-top
  specs = verifier_specs(config)
  require_checkpoints(specs)
  cands = candidates_lib.read_candidates(candidates_path)
  paths = []
  for spec in specs:
    path = os.path.join(out_dir, 'scores', f'{spec.name}.jsonl')
    verifiers.score_store(cands, spec, path, log=log)
    paths.append(path)
  return paths
