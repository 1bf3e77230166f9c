#!/usr/bin/env bash
# The test command: sets up .venv (first run installs everything) and runs the
# CPU test suite. Data tests read $GENRM_DATA_DIR (default ../shared/data
# beside the repo, when present). Extra arguments go to pytest.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="$(bash "$repo/launch/setup_env.sh")"
if [ -z "${GENRM_DATA_DIR:-}" ] && [ -d "$repo/../shared/data" ]; then
  export GENRM_DATA_DIR="$(cd "$repo/../shared/data" && pwd)"
fi
cd "$repo"
# One pytest worker per core, at most 4 (each holds JAX and TensorFlow, about
# 1.5 GB): most tests are single-threaded XLA compiles or subprocesses, so on
# the 2-core machine two workers take the suite from about 590 s to 390 s.
# GENRM_TEST_WORKERS=1 runs in one process (for --pdb, say).
cores="$(nproc 2>/dev/null || echo 1)"
workers="${GENRM_TEST_WORKERS:-$(( cores < 4 ? cores : 4 ))}"
parallel=()
if [ "$workers" -gt 1 ] && "$py" -c "import xdist" 2>/dev/null; then
  parallel=(-n "$workers" --dist worksteal)
fi
exec "$py" -m pytest -q -p no:cacheprovider "${parallel[@]}" tests "$@"
