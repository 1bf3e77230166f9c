"""The verifier server (`genrm_jax.serve`) and its client
(`genrm_jax.reward_client`, with verl's and TRL's reward signatures)."""

import http.client
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import jax
import pytest

from genrm_jax import reward_client
from genrm_jax import serve
from genrm_jax import verifiers
from genrm_jax.models import bundle
from genrm_jax.models import gemma

QUESTION = "Q: Take the last letters of 'Ada Bo'."
SOLUTIONS = ["The last letters are a and o. The answer is ao.",
             "The answer is ab.", "Ada ends with a. Bo ends with o. The answer is ao."]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
  config = gemma.get_config(
      "tiny", attention_types=("global",), num_embed=260, embed_dim=32, hidden_dim=64,
      num_heads=2, head_dim=16, num_kv_heads=1, dtype="float32")
  params = gemma.init_params(config, 3)
  params = jax.tree.map(lambda x: 3 * x, params)  # scores away from 0.5
  return bundle.save_bundle(str(tmp_path_factory.mktemp("verifier")), params, config,
                            "byte")


def _serve(verify, info=None, **batcher_kw):
  """A server on a free port, in a thread; returns (url, stop)."""
  batcher = serve.Batcher(verify, **batcher_kw)
  server = serve.make_server(batcher, info or {}, port=0)
  thread = threading.Thread(target=server.serve_forever, daemon=True)
  thread.start()

  def stop():
    server.shutdown()
    server.server_close()
    batcher.close()
  return f"http://127.0.0.1:{server.server_address[1]}", stop


def test_scores_over_http_equal_the_verifier_in_memory(checkpoint):
  """Direct GenRM and GenRM-CoT: the client's scores are the in-memory
  verifier's, whether a request comes alone or among concurrent ones."""
  for kind, options in (("genrm", {}), ("genrm_cot", dict(num_rationales=2,
                                                          max_new_tokens=5,
                                                          temperature=1.0))):
    verifier = verifiers.Verifier(kind, checkpoint, batch_size=4, **options)
    want = verifier.score(QUESTION, SOLUTIONS)
    # Stripped as the training stores are: a rollout's stray whitespace
    # scores as the bare solution.
    assert list(verifier.score(QUESTION, [f" {s}\n" for s in SOLUTIONS])) == list(want)
    url, stop = _serve(verifier.verify, max_batch=64, max_wait_s=0.05)
    try:
      assert reward_client.score(QUESTION, SOLUTIONS, url=url) == list(want)
      got = [None] * len(SOLUTIONS)

      def one(i):
        got[i] = reward_client.score([QUESTION], [SOLUTIONS[i]], url=url)[0]
      threads = [threading.Thread(target=one, args=(i,)) for i in range(len(SOLUTIONS))]
      for t in threads:
        t.start()
      for t in threads:
        t.join()
      assert got == list(want)
      full = reward_client.verify(QUESTION, SOLUTIONS[:1], url=url, rationales=True)
      if kind == "genrm_cot":
        verdict = verifier.verify(QUESTION, SOLUTIONS[:1])[0]
        assert full["rationales"] == [list(verdict.rationales)]
        assert full["rationale_scores"] == [list(verdict.rationale_scores)]
      else:
        assert full["rationales"] == [[]]
    finally:
      stop()


def test_batcher_merges_what_is_queued_and_survives_errors():
  """While the model is busy, queued requests wait and then go in one call
  (up to max_batch pairs); a failing call fails only its own requests."""
  calls, release = [], threading.Event()

  def verify(questions, solutions):
    calls.append(list(solutions))
    if len(calls) == 1:
      release.wait(10)
    if "boom" in solutions:
      raise RuntimeError("model failed")
    return [verifiers.Verdict(float(len(s))) for s in solutions]

  batcher = serve.Batcher(verify, max_batch=5, max_wait_s=0.0)
  results = {}

  def submit(name, solutions):
    try:
      results[name] = [v.score for v in batcher.submit(["q"] * len(solutions), solutions)]
    except RuntimeError as e:
      results[name] = str(e)

  def while_busy(queued):
    """Submits 'first', queues `queued` (name, solutions) while the model
    holds it, then lets the model go and waits for every request."""
    first = threading.Thread(target=submit, args=("first", ["a"]))
    first.start()
    while not calls:
      threading.Event().wait(0.01)
    threads = [threading.Thread(target=submit, args=args) for args in queued]
    for t in threads:
      t.start()
    while batcher._queue.qsize() < len(threads):  # pylint: disable=protected-access
      threading.Event().wait(0.01)
    release.set()
    for t in [first] + threads:
      t.join()

  while_busy([(f"r{i}", ["bb", "ccc"]) for i in range(3)])
  # 1 pair, then 2 + 2 (the third request would pass max_batch=5), then 2.
  assert [len(c) for c in calls] == [1, 4, 2]
  assert results == {"first": [1.0], "r0": [2.0, 3.0], "r1": [2.0, 3.0], "r2": [2.0, 3.0]}
  submit("bad", ["boom"])
  submit("after", ["dddd"])
  assert results["bad"] == "model failed" and results["after"] == [4.0]
  # A failing request batched with good ones fails alone: the batch is
  # rerun request by request.
  calls.clear()
  release.clear()
  while_busy([("good", ["ee"]), ("poison", ["boom"])])
  assert sorted(map(sorted, calls[1:])) == [["boom"], ["boom", "ee"], ["ee"]]
  assert results["good"] == [2.0] and results["poison"] == "model failed"
  batcher.close()


def test_bad_requests_get_400_naming_the_fix():
  url, stop = _serve(lambda q, s: [verifiers.Verdict(0.5) for _ in s],
                     info={"verifier": "genrm"})
  try:
    for body, message in (
        (b"not json", "not JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"question": "q"}', '"solutions" must be a list of strings'),
        (b'{"solutions": ["s"]}', 'give "question"'),
        (b'{"question": "q", "questions": ["q"], "solutions": ["s"]}', 'give "question"'),
        (b'{"questions": ["q", "r"], "solutions": ["s"]}', "2 questions for 1 solutions"),
        (b'{"question": "q", "solutions": ["s"], "k": 2}', "unknown field(s) ['k']"),
    ):
      request = urllib.request.Request(url + "/score", data=body, method="POST")
      with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(request, timeout=10)
      assert e.value.code == 400
      assert message in json.loads(e.value.read())["error"], body
    for body, message in (
        (b"[" * 100_000 + b"]" * 100_000, "not JSON (RecursionError"),
        (b'{"question": "q", "solutions": ["\\ud800"]}', "solution 0 is not valid Unicode"),
    ):
      request = urllib.request.Request(url + "/score", data=body, method="POST")
      with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(request, timeout=10)
      assert e.value.code == 400 and message in json.loads(e.value.read())["error"]
    # A body whose length is unknown: a 400 at once, not a hang or a dropped
    # connection.
    host, port = url.removeprefix("http://").split(":")
    for length in ("abc", "-1"):
      connection = http.client.HTTPConnection(host, int(port), timeout=10)
      connection.putrequest("POST", "/score")
      connection.putheader("Content-Length", length)
      connection.endheaders()
      response = connection.getresponse()
      assert response.status == 400 and b"Content-Length" in response.read()
      connection.close()
    with pytest.raises(urllib.error.HTTPError) as e:
      urllib.request.urlopen(url + "/nothing", timeout=10)
    assert e.value.code == 404
    assert "POST /score, GET /health" in json.loads(e.value.read())["error"]
    # The client raises the server's message.
    with pytest.raises(ValueError, match="HTTP 400: 2 questions for 1 solutions"):
      reward_client.score(["q", "r"], ["s"], url=url)
    with urllib.request.urlopen(url + "/health", timeout=10) as response:
      assert json.loads(response.read()) == {"verifier": "genrm", "status": "ok"}
    # Still serving after the bad requests.
    assert reward_client.score("q", ["s", "t"], url=url) == [0.5, 0.5]
  finally:
    stop()


def test_verl_and_trl_reward_functions(monkeypatch):
  """verl's compute_score and TRL's grpo_reward send the bare question and
  the solution text, whatever their input format."""
  seen = []

  def verify(questions, solutions):
    seen.append((list(questions), list(solutions)))
    return [verifiers.Verdict(0.25 * len(s)) for s in solutions]
  url, stop = _serve(verify)
  monkeypatch.setenv(reward_client.URL_ENV, url)
  try:
    assert reward_client.compute_score("openai/gsm8k", "abcd", "42",
                                       extra_info={"question": "Q1"}) == 1.0
    assert seen[-1] == (["Q1"], ["abcd"])
    with pytest.raises(ValueError, match=r"extra_info\['question'\]"):
      reward_client.compute_score("openai/gsm8k", "abcd", "42", extra_info={"index": 3})
    # verl's batch reward manager: one request for the batch.
    assert reward_client.compute_score_batch(
        ["gsm8k"] * 2, ["a", "abc"], ["1", "2"],
        [{"question": "Q1"}, {"question": "Q2"}]) == [0.25, 0.75]
    assert seen[-1] == (["Q1", "Q2"], ["a", "abc"])
    # Standard format, questions from the prompts.
    assert reward_client.grpo_reward(["Q1", "Q2"], ["ab", "abc"]) == [0.5, 0.75]
    assert seen[-1] == (["Q1", "Q2"], ["ab", "abc"])
    # Conversational format: the last user turn, the assistant's answer; a
    # dataset's `question` column wins over the prompt.
    prompts = [[{"role": "system", "content": "be brief"}, {"role": "user", "content": "Q3"}]]
    completions = [[{"role": "assistant", "content": "a"}]]
    assert reward_client.grpo_reward(prompts, completions) == [0.25]
    assert seen[-1] == (["Q3"], ["a"])
    reward_client.grpo_reward(prompts, completions, question=["bare Q3"])
    assert seen[-1] == (["bare Q3"], ["a"])
  finally:
    stop()
  monkeypatch.delenv(reward_client.URL_ENV)
  with pytest.raises(ValueError, match="set GENRM_VERIFIER_URL"):
    reward_client.score("q", ["s"])


def test_cli_serves_a_checkpoint(checkpoint):
  """`python -m genrm_jax.serve`: the score CLI's verifier flags, a free
  port, the URL printed; /health reports the verifier; scores served."""
  proc = subprocess.Popen(
      [sys.executable, "-m", "genrm_jax.serve", "--verifier=genrm",
       f"--checkpoint={checkpoint}", "--port=0", "--batch_size=4"],
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
      env=dict(os.environ, JAX_PLATFORMS="cpu"))
  try:
    warm = proc.stdout.readline()  # --warmup (default): compiled before serving
    assert warm.startswith("Warmed up in"), (warm, proc.stderr.read() if proc.poll() else "")
    line = proc.stdout.readline()
    assert "Serving genrm" in line, (line, proc.stderr.read() if proc.poll() else "")
    url = line.split("export GENRM_VERIFIER_URL=")[1].strip()
    with urllib.request.urlopen(url + "/health", timeout=30) as response:
      health = json.loads(response.read())
    assert health["verifier"] == "genrm" and health["options"]["batch_size"] == 4
    want = verifiers.Verifier("genrm", checkpoint, batch_size=4).score(QUESTION, SOLUTIONS)
    assert reward_client.score(QUESTION, SOLUTIONS, url=url, timeout=120) == list(want)
  finally:
    proc.terminate()
    proc.wait(30)


def test_close_while_a_request_is_carried_over():
  """A request left for the next group when the server closes is still
  scored before the worker stops."""
  release, calls = threading.Event(), []

  def verify(questions, solutions):
    calls.append(len(solutions))
    release.wait(10)
    return [verifiers.Verdict(1.0) for _ in solutions]

  batcher = serve.Batcher(verify, max_batch=2, max_wait_s=0.0)
  threads = [threading.Thread(target=batcher.submit, args=(["q"] * n, ["s"] * n))
             for n in (1, 1, 2)]
  threads[0].start()
  while not calls:
    threading.Event().wait(0.01)
  for t in threads[1:]:
    t.start()
  while batcher._queue.qsize() < 2:  # pylint: disable=protected-access
    threading.Event().wait(0.01)
  release.set()
  closer = threading.Thread(target=batcher.close)
  closer.start()
  closer.join(10)
  assert not closer.is_alive() and calls == [1, 1, 2]
  for t in threads:
    t.join(1)
    assert not t.is_alive()


def test_openrlhf_get_reward_splits_rollouts():
  """POST /get_reward (OpenRLHF's remote RM): each query split into the bare
  question and the response, by its prompt or by the Gemma chat format;
  `rewards` back, in order."""
  seen = []

  def verify(questions, solutions):
    seen.append((list(questions), list(solutions)))
    return [verifiers.Verdict(float(len(s))) for s in solutions]

  gemma_query = ("<bos><start_of_turn>user\nQ1?<end_of_turn>\n<start_of_turn>model\n"
                 "The answer is 3.<end_of_turn><eos><pad><pad>")
  assert serve.split_rollouts(json.dumps({"query": [gemma_query]}).encode(), "gemma") == (
      ["Q1?"], ["The answer is 3."])
  # With prompts (as some OpenRLHF versions send): the response follows them.
  body = {"query": ["Q: 1+2?\nA: 3<eos>", "Q: 2+2?\nA: 4"],
          "prompts": ["Q: 1+2?\nA:", "Q: 2+2?\nA:"], "labels": ["3", "4"]}
  assert serve.split_rollouts(json.dumps(body).encode()) == (
      ["Q: 1+2?\nA:", "Q: 2+2?\nA:"], [" 3", " 4"])
  # A chat-formatted response given with its prompt, no --query_template:
  # the turn's end goes too.
  body = {"query": ["<bos>Q?<end_of_turn>\n<start_of_turn>model\nA 3.<end_of_turn><eos>"],
          "prompts": ["<bos>Q?<end_of_turn>\n<start_of_turn>model\n"]}
  assert serve.split_rollouts(json.dumps(body).encode())[1] == ["A 3."]
  # Left-padded batches (OpenRLHF decodes them with their special tokens).
  body = {"query": ["<pad><pad><bos>Q: 1+2?\nA: 3<eos>"], "prompts": ["<bos>Q: 1+2?\nA:"]}
  assert serve.split_rollouts(json.dumps(body).encode()) == (["Q: 1+2?\nA:"], [" 3"])
  for bad, message in (({"query": "x"}, '"query" must be a list'),
                       ({"query": ["x"], "prompts": ["y"]}, "does not start with its prompt"),
                       ({"query": ["x"], "prompts": []}, '"prompts" must be a list of 1'),
                       ({"query": ["x"]}, "--query_template=gemma")):
    with pytest.raises(ValueError, match=message):
      serve.split_rollouts(json.dumps(bad).encode())
  with pytest.raises(ValueError, match="no model turn"):
    serve.split_rollouts(json.dumps({"query": ["plain"]}).encode(), "gemma")

  batcher = serve.Batcher(verify)
  server = serve.make_server(batcher, {}, port=0, query_template="gemma")
  threading.Thread(target=server.serve_forever, daemon=True).start()
  try:
    url = f"http://127.0.0.1:{server.server_address[1]}/get_reward"
    request = urllib.request.Request(url, data=json.dumps(
        {"query": [gemma_query, gemma_query.replace("3.", "33.")]}).encode(),
        headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
      assert json.loads(response.read()) == {"rewards": [16.0, 17.0]}
    assert seen[-1] == (["Q1?", "Q1?"], ["The answer is 3.", "The answer is 33."])
  finally:
    server.shutdown()
    server.server_close()
    batcher.close()


def test_client_retries_server_errors_not_bad_requests(monkeypatch):
  """A model error (HTTP 500) is retried and the retry's scores returned; a
  refused connection is retried, then raised; a 400 is raised at once."""
  calls = []

  def flaky(questions, solutions):
    calls.append(len(solutions))
    if len(calls) == 1:
      raise RuntimeError("out of memory")
    return [verifiers.Verdict(0.5) for _ in solutions]
  monkeypatch.setattr(reward_client.time, "sleep", lambda s: None)
  url, stop = _serve(flaky)
  try:
    assert reward_client.score("q", ["s"], url=url) == [0.5] and calls == [1, 1]
    with pytest.raises(ValueError, match="HTTP 400"):
      reward_client.score(["q", "r"], ["s"], url=url)
    assert calls == [1, 1]
    with pytest.raises(ValueError, match="HTTP 500: RuntimeError: out of memory"):
      calls.clear()
      reward_client.score("q", ["s"], url=url, retries=0)
  finally:
    stop()
  with pytest.raises(ConnectionError, match="unreachable"):
    reward_client.score("q", ["s"], url=url, retries=1)
