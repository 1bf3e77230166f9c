r"""Candidates: sample N graded solutions per problem into a candidate store.

  python -m genrm_jax.generate --checkpoint=DIR --task=last_letter \
      --split=test --num_samples=16 --temperature=0.7 --out=C.jsonl \
      [--limit_problems=K --batch_size=B --max_new_tokens=M --seed=S]

Each problem's prompt is `prompts.solution_prompt(question)`; each sample is
graded with `grading.extract_answer` / `is_equivalent` against the problem's
reference and written with `task`, `generator` (the checkpoint), `seed`,
`temperature` and `logprob` (the model's log-probability of the solution's
tokens).

Resumable per problem: rows are appended one problem at a time (one write,
fsync'ed); a rerun skips problems already complete in --out and samples only
the missing ones. Sample i of problem p uses the key of (seed, p, i) alone,
never the batch it shares, so a resumed run writes the same file as an
uninterrupted one.

Problems come from `--task_module` (default `tasks.sources`, whose
`get_problems(task, split)` reads `GENRM_DATA_DIR`): the library itself never
imports `tasks/` (DESIGN.md), a CLI names the module, as configs do.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from typing import Callable, Optional, Sequence

from absl import app
from absl import flags

from genrm_jax import candidates as candidates_lib
from genrm_jax import grading
from genrm_jax import paths
from genrm_jax import prompts

# Base models keep writing the next few-shot question; cut there.
DEFAULT_STOP_STRINGS = ('\n\nQ:',)


def define_flags() -> None:
  """CLI flags (defined only when run as a program)."""
  from genrm_jax import sampling  # pylint: disable=g-import-not-at-top
  from genrm_jax.models import bundle  # pylint: disable=g-import-not-at-top
  bundle.define_flags('Generator')
  flags.DEFINE_string('task', None, f'One of {", ".join(grading.TASKS)}.')
  flags.DEFINE_string('split', 'test', 'Problem split.')
  flags.DEFINE_string('task_module', 'tasks.sources',
                      'Module with get_problems(task, split) -> [{problem_id, question, '
                      'reference, ...}].')
  flags.DEFINE_integer('num_samples', 16, 'Candidates per problem (N).')
  sampling.define_flags(temperature=0.7, max_new_tokens=256, what='Solution ',
                        continuous_batching=True)
  flags.DEFINE_integer('batch_size', 64, 'Sampler rows per batch.')
  prompts.define_chat_template_flag('generator')
  flags.DEFINE_integer('limit_problems', 0, 'Only the first K problems (0: all).')
  flags.DEFINE_string('out', None, 'Candidate store to write (appended; resumable).')
  # --help lists them with this CLI's own flags.
  flags.adopt_module_key_flags(sampling)
  flags.adopt_module_key_flags(bundle)
  flags.adopt_module_key_flags(prompts)
  flags.mark_flags_as_required(['checkpoint', 'task', 'out'])


def load_problems(task: str, split: str, task_module: str = 'tasks.sources') -> list[dict]:
  module = importlib.import_module(task_module)
  if not hasattr(module, 'get_problems'):
    raise ValueError(f'--task_module={task_module} has no get_problems(task, split).')
  return list(module.get_problems(task, split))


def _complete_counts(out_path: str, problems: Sequence[dict], *, seed: Optional[int] = None,
                     temperature: Optional[float] = None,
                     generator: str = '') -> dict[str, set]:
  """problem_id -> candidate ids already in the store; ValueError if a stored
  row's question or reference is not its problem's (generated problems are
  numbered by position, so a store left by other task options has the same
  ids for other problems, which would pass for complete), or if it was
  sampled with another seed, temperature or generator (a resume would mix
  two runs' samples in one pool)."""
  if not os.path.exists(out_path):
    return {}
  by_id = {p['problem_id']: p for p in problems}
  done: dict[str, set] = {}
  for row in candidates_lib.iter_candidates(out_path, on_error=candidates_lib.SKIP):
    settings = {'seed': (row.seed, seed),
                'temperature': (row.extra.get('temperature'), temperature),
                'generator': (row.generator or None, generator or None)}
    changed = [f'{k}: {old!r} -> {new!r}' for k, (old, new) in settings.items()
               if old is not None and new is not None and old != new]
    # (Sampled rows only: the pipeline's smoke runs add 'reference' ones.)
    if changed and isinstance(row.candidate_id, int):
      raise ValueError(
          f'{out_path}: problem {row.problem_id!r} was sampled with other settings '
          f'({", ".join(changed)}): write to a new --out, or resume with the same ones')
    problem = by_id.get(row.problem_id)
    if problem is not None and (row.question, row.reference) != (
        problem['question'], problem['reference']):
      field = 'question' if row.question != problem['question'] else 'reference'
      raise ValueError(
          f'{out_path}: problem {row.problem_id!r} has another {field} than the one '
          f'being sampled (a store of other problems: other task options or seed?): '
          f'write to a new --out, or delete {out_path}')
    done.setdefault(row.problem_id, set()).add(row.candidate_id)
  return done


_SAMPLERS: dict = {}


def _sampler(model):
  """One Sampler (compiled programs kept) per loaded model."""
  from genrm_jax import sampling  # pylint: disable=g-import-not-at-top
  key = id(model.params)
  if key not in _SAMPLERS or _SAMPLERS[key][0] is not model.params:
    _SAMPLERS.clear()
    _SAMPLERS[key] = (model.params, sampling.Sampler(model.config, model.params,
                                                     tokenizer=model.tokenizer))
  return _SAMPLERS[key][1]


def generate(problems: Sequence[dict], model, out_path: str, *, task: str,
             num_samples: int, temperature: float, max_new_tokens: int,
             batch_size: int = 64, seed: int = 0, top_k: int = 0, top_p: float = 1.0,
             generator: str = '', stop_strings: Sequence[str] = DEFAULT_STOP_STRINGS,
             log: Callable[[str], None] = logging.info,
             max_problems: Optional[int] = None,
             continuous_batching: Optional[bool] = None,
             chat_template: Optional[str] = None) -> int:
  """Samples, grades and appends candidates of every problem not yet complete.

  Args:
    problems: Dicts with `problem_id`, `question`, `reference` (as
      `tasks.sources.get_problems` returns).
    model: A `bundle.Bundle` (config, params, tokenizer).
    out_path: The candidate store (appended to; complete problems skipped).
    max_problems: Stop after this many problems (tests: a killed run).
    chat_template: An instruction-tuned generator: the solution prompt as the
      user's turn of this template (`prompts.CHAT_TEMPLATES`), the turn's
      end a stop string too.
    continuous_batching: Stream 8 batches' worth of rows at a time through
      `batch_size` sampler rows, a finished row's slot taking the next row
      (None: `sampling.continuous_batching_default()`); else one sampler
      batch at a time (`sampling.call_sizes`). A row's samples are the same either way (per-row
      keys), to float rounding.

  Returns:
    The number of problems written now.
  """
  from genrm_jax import sampling  # pylint: disable=g-import-not-at-top
  done = _complete_counts(out_path, problems, seed=seed, temperature=temperature,
                          generator=generator)
  todo = []
  for p in problems:
    missing = [i for i in range(num_samples) if i not in done.get(p['problem_id'], ())]
    if missing:
      todo.append((p, missing))
  if max_problems is not None:
    todo = todo[:max_problems]
  log(f'{len(problems) - len(todo)} of {len(problems)} problems already complete in '
      f'{out_path}; {len(todo)} to sample.')
  if not todo:
    return 0
  tok = model.tokenizer
  sampler = _sampler(model)
  stop_strings = tuple(stop_strings) + prompts.chat_stop_strings(chat_template)
  params = sampling.SamplingParams(
      max_new_tokens=max_new_tokens, temperature=temperature, top_k=top_k, top_p=top_p,
      stop_tokens=sampling.eos_stop_tokens(tok), stop_strings=stop_strings)
  # Rows per sampler call; problems are written (and resume) per call.
  per_call, stream = sampling.call_sizes(batch_size, continuous_batching)
  per_batch = max(1, per_call // num_samples)  # problems per call
  start, written = time.time(), 0
  for lo in range(0, len(todo), per_batch):
    group = todo[lo:lo + per_batch]
    rows = [(p, i) for p, missing in group for i in missing]
    texts, logprobs = [], []
    for b in range(0, len(rows), per_call):
      chunk = rows[b:b + per_call]
      out = sampler.generate(
          [prompts.as_chat(prompts.solution_prompt(p['question']), chat_template)
           for p, _ in chunk], params,
          rng=sampling.row_keys(seed, [(p['problem_id'], i) for p, i in chunk]),
          batch_size=stream)
      texts += out.texts
      logprobs += [sampling.kept_logprob(sampler.tokenizer.decode, toks, lps, text,
                                         stop_strings)
                   for toks, lps, text in zip(out.tokens, out.logprobs, out.texts)]
    by_problem: dict[str, list] = {}
    for (p, i), text, lp in zip(rows, texts, logprobs):
      solution = sampling.without_stop_string(text, stop_strings).strip()
      answer = grading.extract_answer(task, solution)
      correct = answer is not None and grading.is_equivalent(task, answer, p['reference'])
      by_problem.setdefault(p['problem_id'], []).append(candidates_lib.Candidate(
          problem_id=p['problem_id'], candidate_id=i, question=p['question'],
          solution=solution, answer=answer, reference=p['reference'], correct=bool(correct),
          task=task, generator=generator, seed=seed, logprob=lp,
          extra={'temperature': temperature,
                 **{k: p[k] for k in ('level', 'subject') if p.get(k) is not None}}))
    for p, _ in group:
      candidates_lib.write_candidates(out_path, by_problem[p['problem_id']], append=True)
      written += 1
    elapsed = time.time() - start
    rate = written / max(elapsed, 1e-9)
    eta = (len(todo) - written) / max(rate, 1e-9)
    log(f'{written}/{len(todo)} problems, {rate:.2f} problems/s, ETA {eta:.0f}s')
  return written


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  f = flags.FLAGS
  logging.getLogger().setLevel(logging.INFO)
  from genrm_jax import sampling  # pylint: disable=g-import-not-at-top
  from genrm_jax.models import bundle  # pylint: disable=g-import-not-at-top
  try:
    problems = load_problems(f.task, f.split, f.task_module)
    if f.limit_problems:
      problems = problems[:f.limit_problems]
    model = bundle.from_flags()
    generate(problems, model, f.out, task=f.task, num_samples=f.num_samples,
             temperature=f.temperature, max_new_tokens=f.max_new_tokens,
             batch_size=f.batch_size, seed=f.seed, top_k=f.top_k, top_p=f.top_p,
             continuous_batching=sampling.CONTINUOUS_BATCHING_FLAG[
                 f.continuous_batching],
             generator=paths.absolute(f.checkpoint), log=print,
             chat_template=prompts.chat_template_flag())
  except (FileNotFoundError, ValueError) as e:
    sys.exit(f'error: {e}')


if __name__ == '__main__':
  define_flags()
  app.run(main)
