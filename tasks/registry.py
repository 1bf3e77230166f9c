"""seqio TaskRegistry / MixtureRegistry for the GenRM tasks (t5x-style).

Importing this module registers the problem-level tasks with the byte
vocabulary; `register(data_config)` (called by the input pipeline with the
training config's `data` block) re-registers everything with the configured
vocabulary, candidate stores and lambda. Names, for `<task>` in last_letter,
word_sort, gsm8k, math:

  <task>_sft                 problem -> reference solution (generator SFT)
  <task>_genrm               direct GenRM: ... (Yes/No)? -> " Yes"/" No"
  <task>_genrm_cot           GenRM-CoT: ... verify step by step. -> rationale
  <task>_disc                discriminative: prompt + solution -> label
  <task>_dpo                 DPO pairs: prompt -> chosen / rejected
  <task>_solve               correct candidate solutions (solution SFT)
  <task>_genrm_unified       mixture: <task>_genrm + lambda * <task>_solve
  <task>_genrm_cot_unified   mixture: <task>_genrm_cot + lambda * <task>_solve

The verification tasks come from candidate stores
(`data_config.candidates = {'train': path, 'validation': path}`, for the
task family of `data_config.task`); GSM8K has them without a store, from the
paper's released data (direct `rm_*` zips; CoT from the raw critiques whose
verdict agrees with the label). Algorithmic GenRM-CoT uses programmatic
oracle rationales; GSM8K/MATH stores use reference-guided synthesised
rationales (`data_config.rationales = {split: R.jsonl}`, from
`python -m genrm_jax.synthesize`), keeping those that agree with the label.
"""

from __future__ import annotations

import functools
import random
from typing import Callable, Sequence

import seqio

from genrm_jax import candidates as candidates_lib
from genrm_jax import input_pipeline as ip
from genrm_jax import prompts
from genrm_jax import synthesize
from genrm_jax import verification_data as vd
from tasks import sources

FAMILIES = sources.TASKS
VERIFICATION_TASKS = ("genrm", "genrm_cot", "disc", "dpo", "solve")

_tf = ip._tf()  # pylint: disable=protected-access


def _string_source(build: Callable[[str], list[dict]], splits: Sequence[str],
                   fields: dict[str, str]) -> seqio.FunctionDataSource:
  """A seqio source over examples built (once per process) by `build`."""
  tf = _tf
  tf_types = {"string": tf.string, "int": tf.int32}

  def dataset_fn(split, shuffle_files, seed=None):
    del shuffle_files, seed  # seqio shuffles; the order below is fixed
    examples = build(split)

    def gen():
      for ex in examples:
        yield {k: ex[k] for k in fields}

    return tf.data.Dataset.from_generator(gen, output_signature={
        k: tf.TensorSpec((), tf_types[t]) for k, t in fields.items()})

  return seqio.FunctionDataSource(dataset_fn, splits=list(splits))


def _mixed(examples: list[dict], split: str) -> list[dict]:
  """Pre-shuffles training examples with a fixed seed: sources come grouped
  (by label, by problem) and seqio's shuffle buffer is finite."""
  if split == "train":
    examples = list(examples)
    random.Random(0).shuffle(examples)
  return examples


def _add_task(name: str, source, kind: str, vocabulary) -> None:
  if name in seqio.TaskRegistry.names():
    seqio.TaskRegistry.remove(name)
  if kind == ip.GENERATIVE:
    features = ip.generative_features(vocabulary)
    preprocessors = ip.generative_preprocessors()
  elif kind == ip.DISC:
    features = ip.disc_features(vocabulary)
    preprocessors = [seqio.preprocessors.tokenize, ip.prepend_bos]
  else:
    features = ip.dpo_features(vocabulary)
    preprocessors = [seqio.preprocessors.tokenize, ip.prepend_bos,
                     seqio.preprocessors.append_eos]
  seqio.TaskRegistry.add(name, source, preprocessors=preprocessors,
                         output_features=features)


def _add_mixture(name: str, tasks_and_rates) -> None:
  if name in seqio.MixtureRegistry.names():
    seqio.MixtureRegistry.remove(name)
  seqio.MixtureRegistry.add(name, tasks_and_rates)


_GENERATIVE_FIELDS = {"inputs": "string", "targets": "string"}
_DISC_FIELDS = {"inputs": "string", "label": "int"}
_DPO_FIELDS = {"inputs": "string", "chosen": "string", "rejected": "string"}


# -----------------------------------------------------------------------------
# Problem-level tasks.
# -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _sft_examples(family: str, split: str, options: tuple = ()) -> list[dict]:
  problems = sources.get_problems(family, split, **dict(options))
  return _mixed(vd.solve_examples_from_problems(problems), split)


def register_problem_tasks(vocabulary, problem_options: dict | None = None
                           ) -> list[str]:
  """`<family>_sft`; `problem_options` {family: get_problems kwargs} change
  the generated problems (lengths, sizes) of a family."""
  names = []
  for family in FAMILIES:
    name = f"{family}_sft"
    options = tuple(sorted((problem_options or {}).get(family, {}).items()))

    def build(split, family=family, options=options):
      return _sft_examples(family, split, options)

    _add_task(name, _string_source(build, sources.SPLITS[family],
                                   _GENERATIVE_FIELDS), ip.GENERATIVE,
              vocabulary)
    names.append(name)
  return names


# -----------------------------------------------------------------------------
# Verification tasks.
# -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _read_store(path: str) -> tuple[candidates_lib.Candidate, ...]:
  return tuple(candidates_lib.read_candidates(path))


@functools.lru_cache(maxsize=None)
def _released_candidates(split: str) -> tuple[candidates_lib.Candidate, ...]:
  """The released direct-GenRM rows as a candidate store (GSM8K)."""
  out = []
  for row in vd.released_direct_examples(split):
    question, solution = prompts.parse_verification_inputs(row["inputs"])
    out.append(candidates_lib.Candidate(
        problem_id=f"gsm8k/{row['question_id']}",
        candidate_id=str(row["model_output_id"]), question=question,
        solution=solution, answer=None, reference="", correct=row["correct"]))
  return tuple(out)


@functools.lru_cache(maxsize=None)
def _verification_examples(kind: str, family: str, stores: tuple,
                           max_correct: int, max_incorrect: int, seed: int,
                           split: str, rationales: tuple = (),
                           balance_by: str = "") -> list[dict]:
  """Examples of `kind` for `split` from the store paths (or released data)."""
  stores = dict(stores)
  if stores:
    if split not in stores:
      raise ValueError(f"No candidate store for split {split!r} of {family}; "
                       f"data.candidates has {sorted(stores)}.")
    pool = _read_store(stores[split])
  else:
    if family != "gsm8k":
      raise ValueError(
          f"{family}_{kind} needs candidate stores: set "
          "config.data.candidates = {'train': C.jsonl, 'validation': ...} "
          "(from python -m genrm_jax.generate).")
    if kind == "genrm_cot":
      rows = vd.released_cot_examples(split)
      return _mixed([{"inputs": r["inputs"], "targets": r["targets"]}
                     for r in rows], split)
    pool = _released_candidates(split)
  caps = dict(max_correct=max_correct, max_incorrect=max_incorrect, seed=seed)
  if kind in ("genrm", "genrm_cot", "disc"):
    caps["balance_by"] = balance_by  # DPO pairs are balanced per problem anyway
  if kind == "genrm":
    examples = vd.direct_examples(pool, **caps)
  elif kind == "genrm_cot":
    rationale_paths = dict(rationales)
    if split in rationale_paths:  # synthesised, reference-guided
      table = synthesize.read_rationales(rationale_paths[split])
      examples = vd.cot_examples(
          pool, lambda c: table.get((c.problem_id, str(c.candidate_id))),
          **caps)
    elif family in ("last_letter", "word_sort"):  # programmatic oracle
      examples = vd.cot_examples(pool, **caps)
    else:
      raise ValueError(
          f"{family}_genrm_cot from candidate stores needs synthesised "
          "rationales: run python -m genrm_jax.synthesize and set "
          f"config.data.rationales.{split}=R.jsonl.")
  elif kind == "disc":
    examples = vd.disc_examples(pool, **caps)
  elif kind == "dpo":
    examples = [dict(p, inputs=p["prompt"]) for p in vd.dpo_pairs(pool, **caps)]
  else:
    examples = vd.solve_examples(pool, max_correct=caps["max_correct"],
                                 seed=caps["seed"])
  if not examples:
    n_correct = sum(c.correct for c in pool)
    raise ValueError(
        f"{family}_{kind} has no {split} examples: its candidates "
        f"({stores[split] if stores else 'released data'}) hold {n_correct} "
        f"correct and {len(pool) - n_correct} incorrect solutions"
        + (f" and data.balance_by={balance_by!r} keeps as many of one kind as "
           "of the other" if balance_by and kind != "solve" else "")
        + ". Verifiers need both kinds: sample more candidates or problems, or "
        "train the generator longer.")
  return _mixed(examples, split)


def register_verification_tasks(family: str, vocabulary, stores: dict,
                                rationales: dict | None = None,
                                unified_lambda: float = 1.0,
                                max_correct: int = vd.DEFAULT_MAX_CORRECT,
                                max_incorrect: int = vd.DEFAULT_MAX_INCORRECT,
                                seed: int = 0, balance_by: str = ""
                                ) -> list[str]:
  """Registers `<family>_{genrm,genrm_cot,disc,dpo,solve}` and the unified
  mixtures from candidate stores (`{split: path}`), or released GSM8K data."""
  stores = tuple(sorted((k, v) for k, v in stores.items() if v))
  rationales = tuple(sorted((k, v) for k, v in (rationales or {}).items()
                            if v))
  splits = [k for k, _ in stores] or list(vd.RELEASED_SPLITS)
  fields = {"disc": _DISC_FIELDS, "dpo": _DPO_FIELDS}
  kinds = {"disc": ip.DISC, "dpo": ip.DPO}
  names = []
  for kind in VERIFICATION_TASKS:
    name = f"{family}_{kind}"

    def build(split, kind=kind):
      return _verification_examples(kind, family, stores, max_correct,
                                    max_incorrect, seed, split, rationales,
                                    balance_by)

    _add_task(name, _string_source(build, splits,
                                   fields.get(kind, _GENERATIVE_FIELDS)),
              kinds.get(kind, ip.GENERATIVE), vocabulary)
    names.append(name)
  for verify in ("genrm", "genrm_cot"):
    name = f"{family}_{verify}_unified"
    _add_mixture(name, [(f"{family}_{verify}", 1.0),
                        (f"{family}_solve", float(unified_lambda))])
    names.append(name)
  return names


# -----------------------------------------------------------------------------
# Entry point for the input pipeline.
# -----------------------------------------------------------------------------


def register(data_config=None) -> list[str]:
  """(Re-)registers every task with the config's vocabulary and stores."""
  get = (lambda k, d: data_config.get(k, d)) if data_config is not None else (
      lambda k, d: d)
  vocabulary = ip.get_vocabulary(get("vocabulary", "byte") or "byte")
  task = get("task", "")
  family = next((f for f in FAMILIES if task.startswith(f + "_")), None)
  options = sources.problem_options(family, get("problems", None)) if family else {}
  names = register_problem_tasks(vocabulary, {family: options} if options else None)
  stores = {k: v for k, v in dict(get("candidates", {}) or {}).items() if v}
  rationales = dict(get("rationales", {}) or {})
  for fam in FAMILIES:
    fam_stores = stores if fam == family else {}
    if fam_stores or fam == "gsm8k":
      names += register_verification_tasks(
          fam, vocabulary, fam_stores,
          rationales=rationales if fam == family else None,
          unified_lambda=float(get("unified_lambda", 1.0)),
          max_correct=int(get("max_correct", vd.DEFAULT_MAX_CORRECT)),
          max_incorrect=int(get("max_incorrect", vd.DEFAULT_MAX_INCORRECT)),
          seed=int(get("seed", 0)),
          balance_by=str(get("balance_by", "") or ""))
  return names


register()
