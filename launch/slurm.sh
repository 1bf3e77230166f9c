#!/usr/bin/env bash
# Submits launch/slurm.sbatch: GenRM training on several GPU nodes, one
# process per node with all its GPUs, jax.distributed from SLURM.
#
#   bash launch/slurm.sh --nodes=2 --gpus_per_node=8 --partition=gpu \
#       --time=24:00:00 --config=configs/gsm8k_cot.py \
#       --workdir=/shared/genrm/gsm8k_cot \
#       --config.init_from=/shared/ckpts/gemma2-9b/gemma2_9b_pt
#
# Options:
#   --nodes=N              nodes (default 2)
#   --gpus_per_node=G      GPUs per node (default 8)
#   --partition=P --account=A --time=HH:MM:SS --job_name=NAME
#   --config=FILE[:ARGS] --workdir=DIR   (required; DIR on a shared filesystem)
#   --setup                install .venv (genrm_jax[gpu]) here first; the
#                          nodes must see this repository's filesystem
#   --dry_run              print the sbatch command (and what the job runs)
#   --config.KEY=VALUE, and anything after --, go to genrm_jax.train.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/launch/_common.sh"

nodes=2 gpus_per_node=8 partition="" account="" time_limit="" job_name=genrm_jax
config="" workdir="" setup=0 extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes=*) nodes="${1#*=}" ;;
    --gpus_per_node=*) gpus_per_node="${1#*=}" ;;
    --partition=*) partition="${1#*=}" ;;
    --account=*) account="${1#*=}" ;;
    --time=*) time_limit="${1#*=}" ;;
    --job_name=*) job_name="${1#*=}" ;;
    --config=*) config="${1#*=}" ;;
    --workdir=*) workdir="${1#*=}" ;;
    --setup) setup=1 ;;
    --dry_run) DRY_RUN=1 ;;
    --config.*) extra+=("$1") ;;
    --) shift; extra+=("$@"); break ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown flag $1 (see --help)" ;;
  esac
  shift
done
[ -n "$config" ] || die "--config=configs/<experiment>.py is required"
[ -n "$workdir" ] || die "--workdir=DIR (on a shared filesystem) is required"

if [ "$setup" = 1 ]; then
  if [ "$DRY_RUN" = 1 ]; then
    echo "+ GENRM_EXTRAS=gpu bash launch/setup_env.sh"
  else
    GENRM_EXTRAS=gpu bash "$repo/launch/setup_env.sh" >/dev/null
  fi
fi

# Command-line options override the #SBATCH defaults in slurm.sbatch.
sbatch=(sbatch --job-name="$job_name" --nodes="$nodes" --ntasks-per-node=1
        --gpus-per-node="$gpus_per_node" --chdir="$repo")
[ -z "$partition" ] || sbatch+=(--partition="$partition")
[ -z "$account" ] || sbatch+=(--account="$account")
[ -z "$time_limit" ] || sbatch+=(--time="$time_limit")
train_args=(--config="$config" --workdir="$workdir" "${extra[@]+"${extra[@]}"}")
cd "$repo"
run "${sbatch[@]}" launch/slurm.sbatch "${train_args[@]}"
if [ "$DRY_RUN" = 1 ]; then
  echo "# the job then runs, on each of the $nodes nodes:"
  SLURM_JOB_NUM_NODES="$nodes" GENRM_REPO="$repo" \
    bash "$repo/launch/slurm.sbatch" --dry_run "${train_args[@]}"
fi
