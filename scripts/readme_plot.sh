#!/usr/bin/env bash
# Regenerate README's figures: a real `bdpl fit` on the embedded SmolLM2 (SST-2, 16-shot seed
# 13, content-free calibration), then `bdpl plot`. Writes docs/readme-run/ and docs/*.png.
set -euo pipefail
cd "$(dirname "$0")/.."
BDPL="${BDPL:-.venv/bin/bdpl}"
rm -rf docs/readme-run
"$BDPL" fit --task sst2 --backend local --calibration content-free --epochs 10 \
  --selection best-dev --test-rows 200 --out docs/readme-run --quiet
"$BDPL" plot docs/readme-run --out docs
