"""Write the presets' 16-shot train/dev splits into the package (bdpl/data/presets/).

They are read from the benchmark data directory exactly as ``load_split`` reads them, so the
shipped files and the data directory give the same examples. Rerun after changing how splits
are drawn: ``python scripts/ship_presets.py [DATA_DIR]``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bdpl.data.benchmarks import (
    PRESET_DATA,
    SHIPPED_K,
    SHIPPED_SEEDS,
    find_data_dir,
    load_split,
)

OUT = Path(__file__).resolve().parents[1] / "bdpl" / "data" / "presets"


def main() -> None:
    data_dir = sys.argv[1] if len(sys.argv) > 1 else find_data_dir()
    for name in sorted(PRESET_DATA):
        for seed in SHIPPED_SEEDS:
            folder = OUT / name / f"{SHIPPED_K}-{seed}"
            folder.mkdir(parents=True, exist_ok=True)
            for split in ("train", "dev"):
                data = load_split(name, split, seed=seed, k=SHIPPED_K, data_dir=data_dir)
                rows = [{"text_a": e.text_a, "text_b": e.text_b, "label": e.label} for e in data]
                lines = [json.dumps(row, ensure_ascii=False) for row in rows]
                (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        print(name, "written")


if __name__ == "__main__":
    main()
