r"""A verifier behind HTTP: the reward model of an RL loop or of any program
outside this process (`genrm_jax.reward_client` calls it, with verl's and
TRL's reward-function signatures).

  python -m genrm_jax.serve --verifier=genrm --checkpoint=WORKDIR/export --port=8000
  python -m genrm_jax.serve --verifier=genrm_cot --checkpoint=DIR --num_rationales=8

  POST /score  {"question": "Q", "solutions": ["S1", "S2"]}           one question for all
               {"questions": ["Q1", "Q2"], "solutions": ["S1", "S2"]}  one each
               optional "rationales": true (CoT kinds: each pair's rationales, p(Yes))
          ->   {"scores": [0.93, 0.12]}  (+ "rationales", "rationale_scores")
  GET  /health ->  {"status": "ok", "verifier": KIND, "checkpoint": DIR, "options": {...}}
  POST /get_reward  OpenRLHF's remote reward model (`--remote_rm_url=http://HOST:PORT/get_reward`):
               {"query": [prompt + response, ...], "prompts": [...]} -> {"rewards": [...]}

OpenRLHF sends each rollout whole, in the policy's chat template. The
response is what follows its prompt (`prompts`, when sent), or, with
`--query_template=gemma`, what follows the query's last model-turn start;
the question is the prompt's last user turn under that template (the
prompt itself without one). A trailing turn end, `<eos>` or `<pad>` is cut.

The options are `genrm_jax.score`'s (the same flags). Requests that arrive
together are scored together: one thread owns the model and takes what is
queued, up to `--max_batch` pairs, waiting at most `--max_wait_ms` after the
first for more. A pair's score does not depend on what it is batched with
(`verifiers.Verifier`), so batching changes the speed, never the scores. A
malformed request gets HTTP 400 and a message naming the fix; the server
goes on serving. There is no authentication: it listens on 127.0.0.1
unless `--host` says otherwise; expose it only inside a trusted network
(an RL cluster's).
"""

from __future__ import annotations

import http.server
import json
import queue
import sys
import threading
import time
from typing import Any, Callable, Sequence

from absl import app
from absl import flags

# (questions, solutions) -> one verdict per solution (`verifiers.Verdict`).
VerifyFn = Callable[[list[str], list[str]], Sequence[Any]]


_CLOSE = object()  # queued by `Batcher.close`
WARMUP_QUESTION = 'What is 2 + 3?'
WARMUP_SOLUTION = '2 + 3 = 5. The answer is 5.'


class _Request:
  """One request's pairs, waiting for their verdicts."""

  def __init__(self, questions: list[str], solutions: list[str]):
    self.questions, self.solutions = questions, solutions
    self.done = threading.Event()
    self.verdicts: Sequence[Any] = ()
    self.error: BaseException | None = None


class Batcher:
  """Scores concurrent requests together on one worker thread (the model's
  only caller: JAX programs run one at a time there)."""

  def __init__(self, verify: VerifyFn, max_batch: int = 64, max_wait_s: float = 0.005):
    self._verify, self.max_batch, self.max_wait_s = verify, max_batch, max_wait_s
    self._queue: queue.Queue = queue.Queue()
    self._carry: Any = None  # taken from the queue, for the next group
    self._closed = False
    self._thread = threading.Thread(target=self._loop, name="verifier", daemon=True)
    self._thread.start()

  def submit(self, questions: list[str], solutions: list[str]) -> Sequence[Any]:
    """The verdicts of these pairs (blocks until they are scored)."""
    if self._closed:
      raise RuntimeError("the verifier is shut down")
    request = _Request(questions, solutions)
    self._queue.put(request)
    request.done.wait()
    if request.error is not None:
      raise request.error
    return request.verdicts

  def _take(self) -> list[_Request] | None:
    """The next group: what is queued, up to max_batch pairs (a bigger
    request goes alone), waiting at most max_wait_s after the first request
    for more (None: closed)."""
    first, self._carry = self._carry or self._queue.get(), None
    if first is _CLOSE:
      return None
    group, pairs = [first], len(first.solutions)
    deadline = time.monotonic() + self.max_wait_s
    while pairs < self.max_batch:
      try:
        nxt = self._queue.get(timeout=max(deadline - time.monotonic(), 0.0))
      except queue.Empty:
        break
      if nxt is _CLOSE or pairs + len(nxt.solutions) > self.max_batch:
        self._carry = nxt  # the next group's first (or the close, after this group)
        break
      group.append(nxt)
      pairs += len(nxt.solutions)
    return group

  def _loop(self) -> None:
    while (group := self._take()) is not None:
      try:
        self._run(group)
      except Exception as e:  # pylint: disable=broad-except
        if len(group) == 1:
          group[0].error = e  # the caller gets the error; the server goes on
        else:
          # One request's input may have failed the batch: each alone, so
          # that only its caller gets the error.
          for r in group:
            try:
              self._run([r])
            except Exception as alone:  # pylint: disable=broad-except
              r.error = alone
      for r in group:
        r.done.set()

  def _run(self, group) -> None:
    verdicts = self._verify([q for r in group for q in r.questions],
                            [s for r in group for s in r.solutions])
    start = 0
    for r in group:
      r.verdicts = verdicts[start:start + len(r.solutions)]
      start += len(r.solutions)

  def close(self) -> None:
    self._closed = True
    self._queue.put(_CLOSE)
    self._thread.join()


def _load_json(body: bytes, example: str):
  try:
    return json.loads(body)
  except (ValueError, RecursionError) as e:  # RecursionError: nested too deep
    raise ValueError(f"the body is not JSON ({type(e).__name__}: {e}): send {example}") from None


def _check_text(strings, field: str) -> None:
  """JSON admits lone surrogates ("\\ud800"), which no tokenizer encodes:
  refused here, not inside a batch shared with other requests."""
  for i, text in enumerate(strings):
    try:
      text.encode("utf-8")
    except UnicodeEncodeError as e:
      raise ValueError(f'{field} {i} is not valid Unicode text ({e.reason} at '
                       f'character {e.start}).') from None


def parse_request(body: bytes) -> tuple[list[str], list[str], bool]:
  """(questions, solutions, rationales?) of a /score body, or ValueError
  naming what is wrong."""
  data = _load_json(body, '{"question": "...", "solutions": ["...", ...]}')
  if not isinstance(data, dict):
    raise ValueError('the body must be a JSON object: {"question": "...", "solutions": [...]}')
  unknown = sorted(set(data) - {"question", "questions", "solutions", "rationales"})
  if unknown:
    raise ValueError(f"unknown field(s) {unknown}; known: question, questions, solutions, "
                     "rationales")
  solutions = data.get("solutions")
  if not isinstance(solutions, list) or not all(isinstance(s, str) for s in solutions):
    raise ValueError('"solutions" must be a list of strings.')
  if ("question" in data) == ("questions" in data):
    raise ValueError('give "question" (one for every solution) or "questions" (one per '
                     'solution), not both or neither.')
  if "question" in data:
    if not isinstance(data["question"], str):
      raise ValueError('"question" must be a string.')
    questions = [data["question"]] * len(solutions)
  else:
    questions = data["questions"]
    if not isinstance(questions, list) or not all(isinstance(q, str) for q in questions):
      raise ValueError('"questions" must be a list of strings.')
    if len(questions) != len(solutions):
      raise ValueError(f"{len(questions)} questions for {len(solutions)} solutions: give "
                       "one question per solution, or one \"question\" for all.")
  rationales = data.get("rationales", False)
  if not isinstance(rationales, bool):
    raise ValueError('"rationales" must be true or false.')
  _check_text(questions, "question")
  _check_text(solutions, "solution")
  return questions, solutions, rationales


_SPECIAL_SUFFIXES = ("<eos>", "<pad>", "<end_of_turn>")
# Left padding: OpenRLHF decodes left-padded batches with their special
# tokens, so a short prompt's query starts "<pad><pad><bos>..." (its own
# `serve_rm.strip_sequence` strips them likewise).
_SPECIAL_PREFIXES = ("<pad>", "<eos>")
_ROUTES = "POST /score, GET /health, POST /get_reward (OpenRLHF)"


def split_rollouts(body: bytes, template: str | None = None) -> tuple[list[str], list[str]]:
  """(questions, solutions) of an OpenRLHF /get_reward body, or ValueError
  naming what is wrong (see the module docstring)."""
  from genrm_jax import prompts  # pylint: disable=g-import-not-at-top
  data = _load_json(body, '{"query": ["<prompt + response>", ...], "prompts": [...]}')
  queries = data.get("query") if isinstance(data, dict) else None
  if not isinstance(queries, list) or not all(isinstance(q, str) for q in queries):
    raise ValueError('"query" must be a list of strings (prompt + response each).')
  given = data.get("prompts")
  if given is not None and (not isinstance(given, list) or len(given) != len(queries)
                            or not all(isinstance(p, str) for p in given)):
    raise ValueError(f'"prompts" must be a list of {len(queries)} strings, one per query.')
  _check_text(queries, "query")
  _check_text(given or (), "prompt")
  start, end, stop = prompts.CHAT_TEMPLATES[template] if template else ("", "", "")
  questions, solutions = [], []
  for i, query in enumerate(queries):
    query = _strip_left_padding(query)
    if given is not None:
      prompt = _strip_left_padding(given[i])
      if not query.startswith(prompt):
        raise ValueError(f"query {i} does not start with its prompt.")
      question, solution = prompt, query[len(prompt):]
    elif template:
      if end not in query:
        raise ValueError(f"query {i} has no model turn ({end!r}): not in the "
                         f"--query_template={template} format.")
      question, solution = query.rsplit(end, 1)
    else:
      raise ValueError('no "prompts" to split the queries at: send them, or start the '
                       'server with --query_template=gemma (queries in that chat format).')
    if template:
      question = question.rsplit(start, 1)[-1].removesuffix(end)
      solution = solution.split(stop)[0]
    while solution.endswith(_SPECIAL_SUFFIXES):  # each begins with "<"
      solution = solution[:solution.rfind("<")]
    questions.append(question.removeprefix("<bos>"))
    solutions.append(solution)
  return questions, solutions


def _strip_left_padding(text: str) -> str:
  while text.startswith(_SPECIAL_PREFIXES):
    text = text[text.find(">") + 1:]
  return text


# Larger bodies get a 413: a reward request is a batch of texts, not a file.
MAX_BODY_BYTES = 64 * 1024 * 1024


def make_server(batcher: Batcher, info: dict[str, Any], host: str = "127.0.0.1",
                port: int = 8000, query_template: str | None = None
                ) -> http.server.ThreadingHTTPServer:
  """An HTTP server for `batcher` (port 0: any free port, see
  `server.server_address`); `info` is what /health reports;
  `query_template` is how /get_reward's queries are laid out."""

  class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def _send(self, code: int, payload: dict[str, Any]) -> None:
      body = json.dumps(payload).encode("utf-8")
      self.send_response(code)
      self.send_header("Content-Type", "application/json")
      self.send_header("Content-Length", str(len(body)))
      self.end_headers()
      self.wfile.write(body)

    def do_GET(self):  # pylint: disable=invalid-name
      if self.path.rstrip("/") == "/health":
        self._send(200, dict(info, status="ok"))
      else:
        self._send(404, {"error": f"no {self.path}: {_ROUTES}"})

    def do_POST(self):  # pylint: disable=invalid-name
      try:
        length = int(self.headers.get("Content-Length") or 0)
      except ValueError:
        length = -1
      if length < 0 or "chunked" in self.headers.get("Transfer-Encoding", "").lower():
        # The body's end is unknown: answer, and close the connection.
        self.close_connection = True
        self._send(400, {"error": "send the body with a Content-Length header "
                                  "(a non-negative integer; no chunked encoding)"})
        return
      if length > MAX_BODY_BYTES:
        self.close_connection = True
        self._send(413, {"error": f"the body has {length} bytes, more than "
                                  f"{MAX_BODY_BYTES}: send fewer solutions a request"})
        return
      body = self.rfile.read(length)
      path = self.path.rstrip("/")
      if path not in ("/score", "/get_reward"):
        self._send(404, {"error": f"no {self.path}: {_ROUTES}"})
        return
      try:
        if path == "/score":
          questions, solutions, rationales = parse_request(body)
        else:
          (questions, solutions), rationales = split_rollouts(body, query_template), False
      except ValueError as e:
        self._send(400, {"error": str(e)})
        return
      try:
        verdicts = batcher.submit(questions, solutions)
      except Exception as e:  # pylint: disable=broad-except
        self._send(500, {"error": f"{type(e).__name__}: {e}"})
        return
      scores = [v.score for v in verdicts]
      if path == "/get_reward":
        self._send(200, {"rewards": scores})
        return
      out: dict[str, Any] = {"scores": scores}
      if rationales:
        out["rationales"] = [list(v.rationales) for v in verdicts]
        out["rationale_scores"] = [list(v.rationale_scores) for v in verdicts]
      self._send(200, out)

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
      del format, args  # one line per request would drown the log

  return http.server.ThreadingHTTPServer((host, port), Handler)


def define_flags() -> None:
  """CLI flags: `genrm_jax.score`'s verifier flags and the server's own."""
  from genrm_jax import score  # pylint: disable=g-import-not-at-top
  score.define_verifier_flags()
  flags.DEFINE_string('host', '127.0.0.1', 'Address to listen on (0.0.0.0: every interface).')
  flags.DEFINE_integer('port', 8000, 'Port (0: any free one).')
  flags.DEFINE_integer('max_batch', 64, 'Pairs scored together at most.')
  flags.DEFINE_float('max_wait_ms', 5.0, 'How long the first queued request waits for '
                     'others to batch with.')
  flags.DEFINE_bool('warmup', True, 'Score one short pair before serving, so the first '
                    "request does not wait for the model's compilation (clients time out: "
                    "OpenRLHF after 180 s).")
  flags.DEFINE_enum('query_template', 'none', ['none', 'gemma'],
                    "/get_reward (OpenRLHF): the chat template of its queries, to split "
                    "them into question and response without \"prompts\".")
  flags.adopt_module_key_flags(score)  # --help lists the verifier's flags too
  flags.mark_flags_as_required(['verifier', 'checkpoint'])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  f = flags.FLAGS
  from genrm_jax import score  # pylint: disable=g-import-not-at-top
  from genrm_jax import verifiers  # pylint: disable=g-import-not-at-top
  try:
    spec = score.spec_from_flags()
    verifier = verifiers.Verifier(spec.kind, spec.checkpoint, **spec.options)
  except (FileNotFoundError, ValueError) as e:
    sys.exit(f'error: {e}')
  if f.warmup:
    start = time.time()
    verifier.verify(WARMUP_QUESTION, [WARMUP_SOLUTION])
    print(f'Warmed up in {time.time() - start:.1f}s (programs for short pairs compiled; '
          'longer ones compile on first use).', flush=True)
  batcher = Batcher(verifier.verify, f.max_batch, f.max_wait_ms / 1000)
  info = {"verifier": spec.kind, "checkpoint": spec.checkpoint,
          "options": {k: v for k, v in spec.options.items()
                      if isinstance(v, (str, int, float, bool, type(None)))}}
  server = make_server(batcher, info, f.host, f.port,
                       None if f.query_template == 'none' else f.query_template)
  host, port = server.server_address[:2]
  print(f'Serving {spec.kind} ({spec.checkpoint}) on http://{host}:{port} '
        f'(POST /score, POST /get_reward, GET /health); '
        f'export GENRM_VERIFIER_URL=http://{host}:{port}',
        flush=True)
  try:
    server.serve_forever()
  except KeyboardInterrupt:
    pass
  finally:
    server.server_close()
    batcher.close()


if __name__ == '__main__':
  define_flags()
  app.run(main)
