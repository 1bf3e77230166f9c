#!/usr/bin/env bash
# Rehearses on a CPU machine what a lent GPU machine runs (README, "On a
# borrowed GPU machine"): a Debian trixie chroot with Python 3.13 and
# packages like that machine's image (JAX 0.11.2, flax, optax, orbax, numpy
# 2.5, protobuf 7, sentencepiece 0.2.2, matplotlib, tensorboard; no
# TensorFlow, ml_collections or gguf), the offline bundle's transfers packed
# here, and its printed last command with --smoke, on the CPU. A failure here
# is one the GPU's few minutes need not find.
#
#   sudo bash launch/rehearse_gpu_image.sh [--task=last_letter] [--tests] [--benchmarks]
#   bash launch/rehearse_gpu_image.sh --dry_run
#
# Needs root (chroot, mounts), debootstrap, and the Debian and PyPI
# mirrors; 7.5 minutes on 2 cores from nothing, 2026-12-07 (the chroot and
# its packages are kept for later runs; --tests adds about 4).
#
# Options:
#   --task=NAME    last_letter (default) | word_sort | gsm8k
#   --root=DIR     the chroot (default /opt/genrm_image_rehearsal; reused)
#   --tests        also the test suite there (pytest -n 2; the seqio tests
#                  skip without TensorFlow, saying so)
#   --benchmarks   also issue #8's `benchmarks/gpu_suite.sh --tiny` there,
#                  with the wheels the README's device notes carry in .whl/
#                  (ml_collections, the official gemma); the HF rows fail
#                  (no torch in the chroot) and say so
#   --dry_run      print, do not run
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/launch/_common.sh"

task=last_letter root=/opt/genrm_image_rehearsal tests="" benchmarks=""
while [ $# -gt 0 ]; do
  case "$1" in
    --task=*) task="${1#*=}" ;;
    --root=*) root="${1#*=}" ;;
    --tests) tests=1 ;;
    --benchmarks) benchmarks=1 ;;
    --dry_run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown flag $1 (see --help)" ;;
  esac
  shift
done
case "$task" in last_letter|word_sort|gsm8k) ;; *) die "--task=$task: expected last_letter, word_sort or gsm8k" ;; esac
[ "$DRY_RUN" = 1 ] || [ "$(id -u)" = 0 ] || die "needs root (chroot and mounts): sudo bash $0 ..."

# What the image holds that this project uses (KINDS.md's package list;
# versions as a session's `pip list` there read them where it did).
IMAGE_PKGS=("jax[cpu]==0.11.2" flax optax orbax-checkpoint etils sentencepiece==0.2.2
            numpy==2.5.2 matplotlib tensorboard sympy absl-py chex pytest pytest-xdist)
# The repo's parent goes in too: ../shared/data beside the repo, as here.
inside=/mnt/genrm
work="$inside/${repo##*/}"
in_root() { run chroot "$root" env -u PIP_FIND_LINKS "$@"; }

# --- 1. the chroot (once) and its mounts --------------------------------------
if [ "$DRY_RUN" = 1 ] || [ ! -x "$root/usr/bin/python3" ]; then
  run debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,git \
    trixie "$root" http://deb.debian.org/debian
fi
# This machine's CA bundle (a proxy's CA included) and resolver.
run cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
run cp /etc/resolv.conf "$root/etc/resolv.conf"
run mkdir -p "$root/proc" "$root/dev" "$root$inside"
unmount() {
  for m in "$root$inside" "$root/dev" "$root/proc"; do
    mountpoint -q "$m" && umount "$m" || true
  done
}
if [ "$DRY_RUN" != 1 ]; then
  trap unmount EXIT
fi
for m in proc dev; do
  if [ "$DRY_RUN" = 1 ] || ! mountpoint -q "$root/$m"; then
    if [ "$m" = proc ]; then run mount -t proc proc "$root/proc"; else run mount --bind /dev "$root/dev"; fi
  fi
done
if [ "$DRY_RUN" = 1 ] || ! mountpoint -q "$root$inside"; then
  run mount --bind "$(dirname "$repo")" "$root$inside"
fi

# --- 2. the image's Python packages (once) ------------------------------------
if [ "$DRY_RUN" = 1 ] || [ ! -x "$root/opt/image/bin/python3" ]; then
  in_root python3 -m venv /opt/image
  in_root /opt/image/bin/pip install -q "${IMAGE_PKGS[@]}"
fi

# --- 3. the transfers, packed here; the last command, run there ---------------
cd "$repo"
run bash launch/offline_bundle.sh pack --task="$task" --dir=.dev
in_root bash -c "cd $(q_word "$work") && export PATH=/opt/image/bin:\$PATH JAX_PLATFORMS=cpu && \
bash launch/offline_bundle.sh run --dir=.dev -- \
bash launch/paper_270m.sh --task=$task --smoke --python=python3"

# --- 4. the test suite there (optional) ---------------------------------------
if [ -n "$tests" ]; then
  in_root bash -c "cd $(q_word "$work") && export PYTHONPATH=/tmp/genrm_site:. \
GENRM_DATA_DIR=$(q_word "$inside/shared/data") && /opt/image/bin/python3 -m pytest -q -n 2 tests"
fi

# --- 5. issue #8's suite there, tiny (optional) --------------------------------
if [ -n "$benchmarks" ]; then
  grep -qx '/.whl/' .git/info/exclude 2>/dev/null || run sh -c "echo /.whl/ >> .git/info/exclude"
  run "${PYTHON:-python3}" -m pip download -q --no-deps --only-binary=:all: \
    --python-version 3.12 -d .whl ml_collections==1.1.0 gemma==2.0.8
  in_root bash -c "cd $(q_word "$work") && export PATH=/opt/image/bin:\$PATH \
JAX_PLATFORMS=cpu OUT=/tmp/gpu_suite_out && bash benchmarks/gpu_suite.sh --tiny"
fi
