r"""Where the time goes: the top operations of a `jax.profiler` trace.

  python -m benchmarks.trace_summary DIR [--top=20]

DIR is a `jax.profiler.trace(DIR, create_perfetto_trace=True)` directory
(the benchmarks' `--profile_dir` writes one per implementation). Reads its
newest `perfetto_trace.json.gz` (plain JSON; no TensorBoard or xprof
needed) and ranks the device's operations (XLA fusions, GEMM / cuDNN
kernels) by total self time (nested events subtracted): on a GPU the `/device:GPU:N` process's events, on a
CPU the XLA executor threads' events. Also reports how busy the device was
over the traced span (idle gaps are host overhead or synchronisation).
"""

from __future__ import annotations

import argparse
import collections
import glob
import gzip
import json
import os
from typing import Any

# Host threads that run XLA:CPU's compiled code (the "device" of a CPU run).
_CPU_EXECUTOR_THREADS = ("tf_XLAEigen", "tf_XLAPjRtCpuClient", "XLAEigen",
                         "XLAPjRtCpuClient")


def newest_trace(directory: str) -> str:
  paths = glob.glob(os.path.join(directory, "**", "perfetto_trace.json.gz"),
                    recursive=True)
  if not paths:
    raise FileNotFoundError(
        f"No perfetto_trace.json.gz under {directory}: record one with "
        "jax.profiler.trace(DIR, create_perfetto_trace=True) (the benchmarks' "
        "--profile_dir does).")
  return max(paths, key=os.path.getmtime)


def _device_events(events: list[dict]) -> tuple[str, list[dict]]:
  """(what was picked, its complete events): the first GPU/TPU device
  process, else the XLA:CPU executor threads."""
  processes = {e["pid"]: e["args"]["name"] for e in events
               if e.get("ph") == "M" and e.get("name") == "process_name"}
  threads = {(e["pid"], e["tid"]): e["args"]["name"] for e in events
             if e.get("ph") == "M" and e.get("name") == "thread_name"}
  # XLA:CPU's "ThunkExecutor::Execute (wait for completion)" is a thread
  # waiting for the others' work, not work.
  complete = [e for e in events if e.get("ph") == "X" and "dur" in e
              and "(wait for completion)" not in e.get("name", "")]
  for pid, name in sorted(processes.items()):
    if name.startswith(("/device:GPU", "/device:TPU")):
      picked = [e for e in complete if e["pid"] == pid]
      if picked:
        return name, picked
  picked = [e for e in complete
            if threads.get((e["pid"], e["tid"]), "").startswith(
                _CPU_EXECUTOR_THREADS)]
  return "XLA:CPU executor threads", picked


def _busy_us(events: list[dict]) -> float:
  """Time covered by at least one event (overlaps counted once)."""
  spans = sorted((e["ts"], e["ts"] + e["dur"]) for e in events)
  busy, end = 0.0, float("-inf")
  for start, stop in spans:
    if stop <= end:
      continue
    busy += stop - max(start, end)
    end = stop
  return busy


def _self_times(events: list[dict]) -> list[tuple[str, float]]:
  """(name, self time in us) per event: its duration minus that of the
  events nested in it on the same thread (XLA:CPU's executor events contain
  the fusions they run; GPU kernels do not nest)."""
  out = []
  by_thread: dict[tuple, list[dict]] = collections.defaultdict(list)
  for e in events:
    by_thread[(e["pid"], e["tid"])].append(e)
  for evs in by_thread.values():
    evs.sort(key=lambda e: (e["ts"], -e["dur"]))
    stack: list[list] = []  # [end, name, self]
    for e in evs:
      while stack and e["ts"] >= stack[-1][0]:
        end, name, own = stack.pop()
        out.append((name, own))
      if stack:
        stack[-1][2] -= min(e["dur"], stack[-1][0] - e["ts"])
      stack.append([e["ts"] + e["dur"], e["name"], float(e["dur"])])
    out.extend((name, own) for _, name, own in stack)
  return out


def summarize(directory: str, top: int = 20) -> dict[str, Any]:
  """{trace, device, span_s, busy_s, busy_share, ops: [{name, total_s, count,
  share}]} for the newest trace under `directory`."""
  path = newest_trace(directory)
  with gzip.open(path, "rt") as f:
    data = json.load(f)
  events = data["traceEvents"] if isinstance(data, dict) else data
  device, picked = _device_events(events)
  totals: dict[str, float] = collections.defaultdict(float)
  counts: collections.Counter = collections.Counter()
  for name, own in _self_times(picked):
    totals[name] += max(own, 0.0)
    counts[name] += 1
  all_total = sum(totals.values()) or 1.0
  span = (max(e["ts"] + e["dur"] for e in picked) -
          min(e["ts"] for e in picked)) if picked else 0.0
  busy = _busy_us(picked)
  ranked = sorted(totals.items(), key=lambda kv: -kv[1])[:top]
  return dict(
      trace=path, device=device, events=len(picked), span_s=span / 1e6,
      busy_s=busy / 1e6, busy_share=(busy / span) if span else None,
      ops=[dict(name=name, total_s=us / 1e6, count=counts[name],
                share=us / all_total) for name, us in ranked])


def format_summary(summary: dict[str, Any]) -> str:
  lines = [f"{summary['trace']}",
           f"{summary['device']}: {summary['events']} events over "
           f"{summary['span_s'] * 1e3:.1f} ms, busy {summary['busy_s'] * 1e3:.1f} ms"
           + (f" ({summary['busy_share']:.0%})" if summary["busy_share"] else ""),
           f"{'share':>6}  {'total ms':>9}  {'count':>6}  op"]
  for op in summary["ops"]:
    lines.append(f"{op['share']:6.1%}  {op['total_s'] * 1e3:9.2f}  "
                 f"{op['count']:6d}  {op['name'][:100]}")
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("directory")
  parser.add_argument("--top", type=int, default=20)
  args = parser.parse_args()
  print(format_summary(summarize(args.directory, args.top)))


if __name__ == "__main__":
  main()
