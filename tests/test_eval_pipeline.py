"""Bundles, generation, verifier scoring (resumable) and `evaluate --config`."""

import json
import os

import jax
import numpy as np
import pytest

from genrm_jax import candidates as candidates_lib
from genrm_jax import eval_config
from genrm_jax import evaluate
from genrm_jax import generate
from genrm_jax import losses
from genrm_jax import prompts
from genrm_jax import sampling
from genrm_jax import scoring
from genrm_jax import verifiers
from genrm_jax.models import bundle
from genrm_jax.models import gemma
from genrm_jax.models import tokenizer as tokenizer_lib


def _config():
  return gemma.get_config(
      "tiny", attention_types=("global",), num_embed=260, embed_dim=32, hidden_dim=64,
      num_heads=2, head_dim=16, num_kv_heads=1, dtype="float32")


def _params(config, seed):
  params = gemma.init_params(config, seed)
  leaves, treedef = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.PRNGKey(seed + 1), len(leaves))
  return jax.tree.unflatten(treedef, [0.3 * jax.random.normal(k, x.shape, x.dtype)
                                      for k, x in zip(keys, leaves)])


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
  root = tmp_path_factory.mktemp("bundles")
  config = _config()
  head = {"kernel": np.linspace(-1, 1, 32, dtype=np.float32)[:, None],
          "bias": np.array([0.1], np.float32)}
  policy = bundle.save_bundle(str(root / "policy"), _params(config, 1), config, "byte",
                              value_head=head)
  ref = bundle.save_bundle(str(root / "ref"), _params(config, 2), config, "byte")
  return policy, ref


def _candidates():
  out = []
  for p in range(2):
    for i in range(3):
      out.append(candidates_lib.Candidate(
          problem_id=f"p{p}", candidate_id=i, question=f"Q{p}?",
          solution=f"Step {'x' * (i * 7)}. The answer is {i}.", answer=str(i),
          reference="1", correct=i == 1, task="last_letter"))
  return out


def test_bundle_roundtrip_and_errors(bundles, tmp_path):
  policy, _ = bundles
  model = bundle.load_bundle(policy)
  assert model.config == _config().replace(tokenizer=None)
  assert isinstance(model.tokenizer, tokenizer_lib.ByteTokenizer)
  want = _params(_config(), 1)
  for a, b in zip(jax.tree.leaves(model.params), jax.tree.leaves(want)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  np.testing.assert_allclose(model.value_head["bias"], [0.1])
  meta = json.load(open(os.path.join(policy, "model.json")))
  assert meta["vocabulary"] == "byte" and meta["config"]["embed_dim"] == 32
  # A bare official checkpoint: needs --preset / --tokenizer, says so.
  with pytest.raises(FileNotFoundError, match="--preset"):
    bundle.load_bundle(os.path.join(policy, "params"))
  # A tokenizer.model file is copied into the bundle and recorded relative.
  fake = tmp_path / "spm.model"
  fake.write_bytes(b"not really a model")
  bundle.write_model_json(str(tmp_path / "b"), _config(), str(fake))
  meta = json.load(open(tmp_path / "b" / "model.json"))
  assert meta["vocabulary"] == "tokenizer.model"
  assert (tmp_path / "b" / "tokenizer.model").read_bytes() == b"not really a model"
  # cuDNN attention (a GPU's choice) is not written with the weights.
  bundle.write_model_json(str(tmp_path / "c"), _config().replace(
      dtype="bfloat16", attn_logits_soft_cap=None, attention_impl="cudnn"),
      None)
  meta = json.load(open(tmp_path / "c" / "model.json"))
  assert meta["config"]["attention_impl"] == "einsum"


def test_per_row_keys_make_samples_independent_of_batch(bundles):
  model = bundle.load_bundle(bundles[0])
  # One program for both calls: only the batch's other rows differ.
  sampler = sampling.Sampler(model.config, model.params, prompt_buckets=(16,),
                             batch_buckets=(4,))
  params = sampling.SamplingParams(max_new_tokens=6, temperature=1.0)
  prompts_ids = [[2, 40, 41], [2, 50, 51, 52, 53], [2, 60]]
  keys = sampling.row_keys(0, [("p", i) for i in range(3)])
  together = sampler.generate(prompts_ids, params, rng=keys)
  alone = sampler.generate(prompts_ids[1:2], params, rng=keys[1:2])
  assert together.tokens[1] == alone.tokens[0]
  assert together.tokens[0] != together.tokens[1]


def test_scores_do_not_depend_on_neighbours_or_batch_size(bundles):
  model = bundle.load_bundle(bundles[0])
  rows = [[2] + list(range(10, 10 + n)) for n in (3, 9, 20, 5)]
  conts = [[7, 8], [9, 10], [11, 12], [4, 5]]
  scorer = scoring.ContinuationScorer(model.config, model.params, batch_size=4)
  together = scorer.score(rows, conts)
  alone = scorer.score(rows[1:2], conts[1:2])
  assert together[1] == alone[0]  # bit for bit
  other = scoring.ContinuationScorer(model.config, model.params, batch_size=2)
  np.testing.assert_allclose(other.score(rows, conts), together, rtol=1e-6)


def _specs(bundles):
  policy, ref = bundles
  opts = dict(batch_size=4)
  return [
      verifiers.VerifierSpec("genrm", "genrm", policy, opts),
      verifiers.VerifierSpec("disc", "disc", policy, opts),
      verifiers.VerifierSpec("likelihood", "likelihood", policy, opts),
      verifiers.VerifierSpec("dpo", "dpo", policy, dict(opts, reference_checkpoint=ref,
                                                       beta=0.5)),
      verifiers.VerifierSpec("cot", "genrm_cot", policy,
                             dict(opts, num_rationales=2, max_new_tokens=6,
                                  temperature=1.0)),
  ]


def test_dpo_reference_is_the_init_from_its_export_records(bundles, tmp_path):
  """Without reference_checkpoint, a DPO verifier's reference is the model
  its training started from (`init_from` in model.json): a bundle, or a
  bare checkpoint read with the policy's architecture; the same scores as
  naming it."""
  import shutil  # pylint: disable=g-import-not-at-top
  policy, ref = bundles
  opts = dict(batch_size=4, beta=0.5)
  want = verifiers.Verifier("dpo", policy, reference_checkpoint=ref, **opts)
  questions, solutions = ["Q0?"] * 2, ["The answer is 1.", "Step x. The answer is 0."]
  expected = want.score(questions, solutions)
  for init_from in (ref, os.path.join(ref, "params")):  # bundle; bare checkpoint
    recorded = str(tmp_path / f"policy_{len(os.listdir(tmp_path))}")
    shutil.copytree(policy, recorded)
    meta_path = os.path.join(recorded, "model.json")
    meta = json.load(open(meta_path))
    json.dump(dict(meta, init_from=init_from), open(meta_path, "w"))
    spec = verifiers.VerifierSpec("dpo", "dpo", recorded, opts)
    assert verifiers.dpo_reference(spec) == init_from
    np.testing.assert_allclose(verifiers.Verifier("dpo", recorded, **opts).score(
        questions, solutions), expected, rtol=1e-6)
  with pytest.raises(ValueError, match="records no init_from"):
    verifiers.dpo_reference(verifiers.VerifierSpec("dpo", "dpo", policy, opts))


def _rows(path):
  return sorted((json.dumps(r.to_dict(), sort_keys=True)
                 for r in candidates_lib.read_scores(path)))


def test_verifier_scores_resume_and_match_definitions(bundles, tmp_path):
  cands = _candidates()
  model = verifiers.load_model(bundles[0], {})  # the verifiers' own (cached)
  ref = verifiers.load_model(bundles[1], {})
  tok = model.tokenizer
  for spec in _specs(bundles):
    once = str(tmp_path / f"{spec.name}_once.jsonl")
    killed = str(tmp_path / f"{spec.name}_killed.jsonl")
    verifiers.score_store(cands, spec, once)
    # A killed run (3 rows), then the resumed one: the same rows, none redone.
    assert verifiers.score_store(cands, spec, killed, max_items=3) == 3
    total = len(cands) * (2 if spec.kind == "genrm_cot" else 1)
    assert verifiers.score_store(cands, spec, killed) == total - 3
    assert verifiers.score_store(cands, spec, killed) == 0
    assert _rows(once) == _rows(killed)
    scores = candidates_lib.read_scores(once)
    assert len(scores) == total

  # The definitions, for candidate 0 of problem 0.
  c = cands[2]
  by_name = {n: {(s.problem_id, s.candidate_id, s.k): s for s in
                 candidates_lib.read_scores(str(tmp_path / f"{n}_once.jsonl"))}
             for n in ("genrm", "disc", "likelihood", "dpo", "cot")}
  key = (c.problem_id, c.candidate_id, None)
  full = verifiers.continuation_scorer(model, 4)
  direct = prompts.direct_verification_prompt(c.question, c.solution)
  want = np.exp(full.score([tok.encode(direct, add_bos=True)], [tok.encode(" Yes")])[0])
  np.testing.assert_allclose(by_name["genrm"][key].score, want, rtol=1e-5)
  x = tok.encode(prompts.solution_prompt(c.question), add_bos=True)
  y = tok.encode(c.solution) + [tok.eos_id]
  lp = full.score([x], [y])[0]
  np.testing.assert_allclose(by_name["likelihood"][key].score, lp, rtol=1e-5)
  ref_lp = verifiers.continuation_scorer(ref, 4).score([x], [y])[0]
  np.testing.assert_allclose(by_name["dpo"][key].score, 0.5 * (lp - ref_lp), rtol=1e-4,
                             atol=1e-4)
  tokens = np.array([x + tok.encode(c.solution)])
  logit = losses.value_logits(gemma.Transformer(model.config),
                              {"model": model.params, "value_head": model.value_head},
                              tokens, np.ones_like(tokens))
  np.testing.assert_allclose(by_name["disc"][key].score,
                             1 / (1 + np.exp(-float(logit[0]))), rtol=1e-5)
  cot = [by_name["cot"][(c.problem_id, c.candidate_id, k)] for k in (0, 1)]
  assert all(0 < s.score < 1 and isinstance(s.rationale, str) for s in cot)


def test_verifier_in_memory_scores_as_the_store(bundles, tmp_path):
  """`Verifier`: every kind scores (question, solution) pairs as
  `score_store` does; a pair's CoT verdict is the same alone, reordered or
  beside others, its score the mean of its rationales' p(Yes)."""
  cands = _candidates()
  questions, solutions = [c.question for c in cands], [c.solution for c in cands]
  for spec in _specs(bundles):
    verifier = verifiers.Verifier(spec.kind, spec.checkpoint, **spec.options)
    verdicts = verifier.verify(questions, solutions)
    if spec.kind != "genrm_cot":
      path = str(tmp_path / f"{spec.name}.jsonl")
      verifiers.score_store(cands, spec, path)
      stored = {(r.problem_id, r.candidate_id): r.score
                for r in candidates_lib.read_scores(path)}
      np.testing.assert_allclose(
          verifier.score(questions, solutions),
          [stored[(c.problem_id, c.candidate_id)] for c in cands], rtol=1e-6)
      assert all(v.rationales == () for v in verdicts)
      continue
    assert all(len(v.rationales) == len(v.rationale_scores) == 2 for v in verdicts)
    for v in verdicts:
      assert v.score == pytest.approx(np.mean(v.rationale_scores))
      assert all(isinstance(r, str) and 0 < p < 1
                 for r, p in zip(v.rationales, v.rationale_scores))
    assert verifier.verify(questions[::-1], solutions[::-1]) == verdicts[::-1]
    assert verifier.verify(questions[4], solutions[4:5]) == verdicts[4:5]
    # Another seed samples other rationales.
    other = verifiers.Verifier(spec.kind, spec.checkpoint, **dict(spec.options, seed=1))
    assert other.verify(questions, solutions) != verdicts
  with pytest.raises(ValueError, match="2 questions for 3 solutions"):
    verifier.score(["a", "b"], ["x", "y", "z"])
  with pytest.raises(TypeError, match="a list of solution texts"):
    verifier.score("a", "x")


def test_generate_with_a_chat_template(bundles, tmp_path, monkeypatch):
  """An instruction-tuned generator: the solution prompt as the user's
  turn; a sample also stops (and is cut) at the turn's end."""
  _data_dir()
  problems = generate.load_problems("last_letter", "test")[:1]
  seen = []
  real = sampling.Sampler.generate

  def spy(self, prompts_in, params, **kw):
    seen.append((list(prompts_in), params.stop_strings))
    out = real(self, prompts_in, params, **kw)
    out.texts = [" The answer is x.<end_of_turn>"] * len(out.texts)
    return out

  monkeypatch.setattr(sampling.Sampler, "generate", spy)
  path = str(tmp_path / "c.jsonl")
  assert generate.generate(problems, bundle.load_bundle(bundles[0]), path,
                           task="last_letter", num_samples=2, temperature=1.0,
                           max_new_tokens=4, chat_template="gemma") == 1
  (texts, stops), = seen
  assert texts == [prompts.as_chat(prompts.solution_prompt(
      problems[0]["question"]), "gemma")] * 2
  assert stops == (*generate.DEFAULT_STOP_STRINGS, "<end_of_turn>")
  assert [c.solution for c in candidates_lib.read_candidates(path)] == [
      "The answer is x."] * 2


def test_llm_judge_with_a_chat_template(bundles, tmp_path, monkeypatch):
  """`chat_template='gemma'` (an instruction-tuned judge): each CoT prompt
  is the user's turn, and a rationale also stops at the turn's end."""
  policy, _ = bundles
  cands = _candidates()[:2]
  spec = verifiers.VerifierSpec("judge", "llm_judge", policy, dict(
      batch_size=4, num_rationales=1, max_new_tokens=6, temperature=1.0,
      chat_template="gemma"))
  seen = []
  real = scoring.cot_yes_probabilities

  def spy(sampler, scorer, tok, cot_prompts, keys, params, **kw):
    seen.append((list(cot_prompts), params.stop_strings))
    return real(sampler, scorer, tok, cot_prompts, keys, params, **kw)

  monkeypatch.setattr(scoring, "cot_yes_probabilities", spy)
  path = str(tmp_path / "judge.jsonl")
  assert verifiers.score_store(cands, spec, path) == 2
  (texts, stops), = seen
  assert texts == [
      "<start_of_turn>user\n" + prompts.cot_verification_prompt(
          c.question, c.solution) + "<end_of_turn>\n<start_of_turn>model\n"
      for c in cands]
  assert stops == (prompts.VERIFY_QUESTION, "<end_of_turn>")
  assert all(0 < r.score < 1 for r in candidates_lib.read_scores(path))
  for kind, template in (("genrm", "gemma"), ("llm_judge", "chatml")):
    with pytest.raises(ValueError, match="chat_template"):
      verifiers.VerifierSpec("x", kind, policy, dict(chat_template=template))


def test_seed_mismatch_on_resume_is_an_error(bundles, tmp_path):
  spec = _specs(bundles)[-1]
  path = str(tmp_path / "cot.jsonl")
  verifiers.score_store(_candidates()[:1], spec, path)
  other = verifiers.VerifierSpec("cot", "genrm_cot", bundles[0],
                                 dict(spec.options, seed=1))
  with pytest.raises(ValueError, match=r"other settings \(seed: 0 -> 1\)"):
    verifiers.score_store(_candidates(), other, path)
  # Files from before the settings were recorded: the rows' seeds still say.
  os.remove(path + ".settings.json")
  with pytest.raises(ValueError, match="same seed"):
    verifiers.score_store(_candidates(), other, path)


def test_resuming_with_other_settings_is_an_error(bundles, tmp_path):
  """A scores file resumes only under the settings its rows were made with:
  another DPO beta, or a checkpoint written again (retrained) under the same
  path, would mix two verifiers' scores under one name. Batch sizes do not
  change scores, and may change."""
  import shutil  # pylint: disable=g-import-not-at-top
  policy, ref = bundles
  opts = dict(batch_size=4, reference_checkpoint=ref, beta=0.5)
  path = str(tmp_path / "dpo.jsonl")
  verifiers.score_store(_candidates()[:2], verifiers.VerifierSpec("dpo", "dpo", policy, opts), path)
  assert verifiers.score_store(_candidates(), verifiers.VerifierSpec(
      "dpo", "dpo", policy, dict(opts, batch_size=2)), path) == 4
  with pytest.raises(ValueError, match=r"other settings \(beta: 0.5 -> 0.1\)"):
    verifiers.score_store(_candidates(), verifiers.VerifierSpec(
        "dpo", "dpo", policy, dict(opts, beta=0.1)), path)
  # The same path, other weights (a retrained verifier).
  moved = str(tmp_path / "policy")
  shutil.copytree(policy, moved)
  genrm = str(tmp_path / "genrm.jsonl")
  spec = verifiers.VerifierSpec("genrm", "genrm", moved, dict(batch_size=4))
  verifiers.score_store(_candidates()[:2], spec, genrm)
  shutil.rmtree(moved)
  bundle.save_bundle(moved, _params(_config(), 5), _config(), "byte")
  with pytest.raises(ValueError, match="other settings \\(checkpoint: "):
    verifiers.score_store(_candidates(), spec, genrm)


def _data_dir():
  path = os.environ.get("GENRM_DATA_DIR")
  if not path or not os.path.isdir(path):
    pytest.skip("GENRM_DATA_DIR not set (CI sets it to ../shared/data)")
  return path


def test_end_to_end_generate_score_evaluate(bundles, tmp_path):
  _data_dir()
  problems = generate.load_problems("last_letter", "test")[:3]
  model = bundle.load_bundle(bundles[0])
  kwargs = dict(task="last_letter", num_samples=4, temperature=1.0, max_new_tokens=12,
                seed=3)
  full = str(tmp_path / "full.jsonl")
  assert generate.generate(problems, model, full, batch_size=8, **kwargs) == 3
  # Killed after one problem, resumed with another batch size: the same file.
  part = str(tmp_path / "part.jsonl")
  assert generate.generate(problems, model, part, batch_size=4, max_problems=1,
                           **kwargs) == 1
  assert generate.generate(problems, model, part, batch_size=4, **kwargs) == 2
  assert generate.generate(problems, model, part, batch_size=4, **kwargs) == 0
  assert open(full).read() == open(part).read()
  # Problems are numbered by position: a store of other problems (other
  # options) under the same ids is not taken for complete.
  others = [dict(p, question=p["question"] + " (other)") for p in problems]
  with pytest.raises(ValueError, match=f"{part}: problem '.*' has another question"):
    generate.generate(others, model, part, batch_size=4, **kwargs)
  # Nor is one sampled with another seed or temperature (more samples asked
  # for would join the old ones in one pool).
  for changed, message in ((dict(seed=4), "seed: 3 -> 4"),
                           (dict(temperature=0.5), "temperature: 1.0 -> 0.5")):
    with pytest.raises(ValueError, match=f"other settings \\({message}\\)"):
      generate.generate(problems, model, part, batch_size=4,
                        **dict(kwargs, num_samples=6, **changed))
  # Continuous batching (2 rows decoding, 24 to go): the same samples.
  stream = str(tmp_path / "stream.jsonl")
  assert generate.generate(problems, model, stream, batch_size=2,
                           continuous_batching=True, **kwargs) == 3
  want = candidates_lib.read_candidates(full)
  got = candidates_lib.read_candidates(stream)
  assert [c.solution for c in got] == [c.solution for c in want]
  np.testing.assert_allclose([c.logprob for c in got], [c.logprob for c in want],
                             rtol=1e-5)
  cands = candidates_lib.read_candidates(full)
  assert len(cands) == 12 and {c.candidate_id for c in cands} == {0, 1, 2, 3}
  assert all(c.task == "last_letter" and c.seed == 3 and c.logprob < 0 and
             c.extra["temperature"] == 1.0 for c in cands)

  config_path = tmp_path / "eval_cfg.py"
  config_path.write_text(
      "import ml_collections as mlc\n"
      "def get_config(arg=None):\n"
      "  c = mlc.ConfigDict()\n"
      f"  c.candidates = {full!r}\n"
      "  c.task = 'last_letter'\n  c.n_max = 0\n  c.bootstrap = 50\n"
      f"  c.verifiers = [dict(name='genrm', kind='genrm', checkpoint={bundles[0]!r},\n"
      "                      options=dict(batch_size=4)),\n"
      f"                 dict(name='disc', kind='disc', checkpoint={bundles[0]!r},\n"
      "                      options=dict(batch_size=4))]\n"
      "  return c\n")
  out = str(tmp_path / "eval")
  cand_path, paths, settings = evaluate.score_with_config(str(config_path), None, out)
  assert paths == [os.path.join(out, "scores", "genrm.jsonl"),
                   os.path.join(out, "scores", "disc.jsonl")]
  results = evaluate.run(cand_path, paths, out, num_bootstrap=settings["bootstrap"],
                         task=settings["task"], verbose=False)
  assert set(results["curves"]) == {"genrm", "disc", "majority_vote", "pass_at_n"}
  assert set(results["curves"]["genrm"]) == {"1", "2", "3", "4"}
  assert settings["weighted_vote"] is None  # not in this config: off
  assert results["n_problems"] == 3 and results["n_candidates"] == 12
  assert os.path.getsize(os.path.join(out, "best_of_n.png")) > 1000
  # Rerunning the config redoes nothing.
  before = [open(p).read() for p in paths]
  evaluate.score_with_config(str(config_path), None, out)
  assert [open(p).read() for p in paths] == before


def test_eval_configs_load():
  for name in ("last_letter", "word_sort", "gsm8k", "math", "math500_transfer"):
    config = eval_config.load(f"configs/eval/{name}.py:root=/r")
    specs = eval_config.verifier_specs(config)
    assert specs and all(s.checkpoint.startswith("/r/") or s.kind == "llm_judge"
                         for s in specs)
    assert config.weighted_vote is False
    assert eval_config.load(f"configs/eval/{name}.py:root=/r,weighted_vote=true").weighted_vote
    # `:bt=true` adds the Bradley-Terry model, scored as a disc verifier.
    with_bt = {s.name: s for s in eval_config.verifier_specs(
        eval_config.load(f"configs/eval/{name}.py:root=/r,bt=true"))}
    assert "bt" not in {s.name for s in specs}
    assert with_bt["bt"].kind == "disc" and with_bt["bt"].checkpoint.endswith("_bt/export")
  # MATH-trained verifiers, DPO's reference the MATH generator.
  specs = {s.name: s for s in eval_config.verifier_specs(
      eval_config.load("configs/eval/math.py:root=/r"))}
  assert specs["genrm_cot"].checkpoint == "/r/math_cot/export"
  # DPO's reference: none named, the init_from its export records.
  assert specs["dpo"].options["reference_checkpoint"] == ""
  assert specs["genrm_cot"].options["max_new_tokens"] == 1024


def test_released_store_is_materialised_once_and_not_mistaken(tmp_path):
  """`released:gsm8k/validation` becomes OUT/candidates.jsonl (with a
  `.source`); another store left at that path is refused, not evaluated."""
  _data_dir()
  out = str(tmp_path / "eval")
  path = eval_config.resolve_candidates({}, out, "released:gsm8k/validation")
  rows = candidates_lib.read_candidates(path)
  assert len(rows) == 212 and open(path + ".source").read().strip() == "released:gsm8k/validation"
  assert eval_config.resolve_candidates({}, out, "released:gsm8k/validation") == path
  os.remove(path + ".source")  # a store written before `.source`: recognised
  assert eval_config.resolve_candidates({}, out, "released:gsm8k/validation") == path
  os.remove(path + ".source")
  candidates_lib.write_candidates(path, rows[:12])  # someone else's store
  with pytest.raises(ValueError, match="holds another store, not released:gsm8k"):
    eval_config.resolve_candidates({}, out, "released:gsm8k/validation")
  # A typo in `:only=` keeps no verifier: an error, not a silent no-op.
  with pytest.raises(ValueError, match=r"only=genrmm: no verifier \['genrmm'\]"):
    eval_config.load("configs/eval/gsm8k.py:only=genrmm")
  with pytest.raises(ValueError, match="num_rationales=0 must be a positive integer"):
    verifiers.VerifierSpec("cot", "genrm_cot", "/x", dict(num_rationales=0))


def test_missing_checkpoints_are_named_before_anything_is_scored(bundles, tmp_path):
  """A config whose later verifiers were never trained fails at once, naming
  every missing directory, and writes no scores for the ones that exist."""
  config = eval_config.load("configs/eval/last_letter.py:root=" + str(tmp_path / "runs"))
  assert {"genrm", "dpo"} <= {v["name"] for v in config.verifiers}
  config.verifiers[0]["checkpoint"] = bundles[0]  # one trained, the rest not
  out = str(tmp_path / "eval")
  with pytest.raises(FileNotFoundError) as e:
    eval_config.run_scorers(config, str(tmp_path / "never_read.jsonl"), out)
  message = str(e.value)
  for spec in eval_config.verifier_specs(config)[1:]:
    assert f"{spec.name}: checkpoint {spec.checkpoint}" in message
  assert "only=" in message
  assert config.verifiers[0]["name"] + ":" not in message.split("Train")[0]
  assert not os.path.exists(os.path.join(out, "scores"))


def test_breakdown_per_level_and_subject(tmp_path):
  cands, scores = [], []
  rows = [(1, "Algebra"), (1, "Geometry"), (5, "Algebra"), (None, "Geometry")]
  for p, (level, subject) in enumerate(rows):
    for i in range(2):
      correct = i == p % 2
      cands.append(candidates_lib.Candidate(
          problem_id=f"m{p}", candidate_id=i, question="q", solution="s", answer=str(i),
          reference="0", correct=correct, task="math",
          extra={"subject": subject, **({"level": level} if level else {})}))
      scores.append(candidates_lib.VerifierScore(f"m{p}", i, "v", float(correct)))
  candidates_lib.write_candidates(str(tmp_path / "c.jsonl"), cands)
  candidates_lib.write_scores(str(tmp_path / "s.jsonl"), scores)
  results = evaluate.run(str(tmp_path / "c.jsonl"), [str(tmp_path / "s.jsonl")],
                         str(tmp_path / "out"), num_bootstrap=0, verbose=False)
  level = results["breakdown"]["level"]
  assert level["1"]["n_problems"] == 2 and level["5"]["n_problems"] == 1
  assert level["1"]["curves"]["v"]["2"] == 1.0
  assert level["5"]["curves"]["pass_at_n"]["1"] == 0.5
  assert set(results["breakdown"]["subject"]) == {"Algebra", "Geometry"}
  # MATH's 'Level ?' rows: a group of their own, so the groups add up.
  assert level["unknown"]["n_problems"] == 1
  assert sum(g["n_problems"] for g in level.values()) == results["n_problems"] == 4


def test_cot_verdict_read_off_the_sampler_equals_a_second_pass(tmp_path):
  """GenRM-CoT reads p(Yes) from the sampler's own step after the
  verification question (`fused_readout`, the default) when " Yes" / " No"
  are one token each (a task vocabulary): the same scores as the
  teacher-forced pass over prompt + rationale, which still scores the
  rationales that never asked the question."""
  from genrm_jax import task_vocab  # pylint: disable=g-import-not-at-top
  from tasks import sources  # pylint: disable=g-import-not-at-top
  names = ["Jewell", "Devin", "Olivia", "Bruce", "Regina", "Eddie", "Maria",
           "Francisco", "Lee", "Ann"]
  problems = [sources._last_letter_problem(names[i:i + n])  # pylint: disable=protected-access
              for i in range(6) for n in (2, 4)]
  vocab = task_vocab.train("last_letter", problems, str(tmp_path / "tokenizer.model"),
                           vocab_size=400, model_type="char")
  tok = tokenizer_lib.load(vocab)
  assert len(tok.encode(prompts.YES)) == len(tok.encode(prompts.NO)) == 1
  config = _config().replace(num_embed=tok.vocab_size)
  policy = bundle.save_bundle(str(tmp_path / "policy"), gemma.init_params(config, 0),
                              config, vocab)
  cands = [candidates_lib.Candidate(
      problem_id=str(i), candidate_id=0, question=p["question"], solution=p["solution"],
      answer=p["reference"], reference=p["reference"], correct=True, task="last_letter")
           for i, p in enumerate(problems[:6])]
  scores, calls = {}, {}
  for fused in (True, False):
    for renormalize in (False, True):
      spec = verifiers.VerifierSpec("cot", "genrm_cot", policy, dict(
          batch_size=16, num_rationales=8, max_new_tokens=48, temperature=1.0,
          fused_readout=fused, renormalize=renormalize,
          continuous_batching=False))
      runner = verifiers._runner(spec)  # pylint: disable=protected-access
      rows = []
      score = runner.scorer.score
      def counting(ids, *args, rows=rows, score=score):
        rows.append(len(ids))
        return score(ids, *args)
      runner.scorer.score = counting
      try:
        out = runner([verifiers._Work(c, k) for c in cands for k in range(8)])  # pylint: disable=protected-access
      finally:
        runner.scorer.score = score
      scores[fused, renormalize] = np.array([s.score for s in out])
      calls[fused, renormalize] = rows
      asked = sum(s.rationale.endswith(prompts.VERIFY_QUESTION) for s in out)
  # This random model asks the question in some rationales, not in others.
  assert 0 < asked < 48
  for renormalize in (False, True):
    np.testing.assert_allclose(scores[True, renormalize], scores[False, renormalize],
                               rtol=1e-4, atol=1e-7)
  # Only the rationales that never asked went through a second pass.
  assert calls[False, False] == [48] and calls[True, False] == [48 - asked]
  assert calls[False, True] == [48, 48] and calls[True, True] == [48 - asked] * 2
  # Continuous batching (16 rows decoding, 48 to go): the same rationales
  # and scores.
  spec = verifiers.VerifierSpec("cot", "genrm_cot", policy, dict(
      batch_size=16, num_rationales=8, max_new_tokens=48, temperature=1.0,
      renormalize=True, continuous_batching=True))
  streamed = verifiers._runner(spec)([verifiers._Work(c, k) for c in cands  # pylint: disable=protected-access
                                      for k in range(8)])
  assert [s.rationale for s in streamed] == [s.rationale for s in out]
  np.testing.assert_allclose([s.score for s in streamed], scores[True, True],
                             rtol=1e-4, atol=1e-7)
