"""The string examples of every GenRM task, without seqio or TensorFlow.

`tasks/registry.py` serves them as seqio tasks; `genrm_jax.data_python`
tokenises and packs them in plain Python (machines without TensorFlow).
Each builder is cached per process (its arguments are hashable).
"""

from __future__ import annotations

import functools
import random

from genrm_jax import candidates as candidates_lib
from genrm_jax import prompts
from genrm_jax import synthesize
from genrm_jax import verification_data as vd
from tasks import sources


def mixed(examples: list[dict], split: str) -> list[dict]:
  """Pre-shuffles training examples with a fixed seed: sources come grouped
  (by label, by problem) and seqio's shuffle buffer is finite."""
  if split == "train":
    examples = list(examples)
    random.Random(0).shuffle(examples)
  return examples


@functools.lru_cache(maxsize=None)
def sft_examples(family: str, split: str, options: tuple = ()) -> list[dict]:
  problems = sources.get_problems(family, split, **dict(options))
  return mixed(vd.solve_examples_from_problems(problems), split)


@functools.lru_cache(maxsize=None)
def read_store(path: str) -> tuple[candidates_lib.Candidate, ...]:
  return tuple(candidates_lib.read_candidates(path))


@functools.lru_cache(maxsize=None)
def released_candidates(split: str) -> tuple[candidates_lib.Candidate, ...]:
  """The released direct-GenRM rows as a candidate store (GSM8K)."""
  out = []
  for row in vd.released_direct_examples(split):
    question, solution = prompts.parse_verification_inputs(row["inputs"])
    out.append(candidates_lib.Candidate(
        problem_id=f"gsm8k/{row['question_id']}",
        candidate_id=str(row["model_output_id"]), question=question,
        solution=solution, answer=None, reference="", correct=row["correct"]))
  return tuple(out)


def keep_problems(items, problem_of, num_problems: int, seed: int = 0) -> list:
  """Items of the first `num_problems` problems in a seeded random order
  (0: all). The order does not depend on `num_problems`, so smaller subsets
  are nested in larger ones: a data-scaling curve adds problems, it does
  not redraw them."""
  items = list(items)
  if num_problems <= 0:
    return items
  problems = sorted({problem_of(item) for item in items})
  if num_problems > len(problems):
    raise ValueError(f"data.train_problems={num_problems}, but the training data "
                     f"has {len(problems)} problems.")
  random.Random(seed).shuffle(problems)
  kept = set(problems[:num_problems])
  return [item for item in items if problem_of(item) in kept]


@functools.lru_cache(maxsize=None)
def verification_examples(kind: str, family: str, stores: tuple,
                           max_correct: int, max_incorrect: int, seed: int,
                           split: str, rationales: tuple = (),
                           balance_by: str = "", train_problems: int = 0,
                           rationales_per_solution: int = 0) -> list[dict]:
  """Examples of `kind` for `split` from the store paths (or released data).

  `train_problems` > 0 keeps the training split's examples of that many
  problems (`keep_problems`, seeded by `seed`): data-scaling experiments.
  `rationales_per_solution` > 0 keeps each solution's first that many
  agreeing synthesised rationales (by k): the paper's ablation on how many
  rationales a training solution gets.
  """
  subset = train_problems if split == "train" else 0
  stores = dict(stores)
  if stores:
    if split not in stores:
      raise ValueError(f"No candidate store for split {split!r} of {family}; "
                       f"data.candidates has {sorted(stores)}.")
    pool = read_store(stores[split])
  else:
    if family != "gsm8k":
      raise ValueError(
          f"{family}_{kind} needs candidate stores: set "
          "config.data.candidates = {'train': C.jsonl, 'validation': ...} "
          "(from python -m genrm_jax.generate).")
    if kind == "genrm_cot":
      rows = keep_problems(vd.released_cot_examples(split),
                           lambda r: f"gsm8k/{r['question_id']}", subset, seed)
      if split == "train":  # the raw collection: the paper's per-problem caps
        rows = vd.cap_released_cot_rows(rows, max_correct=max_correct,
                                        max_incorrect=max_incorrect, seed=seed)
      return mixed([{"inputs": r["inputs"], "targets": r["targets"]}
                     for r in rows], split)
    pool = released_candidates(split)
  pool = keep_problems(pool, lambda c: c.problem_id, subset, seed)
  caps = dict(max_correct=max_correct, max_incorrect=max_incorrect, seed=seed)
  if kind in ("genrm", "genrm_cot", "disc"):
    caps["balance_by"] = balance_by  # DPO pairs are balanced per problem anyway
  if kind == "genrm":
    examples = vd.direct_examples(pool, **caps)
  elif kind == "genrm_cot":
    rationale_paths = dict(rationales)
    if split in rationale_paths:  # synthesised, reference-guided
      table = synthesize.read_rationales(rationale_paths[split])
      keep = rationales_per_solution or None
      examples = vd.cot_examples(
          pool, lambda c: (table.get((c.problem_id, str(c.candidate_id))) or [])[:keep],
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
  elif kind == "bt":  # DPO's pairs, each side a whole disc-style row
    examples = [dict(p, chosen=p["prompt"] + p["chosen"],
                     rejected=p["prompt"] + p["rejected"])
                for p in vd.dpo_pairs(pool, **caps)]
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
  return mixed(examples, split)
