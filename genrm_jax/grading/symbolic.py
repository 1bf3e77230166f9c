"""Client for the sympy worker process, with a hard per-call timeout.

One long-lived child process serves all comparisons (starting Python and
importing sympy costs about a second, so a process per call would be far too
slow for grading thousands of candidates). When a comparison exceeds its
timeout, the child is killed and a fresh one is started on the next call.
"""

import atexit
import json
import logging
import os
import queue
import subprocess
import sys
import threading
from typing import Optional

DEFAULT_TIMEOUT_S = 3.0
# Starting the worker (interpreter + `import sympy`) is not charged to the
# comparison's timeout; it only has to finish within this bound.
STARTUP_TIMEOUT_S = 60.0

_WORKER_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'sympy_worker.py')


class SymbolicWorker:
  """A killable sympy process that compares parser trees.

  Thread-safe: calls are serialised with a lock.
  """

  def __init__(self, timeout_s: float = DEFAULT_TIMEOUT_S):
    self.timeout_s = timeout_s
    self._lock = threading.Lock()
    self._process: Optional[subprocess.Popen] = None
    self._replies: Optional[queue.Queue] = None
    self._next_id = 0
    self._owner_pid = os.getpid()
    self.num_restarts = 0
    self.num_timeouts = 0

  def compare(self, tree_a, tree_b, timeout_s: Optional[float] = None) -> Optional[bool]:
    """Compares two trees in the worker.

    Args:
      tree_a: Tree from `latex_parser.parse_latex`.
      tree_b: Tree from `latex_parser.parse_latex`.
      timeout_s: Per-call limit; defaults to `self.timeout_s`.

    Returns:
      True/False as decided by the worker, or None if it failed, timed out or
      could not be started.
    """
    timeout_s = self.timeout_s if timeout_s is None else timeout_s
    with self._lock:
      if not self._ensure_started():
        return None
      self._next_id += 1
      request_id = self._next_id
      try:
        payload = json.dumps({'id': request_id, 'a': tree_a, 'b': tree_b})
        self._process.stdin.write(payload + '\n')
        self._process.stdin.flush()
      except (OSError, ValueError, TypeError):
        self._kill()
        return None
      while True:
        try:
          reply = self._replies.get(timeout=timeout_s)
        except queue.Empty:
          self.num_timeouts += 1
          self._kill()
          return None
        if reply is None:  # The worker died (e.g. memory limit).
          self._kill()
          return None
        if reply.get('id') == request_id:
          return reply.get('equal') if 'equal' in reply else None
        # A reply to an earlier, abandoned request: skip it.

  def close(self) -> None:
    """Stops the worker process (a later `compare` starts a new one)."""
    with self._lock:
      self._kill()

  def _ensure_started(self) -> bool:
    if self._owner_pid != os.getpid():
      # Forked child: the pipes belong to the parent's worker; leave it alone.
      self._process, self._replies = None, None
      self._owner_pid = os.getpid()
    if self._process is not None and self._process.poll() is None:
      return True
    self._kill()
    try:
      process = subprocess.Popen(
          [sys.executable, '-u', _WORKER_SCRIPT],
          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
          text=True, bufsize=1, close_fds=True)
    except OSError as error:
      logging.warning('Could not start the sympy worker: %s', error)
      return False
    replies = queue.Queue()
    threading.Thread(target=_pump_lines, args=(process.stdout, replies), daemon=True).start()
    self._process, self._replies = process, replies
    self.num_restarts += 1
    try:
      ready = replies.get(timeout=STARTUP_TIMEOUT_S)
    except queue.Empty:
      ready = None
    if not ready or not ready.get('ready'):
      logging.warning('The sympy worker did not start; symbolic comparison is off.')
      self._kill()
      return False
    return True

  def _kill(self) -> None:
    process, self._process, self._replies = self._process, None, None
    if process is None:
      return
    try:
      process.kill()
      process.wait(timeout=5)
    except (OSError, subprocess.TimeoutExpired):
      pass
    for stream in (process.stdin, process.stdout):
      try:
        stream.close()
      except OSError:
        pass


def _pump_lines(stream, replies: queue.Queue) -> None:
  """Forwards JSON replies from the worker's stdout; None marks end of stream."""
  try:
    for line in stream:
      try:
        replies.put(json.loads(line))
      except ValueError:
        continue
  except (OSError, ValueError):
    pass
  replies.put(None)


_default_worker: Optional[SymbolicWorker] = None
_default_worker_lock = threading.Lock()


def default_worker() -> SymbolicWorker:
  """The process-wide worker used by `is_equivalent` (started lazily)."""
  global _default_worker
  with _default_worker_lock:
    if _default_worker is None:
      _default_worker = SymbolicWorker()
      atexit.register(_default_worker.close)
    return _default_worker
