#!/usr/bin/env bash
# Trains on one host with all its GPUs (one process; the mesh spans every
# visible GPU, FSDP by default):
#
#   bash launch/gpu.sh --config=configs/gsm8k_cot.py --workdir=/ckpt/gsm8k_cot \
#       --config.init_from=/ckpts/gemma2-9b/gemma2_9b_pt \
#       --config.data.vocabulary=/ckpts/gemma2-9b/tokenizer.model
#   bash launch/gpu.sh --gpus=0,1 --config=configs/last_letter_genrm.py:tiny \
#       --workdir=/tmp/ll_tiny --dry_run
#
# Sets up .venv with genrm_jax[gpu] (jax with CUDA 12) unless --python is
# given, sets the XLA flags and allocator fraction (launch/_common.sh
# `gpu_env`: latency-hiding scheduler, XLA_PYTHON_CLIENT_MEM_FRACTION=0.90 by
# default), then execs `python -m genrm_jax.train`. --dry_run prints the
# environment and commands and runs nothing.
#
# Options:
#   --config=FILE[:ARGS]   experiment config (required)
#   --workdir=DIR          checkpoints and metrics (required)
#   --gpus=0,1,...         CUDA_VISIBLE_DEVICES (default: all GPUs)
#   --mem_fraction=F       XLA_PYTHON_CLIENT_MEM_FRACTION (default: the
#                          environment's, else 0.90)
#   --xla_flags="..."      extra XLA flags, appended to the defaults
#   --python=PY            use this python (skips the .venv set-up)
#   --dry_run              print, do not run
#   --config.KEY=VALUE, and anything after --, go to genrm_jax.train.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/launch/_common.sh"

config="" workdir="" gpus="" mem_fraction="" python="" extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --config=*) config="${1#*=}" ;;
    --workdir=*) workdir="${1#*=}" ;;
    --gpus=*) gpus="${1#*=}" ;;
    --mem_fraction=*) mem_fraction="${1#*=}" ;;
    --xla_flags=*) GENRM_XLA_FLAGS="${GENRM_XLA_FLAGS:+$GENRM_XLA_FLAGS }${1#*=}" ;;
    --python=*) python="${1#*=}" ;;
    --dry_run) DRY_RUN=1 ;;
    --config.*) extra+=("$1") ;;
    --) shift; extra+=("$@"); break ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown flag $1 (see --help)" ;;
  esac
  shift
done
[ -n "$config" ] || die "--config=configs/<experiment>.py is required"
[ -n "$workdir" ] || die "--workdir=DIR is required"

# --- 1. the environment --------------------------------------------------------
if [ -z "$python" ]; then
  if [ "$DRY_RUN" = 1 ]; then
    echo "+ GENRM_EXTRAS=${GENRM_EXTRAS:-gpu} bash launch/setup_env.sh"
    python="$repo/.venv/bin/python"
  else
    python="$(GENRM_EXTRAS="${GENRM_EXTRAS:-gpu}" bash "$repo/launch/setup_env.sh")"
  fi
fi

# --- 2. XLA flags, memory, visible GPUs ----------------------------------------
# The flag wins over the environment, which wins over the default 0.90.
[ -z "$mem_fraction" ] || export XLA_PYTHON_CLIENT_MEM_FRACTION="$mem_fraction"
gpu_env
env_vars=()
if [ -n "$gpus" ]; then
  export CUDA_VISIBLE_DEVICES="$gpus"
  env_vars+=(CUDA_VISIBLE_DEVICES)
fi
if [ "$DRY_RUN" = 1 ]; then
  print_gpu_env "${env_vars[@]+"${env_vars[@]}"}"
else
  print_gpu_env "${env_vars[@]+"${env_vars[@]}"}" >&2
fi

# --- 3. train ------------------------------------------------------------------
cd "$repo"
cmd=("$python" -m genrm_jax.train --config="$config" --workdir="$workdir"
     "${extra[@]+"${extra[@]}"}")
if [ "$DRY_RUN" = 1 ]; then
  run "${cmd[@]}"
else
  printf '+ %s\n' "$(join_cmd "${cmd[@]}")" >&2
  exec "${cmd[@]}"
fi
