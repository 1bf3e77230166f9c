#!/usr/bin/env bash
# The issue #8 measurements in one command, for a borrowed GPU machine with a
# short budget (one H100 for 15 minutes, 10 a command): each benchmark runs
# under its own time limit, most important first, so a cut-off run still
# brings back what it finished. Output: $OUT/benchmarks.jsonl (one JSON line
# a row) and $OUT/suite.log (the tables), or ./gpu_suite_out without $OUT.
# Profiles (where the time goes) come last, in their own runs, so writing a
# trace can never cost a measurement.
#
#   bash benchmarks/gpu_suite.sh --part=train    # train step only (limits add
#                                                # up to 9 min: one call)
#   bash benchmarks/gpu_suite.sh --part=infer    # sampling + scoring (limits:
#                                                # 8.5 min)
#   bash benchmarks/gpu_suite.sh --part=profile  # top device ops of ours and
#                                                # official's train step and of
#                                                # our sampler at batch 64
#                                                # (traces in /tmp/genrm_traces;
#                                                # the summaries are in the rows)
#   bash benchmarks/gpu_suite.sh --part=all      # all three (no 10-minute cap)
# A --part is required on a GPU: one part a call fits the lent machines'
# 600 s limit, all three do not.
#   bash benchmarks/gpu_suite.sh --tiny          # the same on a CPU, tiny model
#   bash benchmarks/gpu_suite.sh --dry_run       # print the commands
#
# Wheels in .whl/ (ml_collections, the official gemma; see the README's
# device notes) are installed into /tmp/site first when present.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
part="" tiny="" dry="" python="${PYTHON:-python3}"
for arg in "$@"; do
  case "$arg" in
    --part=*) part="${arg#*=}" ;;
    --tiny) tiny=--tiny ;;
    --dry_run) dry=1 ;;
    --python=*) python="${arg#*=}" ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu_suite.sh: unknown flag $arg (see --help)" >&2; exit 2 ;;
  esac
done
[ -n "$part" ] || { [ -n "$tiny$dry" ] && part=all; } ||
  { echo "gpu_suite.sh: give --part=train, infer or profile (one a call: each fits 600 s; --part=all runs the three)" >&2; exit 2; }
case "$part" in all|train|infer|profile) ;; *) echo "--part=$part: expected all, train, infer or profile" >&2; exit 2 ;; esac
out="${OUT:-$repo/gpu_suite_out}"
cd "$repo"
# JAX preallocates this share of the GPU for every JAX row (ours and the
# official gemma alike), as the launchers do; JAX's own default, 0.75, is
# 59.3 GiB of an H100, and our Gemma-2B step with the whole logits plans
# 59.2 GiB there (`train --compile_only --topology=h100`, launch/README.md).
export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.90}"

run() {  # run SECONDS python -m MODULE ARGS...: one benchmark under a limit
  local limit="$1"; shift
  echo "+ timeout $limit $python $* $tiny --out=$out/benchmarks.jsonl"
  [ -n "$dry" ] && return 0
  timeout "$limit" "$python" "$@" $tiny --out="$out/benchmarks.jsonl" \
    2>&1 | tee -a "$out/suite.log" || echo "(exit $? after at most ${limit}s: $*)" | tee -a "$out/suite.log"
}

if [ -z "$dry" ]; then
  mkdir -p "$out"
  if compgen -G ".whl/*.whl" > /dev/null; then
    "$python" -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$repo${PYTHONPATH:+:$PYTHONPATH}"
  fi
  { date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true; } \
    | tee -a "$out/suite.log"
fi

if [ "$part" = all ] || [ "$part" = train ]; then
  # Ours with the einsum and cuDNN attention, then the peers (their rows get
  # ours_speedup against the first row).
  # (--tiny, on a CPU: 'xla', the fused call's portable twin.)
  fused=cudnn; [ -n "$tiny" ] && fused=xla
  run 300 -m benchmarks.train_step --impls=ours,official,hf --attention="einsum,$fused" \
    --loss_chunk=0 --steps=5 --timeout=140
  # The layers unrolled (no loop): by XLA's H100 program the scanned step
  # moves 17% more bytes (benchmarks/RESULTS.md); untimed so far.
  run 150 -m benchmarks.train_step --impls=ours --attention="$fused" --scan_unroll=all \
    --loss_chunk=0 --steps=5 --timeout=140
  # LoRA (rank 16, bf16 base): the one-GPU recipe's step; only a cost-model
  # row so far (train_step_cost --variants=ours_lora).
  run 90 -m benchmarks.train_step --impls=ours --attention="$fused" --lora_rank=16 \
    --loss_chunk=0 --steps=5 --timeout=85
fi
if [ "$part" = all ] || [ "$part" = infer ]; then
  run 180 -m benchmarks.sampling --impls=ours,ours_scan,hf --batches=16,64 --timeout=85
  run 100 -m benchmarks.scoring --modes=direct --timeout=95
  # GenRM-CoT at K=8, rationales of GSM8K's lengths: one sampler batch per
  # call against continuous batching; then p(Yes) by a second pass instead
  # of off the sampler's step.
  run 140 -m benchmarks.scoring --modes=cot --cot_readout=fused \
    --cot_batching=static,continuous --timeout=130
  run 90 -m benchmarks.scoring --modes=cot --cot_readout=pass \
    --cot_batching=continuous --timeout=85
fi
if [ "$part" = all ] || [ "$part" = profile ]; then
  run 260 -m benchmarks.train_step --impls=ours,official --steps=2 --timeout=120 \
    --profile_dir=/tmp/genrm_traces
  run 100 -m benchmarks.sampling --impls=ours --batches=64 --timeout=90 \
    --profile_dir=/tmp/genrm_traces
fi
