"""`python -m genrm_jax.pipeline` (the quickstart's main job) end to end on the
`:smoke` config, then rerun: every stage resumes instead of redoing work."""

import json
import os
import subprocess
import sys

import pytest

from configs.pipeline import paper_270m
from configs.pipeline import quickstart
from genrm_jax import candidates as candidates_lib
from genrm_jax import pipeline
from tests import train_utils as tu
from tests.test_train_cli import _env


def _run(workdir):
  cmd = [sys.executable, '-m', 'genrm_jax.pipeline',
         '--config=configs/pipeline/quickstart.py:smoke,transfer,bt', f'--workdir={workdir}',
         '--config.eval.weighted_vote=True']
  proc = subprocess.run(cmd, cwd=tu.REPO, env=_env(), capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
  return proc.stdout


@tu.needs_seqio  # the quickstart reads its tasks through seqio
def test_pipeline_smoke_end_to_end_and_resume(tmp_path):
  config = quickstart.get_config('smoke,transfer,bt')
  workdir = str(tmp_path / 'run')
  out = _run(workdir)
  for stage in ('1/5 Vocabulary', '2/5 Generator', '3/5 Candidates', '4/5 Verifiers',
                '5/5 Best-of-N'):
    assert stage in out
  # The 10-step generator solves nothing: `reference_candidates` adds each
  # verifier-train problem's reference solution (once), so the verifiers
  # train on both kinds.
  train = candidates_lib.read_candidates(
      os.path.join(workdir, 'candidates', 'verifier_train.jsonl'))
  refs = [c for c in train if c.candidate_id == 'reference']
  n = config.problems.verifier_train.train_size
  assert len(refs) == n and all(c.correct for c in refs)
  assert len(train) == n * (config.sampling.num_samples + 1)
  assert any(not c.correct for c in train)
  # The table (every verifier, majority vote, pass@n) and where the files are.
  for method in ('genrm_cot', 'genrm', 'disc', 'bt', 'dpo', 'majority_vote', 'pass_at_n'):
    assert method in out, method
  assert 'best_of_n.png' in out and 'results.json' in out
  results = json.load(open(os.path.join(workdir, 'eval', 'results.json')))
  assert set(results['methods']) >= {'genrm_cot', 'genrm', 'disc', 'bt', 'dpo', 'majority_vote',
                                     'genrm:weighted_vote', 'genrm_cot:weighted_vote'}
  assert results['n_max'] == 4 and results['n_problems'] == 4
  # GenRM-CoT's rows carry their rationales: the compute-matched comparison.
  assert results['compute_matched']['verification_cost_source'] == {
      'genrm_cot': 'measured', 'genrm_cot_unified': 'measured'}
  # `transfer`: the generator, the unified model and its solution-only
  # control, each sampling the evaluation problems.
  generation = json.load(open(os.path.join(workdir, 'eval', 'generation.json')))
  assert list(generation['models']) == ['generator', 'solve_correct', 'genrm_cot_unified']
  assert generation['n_problems'] == 4 and 'genrm_cot_unified - solve_correct' in generation[
      'differences']
  assert 'Solving the 4 evaluation problems' in out
  for name in ('best_of_n.png', 'curves.csv', 'scores/genrm_cot.jsonl', 'compute_matched.png'):
    assert os.path.exists(os.path.join(workdir, 'eval', name)), name
  assert os.path.exists(os.path.join(workdir, 'vocab', 'tokenizer.model'))
  for run in ('generator', 'verifiers/genrm', 'verifiers/genrm_cot', 'verifiers/disc',
              'verifiers/dpo', 'verifiers/genrm_cot_unified', 'transfer/solve_correct'):
    assert os.path.exists(os.path.join(workdir, run, 'export', 'model.json')), run
  # CoT rows: K = 2 rationales per candidate.
  assert sum(1 for _ in open(os.path.join(workdir, 'eval', 'scores', 'genrm_cot.jsonl'))) == 4 * 4 * 2
  timings = json.load(open(os.path.join(workdir, 'pipeline.json')))['timings_s']
  assert set(timings) >= {'vocabulary', 'generator', 'verifiers', 'evaluation',
                          'generation_transfer', 'total'}

  # Rerun: nothing is trained, sampled or scored again; the same results.
  again = _run(workdir)
  # Vocabulary, generator, 6 verifiers (unified and bt too), the transfer
  # control.
  assert again.count('exists.') == 9
  assert len(candidates_lib.read_candidates(
      os.path.join(workdir, 'candidates', 'verifier_train.jsonl'))) == len(train)
  assert '0 to sample' in again and 'all 32 rows already in' in again
  rerun = json.load(open(os.path.join(workdir, 'eval', 'results.json')))
  assert rerun['curves'] == results['curves']
  # pipeline.json: the rerun's own (short) times, and the sums over both runs.
  both = json.load(open(os.path.join(workdir, 'pipeline.json')))
  for stage, seconds in timings.items():
    assert both['timings_s_all_invocations'][stage] == pytest.approx(
        seconds + both['timings_s'][stage], abs=0.11), stage


def test_quickstart_unified_adds_the_papers_unified_verifier():
  """`:unified` adds GenRM-CoT trained on the verification + solution-SFT
  mixture, with the CoT run's settings; the default leaves it out."""
  assert 'genrm_cot_unified' not in quickstart.get_config().verifiers
  smoke = quickstart.get_config('smoke,unified')
  assert smoke.verifiers.genrm_cot_unified.options == smoke.verifiers.genrm_cot.options
  assert smoke.verifiers.genrm_cot_unified.options.max_new_tokens == 48
  config = quickstart.get_config('unified')
  v = config.verifiers.genrm_cot_unified
  assert (v.method, v.kind) == ('unified', 'genrm_cot')
  assert v.options == config.verifiers.genrm_cot.options
  unified, cot = (pipeline.train_config(config, m, vocabulary='byte', init_from='/g/params')
                  for m in ('unified', 'cot'))
  assert unified.data.task == 'last_letter_genrm_cot_unified'
  assert unified.data.unified_lambda == 1.0
  for key in ('total_steps', 'batch_size', 'lr', 'data.seq_len', 'data.inputs_len',
              'data.balance_by'):
    get = lambda c, k=key: c.data[k[5:]] if k.startswith('data.') else c[k]
    assert get(unified) == get(cot), key


def test_bradley_terry_variant_trains_as_disc_and_scores_as_disc():
  """`:bt` (both pipeline configs): a run with the discriminative run's
  settings, method bt, scored as a disc verifier; a copy, not the same
  object."""
  for config in (quickstart.get_config('bt'),
                 paper_270m.get_config('task=word_sort,base=/w/gemma3_270m,bt')):
    assert 'bt' not in quickstart.get_config().verifiers
    assert config.runs.bt.to_dict() == config.runs.disc.to_dict()
    assert (config.verifiers.bt.method, config.verifiers.bt.kind) == ('bt', 'disc')
    c = pipeline.train_config(config, 'bt', vocabulary='byte', init_from='/g/params')
    assert (c.method, c.data.task) == ('bt', f'{config.task}_bt')
    assert c.total_steps == config.runs.disc.total_steps
    config.runs.bt.total_steps = 7
    assert config.runs.disc.total_steps != 7


def test_cot_variants_are_copies_an_override_of_one_leaves_the_others():
  """`--config.verifiers.genrm_cot.options.num_rationales=8` sets K for
  GenRM-CoT alone (its variants' options and the unified run's optimizer
  were once the same ConfigDict objects as GenRM-CoT's)."""
  for get_config in (quickstart.get_config, paper_270m.get_config):
    config = get_config('greedy,unified')
    config.verifiers.genrm_cot.options.num_rationales = 5
    config.runs.cot.optimizer.decay_steps = 7
    assert config.verifiers.genrm_cot_unified.options.num_rationales != 5
    assert config.verifiers.genrm_cot_greedy.options.num_rationales == 1
    assert config.runs.unified.optimizer.decay_steps != 7
    config.verifiers.genrm_cot_unified.options.temperature = 0.1
    assert config.verifiers.genrm_cot.options.temperature != 0.1
    assert 'unified_lambda' not in config.runs.cot.data


def test_quickstart_greedy_scores_the_cot_model_without_training_it_again(monkeypatch):
  """`:greedy` (the paper's "GenRM-CoT (Greedy)") scores with GenRM-CoT's
  model through `run_of`: one rationale at temperature 0, no second run."""
  config = quickstart.get_config('greedy')
  v = config.verifiers.genrm_cot_greedy
  assert (v.kind, v.run_of) == ('genrm_cot', 'genrm_cot')
  assert (v.options.num_rationales, v.options.temperature) == (1, 0.0)
  assert pipeline.shared_runs(config) == {'genrm_cot_greedy': 'genrm_cot'}
  trained = []

  def fake_train(c, workdir, log):
    trained.append(os.path.basename(workdir))
    return os.path.join(workdir, 'export')

  monkeypatch.setattr(pipeline, '_train', fake_train)
  exports = pipeline.stage_verifiers(config, '/w', 'byte', '/w/generator/export', '',
                                     log=lambda m: None)
  assert sorted(trained) == ['disc', 'dpo', 'genrm', 'genrm_cot']
  assert exports['genrm_cot_greedy'] == exports['genrm_cot'] == '/w/verifiers/genrm_cot/export'
  listed = {v['name']: v for v in pipeline.verifier_list(config, exports, '/w/generator/export')}
  assert listed['genrm_cot_greedy']['options']['temperature'] == 0.0

  # run_of must name a verifier that trains, with the same method.
  for bad, fix in (('nope', 'one of'), ('genrm', "trains method 'genrm'")):
    config.verifiers.genrm_cot_greedy.run_of = bad
    with pytest.raises(ValueError, match=fix):
      pipeline.shared_runs(config)


def test_paper_270m_configs_build_every_run():
  from configs.pipeline import paper_270m  # pylint: disable=g-import-not-at-top
  for task in paper_270m.TASKS:
    config = paper_270m.get_config(f'task={task},base=/w/gemma3_270m')
    assert config.released_candidates == ('gsm8k/validation' if task == 'gsm8k' else '')
    for name in config.verifiers:
      method = config.verifiers[name].method
      c = pipeline.train_config(config, method, vocabulary='/w/gemma3_270m/tokenizer.model',
                                init_from='/w/run/generator/export/params')
      assert c.model.preset == 'gemma3_270m' and c.model.dtype == 'bfloat16'
      assert c.data.source == 'python' and c.total_steps == 300
      assert c.loss_chunk_size == 32  # no [B, L, 262K] fp32 logits
      assert c.model.remat_policy == 'dots_with_no_batch_dims_saveable'
      assert c.data.task.startswith(task + '_')
      assert c.data.balance_by == ('length' if task != 'gsm8k' and method != 'dpo' else '')
  # `smoke` (launch/paper_270m.sh --smoke): every run still builds; samples
  # keep the full length (a shorter one could never hold a whole solution).
  for task in paper_270m.TASKS:
    full = paper_270m.get_config(f'task={task},base=/w/gemma3_270m')
    config = paper_270m.get_config(f'task={task},base=/w/gemma3_270m,smoke')
    assert config.sampling.max_new_tokens == full.sampling.max_new_tokens
    assert config.eval.released_max_problems == (4 if task == 'gsm8k' else 0)
    for method in ('solve', *(v.method for v in config.verifiers.values())):
      c = pipeline.train_config(config, method, vocabulary='/w/gemma3_270m/tokenizer.model',
                                init_from='')
      assert c.total_steps == (30 if method == 'solve' and task != 'gsm8k' else 2)
      assert c.batch_size <= 4
  # `unified`: the paper's unified GenRM-CoT beside the others, built like
  # the CoT run; with `smoke`, its scoring shrinks like GenRM-CoT's.
  for task in paper_270m.TASKS:
    for arg in ('', ',smoke'):
      config = paper_270m.get_config(f'task={task},base=/w/gemma3_270m,unified{arg}')
      v = config.verifiers.genrm_cot_unified
      assert (v.method, v.kind) == ('unified', 'genrm_cot')
      assert v.options == config.verifiers.genrm_cot.options
      c = pipeline.train_config(config, 'unified', vocabulary='/w/gemma3_270m/tokenizer.model',
                                init_from='/w/run/generator/export/params')
      cot = pipeline.train_config(config, 'cot', vocabulary='/w/gemma3_270m/tokenizer.model',
                                  init_from='/w/run/generator/export/params')
      assert c.data.task == f'{task}_genrm_cot_unified' and c.data.unified_lambda == 1.0
      assert (c.total_steps, c.data.seq_len) == (cot.total_steps, cot.data.seq_len)
  # `greedy`: GenRM-CoT's model, one greedy rationale, no run of its own.
  for arg in ('', ',smoke'):
    config = paper_270m.get_config(f'task=word_sort,base=/w/gemma3_270m,greedy{arg}')
    assert pipeline.shared_runs(config) == {'genrm_cot_greedy': 'genrm_cot'}
    options = config.verifiers.genrm_cot_greedy.options
    assert (options.num_rationales, options.temperature) == (1, 0.0)
  # An unknown key in a run's overrides names the known ones.
  config = quickstart.get_config()
  config.runs.genrm.unlock()
  config.runs.genrm.data.seq_lenn = 3
  try:
    pipeline.train_config(config, 'genrm', vocabulary='byte', init_from='')
  except KeyError as e:
    assert 'seq_lenn' in str(e) and 'seq_len' in str(e)
  else:
    raise AssertionError('a misspelt override must fail')


def test_paper_270m_heaviest_train_step_fits_one_gpu():
  """XLA's buffer plan of the real train step (compiled for the CPU, nothing
  run) for the heaviest run, GenRM-CoT on gsm8k at 32 x 1024 tokens, stays
  under an 80 GB GPU's 90% (the launcher's XLA_PYTHON_CLIENT_MEM_FRACTION).
  XLA:CPU computes bf16 element-wise ops in fp32, so a GPU plans less."""
  from configs.pipeline import paper_270m  # pylint: disable=g-import-not-at-top
  from genrm_jax import compile_check  # pylint: disable=g-import-not-at-top
  config = paper_270m.get_config('task=gsm8k,base=/w/gemma3_270m')
  c = pipeline.train_config(config, 'cot', vocabulary='byte', init_from='')
  c.model.num_embed = 262_144  # the base model's vocabulary
  assert (c.batch_size, c.data.seq_len) == (32, 1024)
  report = compile_check.run(c, 'cpu:1')
  assert report['total_bytes'] < 0.9 * 80e9, report
  # Without the remat policy and the chunk size it would not fit.
  c.model.remat_policy = 'none'
  c.loss_chunk_size = 256
  assert compile_check.run(c, 'cpu:1')['total_bytes'] > 80e9


def test_paper_270m_train_steps_fit_an_h100_with_room():
  """The same runs compiled by XLA's GPU pipeline for an H100 (the CUDA
  plugin's deviceless compiler; no GPU here): GenRM-CoT on gsm8k, the
  heaviest, and DPO, which holds the frozen reference too, plan under a
  quarter of the launcher's 90% budget."""
  from configs.pipeline import paper_270m  # pylint: disable=g-import-not-at-top
  from genrm_jax import compile_check  # pylint: disable=g-import-not-at-top
  if not compile_check._cuda_plugin_installed():  # pylint: disable=protected-access
    pytest.skip("CUDA plugin not installed (pip install -e '.[gpu_aot]')")
  config = paper_270m.get_config('task=gsm8k,base=/w/gemma3_270m')
  for method in ('cot', 'dpo'):
    c = pipeline.train_config(config, method, vocabulary='byte', init_from='')
    c.model.num_embed = 262_144  # the base model's vocabulary
    report = compile_check.run(c, 'h100')
    assert report['device_kind'] == 'NVIDIA H100 80GB HBM3'
    assert report['fits'] and report['total_bytes'] < 0.25 * report['hbm_bytes'], (
        method, report)


def test_first_problems_keeps_whole_problems_in_store_order(tmp_path):
  rows = [candidates_lib.Candidate(
      problem_id=f'gsm8k/{q}', candidate_id=str(i), question=f'q{q}', solution='s',
      answer=None, reference='', correct=bool(i % 2), task='gsm8k')
          for q, i in ((7, 0), (7, 1), (3, 0), (9, 0), (9, 1), (1, 0))]
  store = str(tmp_path / 'all.jsonl')
  candidates_lib.write_candidates(store, rows)
  out = pipeline.first_problems(store, 2, str(tmp_path / 'first2.jsonl'))
  kept = candidates_lib.read_candidates(out)
  assert [(c.problem_id, c.candidate_id) for c in kept] == [
      ('gsm8k/7', '0'), ('gsm8k/7', '1'), ('gsm8k/3', '0')]


def test_a_verifier_train_pool_without_both_kinds_stops_before_training(tmp_path):
  from configs.pipeline import paper_270m  # pylint: disable=g-import-not-at-top
  config = paper_270m.get_config('task=last_letter,base=/w/gemma3_270m')

  def store(name, labels):  # labels[q]: problem q's candidates' correctness
    rows = [candidates_lib.Candidate(
        problem_id=f'last_letter/{q}', candidate_id=str(i), question=f'q{q}',
        solution='s', answer=None, reference='', correct=c, task='last_letter')
            for q, cs in enumerate(labels) for i, c in enumerate(cs)]
    path = str(tmp_path / f'{name}.jsonl')
    candidates_lib.write_candidates(path, rows)
    return path

  with pytest.raises(ValueError, match=r'none of its candidates is correct.*'
                     r'train_lengths=\.\.\., now \(4, 5\).*delete'):
    pipeline.require_both_kinds(store('none', [[False, False], [False]]), config)
  with pytest.raises(ValueError, match='every candidate is correct'):
    pipeline.require_both_kinds(store('all', [[True], [True, True]]), config)
  # Both kinds, but never within one problem: DPO has no pair.
  split = store('split', [[True, True], [False]])
  with pytest.raises(ValueError, match='DPO and the Bradley-Terry model pair them'):
    pipeline.require_both_kinds(split, config)
  del config.verifiers['dpo']
  pipeline.require_both_kinds(split, config)  # the others can learn
  bt = paper_270m.get_config('task=last_letter,base=/w/gemma3_270m,bt')
  del bt.verifiers['dpo']
  with pytest.raises(ValueError, match='Bradley-Terry model pair them'):
    pipeline.require_both_kinds(split, bt)
  pipeline.require_both_kinds(store('ok', [[True, False], [False]]),
                              paper_270m.get_config('task=last_letter'))


def test_a_run_that_stops_early_stops_the_pipeline(tmp_path, monkeypatch):
  """A preempted training run returns without an export: the pipeline stops
  there with what to do, not at a later stage with a missing model.json."""
  from genrm_jax import train  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(train, "write_config", lambda c, d: None)
  monkeypatch.setattr(train, "train_and_evaluate", lambda c, d: {})
  with pytest.raises(RuntimeError, match="stopped before its last step .* rerun the pipeline"):
    pipeline._train(None, str(tmp_path / "run"), print)  # pylint: disable=protected-access


_KILLED_STAGE_SCRIPT = '''
import json, os, sys, time
import ml_collections as mlc
from genrm_jax import pipeline as P
wd = sys.argv[1]
first = not os.path.exists(os.path.join(wd, "pipeline.json"))
P.HEARTBEAT_S = 0.2

def generator(*args):
  if first:
    time.sleep(1.5)
    os._exit(137)  # a call's time limit, mid-stage
  return "g"

P.stage_vocabulary = lambda *a: "v"
P.check_generation_lengths = lambda *a: {}
P.stage_generator = generator
P.stage_candidates = lambda *a, **k: "c"
P.require_both_kinds = lambda *a: None
P.stage_verifiers = lambda *a: {}
P.verifier_list = lambda *a: []
P.stage_evaluation = lambda *a: {}
config = mlc.ConfigDict(dict(task="last_letter", released_candidates="",
                             sampling=dict(num_samples=1), verifiers={},
                             train=dict(wandb=dict(project="", group="", mode=""))))
P.run(config, wd, log=lambda s: None)
'''


def test_a_stage_killed_mid_way_keeps_its_time(tmp_path):
  """pipeline.json's wall times count a stage killed at a call's limit up to
  its last heartbeat, so a run resumed over several calls sums them all."""
  run = lambda: subprocess.run([sys.executable, "-c", _KILLED_STAGE_SCRIPT, str(tmp_path)],
                               cwd=tu.REPO, capture_output=True, text=True, timeout=120)
  assert run().returncode == 137
  killed = json.load(open(tmp_path / "pipeline.json"))["timings_s"]
  assert killed["generator"] >= 1.0
  assert run().returncode == 0, "second run"
  summed = json.load(open(tmp_path / "pipeline.json"))["timings_s_all_invocations"]
  assert summed["generator"] >= 1.0 and summed["total"] >= 1.0
