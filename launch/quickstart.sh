#!/usr/bin/env bash
# The main job on the embedded default (tiny model, CPU). Sets up .venv first.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="$(bash "$repo/launch/setup_env.sh")"
cd "$repo"
exec "$py" -m genrm_jax.quickstart "$@"
