r"""The paper's whole pipeline in one command: generator -> candidates ->
verifiers -> Best-of-N.

  python -m genrm_jax.pipeline --config=configs/pipeline/quickstart.py \
      --workdir=runs/quickstart

Stages (each prints its progress; rerunning the command resumes: finished
stages are skipped, training resumes from its last checkpoint, sampling and
scoring from their last complete problem / row):

  1. vocabulary  a SentencePiece vocabulary trained on the task's text
                 (genrm_jax.task_vocab), unless the config names a base model
                 whose tokenizer is used instead
  2. generator   solution SFT on the train problems (seqio `<task>_sft`)
  3. candidates  N samples per problem: verifier-train problems and the
                 evaluation problems, graded (genrm_jax.generate)
  4. verifiers   one training run per verifier (`configs/<task>_<method>.py`
                 settings), each starting from the generator's weights and
                 trained on its candidates with oracle rationales for CoT
  5. evaluation  every verifier scores the evaluation candidates; Best-of-N
                 against majority voting and pass@N with bootstrap CIs
                 (genrm_jax.evaluate): results.json, curves.csv, PNGs

WORKDIR layout: vocab/tokenizer.model, generator/ (its export/ is the
generator bundle), candidates/{verifier_train,eval}.jsonl, verifiers/<name>/,
eval/ (scores/, results.json, best_of_n.png), pipeline.json (stage wall times: this
invocation's, and summed over every invocation, written after each stage).
"""

from __future__ import annotations

import functools
import json
import logging as std_logging
import os
import sys
import threading
import time
from typing import Any, Callable, Sequence

import ml_collections as mlc

Log = Callable[[str], None]


def _stage(log: Log, title: str) -> None:
  log('')
  log('=' * 78)
  log(title)
  log('=' * 78)


# -----------------------------------------------------------------------------
# Configs of the individual runs.
# -----------------------------------------------------------------------------


def _problem_options(spec) -> dict:
  return {k: tuple(v) if isinstance(v, (list, tuple)) else v
          for k, v in dict(spec).items() if k != 'split'}


# Tokens a rationale needs beyond the longest oracle rationale of a correct
# solution (a wrong solution's has a line or two more; check_generation_lengths).
RATIONALE_MARGIN = 32


def problems(config, which: str) -> list[dict]:
  """The problems of `config.problems[which]` ({split, get_problems options})."""
  from tasks import sources  # pylint: disable=g-import-not-at-top
  spec = config.problems[which]
  return sources.get_problems(config.task, spec.split, **_problem_options(spec))


def _apply(target: mlc.ConfigDict, overrides, prefix: str = '') -> None:
  """Merges nested overrides ({'data': {'seq_len': 128}}) into a training config."""
  for key, value in dict(overrides).items():
    if key not in target:
      raise KeyError(f'pipeline override {prefix}{key!r}: the training config has no '
                     f'such key; known: {sorted(target.keys())}.')
    if isinstance(value, (dict, mlc.ConfigDict)) and isinstance(target[key], mlc.ConfigDict):
      _apply(target[key], value, f'{prefix}{key}.')
    else:
      target[key] = tuple(value) if isinstance(value, list) else value


def train_config(config, method: str, *, vocabulary: str, init_from: str,
                 candidates: dict | None = None, run: str | None = None) -> mlc.ConfigDict:
  """`configs/<task>_<method>.py`'s config, with the pipeline's model, data
  and schedule (`config.train` for every run, then `config.runs[run or
  method]`)."""
  from configs import common  # pylint: disable=g-import-not-at-top
  c = common.get_config(config.task, method)
  c.data.source = config.get('data_source', 'seqio')  # 'python': no TensorFlow
  c.data.vocabulary = vocabulary
  c.init_from = init_from
  c.model.preset = config.model.preset
  for key, value in dict(config.model.overrides).items():
    c.model[key] = value  # gemma.TransformerConfig fields
  if not config.base_model and vocabulary != 'byte':
    c.model['num_embed'] = vocab_size(vocabulary)  # a vocabulary trained here
  if candidates:
    c.data.candidates.train = candidates.get('train', '')
    c.data.candidates.validation = candidates.get('validation', '')
  _apply(c, config.train)
  _apply(c, config.runs[run or method])
  return c


def _longest(tok, texts) -> int:
  return max(len(tok.encode(t)) + 1 for t in texts)  # + BOS or EOS


def check_generation_lengths(config, vocabulary: str, log: Log) -> dict[str, int]:
  """Fails before any training when a sampled text could not be whole, or a
  CoT verifier's training rows could not hold a whole rationale.

  For the algorithmic tasks, on the problems' reference solutions:
  * evaluation problems: a solution must fit `sampling.max_new_tokens` (a
    cut solution has no answer), its oracle rationale each CoT verifier's
    `max_new_tokens` (a cut rationale never reaches its verdict: the scores
    fall to chance);
  * verifier-train problems: a CoT prompt (question + solution) must fit the
    CoT run's `data.inputs_len` and its oracle rationale the rest of
    `data.seq_len` (the run itself checks the real candidates' examples,
    data_python.check_example_lengths, but only after the generator has
    trained and sampled).
  Wrong solutions' rationales run a line or two longer, so rationales need
  `RATIONALE_MARGIN` to spare. `config.check_lengths=False` (smoke runs)
  skips it. Returns the longest of each, in tokens.
  """
  from genrm_jax import input_pipeline  # pylint: disable=g-import-not-at-top
  from genrm_jax import prompts  # pylint: disable=g-import-not-at-top
  from genrm_jax import rationales  # pylint: disable=g-import-not-at-top
  from genrm_jax import verifiers as verifiers_lib  # pylint: disable=g-import-not-at-top
  from genrm_jax.models import tokenizer as tokenizer_lib  # pylint: disable=g-import-not-at-top
  if (not config.get('check_lengths', True) or config.task not in rationales.ALGORITHMIC_TASKS
      or config.get('released_candidates')):
    return {}
  tok = tokenizer_lib.from_spec(vocabulary)

  def oracle(p):
    return rationales.oracle_rationale(config.task, p['question'], p['solution'],
                                       p['reference'])

  evaluation = problems(config, 'eval')
  longest = {'solution': _longest(tok, [p['solution'] for p in evaluation]),
             'rationale': _longest(tok, [oracle(p) for p in evaluation])}
  # (key, its value, the longest text, what, margin, the overrides that fit)
  budgets = [('sampling.max_new_tokens', config.sampling.max_new_tokens,
              longest['solution'], 'reference solution of the evaluation problems', 0,
              f"--config.sampling.max_new_tokens={longest['solution']}")]
  for name in config.verifiers:
    v = config.verifiers[name]
    if v.kind in verifiers_lib.COT_KINDS:
      budget = v.options.get('max_new_tokens', verifiers_lib.DEFAULT_OPTIONS['max_new_tokens'])
      budgets.append((f'verifiers.{name}.options.max_new_tokens', budget,
                      longest['rationale'], 'oracle rationale of the evaluation problems',
                      RATIONALE_MARGIN, f'--config.verifiers.{name}.options.max_new_tokens='
                      f"{longest['rationale'] + RATIONALE_MARGIN}"))
  if any(config.verifiers[n].method == 'cot' for n in config.verifiers):
    train = problems(config, 'verifier_train')
    longest['train_prompt'] = _longest(tok, [
        prompts.cot_verification_prompt(p['question'], p['solution']) for p in train])
    longest['train_rationale'] = _longest(tok, [oracle(p) for p in train])
    c = train_config(config, 'cot', vocabulary=vocabulary, init_from='')
    lengths = input_pipeline.feature_lengths(c.data, input_pipeline.GENERATIVE)
    budgets.append(('runs.cot.data.inputs_len', lengths['inputs'], longest['train_prompt'],
                    'CoT prompt of the verifier-train problems', 0,
                    f"--config.runs.cot.data.inputs_len={longest['train_prompt']}"))
    budgets.append(('runs.cot.data.seq_len', lengths['targets'],
                    longest['train_rationale'],
                    'oracle rationale of the verifier-train problems (the targets: '
                    f'seq_len {c.data.seq_len} - inputs {lengths["inputs"]})',
                    RATIONALE_MARGIN,
                    f"--config.runs.cot.data.inputs_len={lengths['inputs']} "
                    '--config.runs.cot.data.seq_len='
                    f"{lengths['inputs'] + longest['train_rationale'] + RATIONALE_MARGIN}"))
  for key, budget, text_len, what, margin, fits in budgets:
    if text_len + margin > budget:
      spare = f', and a rationale needs {margin} more to spare' if margin else ''
      raise ValueError(
          f'{key}: {budget} tokens, but the longest {what} is {text_len} tokens '
          f'({vocabulary}){spare}; set {fits} (or more), or '
          '--config.check_lengths=False for a smoke run.')
  log('Longest texts (tokens): ' + ', '.join(f'{k} {v}' for k, v in longest.items()) +
      '; within their budgets.')
  return longest


# -----------------------------------------------------------------------------
# Stages.
# -----------------------------------------------------------------------------


def stage_vocabulary(config, workdir: str, log: Log) -> str:
  if config.base_model:
    path = os.path.join(config.base_model, 'tokenizer.model')
    log(f'Using the base model\'s tokenizer {path}.')
    return path
  from genrm_jax import task_vocab  # pylint: disable=g-import-not-at-top
  path = os.path.join(workdir, 'vocab', 'tokenizer.model')
  if os.path.exists(path):
    log(f'{path} exists.')
    return path
  corpus = problems(config, 'vocab')
  start = time.time()
  task_vocab.train(config.task, corpus, path, vocab_size=config.vocab.size,
                   model_type=config.vocab.model_type, seed=config.seed)
  log(f'Trained a {vocab_size(path)}-piece SentencePiece vocabulary ({config.vocab.model_type}) '
      f'on {len(corpus)} {config.task} problems ({time.time() - start:.1f}s): {path}')
  return path


def vocab_size(path: str) -> int:
  from genrm_jax.models import tokenizer  # pylint: disable=g-import-not-at-top
  return tokenizer.load(path).vocab_size  # cached per path


def _export_dir(run_dir: str) -> str:
  return os.path.join(run_dir, 'export')


def _train(c: mlc.ConfigDict, run_dir: str, log: Log) -> str:
  from genrm_jax import train  # pylint: disable=g-import-not-at-top
  export = _export_dir(run_dir)
  if os.path.exists(os.path.join(export, 'model.json')):
    log(f'{export} exists.')
    return export
  train.write_config(c, run_dir)
  train.train_and_evaluate(c, run_dir)
  if not os.path.exists(os.path.join(export, 'model.json')):
    # train returns early when preempted (its checkpoint saved): the next
    # stage needs the finished run's export, so stop here.
    raise RuntimeError(f'{run_dir} stopped before its last step (preempted?); its '
                       'checkpoint is kept: rerun the pipeline to resume it.')
  return export


def generator_config(config, vocabulary: str) -> mlc.ConfigDict:
  """The generator's solution-SFT run: `<task>_sft` on `problems.generator`."""
  init_from = (os.path.join(config.base_model, 'params') if config.base_model else '')
  c = train_config(config, 'solve', vocabulary=vocabulary, init_from=init_from)
  c.data.task = f'{config.task}_sft'
  c.data.problems = mlc.ConfigDict(dict(
      c.data.problems.to_dict(), **_problem_options(config.problems.generator)))
  return c


def stage_generator(config, workdir: str, vocabulary: str, log: Log) -> str:
  c = generator_config(config, vocabulary)
  init_from = c.init_from
  log(f'{config.task}_sft: {c.total_steps} steps of batch {c.batch_size} x '
      f'{c.data.seq_len} tokens, model {config.model.preset} '
      f'{dict(config.model.overrides)}' + (f', from {init_from}' if init_from else ''))
  return _train(c, os.path.join(workdir, 'generator'), log)


def stage_candidates(config, workdir: str, generator: str, which: str, log: Log,
                     name: str = '') -> str:
  """`which` problems' samples from `generator` -> candidates/<which>[_<name>].jsonl."""
  from genrm_jax import generate  # pylint: disable=g-import-not-at-top
  from genrm_jax.models import bundle  # pylint: disable=g-import-not-at-top
  out = os.path.join(workdir, 'candidates', f'{which}{"_" + name if name else ""}.jsonl')
  os.makedirs(os.path.dirname(out), exist_ok=True)
  probs = problems(config, which)
  s = config.sampling
  log(f'{which}: {len(probs)} problems x {s.num_samples} samples '
      f'(temperature {s.temperature}) -> {out}')
  model = bundle.load_bundle(generator, dtype=config.sampling.dtype or None)
  generate.generate(probs, model, out, task=config.task, num_samples=s.num_samples,
                    temperature=s.temperature, max_new_tokens=s.max_new_tokens,
                    batch_size=s.batch_size, seed=config.seed + (0 if which == 'eval' else 1),
                    generator=os.path.abspath(generator), log=log)
  if which == 'verifier_train' and config.get('reference_candidates', False):
    add_reference_candidates(out, probs, config.task, log)
  summarize_candidates(out, log)
  return out


def add_reference_candidates(path: str, probs: Sequence[dict], task: str, log: Log) -> int:
  """Appends each problem's reference solution to the store as one more
  candidate (`candidate_id` 'reference', graded like the samples), once.
  For wiring checks (`smoke` configs): a generator of a few steps solves
  nothing, and the verifiers need correct candidates beside its wrong ones."""
  from genrm_jax import candidates as candidates_lib  # pylint: disable=g-import-not-at-top
  from genrm_jax import grading  # pylint: disable=g-import-not-at-top
  have = {c.problem_id for c in candidates_lib.read_candidates(path)
          if str(c.candidate_id) == 'reference'}
  rows = []
  for p in probs:
    if p['problem_id'] in have:
      continue
    answer = grading.extract_answer(task, p['solution'])
    rows.append(candidates_lib.Candidate(
        problem_id=p['problem_id'], candidate_id='reference', question=p['question'],
        solution=p['solution'], answer=answer, reference=p['reference'],
        correct=answer is not None and grading.is_equivalent(task, answer, p['reference']),
        task=task, generator='reference'))
  if rows:
    candidates_lib.write_candidates(path, rows, append=True)
    log(f'  + {len(rows)} reference solutions as candidates (reference_candidates: '
        'a wiring check, not a result).')
  return len(rows)


def _labels_by_problem(path: str) -> dict[str, list[bool]]:
  """Each problem's candidates' correctness, in store order."""
  from genrm_jax import candidates as candidates_lib  # pylint: disable=g-import-not-at-top
  by_problem: dict[str, list[bool]] = {}
  for c in candidates_lib.read_candidates(path):
    by_problem.setdefault(c.problem_id, []).append(bool(c.correct))
  return by_problem


def _mixed(by_problem: dict[str, list[bool]]) -> int:
  """Problems with both a correct and an incorrect candidate."""
  return sum(any(v) and not all(v) for v in by_problem.values())


def summarize_candidates(path: str, log: Log) -> dict:
  """Accuracy, problems with a correct sample, problems with both kinds."""
  by_problem = _labels_by_problem(path)
  n = sum(len(v) for v in by_problem.values())
  acc = sum(sum(v) for v in by_problem.values()) / max(n, 1)
  any_correct = sum(any(v) for v in by_problem.values()) / max(len(by_problem), 1)
  mixed = _mixed(by_problem)
  log(f'  {n} candidates of {len(by_problem)} problems: {acc:.1%} correct; '
      f'{any_correct:.1%} of problems have a correct one; {mixed} have both kinds.')
  return dict(candidates=n, accuracy=acc, any_correct=any_correct, mixed=mixed)


def require_both_kinds(path: str, config) -> None:
  """Fails before any verifier trains when the generator's verifier-train
  pool cannot teach one: no correct (or no incorrect) candidate, or, for
  DPO and bt, no problem with both. The pool stays on disk."""
  by_problem = _labels_by_problem(path)
  labels = [v for vs in by_problem.values() for v in vs]
  mixed = _mixed(by_problem)
  methods = {config.verifiers[n].method for n in config.verifiers}
  problem = ''
  if not any(labels):
    problem = 'none of its candidates is correct'
  elif all(labels):
    problem = 'every candidate is correct'
  elif methods & {'dpo', 'bt'} and not mixed:
    problem = ('no problem has both a correct and an incorrect candidate (DPO and the '
               'Bradley-Terry model pair them)')
  if problem:
    lengths = config.problems.verifier_train.get('train_lengths', None)
    raise ValueError(
        f'{path}: {len(labels)} candidates of {len(by_problem)} verifier-train problems, '
        f'and {problem}: the verifiers would have nothing to learn from. Train the generator '
        'longer (--config.runs.solve.total_steps=N), sample more or hotter '
        '(--config.sampling.num_samples=N, --config.sampling.temperature=T), or use easier '
        f'problems (--config.problems.verifier_train.train_lengths=..., now {lengths}); '
        f'then delete {path} (it is resumed, not resampled) and rerun.')


def first_problems(path: str, k: int, out: str) -> str:
  """The candidates of PATH's first K problems (store order), written to OUT
  (once: a rerun reuses it)."""
  from genrm_jax import candidates as candidates_lib  # pylint: disable=g-import-not-at-top
  if not os.path.exists(out):
    cands = candidates_lib.read_candidates(path)
    keep = set(list(dict.fromkeys(c.problem_id for c in cands))[:k])
    candidates_lib.write_candidates(out, [c for c in cands if c.problem_id in keep])
  return out


def shared_runs(config) -> dict[str, str]:
  """{verifier: the verifier whose trained model it scores with}, for the
  verifiers with `run_of` (e.g. GenRM-CoT scored by one greedy rationale
  beside the sampled ones: the same model, scored another way)."""
  shared = {}
  for name in config.verifiers:
    of = config.verifiers[name].get('run_of', '')
    if not of:
      continue
    if of not in config.verifiers or config.verifiers[of].get('run_of', ''):
      raise ValueError(f'verifiers.{name}.run_of={of!r}: expected the name of a verifier '
                       'that trains its own run, one of '
                       f'{[n for n in config.verifiers if not config.verifiers[n].get("run_of", "")]}.')
    if config.verifiers[of].method != config.verifiers[name].method:
      raise ValueError(f'verifiers.{name}.run_of={of!r}: {of} trains method '
                       f'{config.verifiers[of].method!r}, {name} says '
                       f'{config.verifiers[name].method!r}.')
    shared[name] = of
  return shared


def stage_verifiers(config, workdir: str, vocabulary: str, generator: str,
                    train_candidates: str, log: Log) -> dict[str, str]:
  exports = {}
  shared = shared_runs(config)
  for name in config.verifiers:
    if name in shared:
      continue
    method = config.verifiers[name].method
    c = train_config(config, method, vocabulary=vocabulary,
                     init_from=os.path.join(generator, 'params'),
                     candidates={'train': train_candidates} if train_candidates else None)
    log(f'[{name}] {c.data.task}: {c.total_steps} steps of batch {c.batch_size} x '
        f'{c.data.seq_len} tokens, from the generator')
    exports[name] = _train(c, os.path.join(workdir, 'verifiers', name), log)
  for name, of in shared.items():
    log(f'[{name}] scores with {of}\'s model (run_of)')
    exports[name] = exports[of]
  return exports


def stage_generation_transfer(config, workdir: str, vocabulary: str, generator: str,
                              train_candidates: str, exports: dict[str, str],
                              eval_candidates: str, log: Log) -> dict:
  """Solve accuracy of the generator, the unified GenRM-CoT model and the
  control trained on its solution data alone, on the evaluation problems
  (`genrm_jax.transfer`): WORKDIR/eval/generation.json."""
  from genrm_jax import transfer  # pylint: disable=g-import-not-at-top
  unified = next((n for n in config.verifiers if config.verifiers[n].method == 'unified'),
                 None)
  if unified is None or not train_candidates:
    raise ValueError('generation_transfer needs the unified verifier (method unified) '
                     'and sampled verifier-train candidates (not the released ones).')
  c = train_config(config, 'solve', vocabulary=vocabulary,
                   init_from=os.path.join(generator, 'params'),
                   candidates={'train': train_candidates}, run='solve_correct')
  log(f'[solve_correct] {c.data.task}: {c.total_steps} steps of batch {c.batch_size} x '
      f'{c.data.seq_len} tokens, from the generator (the control: {unified}\'s solution '
      'data without its verification data)')
  control = _train(c, os.path.join(workdir, 'transfer', 'solve_correct'), log)
  stores = {'generator': eval_candidates}
  for name, model in (('solve_correct', control), (unified, exports[unified])):
    stores[name] = stage_candidates(config, workdir, model, 'eval', log, name=name)
  result = transfer.report(stores, task=config.task, num_bootstrap=config.eval.bootstrap,
                           seed=config.seed,
                           pairs=[(unified, 'generator'), (unified, 'solve_correct'),
                                  ('solve_correct', 'generator')])
  out = os.path.join(workdir, 'eval', 'generation.json')
  os.makedirs(os.path.dirname(out), exist_ok=True)
  with open(out, 'w') as f:
    json.dump(dict(result, stores=stores), f, indent=1)
  log(transfer.format_report(result))
  log(f'Wrote {out}')
  return result


def verifier_list(config, exports: dict[str, str], generator: str) -> list[dict]:
  """The trained verifiers as an eval config's `verifiers` (eval_config.py)."""
  verifiers = []
  for name in config.verifiers:
    v = config.verifiers[name]
    options = dict(v.options)
    if v.kind == 'dpo':
      options.setdefault('reference_checkpoint', generator)
    verifiers.append(dict(name=name, kind=v.kind, checkpoint=exports[name],
                          options=options))
  return verifiers


def stage_evaluation(config, workdir: str, eval_candidates: str, verifiers: list[dict],
                     log: Log) -> dict:
  from genrm_jax import eval_config  # pylint: disable=g-import-not-at-top
  from genrm_jax import evaluate  # pylint: disable=g-import-not-at-top
  out = os.path.join(workdir, 'eval')
  paths = eval_config.run_scorers({'verifiers': verifiers}, eval_candidates, out, log=log)
  return evaluate.run(eval_candidates, paths, out, n_max=config.eval.n_max or None,
                      num_bootstrap=config.eval.bootstrap, seed=config.seed,
                      task=config.task,
                      weighted_vote=bool(config.eval.get('weighted_vote', False)),
                      wandb=_eval_wandb(config))


def _eval_wandb(config) -> dict | None:
  """The training runs' W&B settings for the evaluation's run, named 'eval'."""
  from genrm_jax import wandb_logging  # pylint: disable=g-import-not-at-top
  wandb = config.train.get('wandb')
  return dict(wandb.to_dict(), name='eval') if wandb_logging.enabled(wandb) else None


def group_wandb_runs(config, workdir: str) -> None:
  """With `train.wandb.project` set, one W&B group per pipeline (its
  workdir's name, unless `train.wandb.group` says otherwise); each run is
  named after its folder (generator, genrm, ...)."""
  from genrm_jax import wandb_logging  # pylint: disable=g-import-not-at-top
  wandb = config.train.get('wandb')
  if wandb_logging.enabled(wandb) and not wandb.get('group'):
    config.train.wandb.group = os.path.basename(os.path.abspath(workdir))


# How often pipeline.json is rewritten while a stage runs (a stage killed
# at a call's time limit has its time up to the last beat).
HEARTBEAT_S = 10.0


def run(config, workdir: str, log: Log = functools.partial(print, flush=True)) -> dict[str, Any]:
  """Runs (or resumes) every stage; returns the evaluation results."""
  workdir = os.path.abspath(workdir)
  os.makedirs(workdir, exist_ok=True)
  group_wandb_runs(config, workdir)
  timings: dict[str, float] = {}
  start = time.time()
  # pipeline.json is rewritten after every stage, and every
  # HEARTBEAT_S within one: `timings_s` this invocation's,
  # `timings_s_all_invocations` summed over every invocation (a resumed
  # run's skipped stages take seconds; a killed one's stages count up to
  # its last heartbeat, the stage it was killed in too).
  timings_path = os.path.join(workdir, 'pipeline.json')
  earlier: dict[str, float] = {}
  if os.path.exists(timings_path):
    with open(timings_path) as f:
      old = json.load(f)
    earlier = old.get('timings_s_all_invocations', old.get('timings_s', {}))

  def save_timings():
    timings['total'] = round(time.time() - start, 1)
    summed = {k: round(earlier.get(k, 0.0) + timings.get(k, 0.0), 1)
              for k in {**earlier, **timings}}
    with open(timings_path + '.tmp', 'w') as f:
      json.dump({'timings_s': timings, 'timings_s_all_invocations': summed,
                 'config': config.to_dict()}, f, indent=1, default=str)
    os.replace(timings_path + '.tmp', timings_path)

  def timed(name, fn, *args):
    t = time.time()
    done = threading.Event()

    def heartbeat():
      while not done.wait(HEARTBEAT_S):
        timings[name] = round(time.time() - t, 1)
        save_timings()

    beat = threading.Thread(target=heartbeat, daemon=True)
    beat.start()
    try:
      result = fn(*args)
    finally:
      done.set()
      beat.join()
    timings[name] = round(time.time() - t, 1)
    save_timings()
    log(f'[{name}: {timings[name]:.0f}s; {time.time() - start:.0f}s since the start]')
    return result

  _stage(log, f'1/5 Vocabulary ({config.task})')
  vocabulary = timed('vocabulary', stage_vocabulary, config, workdir, log)
  check_generation_lengths(config, vocabulary, log)
  _stage(log, '2/5 Generator: solution SFT')
  generator = timed('generator', stage_generator, config, workdir, vocabulary, log)
  if config.get('released_candidates'):
    # GSM8K: the paper's released verification data train the verifiers, its
    # released solutions of the 128 validation questions are the pool.
    _stage(log, f'3/5 Candidates: released {config.released_candidates}')
    from genrm_jax import eval_config  # pylint: disable=g-import-not-at-top
    train_cands = ''
    eval_cands = eval_config.resolve_candidates(
        {}, os.path.join(workdir, 'candidates'),
        eval_config.RELEASED_PREFIX + config.released_candidates)
    max_problems = config.eval.get('released_max_problems', 0)
    if max_problems:
      eval_cands = first_problems(eval_cands, max_problems, os.path.join(
          workdir, 'candidates', f'released_first{max_problems}.jsonl'))
      log(f'Keeping the first {max_problems} questions only: {eval_cands}')
    summarize_candidates(eval_cands, log)
  else:
    _stage(log, f'3/5 Candidates: {config.sampling.num_samples} samples per problem')
    train_cands = timed('candidates_verifier_train', stage_candidates, config, workdir,
                        generator, 'verifier_train', log)
    require_both_kinds(train_cands, config)
    eval_cands = timed('candidates_eval', stage_candidates, config, workdir, generator,
                       'eval', log)
  _stage(log, f'4/5 Verifiers: {", ".join(config.verifiers)}')
  exports = timed('verifiers', stage_verifiers, config, workdir, vocabulary, generator,
                  train_cands, log)
  _stage(log, '5/5 Best-of-N evaluation')
  results = timed('evaluation', stage_evaluation, config, workdir, eval_cands,
                  verifier_list(config, exports, generator), log)
  if config.get('generation_transfer', False):
    _stage(log, 'Transfer to generation: the unified model as a solver')
    timed('generation_transfer', stage_generation_transfer, config, workdir, vocabulary,
          generator, train_cands, exports, eval_cands, log)
  save_timings()
  log('')
  log(f'Done in {timings["total"]:.0f}s (this invocation): ' +
      ', '.join(f'{k} {v:.0f}s' for k, v in timings.items() if k != 'total'))
  out = os.path.join(workdir, 'eval')
  log(f'Curves: {out}/best_of_n.png   results: {out}/results.json')
  return results


class _OurProgress(std_logging.Filter):
  """The console shows our progress lines and everyone's warnings, minus
  seqio's advice to cache small in-memory tasks."""

  def filter(self, record):
    if record.levelno >= std_logging.WARNING:
      return 'uncached FunctionDataset' not in record.getMessage()
    return f'{os.sep}genrm_jax{os.sep}' in record.pathname


def quiet_logging() -> None:
  """Short `HH:MM:SS message` lines from genrm_jax only (a run's full logs are
  in its metrics.jsonl / TensorBoard files)."""
  from absl import logging  # pylint: disable=g-import-not-at-top
  logging.set_verbosity(logging.INFO)
  handler = logging.get_absl_handler()
  handler.setFormatter(std_logging.Formatter('%(asctime)s %(message)s', '%H:%M:%S'))
  handler.addFilter(_OurProgress())
  try:
    import sentencepiece  # pylint: disable=g-import-not-at-top
    sentencepiece.set_min_log_level(2)
  except (ImportError, AttributeError):
    pass


def main(argv):
  from absl import flags  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    sys.exit(f'error: unexpected arguments {argv[1:]}')
  f = flags.FLAGS
  if f.config is None:
    sys.exit('error: --config=configs/pipeline/<name>.py is required.')
  if not f.verbose:
    quiet_logging()
  run(f.config, f.workdir)


if __name__ == '__main__':
  from absl import app, flags  # pylint: disable=g-import-not-at-top,multiple-imports
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  config_flags.DEFINE_config_file('config', None, 'Pipeline config file.', lock_config=True)
  flags.DEFINE_string('workdir', 'runs/quickstart', 'Where every stage writes.')
  flags.DEFINE_bool('verbose', False, 'Show every library\'s log lines too.')
  app.run(main)
