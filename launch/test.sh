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
exec "$py" -m pytest -q -p no:cacheprovider tests "$@"
