"""Every verifier of the paper, run over a candidate store into a scores file.

`score_store(candidates, spec, out_path)` scores each candidate with one
verifier and appends rows to `out_path` (the scores format of DESIGN.md).
Kinds (`VerifierSpec.kind`):

* `genrm`: p(" Yes") after the direct verification question (one
  teacher-forced pass; `renormalize` over Yes/No optional).
* `genrm_cot`: K rationales per candidate (`num_rationales`, sampled at
  `temperature`), each cut at its verification question; one row per
  rationale (`k`) with p(Yes) and the rationale (the evaluator averages them:
  MajV@K).
* `llm_judge`: `genrm_cot` with an un-fine-tuned checkpoint (renormalised
  over Yes/No by default: a base model spreads its mass widely; an
  instruction-tuned one with `chat_template='gemma'`: the CoT prompt as the
  user's turn).
* `disc`: sigmoid of the value head at the last token of BOS + solution
  prompt + solution (exactly `losses.value_logits`, as trained; the same
  for a Bradley-Terry model, method `bt`).
* `likelihood`: log p(solution + EOS | solution prompt) (as the DPO and
  solution-SFT data tokenise it: prompt and solution encoded separately).
* `dpo`: beta * (log p_theta(y|x) - log p_ref(y|x)), with
  `reference_checkpoint`.

Resumable and deterministic: rows already in `out_path` (same verifier,
problem, candidate, k) are skipped, so a killed run resumes without redoing
finished work; a candidate's score depends only on itself (teacher-forced
passes run in programs fixed by the row's own length bucket; rationale
sampling uses a key per (seed, problem, candidate, k)), not on batch
neighbours. Rows are appended per batch, each line flushed and fsync'ed.

`Verifier(kind, checkpoint, **options)` is the same in memory: a verifier
as a Python function of (question, solutions), e.g. a reward.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import logging
import os
import time
from typing import Any, Callable, Optional, Sequence

import jax
import numpy as np

from genrm_jax import candidates as candidates_lib
from genrm_jax import losses
from genrm_jax import prompts
from genrm_jax import sampling
from genrm_jax import scoring
from genrm_jax.models import bundle as bundle_lib
from genrm_jax.models import gemma

KINDS = ('genrm', 'genrm_cot', 'llm_judge', 'disc', 'dpo', 'likelihood')
COT_KINDS = ('genrm_cot', 'llm_judge')

# Options every kind understands, with defaults.
DEFAULT_OPTIONS = dict(
    batch_size=16,  # rows per forward pass / sampler batch
    renormalize=None,  # None: False, except True for llm_judge
    share_prefix=True,  # genrm: a problem's header + question computed once;
                        # CoT: a candidate's question + solution, once for K
    num_rationales=8,  # K (CoT kinds)
    temperature=0.7,  # rationale sampling (CoT kinds)
    top_k=0,
    top_p=1.0,
    max_new_tokens=512,  # rationale length (CoT kinds)
    fused_readout=True,  # CoT kinds: p(Yes) read off the sampler's step after
                         # the verification question; False: a second,
                         # teacher-forced pass over prompt + rationale
    continuous_batching=None,  # CoT kinds: batch_size rows decode at a time,
                               # a finished rationale's row taking the next
                               # one; False: each batch waits for its longest;
                               # None: on except on a CPU
    seed=0,
    chat_template=None,  # CoT kinds: the prompt as the user's turn of this
                         # chat template (prompts.CHAT_TEMPLATES; "-it" models)
    beta=0.1,  # dpo
    reference_checkpoint='',  # dpo
    preset='',  # bare official checkpoints: gemma preset ...
    tokenizer='',  # ... and tokenizer ('byte' or tokenizer.model)
    dtype='',  # compute dtype override
)


@dataclasses.dataclass
class VerifierSpec:
  """One verifier: its score-file name, kind, checkpoint and options."""

  name: str
  kind: str
  checkpoint: str
  options: dict[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    if self.kind not in KINDS:
      hint = (' (a Bradley-Terry model, method bt, is scored as disc: the same value '
              'head)') if self.kind == 'bt' else ''
      raise ValueError(f'verifier {self.name!r}: kind={self.kind!r}; expected one of '
                       f'{", ".join(KINDS)}{hint}.')
    unknown = sorted(set(self.options) - set(DEFAULT_OPTIONS))
    if unknown:
      raise ValueError(f'verifier {self.name!r}: unknown option(s) {unknown}; known: '
                       f'{sorted(DEFAULT_OPTIONS)}.')
    self.options = {**DEFAULT_OPTIONS, **dict(self.options)}
    for key in ('batch_size', 'num_rationales'):
      if not isinstance(self.options[key], int) or self.options[key] < 1:
        raise ValueError(f'verifier {self.name!r}: {key}={self.options[key]!r} must be a '
                         'positive integer.')
    if self.options['renormalize'] is None:
      self.options['renormalize'] = self.kind == 'llm_judge'
    if not self.checkpoint:
      raise ValueError(f'verifier {self.name!r}: no checkpoint; set its checkpoint to a '
                       'model directory (e.g. WORKDIR/export of genrm_jax.train).')
    template = self.options['chat_template']
    if template and (self.kind not in COT_KINDS or
                     template not in prompts.CHAT_TEMPLATES):
      raise ValueError(
          f'verifier {self.name!r}: chat_template={template!r} applies to the '
          f'CoT kinds ({", ".join(COT_KINDS)}), with one of '
          f'{sorted(prompts.CHAT_TEMPLATES)}.')


def dpo_reference(spec: 'VerifierSpec') -> str:
  """A DPO verifier's reference model: `reference_checkpoint`, else the
  `init_from` its training export recorded (the model DPO started from)."""
  path = spec.options['reference_checkpoint'] or bundle_lib.recorded_init_from(spec.checkpoint)
  if not path:
    raise ValueError(
        f'verifier {spec.name!r}: dpo needs its reference model (the one DPO started '
        f'from): set reference_checkpoint; {spec.checkpoint} records no init_from.')
  return path


# -----------------------------------------------------------------------------
# Models.
# -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _load(path: str, preset: str, tokenizer: str, dtype: str) -> bundle_lib.Bundle:
  return bundle_lib.load_bundle(path, preset=preset or None, tokenizer=tokenizer or None,
                                dtype=dtype or None)


def load_model(path: str, options: dict) -> bundle_lib.Bundle:
  """A bundle (cached per process: verifiers sharing a checkpoint load it once)."""
  return _load(os.path.abspath(path), options.get('preset', ''),
               options.get('tokenizer', ''), options.get('dtype', ''))


def _reference_model(policy: bundle_lib.Bundle, path: str, options: dict) -> bundle_lib.Bundle:
  """DPO's reference: a bundle or HF directory as any model; a bare official
  checkpoint (the usual `init_from`) with the policy's architecture and
  tokenizer."""
  from etils import epath  # pylint: disable=g-import-not-at-top
  from genrm_jax import paths  # pylint: disable=g-import-not-at-top
  from genrm_jax.models import import_hf  # pylint: disable=g-import-not-at-top
  directory = paths.absolute(path)  # init_from may be gs://...
  if (options.get('preset') or epath.Path(directory, bundle_lib.MODEL_JSON).is_file()
      or import_hf.is_hf_dir(directory)):
    return load_model(path, options)
  from genrm_jax.models import checkpoints  # pylint: disable=g-import-not-at-top
  return bundle_lib.Bundle(policy.config, checkpoints.load_params(directory, policy.config),
                           policy.tokenizer, None)


_SCORERS: dict = {}


def continuation_scorer(model: bundle_lib.Bundle, batch_size: int) -> scoring.ContinuationScorer:
  """A `ContinuationScorer` per (loaded model, batch size): verifiers sharing
  a checkpoint share its compiled programs."""
  key = (id(model.params), batch_size)
  if key not in _SCORERS or _SCORERS[key][0] is not model.params:
    if len(_SCORERS) >= 8:
      _SCORERS.pop(next(iter(_SCORERS)))
    _SCORERS[key] = (model.params, scoring.ContinuationScorer(
        model.config, model.params, batch_size=batch_size))
  return _SCORERS[key][1]


@dataclasses.dataclass
class ValueScorer:
  """The value head's logit at each row's last token (`losses.value_logits`)."""

  config: gemma.TransformerConfig
  params: Any
  value_head: dict
  batch_size: int = 16

  def __post_init__(self):
    model = gemma.Transformer(self.config)
    self._fn = jax.jit(functools.partial(losses.value_logits, model))

  def score(self, rows: Sequence[Sequence[int]]) -> np.ndarray:
    """Logits for token rows; each row's program depends on its own length only."""
    out = np.zeros(len(rows))
    groups: dict[int, list[int]] = {}
    for i, row in enumerate(rows):
      groups.setdefault(scoring._bucket(len(row)), []).append(i)  # pylint: disable=protected-access
    params = {'model': self.params, 'value_head': self.value_head}
    for length, members in sorted(groups.items()):
      for start in range(0, len(members), self.batch_size):
        chunk = members[start:start + self.batch_size]
        tokens = np.zeros((self.batch_size, length), np.int32)
        for r, i in enumerate(chunk):
          tokens[r, :len(rows[i])] = rows[i]
        tokens[len(chunk):, 0] = gemma.BOS_ID  # dummy rows: one token
        segments = (np.arange(length)[None, :] <
                    np.array([len(rows[i]) for i in chunk] +
                             [1] * (self.batch_size - len(chunk)))[:, None]
                    ).astype(np.int32)
        logits = np.asarray(self._fn(params, tokens, segments), np.float64)
        out[chunk] = logits[:len(chunk)]
    return out


# -----------------------------------------------------------------------------
# Scoring one batch of work items.
# -----------------------------------------------------------------------------


@dataclasses.dataclass
class _Work:
  candidate: candidates_lib.Candidate
  k: Optional[int] = None


class _Runner:
  """Scores batches of work items for one verifier."""

  def __init__(self, spec: VerifierSpec):
    self.spec = spec
    opts = spec.options
    self.model = load_model(spec.checkpoint, opts)
    self.tok = self.model.tokenizer
    self.scorer = continuation_scorer(self.model, opts['batch_size'])
    if spec.kind == 'disc':
      if self.model.value_head is None:
        raise ValueError(f'verifier {spec.name!r}: {spec.checkpoint} has no '
                         f'{bundle_lib.VALUE_HEAD}; disc needs a checkpoint exported by a '
                         'value-head training run (method=disc or bt).')
      self.value = ValueScorer(self.model.config, self.model.params, self.model.value_head,
                               batch_size=opts['batch_size'])
    if spec.kind == 'dpo':
      ref = _reference_model(self.model, dpo_reference(spec), opts)
      self.ref_scorer = continuation_scorer(ref, opts['batch_size'])
    if spec.kind in COT_KINDS:
      self.sampler = sampling.Sampler(self.model.config, self.model.params,
                                      tokenizer=self.tok,
                                      dedupe_prompts=opts['share_prefix'])
      self.sampling_params = scoring.cot_stop_params(
          self.tok, max_new_tokens=opts['max_new_tokens'], temperature=opts['temperature'],
          top_k=opts['top_k'], top_p=opts['top_p'],
          more_stop_strings=prompts.chat_stop_strings(opts['chat_template']))

  def _solution_pairs(self, items):
    xs = [self.tok.encode(prompts.solution_prompt(w.candidate.question), add_bos=True)
          for w in items]
    ys = [self.tok.encode(w.candidate.solution) + [self.tok.eos_id] for w in items]
    return xs, ys

  def __call__(self, items: Sequence[_Work]) -> list[candidates_lib.VerifierScore]:
    kind, opts = self.spec.kind, self.spec.options
    extra = [{} for _ in items]
    rationales = [None] * len(items)
    if kind == 'genrm':
      texts = [prompts.direct_verification_prompt(w.candidate.question, w.candidate.solution)
               for w in items]
      shared = ([prompts.solution_prompt(w.candidate.question) for w in items]
                if opts['share_prefix'] else None)
      scores = scoring.yes_probabilities(self.scorer, self.tok, texts, opts['renormalize'],
                                         shared_prefixes=shared)
    elif kind == 'disc':
      rows = [self.tok.encode(prompts.solution_prompt(w.candidate.question) +
                              w.candidate.solution, add_bos=True) for w in items]
      scores = 1.0 / (1.0 + np.exp(-self.value.score(rows)))
    elif kind in ('likelihood', 'dpo'):
      xs, ys = self._solution_pairs(items)
      scores = self.scorer.score(xs, ys)
      if kind == 'dpo':
        scores = opts['beta'] * (scores - self.ref_scorer.score(xs, ys))
    else:
      scores, rationales = self._cot(items)
      extra = [{'seed': opts['seed']} for _ in items]
    return [candidates_lib.VerifierScore(
        problem_id=w.candidate.problem_id, candidate_id=w.candidate.candidate_id,
        verifier=self.spec.name, score=float(s), k=w.k, rationale=r, extra=e)
            for w, s, r, e in zip(items, scores, rationales, extra)]

  def _cot(self, items):
    opts = self.spec.options
    cot_prompts = [prompts.as_chat(prompts.cot_verification_prompt(
        w.candidate.question, w.candidate.solution), opts['chat_template'])
                   for w in items]
    keys = sampling.row_keys(opts['seed'], [(w.candidate.problem_id,
                                             str(w.candidate.candidate_id), w.k)
                                            for w in items])
    return scoring.cot_yes_probabilities(
        self.sampler, self.scorer, self.tok, cot_prompts, keys, self.sampling_params,
        renormalize=opts['renormalize'], fused_readout=opts['fused_readout'],
        share_prefix=opts['share_prefix'],
        batch_size=_cot_call_sizes(opts)[1])


def _cot_call_sizes(opts: dict) -> tuple[int, int | None]:
  """`sampling.call_sizes` of the CoT kinds' options. Resolved here, where
  the models run, not when a spec is made: asking for JAX's backend starts
  it (before `jax.distributed.initialize` on a pod, that would break it)."""
  return sampling.call_sizes(opts['batch_size'], opts['continuous_batching'])


_RUNNERS: dict = {}


def _runner(spec: VerifierSpec) -> _Runner:
  """One runner (and so one set of compiled programs) per verifier setting."""
  key = (spec.name, spec.kind, os.path.abspath(spec.checkpoint),
         tuple(sorted((k, str(v)) for k, v in spec.options.items())))
  if key not in _RUNNERS:
    if len(_RUNNERS) >= 8:
      _RUNNERS.pop(next(iter(_RUNNERS)))
    _RUNNERS[key] = _Runner(spec)
  return _RUNNERS[key]


# -----------------------------------------------------------------------------
# The resumable driver.
# -----------------------------------------------------------------------------


# Files whose bytes identify a checkpoint's weights (orbax rewrites its
# manifest with every save; an HF directory its index).
_FINGERPRINT_FILES = ('model.json', 'params/manifest.ocdbt', 'params/_METADATA',
                      'manifest.ocdbt', '_METADATA', 'config.json',
                      'model.safetensors.index.json')


def _fingerprint(path: str) -> str:
  """A checkpoint's identity: a hash of the files that change when it is
  written again (the path alone if none is there)."""
  directory = os.path.abspath(path)
  digest = hashlib.sha256()
  found = False
  for rel in _FINGERPRINT_FILES:
    file = os.path.join(directory, rel)
    if os.path.isfile(file):
      found = True
      digest.update(rel.encode())
      with open(file, 'rb') as f:
        digest.update(f.read())
  return digest.hexdigest()[:16] if found else directory


def score_settings(spec: VerifierSpec) -> dict:
  """What a verifier's scores depend on (not batch sizes or batching, which
  change them by float rounding at most): its weights, and the options of
  its kind."""
  opts = spec.options
  out = {'kind': spec.kind, 'checkpoint': _fingerprint(spec.checkpoint),
         'dtype': opts['dtype'], 'preset': opts['preset'], 'tokenizer': opts['tokenizer']}
  if spec.kind in COT_KINDS:
    out.update({k: opts[k] for k in ('seed', 'temperature', 'top_k', 'top_p',
                                     'max_new_tokens', 'chat_template')})
  if spec.kind in ('genrm',) + tuple(COT_KINDS):
    out['renormalize'] = bool(opts['renormalize'])
  if spec.kind == 'dpo':
    out.update(beta=opts['beta'], reference=_fingerprint(dpo_reference(spec)))
  return out


def _check_settings(out_path: str, spec: VerifierSpec) -> None:
  """OUT.settings.json records each verifier's `score_settings`; a resume
  with other settings (a retrained checkpoint, another beta or temperature)
  would mix scores of two verifiers under one name: refused."""
  path = out_path + '.settings.json'
  recorded = {}
  if os.path.exists(path):
    with open(path) as f:
      recorded = json.load(f)
  mine = json.loads(json.dumps(score_settings(spec)))
  old = recorded.get(spec.name)
  if old is not None and old != mine and os.path.exists(out_path):
    changed = ', '.join(f'{k}: {old.get(k)!r} -> {mine.get(k)!r}'
                        for k in sorted(set(old) | set(mine)) if old.get(k) != mine.get(k))
    raise ValueError(
        f'{out_path} holds {spec.name!r} scores made with other settings ({changed}): '
        'use another --out, or delete the file, or the same settings to resume.')
  recorded[spec.name] = mine
  with open(path + '.tmp', 'w') as f:
    json.dump(recorded, f, indent=1, sort_keys=True)
  os.replace(path + '.tmp', path)


def _done_rows(out_path: str, spec: VerifierSpec) -> set:
  if not os.path.exists(out_path):
    return set()
  done = set()
  for row in candidates_lib.iter_scores(out_path, on_error=candidates_lib.SKIP):
    if row.verifier != spec.name:
      continue
    if spec.kind in COT_KINDS and row.extra.get('seed', spec.options['seed']) != \
        spec.options['seed']:
      raise ValueError(
          f'{out_path} holds {spec.name!r} rationales sampled with seed '
          f'{row.extra.get("seed")}, not {spec.options["seed"]}: use another --out, or '
          'the same seed to resume.')
    done.add((row.problem_id, str(row.candidate_id), row.k))
  return done


def _fmt_eta(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s'


def _chunk_size(spec: VerifierSpec) -> int:
  """Rows given to the runner at a time. Teacher-forced kinds take several
  batches' worth, so rows of one length bucket fill whole batches and a
  problem's candidates share one prefill; a row's score does not depend on
  its chunk. CoT chunks are one sampler batch, or with continuous batching
  8 batches' worth, streamed through batch_size rows (a chunk's tail waits
  for its longest rationale)."""
  if spec.kind in COT_KINDS:
    return _cot_call_sizes(spec.options)[0]
  return spec.options['batch_size'] * 8


def score_store(candidates: str | Sequence[candidates_lib.Candidate], spec: VerifierSpec,
                out_path: str, *, log: Callable[[str], None] = logging.info,
                max_items: Optional[int] = None) -> int:
  """Scores every candidate with `spec`, appending to `out_path`.

  Args:
    candidates: A candidate-store path, or the candidates.
    spec: The verifier.
    out_path: The scores file (created, or resumed: rows present are skipped).
    log: Progress lines (rows/s, ETA) go here.
    max_items: Stop after this many new rows (tests: simulates a killed run).

  Returns:
    The number of rows written now.
  """
  if isinstance(candidates, str):
    candidates = candidates_lib.read_candidates(candidates)
  os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
  _check_settings(out_path, spec)
  done = _done_rows(out_path, spec)
  ks = (list(range(spec.options['num_rationales'])) if spec.kind in COT_KINDS
        else [None])
  todo = [_Work(c, k) for c in candidates for k in ks
          if (c.problem_id, str(c.candidate_id), k) not in done]
  if max_items is not None:
    todo = todo[:max_items]
  total = len(todo)
  if not total:
    log(f'{spec.name}: all {len(candidates) * len(ks)} rows already in {out_path}.')
    return 0
  log(f'{spec.name} ({spec.kind}): {total} rows to score ({len(done)} already in '
      f'{out_path}).')
  runner = _runner(spec)
  # Rows go to the runner, and the file, a chunk at a time.
  chunk = _chunk_size(spec)
  start, written = time.time(), 0
  for lo in range(0, total, chunk):
    rows = runner(todo[lo:lo + chunk])
    written += candidates_lib.write_scores(out_path, rows, append=True)
    elapsed = time.time() - start
    rate = written / max(elapsed, 1e-9)
    log(f'{spec.name}: {written}/{total} rows, {rate:.2f} rows/s, '
        f'ETA {_fmt_eta((total - written) / max(rate, 1e-9))}')
  return written


# -----------------------------------------------------------------------------
# In memory: a verifier as a Python function.
# -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Verdict:
  """One (question, solution)'s verification: its score and, for the CoT
  kinds, the K rationales with each one's p(Yes) (`score` is their mean,
  the evaluator's MajV@K)."""

  score: float
  rationales: tuple[str, ...] = ()
  rationale_scores: tuple[float, ...] = ()


def _text_id(text: str) -> str:
  return hashlib.sha256(text.encode('utf-8')).hexdigest()[:16]


class Verifier:
  """A trained verifier as a function, e.g. the reward of rejection
  sampling, RL or a search, on the models and programs `score_store` uses:

    verifier = verifiers.Verifier('genrm', 'WORKDIR/export')
    verifier.score('Q: ...', ['solution A', 'solution B'])   # array [2]
    verifier.verify(questions, solutions)                     # Verdicts

  `kind` and `options` are those of `VerifierSpec` (K, temperature,
  batch_size, ...). A pair's score depends only on the pair and `seed`:
  rationales are sampled with a key per (seed, question, solution, k), and
  teacher-forced passes do not depend on batch neighbours, so a pair scores
  the same alone, in any order or beside any others.
  """

  def __init__(self, kind: str, checkpoint: str, **options):
    self.spec = VerifierSpec(kind, kind, checkpoint, options)
    self._runner = _runner(self.spec)  # loads now: a bad checkpoint fails here

  def verify(self, questions: str | Sequence[str],
             solutions: Sequence[str]) -> list[Verdict]:
    """`questions`: one question for every solution, or one per solution.

    Solutions are stripped, as the stores the verifiers train on hold them
    (`generate` strips its samples): an RL rollout's leading space or
    trailing newline does not move the prompt away from the training one.
    (Questions are used as given: the problem sources keep theirs as
    written, e.g. MATH's trailing newlines.)"""
    if isinstance(solutions, str):
      raise TypeError('solutions: a list of solution texts, not one string.')
    if isinstance(questions, str):
      questions = [questions] * len(solutions)
    if len(questions) != len(solutions):
      raise ValueError(f'{len(questions)} questions for {len(solutions)} solutions: '
                       'give one question, or one per solution.')
    solutions = [s.strip() for s in solutions]
    cot = self.spec.kind in COT_KINDS
    ks = list(range(self.spec.options['num_rationales'])) if cot else [None]
    work = [_Work(candidates_lib.Candidate(
        problem_id=_text_id(q), candidate_id=_text_id(s), question=q, solution=s,
        answer=None, reference='', correct=False), k)
            for q, s in zip(questions, solutions) for k in ks]
    chunk = _chunk_size(self.spec)
    rows = [row for lo in range(0, len(work), chunk)
            for row in self._runner(work[lo:lo + chunk])]
    out = []
    for i in range(len(solutions)):
      mine = rows[i * len(ks):(i + 1) * len(ks)]
      scores = [row.score for row in mine]
      out.append(Verdict(float(np.mean(scores)),
                         tuple(row.rationale for row in mine) if cot else (),
                         tuple(scores) if cot else ()))
    return out

  def score(self, questions: str | Sequence[str], solutions: Sequence[str]) -> np.ndarray:
    """The scores [len(solutions)] (float64): p(Yes) for genrm, mean p(Yes)
    over K rationales for the CoT kinds, sigmoid(value) for disc, the
    log-likelihood or DPO's implicit reward."""
    return np.array([v.score for v in self.verify(questions, solutions)], np.float64)
