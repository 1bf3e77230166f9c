#!/usr/bin/env bash
# Fetches the datasets genrm_jax uses into ${GENRM_DATA_DIR:-~/.cache/genrm_jax/data},
# in the layout of the repository's shared data (see tasks/sources.py):
#
#   gsm8k/{train,test,test_socratic,example_model_solutions}.jsonl   openai/grade-school-math
#   math/{train,test}.jsonl      MATH.tar gathered: one JSON line per problem, fields + "id"
#   math/math500/test.jsonl      MATH-500 (PRM800K test split), from HF HuggingFaceH4/MATH-500
#   bbh/word_sorting.json, bbh/cot-prompts/word_sorting.txt          suzgunmirac/BIG-Bench-Hard
#   last_letters/last_letters.json                                   kojima-takeshi188/zero_shot_cot
#   last_letters/names/dist.{male,female}.first, dist.all.last       treyhunner/names (1990 census)
#   genrm_critiques/             git clone of genrm-star/genrm-critiques (about 260 MB)
#
# Needs bash, curl, tar, git, sha256sum and python3; run it at home (it needs the
# internet). Files already present are kept (delete one to fetch it again).
# GitHub files are pinned to the commits the shared data were copied from, and
# checked against their sha256 where known. Usage:
#   bash launch/download_data.sh            # everything
#   GENRM_DATA_DIR=/data/genrm bash launch/download_data.sh
set -euo pipefail

data="${GENRM_DATA_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/genrm_jax/data}"
python="${PYTHON:-python3}"
mkdir -p "$data"
echo "[data] into $data" >&2

GSM8K_COMMIT=3101c7d5072418e28b9008a6636bde82a006892c
BBH_COMMIT=9ee07bd481feebf959a6b59d61ea57bdcf30964d
KOJIMA_COMMIT=5ef330fcdeec0cd26aee27943504f91f8ec1c33c
NAMES_COMMIT=c485a4350e84d77836ccd36c628296beb1aec05f
CRITIQUES_COMMIT=083c3a24db0560a31c9ec70675d566671b386e22
MATH_TAR_URL=https://people.eecs.berkeley.edu/~hendrycks/MATH.tar
MATH500_URL=https://huggingface.co/datasets/HuggingFaceH4/MATH-500/resolve/main/test.jsonl

# fetch URL DEST [SHA256]: download once (to a temp file, then rename), check the hash.
fetch() {
  local url="$1" dest="$data/$2" sha="${3:-}"
  if [ ! -s "$dest" ]; then
    echo "[data] $2 <- $url" >&2
    mkdir -p "$(dirname "$dest")"
    curl -fL --retry 3 -o "$dest.part" "$url"
    mv "$dest.part" "$dest"
  fi
  if [ -n "$sha" ]; then
    local got
    got="$(sha256sum "$dest" | cut -d' ' -f1)"
    if [ "$got" != "$sha" ]; then
      echo "[data] sha256 mismatch for $dest: got $got, want $sha (delete it and rerun)" >&2
      exit 1
    fi
  fi
}

github_raw() {  # github_raw OWNER/REPO COMMIT PATH
  echo "https://raw.githubusercontent.com/$1/$2/$3"
}

# --- GSM8K -------------------------------------------------------------------
for f in train:17f347dc51477c50d4efb83959dbb7c56297aba886e5544ee2aaed3024813465 \
         test:3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14 \
         test_socratic:c96673362fa7a699f4836a9b6474a067448f95fe58064727501ee63ba4c3fdb6 \
         example_model_solutions:4bc62db838f8418365d51c627bd66294cbdca9fb7f01519cb13f0dce8c51580b; do
  fetch "$(github_raw openai/grade-school-math "$GSM8K_COMMIT" "grade_school_math/data/${f%%:*}.jsonl")" \
    "gsm8k/${f%%:*}.jsonl" "${f#*:}"
done
fetch "$(github_raw openai/grade-school-math "$GSM8K_COMMIT" LICENSE)" gsm8k/LICENSE

# --- BIG-Bench-Hard word sorting --------------------------------------------
fetch "$(github_raw suzgunmirac/BIG-Bench-Hard "$BBH_COMMIT" bbh/word_sorting.json)" \
  bbh/word_sorting.json 2a6132d2c99f00d0d2eb1113ac6b4a918bd969d863c48749210d969713db8d43
fetch "$(github_raw suzgunmirac/BIG-Bench-Hard "$BBH_COMMIT" cot-prompts/word_sorting.txt)" \
  bbh/cot-prompts/word_sorting.txt a2cdbcfe23abaa97b9787f7c03dbf49b1cfd0ff9e63197b7884bb5cd5a096ca6
fetch "$(github_raw suzgunmirac/BIG-Bench-Hard "$BBH_COMMIT" LICENSE)" bbh/LICENSE

# --- Last-letter concatenation ----------------------------------------------
fetch "$(github_raw kojima-takeshi188/zero_shot_cot "$KOJIMA_COMMIT" dataset/last_letters/last_letters.json)" \
  last_letters/last_letters.json 60e8d092d0a6423d3256e87e0c249b69aefea4cd27985082095fa4e93931fb02
for f in dist.male.first:0a5078ef6effe3b483d15b0f7f95047662126c9bfb624ecd5e5b978fc0f2470b \
         dist.female.first:bd2f310fc4e5d5e5ea122c9d4342c9821145823118eb20db1647f305ec77b358 \
         dist.all.last:b0e2b3743ccbad641ca48b344c24cdebcd1d9a1f76dc6dbf05986f2919f0b4e1; do
  fetch "$(github_raw treyhunner/names "$NAMES_COMMIT" "names/${f%%:*}")" "last_letters/names/${f%%:*}" "${f#*:}"
done
fetch "$(github_raw treyhunner/names "$NAMES_COMMIT" LICENSE.txt)" last_letters/names/LICENSE.txt

# --- MATH (Hendrycks et al.) -------------------------------------------------
# The tarball holds MATH/{train,test}/<subject>/<n>.json; gather each split into
# one JSON line per problem (fields unchanged, plus "id" = path under MATH/), in
# sorted path order, as the shared data's math/{train,test}.jsonl.
if [ ! -s "$data/math/train.jsonl" ] || [ ! -s "$data/math/test.jsonl" ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  echo "[data] math <- $MATH_TAR_URL" >&2
  curl -fL --retry 3 -o "$tmp/MATH.tar" "$MATH_TAR_URL"
  tar -xf "$tmp/MATH.tar" -C "$tmp"
  mkdir -p "$data/math"
  "$python" - "$tmp/MATH" "$data/math" <<'PY'
import glob, json, os, sys
root, out = sys.argv[1], sys.argv[2]
for split in ('train', 'test'):
  paths = sorted(glob.glob(os.path.join(root, split, '*', '*.json')))
  rel = [os.path.relpath(p, root).replace(os.sep, '/') for p in paths]
  with open(os.path.join(out, split + '.jsonl.part'), 'w', encoding='utf-8') as f:
    for path, rid in sorted(zip(paths, rel), key=lambda x: x[1]):
      with open(path, encoding='utf-8') as g:
        row = json.load(g)
      row['id'] = rid
      f.write(json.dumps(row, ensure_ascii=False) + '\n')
  os.replace(os.path.join(out, split + '.jsonl.part'), os.path.join(out, split + '.jsonl'))
  print(f'[data] math/{split}.jsonl: {len(paths)} problems', file=sys.stderr)
PY
  rm -rf "$tmp"
  trap - EXIT
fi
# The shared copy's sha256 (only matches if the tarball is the same release).
for f in train:c89c7db6fbc04f1c2adbce22700a9f6d36b5288c962c78c530b87d5fdbe94937 \
         test:bb703cad74e9d0d456c14d51dccfd5b7c9252d1101928f3c6aff227eb15faac5; do
  got="$(sha256sum "$data/math/${f%%:*}.jsonl" | cut -d' ' -f1)"
  [ "$got" = "${f#*:}" ] || echo "[data] note: math/${f%%:*}.jsonl differs from the shared copy (sha256 $got)" >&2
done
# MATH-500: same fields as PRM800K's math_splits/test.jsonl (problem, solution,
# answer, subject, level, unique_id). Not byte-identical to the shared copy.
fetch "$MATH500_URL" math/math500/test.jsonl

# --- genrm-critiques (the paper's released GSM8K verification data) ----------
if [ ! -d "$data/genrm_critiques/.git" ]; then
  echo "[data] genrm_critiques <- git clone genrm-star/genrm-critiques (about 260 MB)" >&2
  git clone https://github.com/genrm-star/genrm-critiques "$data/genrm_critiques.part"
  git -C "$data/genrm_critiques.part" checkout -q "$CRITIQUES_COMMIT"
  mv "$data/genrm_critiques.part" "$data/genrm_critiques"
fi

# --- Check: every file the code reads is there. -------------------------------
missing=0
for f in gsm8k/train.jsonl gsm8k/test.jsonl math/train.jsonl math/test.jsonl \
         math/math500/test.jsonl bbh/word_sorting.json last_letters/last_letters.json \
         last_letters/names/dist.male.first last_letters/names/dist.female.first \
         genrm_critiques/critiques/rm_correct_solutions_batch_08_val.zip \
         genrm_critiques/critiques/critiques_correct_solutions_batch_16_val.zip \
         genrm_critiques/critiques/data_collection/critique_gen_correct_solutions_round_0_shard_0.jsonl.gz; do
  if [ ! -s "$data/$f" ]; then echo "[data] MISSING $data/$f" >&2; missing=1; fi
done
[ "$missing" = 0 ] || exit 1
echo "[data] done. Use it with: export GENRM_DATA_DIR=$data" >&2
