#!/usr/bin/env bash
# Trains on a Cloud TPU slice (one or many hosts): creates or reuses the TPU VM
# (or a queued resource), copies or clones this repository onto every worker,
# installs it there (launch/setup_env.sh, extra `tpu`), and runs the same
#   python -m genrm_jax.train --config=... --workdir=gs://...
# on all workers at once (`--worker=all`, GENRM_JAX_INIT=1, so each process
# calls jax.distributed.initialize()); optionally stops or deletes the slice.
# Every step is one printed gcloud command; --dry_run prints them all and runs
# none (no gcloud needed). As in big_vision's run_tpu.sh.
#
# Worked example: GenRM-CoT on GSM8K with Gemma-2 9B on a v5p-32 (16 chips,
# 4 hosts), from a queued resource, deleted at the end:
#
#   # 0. Before renting: does the step fit? (offline, on this machine)
#   python -m genrm_jax.train --config=configs/gsm8k_cot.py --compile_only \
#       --topology=v5p-32
#   # 1. Gemma-2 9B (Kaggle, Flax) and its tokenizer into a bucket
#   gsutil -m cp -r ~/gemma2-9b gs://my-bucket/gemma2-9b
#   # 2. Train
#   bash launch/tpu_pod.sh --project=my-project --zone=us-east5-a \
#       --accelerator=v5p-32 --name=genrm-v5p --queued --download_data \
#       --config=configs/gsm8k_cot.py \
#       --workdir=gs://my-bucket/genrm/gsm8k_cot_9b \
#       --config.init_from=gs://my-bucket/gemma2-9b/gemma2_9b_pt \
#       --config.data.vocabulary=gs://my-bucket/gemma2-9b/tokenizer.model \
#       --teardown=delete
#
# The same on a v6e-16 (16 chips, 4 hosts): --accelerator=v6e-16
# --zone=us-east1-d (runtime v2-alpha-tpuv6e is picked automatically).
# Rerun only the training (slice up, code installed): --steps=train.
# See launch/README.md for every flag.
#
# Usage: bash launch/tpu_pod.sh --zone=Z --accelerator=TYPE --config=FILE
#            --workdir=gs://B/D [options] [--config.KEY=VALUE ...] [-- ARGS]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/launch/_common.sh"

usage() {
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
  cat <<'EOF'
Options:
  --project=P           GCP project (default: gcloud's configured project)
  --zone=Z              zone of the slice (required)
  --accelerator=TYPE    v5p-32, v6e-16, v5litepod-16, v4-32, ... (required to create)
  --runtime_version=V   TPU software version (default by generation:
                        v4 tpu-ubuntu2204-base, v5e v2-alpha-tpuv5-lite,
                        v5p v2-alpha-tpuv5, v6e v2-alpha-tpuv6e)
  --name=N              TPU VM / queued-resource name (default genrm-TYPE)
  --queued              create through `queued-resources` (waits until ACTIVE)
  --spot                spot capacity (preemptible; the trainer resumes)
  --config=FILE[:ARGS]  experiment config, relative to the repo (required to train)
  --workdir=gs://B/D    checkpoints and metrics, shared by all hosts (required to train)
  --code=copy|git       copy this checkout (tracked + untracked-not-ignored
                        files) with scp, or git-clone --repo at --ref (default copy)
  --repo=URL --ref=R    for --code=git (default ref: main)
  --remote_dir=D        directory under each worker's home (default genrm_jax)
  --python=PY           python >= 3.11 on the workers (default python3.11;
                        installed with apt if missing)
  --download_data       run launch/download_data.sh on every worker
  --env=KEY=VALUE       exported on the workers before training (repeatable)
  --detach              train under nohup (log: REMOTE_DIR/train.log) and return
  --steps=LIST          steps to run, default create,copy,setup,train
                        (data is added by --download_data, teardown by --teardown)
  --teardown=none|stop|delete   after training (default none; stop: single-host
                        TPU VMs only)
  --dry_run             print the commands, run nothing
  --config.KEY=VALUE, and anything after --, go to genrm_jax.train.
EOF
}

# --- flags -------------------------------------------------------------------
project="" zone="" accelerator="" runtime_version="" name="" queued=0 spot=0
config="" workdir="" code=copy git_repo="" git_ref=main remote_dir=genrm_jax
remote_python=python3.11 download_data=0 detach=0 steps="" teardown=none
envs=() extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --project=*) project="${1#*=}" ;;
    --zone=*) zone="${1#*=}" ;;
    --accelerator=*|--accelerator_type=*) accelerator="${1#*=}" ;;
    --runtime_version=*) runtime_version="${1#*=}" ;;
    --name=*) name="${1#*=}" ;;
    --queued) queued=1 ;;
    --spot) spot=1 ;;
    --config=*) config="${1#*=}" ;;
    --workdir=*) workdir="${1#*=}" ;;
    --code=*) code="${1#*=}" ;;
    --repo=*) git_repo="${1#*=}" ;;
    --ref=*) git_ref="${1#*=}" ;;
    --remote_dir=*) remote_dir="${1#*=}" ;;
    --python=*) remote_python="${1#*=}" ;;
    --download_data) download_data=1 ;;
    --env=*) envs+=("${1#*=}") ;;
    --detach) detach=1 ;;
    --steps=*) steps="${1#*=}" ;;
    --teardown=*) teardown="${1#*=}" ;;
    --dry_run) DRY_RUN=1 ;;
    --config.*) extra+=("$1") ;;
    --) shift; extra+=("$@"); break ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown flag $1 (see --help)" ;;
  esac
  shift
done

[ -n "$zone" ] || die "--zone is required"
case "$code" in copy|git) ;; *) die "--code=copy|git" ;; esac
[ "$code" = copy ] || [ -n "$git_repo" ] || die "--code=git needs --repo=URL"
case "$teardown" in none|stop|delete) ;; *) die "--teardown=none|stop|delete" ;; esac
if [[ ",$steps," == *,teardown,* ]] && [ "$teardown" = none ]; then
  die "--steps lists teardown, but --teardown=none (the default): say --teardown=stop or delete"
fi
[ "$teardown" != stop ] || [ "$queued" = 0 ] ||
  die "a queued resource cannot be stopped; use --teardown=delete"
if [ -z "$steps" ]; then
  steps=create,copy,setup
  [ "$download_data" = 0 ] || steps+=,data
  steps+=,train
  [ "$teardown" = none ] || steps+=,teardown
fi
for s in ${steps//,/ }; do
  case "$s" in create|copy|setup|data|train|teardown) ;;
    *) die "--steps: unknown step $s (create,copy,setup,data,train,teardown)" ;;
  esac
done
has_step() { [[ ",$steps," == *",$1,"* ]]; }

# Only the train step reads the config and the workdir (--steps=teardown alone
# cleans up without them).
if has_step train; then
  [ -n "$config" ] || die "--config=configs/<experiment>.py is required"
  [ -n "$workdir" ] || die "--workdir=gs://BUCKET/DIR is required"
  case "$workdir" in
    gs://*) ;;
    *) echo "warning: --workdir=$workdir is not on gs://; every host must see" \
            "the same directory for checkpoints" >&2 ;;
  esac
  [ -f "$repo/${config%%:*}" ] || die "config ${config%%:*} not found under $repo"
fi

if has_step create; then
  [ -n "$accelerator" ] || die "--accelerator (e.g. v5p-32) is required to create the slice"
fi
name="${name:-genrm-${accelerator:-tpu}}"
if [ -z "$runtime_version" ]; then
  case "$accelerator" in
    v4-*) runtime_version=tpu-ubuntu2204-base ;;
    v5litepod-*|v5e-*) runtime_version=v2-alpha-tpuv5-lite ;;
    v5p-*) runtime_version=v2-alpha-tpuv5 ;;
    v6e-*) runtime_version=v2-alpha-tpuv6e ;;
    "") ;;
    *) die "no default --runtime_version for $accelerator; pass one" ;;
  esac
fi

# Flags every gcloud call shares.
where=(--zone="$zone")
[ -z "$project" ] || where+=(--project="$project")
tpu=(gcloud compute tpus tpu-vm)
qr=(gcloud compute tpus queued-resources)

# ssh_all CMD: runs the shell command line CMD on every worker.
ssh_all() {
  run "${tpu[@]}" ssh "$name" "${where[@]}" --worker=all --command="$1"
}

# --- 1. create or reuse ------------------------------------------------------
if has_step create; then
  # Reuse: a TPU VM of this name that exists already is kept (and started if
  # stopped). --dry_run cannot ask gcloud, so it prints the creation.
  state=""
  if [ "$DRY_RUN" = 1 ]; then
    echo "# reused if \`$(join_cmd "${tpu[@]}" describe "$name" "${where[@]}")\` finds it; else:"
  else
    state="$("${tpu[@]}" describe "$name" "${where[@]}" --format='value(state)' 2>/dev/null || true)"
  fi
  if [ -n "$state" ]; then
    echo "[tpu] reusing $name (state $state)" >&2
    [ "$state" != STOPPED ] || run "${tpu[@]}" start "$name" "${where[@]}"
  elif [ "$queued" = 1 ]; then
    create=("${qr[@]}" create "$name" --node-id="$name" "${where[@]}"
            --accelerator-type="$accelerator" --runtime-version="$runtime_version")
    [ "$spot" = 0 ] || create+=(--spot)
    run "${create[@]}"
    # Wait until the queued resource is granted and its VM is up.
    describe=("${qr[@]}" describe "$name" "${where[@]}" --format='value(state.state)')
    if [ "$DRY_RUN" = 1 ]; then
      echo "# then poll every 60 s until ACTIVE: $(join_cmd "${describe[@]}")"
    else
      until [ "$("${describe[@]}")" = ACTIVE ]; do
        echo "[tpu] waiting for $name: $("${describe[@]}")" >&2
        sleep 60
      done
    fi
  else
    create=("${tpu[@]}" create "$name" "${where[@]}"
            --accelerator-type="$accelerator" --version="$runtime_version")
    [ "$spot" = 0 ] || create+=(--spot)
    run "${create[@]}"
  fi
fi

# --- 2. code on every worker -------------------------------------------------
if has_step copy; then
  if [ "$code" = copy ]; then
    # This checkout as git sees it (tracked + untracked-not-ignored files; no
    # .venv, no data), extracted over REMOTE_DIR (an existing .venv stays).
    tarball="${TMPDIR:-/tmp}/genrm_jax_code.tar.gz"
    run bash -c "cd $(q "$repo") && git ls-files -z --cached --others --exclude-standard | tar -czf $(q "$tarball") --null -T -"
    run "${tpu[@]}" scp "$tarball" "$name:genrm_jax_code.tar.gz" "${where[@]}" --worker=all
    ssh_all "mkdir -p $(q "$remote_dir") && tar -xzf genrm_jax_code.tar.gz -C $(q "$remote_dir")"
  else
    ssh_all "if [ -d $(q "$remote_dir")/.git ]; then git -C $(q "$remote_dir") fetch -q origin $(q "$git_ref") && git -C $(q "$remote_dir") checkout -q FETCH_HEAD; else git clone -q $(q "$git_repo") $(q "$remote_dir") && git -C $(q "$remote_dir") checkout -q $(q "$git_ref"); fi"
  fi
fi

# --- 3. install on every worker ----------------------------------------------
# Python >= 3.11 (TPU VM images ship 3.10), then .venv with genrm_jax[tpu]
# (jax + the matching libtpu).
if has_step setup; then
  py="$(q "$remote_python")"
  ssh_all "(command -v $py >/dev/null || (sudo apt-get update -qq && sudo apt-get install -y -qq $py ${py}-venv)) && cd $(q "$remote_dir") && PYTHON=$py GENRM_EXTRAS=tpu bash launch/setup_env.sh"
fi

# --- 4. data on every worker (optional) ----------------------------------------
if has_step data; then
  ssh_all "cd $(q "$remote_dir") && bash launch/download_data.sh"
fi

# --- 5. train: the same command on every worker ------------------------------
if has_step train; then
  exports="export GENRM_JAX_INIT=1"
  for kv in "${envs[@]+"${envs[@]}"}"; do
    [[ "$kv" == *=* ]] || die "--env=$kv: expected KEY=VALUE"
    exports+=" $(q "$kv")"
  done
  train_cmd="$(join_cmd .venv/bin/python -m genrm_jax.train --config="$config" \
                 --workdir="$workdir" "${extra[@]+"${extra[@]}"}")"
  if [ "$detach" = 1 ]; then
    # Braces: `a && b && cmd &` would background the whole list, whose
    # subshell keeps ssh's output open until training ends.
    train_cmd="{ nohup $train_cmd > train.log 2>&1 < /dev/null & }"
  fi
  ssh_all "cd $(q "$remote_dir") && $exports && $train_cmd"
fi

# --- 6. stop or delete --------------------------------------------------------
if has_step teardown; then
  if [ "$queued" = 1 ]; then
    run "${qr[@]}" delete "$name" "${where[@]}" --force --quiet
  elif [ "$teardown" = stop ]; then
    run "${tpu[@]}" stop "$name" "${where[@]}"
  elif [ "$teardown" = delete ]; then
    run "${tpu[@]}" delete "$name" "${where[@]}" --quiet
  fi
fi
