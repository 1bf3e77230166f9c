"""Calls a verifier served by `python -m genrm_jax.serve`: the reward of an
RL loop that runs elsewhere (verl, TRL), with the standard library only (no
JAX in the caller's process).

  export GENRM_VERIFIER_URL=http://verifier-host:8000
  from genrm_jax import reward_client
  reward_client.score("Q: ...", ["solution A", "solution B"])   # [0.93, 0.12]

* verl: `custom_reward_function.path=genrm_jax/reward_client.py
  custom_reward_function.name=compute_score`, one request a response, or
  `compute_score_batch` with `reward_model.reward_manager=batch`, one a
  batch. The question comes from each row's `extra_info["question"]`
  (verl's GSM8K preprocessing writes it).
* TRL: `GRPOTrainer(reward_funcs=reward_client.grpo_reward, ...)`. The
  question is the dataset's `question` column when it has one, else the
  prompt (its last user turn, for conversational prompts).

The verifier builds its own prompt around the bare question and solution
(`prompts.direct_verification_prompt` / `cot_verification_prompt`, as it
was trained): pass the question, not the policy's templated prompt.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Sequence
import urllib.error
import urllib.request

URL_ENV = "GENRM_VERIFIER_URL"


def _url(url: str | None) -> str:
  url = url or os.environ.get(URL_ENV)
  if not url:
    raise ValueError(f"No verifier URL: pass url=, or set {URL_ENV}=http://HOST:PORT "
                     "(python -m genrm_jax.serve prints it).")
  return url.rstrip("/")


def verify(questions: str | Sequence[str], solutions: Sequence[str], *,
           url: str | None = None, rationales: bool = False,
           timeout: float = 600.0, retries: int = 3) -> dict[str, Any]:
  """The server's whole answer: `scores`, and with `rationales=True` (CoT
  verifiers) each pair's `rationales` and `rationale_scores`.

  A refused connection, a timeout or a server error (HTTP 5xx) is retried
  `retries` times, 1, 2, 4, ... seconds apart, so a restarting server does
  not end an RL run; a bad request (HTTP 4xx) is not, its message raised
  as a ValueError."""
  body = {"solutions": list(solutions), "rationales": rationales}
  body["question" if isinstance(questions, str) else "questions"] = (
      questions if isinstance(questions, str) else list(questions))
  data = json.dumps(body).encode("utf-8")
  for attempt in range(retries + 1):
    request = urllib.request.Request(
        _url(url) + "/score", data=data, headers={"Content-Type": "application/json"},
        method="POST")
    try:
      with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())
    except urllib.error.HTTPError as e:
      detail = e.read().decode("utf-8", "replace")
      try:
        detail = json.loads(detail)["error"]
      except (ValueError, KeyError, TypeError):
        pass
      error = ValueError(f"verifier at {_url(url)}: HTTP {e.code}: {detail}")
      if e.code < 500:
        raise error from None
    except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
      error = ConnectionError(f"verifier at {_url(url)} unreachable: {e}")
    if attempt < retries:
      time.sleep(2 ** attempt)
  raise error


def score(questions: str | Sequence[str], solutions: Sequence[str], *,
          url: str | None = None, timeout: float = 600.0, retries: int = 3) -> list[float]:
  """One score per solution (`questions`: one for all, or one each)."""
  return verify(questions, solutions, url=url, timeout=timeout, retries=retries)["scores"]


def compute_score(data_source: str, solution_str: str, ground_truth: Any,
                  extra_info: dict | None = None, **kwargs) -> float:
  """verl's custom reward function: the verifier's score of `solution_str`
  for the question in `extra_info["question"]` (`ground_truth` unused: the
  verifier judges without the reference, as at test time)."""
  del data_source, ground_truth
  return score(_question(extra_info), [solution_str], url=kwargs.get("url"))[0]


def compute_score_batch(data_sources: Sequence[str], solution_strs: Sequence[str],
                        ground_truths: Sequence[Any], extra_infos: Sequence[dict | None],
                        **kwargs) -> list[float]:
  """verl's batch reward function (`reward_model.reward_manager=batch`):
  the whole batch in one request."""
  del data_sources, ground_truths
  return score([_question(info) for info in extra_infos], list(solution_strs),
               url=kwargs.get("url"))


def _question(extra_info: dict | None) -> str:
  question = (extra_info or {}).get("question")
  if not isinstance(question, str):
    raise ValueError("extra_info has no 'question': write each row's question into "
                     "extra_info['question'] when preparing the parquet data (verl's "
                     "GSM8K preprocessing does).")
  return question


def _text(message: Any, role: str) -> str:
  """A prompt or completion as text: a string as it is; a conversation's
  last `role` turn (TRL's conversational format)."""
  if isinstance(message, str):
    return message
  turns = [m for m in message if isinstance(m, dict) and m.get("role") == role]
  if not turns:
    raise ValueError(f"no {role!r} turn in {message!r:.200}")
  return turns[-1]["content"]


def grpo_reward(prompts: Sequence[Any], completions: Sequence[Any],
                **kwargs) -> list[float]:
  """TRL's reward function (`GRPOTrainer(reward_funcs=...)`): one score per
  completion. Questions: the dataset's `question` column if present, else
  the prompts."""
  questions = kwargs.get("question")
  if questions is None:
    questions = [_text(p, "user") for p in prompts]
  answers = [_text(c, "assistant") for c in completions]
  return score(list(questions), answers, url=kwargs.get("url"))
