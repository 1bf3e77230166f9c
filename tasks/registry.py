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
  <task>_bt                  Bradley-Terry pairs: chosen / rejected prompt + solution
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

from typing import Callable, Sequence

import seqio

from genrm_jax import input_pipeline as ip
from genrm_jax import verification_data as vd
from tasks import examples as examples_lib
from tasks import sources

FAMILIES = sources.TASKS
VERIFICATION_TASKS = ("genrm", "genrm_cot", "disc", "bt", "dpo", "solve")

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


def _add_task(name: str, source, kind: str, vocabulary) -> None:
  if name in seqio.TaskRegistry.names():
    seqio.TaskRegistry.remove(name)
  if kind == ip.GENERATIVE:
    features = ip.generative_features(vocabulary)
    preprocessors = ip.generative_preprocessors()
  elif kind == ip.DISC:
    features = ip.disc_features(vocabulary)
    preprocessors = [seqio.preprocessors.tokenize, ip.prepend_bos]
  elif kind == ip.PAIRWISE:
    features = ip.pairwise_features(vocabulary)
    preprocessors = ip.pairwise_preprocessors()
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
_PAIRWISE_FIELDS = {"chosen": "string", "rejected": "string"}


# -----------------------------------------------------------------------------
# Problem-level tasks.
# -----------------------------------------------------------------------------


def register_problem_tasks(vocabulary, problem_options: dict | None = None
                           ) -> list[str]:
  """`<family>_sft`; `problem_options` {family: get_problems kwargs} change
  the generated problems (lengths, sizes) of a family."""
  names = []
  for family in FAMILIES:
    name = f"{family}_sft"
    options = tuple(sorted((problem_options or {}).get(family, {}).items()))

    def build(split, family=family, options=options):
      return examples_lib.sft_examples(family, split, options)

    _add_task(name, _string_source(build, sources.SPLITS[family],
                                   _GENERATIVE_FIELDS), ip.GENERATIVE,
              vocabulary)
    names.append(name)
  return names


# -----------------------------------------------------------------------------
# Verification tasks.
# -----------------------------------------------------------------------------


def register_verification_tasks(family: str, vocabulary, stores: dict,
                                rationales: dict | None = None,
                                unified_lambda: float = 1.0,
                                max_correct: int = vd.DEFAULT_MAX_CORRECT,
                                max_incorrect: int = vd.DEFAULT_MAX_INCORRECT,
                                seed: int = 0, balance_by: str = "",
                                train_problems: int = 0,
                                rationales_per_solution: int = 0) -> list[str]:
  """Registers `<family>_{genrm,genrm_cot,disc,bt,dpo,solve}` and the unified
  mixtures from candidate stores (`{split: path}`), or released GSM8K data."""
  stores = tuple(sorted((k, v) for k, v in stores.items() if v))
  rationales = tuple(sorted((k, v) for k, v in (rationales or {}).items()
                            if v))
  splits = [k for k, _ in stores] or list(vd.RELEASED_SPLITS)
  fields = {"disc": _DISC_FIELDS, "bt": _PAIRWISE_FIELDS, "dpo": _DPO_FIELDS}
  kinds = {"disc": ip.DISC, "bt": ip.PAIRWISE, "dpo": ip.DPO}
  names = []
  for kind in VERIFICATION_TASKS:
    name = f"{family}_{kind}"

    def build(split, kind=kind):
      return examples_lib.verification_examples(kind, family, stores, max_correct,
                                    max_incorrect, seed, split, rationales,
                                    balance_by, train_problems,
                                    rationales_per_solution)

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
          balance_by=str(get("balance_by", "") or ""),
          train_problems=int(get("train_problems", 0) or 0),
          rationales_per_solution=int(get("rationales_per_solution", 0) or 0))
  return names


register()
