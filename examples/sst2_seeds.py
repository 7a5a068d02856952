"""The main job on the 16-shot seeds 13, 21 and 42, on all 872 SST-2 test rows.

Runs ``examples/sst2_smollm2.py``'s settings once per seed (one model, one disk cache, so a
rerun costs nothing), prints manual and learned test accuracy per seed and their means, and
writes them with the machine and the date to ``--out`` (JSON).

Run: ``python examples/sst2_seeds.py``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sst2_smollm2 import SETTINGS, TEMPLATE, run

from bdpl.backends.causal_lm import CausalLMBackend

parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
parser.add_argument("--seeds", type=int, nargs="+", default=[13, 21, 42])
parser.add_argument("--test-rows", type=int, default=872)
parser.add_argument("--out", default="benchmarks/results/main_job_seeds.json")
args = parser.parse_args()

backend = CausalLMBackend()
rows = []
for seed in args.seeds:
    rows.append(run(seed, args.test_rows, backend=backend))
    manual = sum(r["manual_test"] for r in rows) / len(rows)
    learned = sum(r["learned_test"] for r in rows) / len(rows)
    record = {
        "template": TEMPLATE,
        "settings": SETTINGS,
        "runs": rows,
        "mean_manual": manual,
        "mean_learned": learned,
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    # Written after every seed, so a stopped run keeps what it measured.
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
print(f"\n{'seed':>5} {'manual':>7} {'learned':>8}  prompt")
for r in rows:
    print(f"{r['seed']:>5} {r['manual_test']:7.3f} {r['learned_test']:8.3f}  {r['prompt']}")
print(f"{'mean':>5} {manual:7.3f} {learned:8.3f}  gain {100 * (learned - manual):+.1f} points")
