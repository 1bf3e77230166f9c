#!/usr/bin/env bash
# The main job on the embedded default: the GenRM paper's pipeline on
# last-letter concatenation with tiny models on the CPU (about 14 minutes
# on 2 cores): generator SFT -> 16 candidates per problem -> GenRM-CoT, GenRM,
# discriminative and DPO verifiers -> Best-of-N table. Sets up .venv first.
#
#   bash launch/quickstart.sh [--workdir=DIR] [--config.runs.solve.total_steps=N ...]
#
# Rerunning resumes (finished stages are skipped). Data: $GENRM_DATA_DIR
# (default ../shared/data beside the repo when present, else
# ~/.cache/genrm_jax/data; `bash launch/download_data.sh` fetches it).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="$(bash "$repo/launch/setup_env.sh")"
if [ -z "${GENRM_DATA_DIR:-}" ] && [ -d "$repo/../shared/data" ]; then
  export GENRM_DATA_DIR="$(cd "$repo/../shared/data" && pwd)"
fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"  # seqio's TensorFlow
export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}"  # the embedded default is a CPU job
cd "$repo"
exec "$py" -m genrm_jax.pipeline --config=configs/pipeline/quickstart.py \
  --workdir=runs/quickstart "$@"
