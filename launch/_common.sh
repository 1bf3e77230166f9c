# Helpers shared by the launchers (sourced, not run): quoting, printing and
# running commands, so that `--dry_run` prints exactly what a real run runs.
#
#   q ARG          ARG quoted for a shell only where it needs it
#   run CMD...     prints "+ CMD" (stdout with --dry_run, else stderr), then
#                  runs it unless DRY_RUN=1
#   die MSG        prints MSG to stderr and exits 1
#
# The launchers set DRY_RUN=1 for --dry_run before calling `run`.

DRY_RUN="${DRY_RUN:-0}"

q() {
  local a="$1"
  if [[ "$a" =~ ^(-{0,2}[A-Za-z0-9_.-]+=)(.*)$ ]]; then
    # --flag=VALUE / KEY=VALUE: quote the value only (still one word).
    printf '%s' "${BASH_REMATCH[1]}"
    q_word "${BASH_REMATCH[2]}"
  else
    q_word "$a"
  fi
}

# ARG quoted as a whole, only if it needs it.
q_word() {
  local a="$1"
  if [[ "$a" =~ ^[A-Za-z0-9_./:=,@%+-]+$ ]]; then
    printf '%s' "$a"
  else
    # Single quotes; an embedded ' becomes '\''.
    printf "'%s'" "${a//\'/\'\\\'\'}"
  fi
}

# Joins its arguments into one shell command line, each quoted by `q`.
join_cmd() {
  local out="" a
  for a in "$@"; do
    out+="${out:+ }$(q "$a")"
  done
  printf '%s' "$out"
}

run() {
  if [ "$DRY_RUN" = 1 ]; then
    printf '+ %s\n' "$(join_cmd "$@")"
  else
    printf '+ %s\n' "$(join_cmd "$@")" >&2
    "$@"
  fi
}

die() {
  echo "error: $*" >&2
  exit 1
}

# The XLA/allocator settings used for GPU training (launch/gpu.sh and
# launch/slurm.sbatch). Each is a default: a value already in the environment
# wins, and extra XLA flags can be appended through GENRM_XLA_FLAGS.
#   * latency-hiding scheduler: overlaps FSDP all-gathers/reduce-scatters with
#     compute (JAX's GPU performance tips);
#   * XLA_PYTHON_CLIENT_MEM_FRACTION: preallocate 90% of each GPU rather than
#     the default 75% (training wants the memory; TF never sees the GPUs);
#   * TF_CPP_MIN_LOG_LEVEL / TF_FORCE_GPU_ALLOW_GROWTH: keep TensorFlow (input
#     pipeline only) quiet and from grabbing GPU memory.
gpu_env() {
  local mem_fraction="${1:-0.90}"
  export XLA_FLAGS="${XLA_FLAGS:---xla_gpu_enable_latency_hiding_scheduler=true}${GENRM_XLA_FLAGS:+ $GENRM_XLA_FLAGS}"
  export XLA_PYTHON_CLIENT_MEM_FRACTION="${XLA_PYTHON_CLIENT_MEM_FRACTION:-$mem_fraction}"
  export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-1}"
  export TF_FORCE_GPU_ALLOW_GROWTH="${TF_FORCE_GPU_ALLOW_GROWTH:-true}"
}

# Prints the environment `gpu_env` set, as `export` lines (for --dry_run).
print_gpu_env() {
  local v
  for v in XLA_FLAGS XLA_PYTHON_CLIENT_MEM_FRACTION TF_CPP_MIN_LOG_LEVEL \
           TF_FORCE_GPU_ALLOW_GROWTH "$@"; do
    printf '+ export %s=%s\n' "$v" "$(q_word "${!v}")"
  done
}
