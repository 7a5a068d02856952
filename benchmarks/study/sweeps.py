"""Running one sweep of the study in-process and turning its run folders into records."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# History keys kept in the compact results: the distributions are large and no table uses them.
_DROPPED = ("distribution", "entropy")


def run(name: str, config: Mapping[str, Any], out: Path, workers: int = 0) -> dict[str, Any]:
    """Run (or resume) the sweep ``config`` (``{"base", "grid", "budget"}``) in
    ``out/runs/<name>`` with the study's cache ``out/runs/cache``.

    Returns:
        ``{"cells": [record, ...], "failed": {cell: error}, "sweep_config": config}``, the
        records as :func:`common.load_results` gives them.
    """
    from bdpl.sweep import Sweep, run_sweep

    sweep = Sweep.build(config.get("base", {}), config.get("grid", {}), config.get("budget"))
    folder = out / "runs" / name
    folder.mkdir(parents=True, exist_ok=True)
    walls_file = folder / "wall.json"
    walls: dict[str, float] = {}
    if walls_file.is_file():
        walls = json.loads(walls_file.read_text(encoding="utf-8"))
    clock = [time.perf_counter()]

    def on_cell(cell: str, status: str) -> None:
        now = time.perf_counter()
        if status != "skipped" and workers == 0:
            # In-process cells run one after the other: the time since the last report is
            # this cell's (its backend's loading included); a resumed cell adds its parts.
            walls[cell] = walls.get(cell, 0.0) + now - clock[0]
            _atomic(walls_file, json.dumps(walls, indent=1, sort_keys=True))
        clock[0] = now
        print(f"[{name}] {cell}: {status}", file=sys.stderr, flush=True)

    cache = str(out / "runs" / "cache")
    report = run_sweep(sweep, folder, workers=workers, cache=cache, on_cell=on_cell)
    cells = [_record(c, folder / "cells" / c.name, report.table.rows, walls)
             for c in sweep.cells]  # fmt: skip
    return {"cells": cells, "failed": report.failed, "sweep_config": config}


def _record(cell: Any, run: Path, rows: Sequence[Mapping[str, Any]],
            walls: Mapping[str, float]) -> dict[str, Any]:  # fmt: skip
    """One cell's record (``common.RECORD_FIELDS``) from its row and its run folder."""
    row = next((r for r in rows if r["cell"] == cell.name), {"status": "not run"})
    config = {**cell.config.model_dump(), "method": cell.method,
              "demonstrations": cell.demonstrations}  # fmt: skip
    metrics: dict[str, Any] = {}
    if (run / "metrics.json").is_file():
        metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    history: list[dict[str, Any]] = []
    if (run / "history.jsonl").is_file():
        for line in (run / "history.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                entry = json.loads(line)
                history.append({k: v for k, v in entry.items() if k not in _DROPPED})
    steps = [h for h in history if h.get("kind") == "step"]
    queries = metrics.get("queries", {})
    return {
        "cell": cell.name,
        "group": cell.group,
        "status": row.get("status"),
        "error": row.get("error"),
        "values": dict(cell.values),
        "config": config,
        "task": config["task"],
        "data_seed": config["data_seed"],
        "seed": config["seed"],
        "method": cell.method,
        "estimator": config["estimator"],
        "calibration": config["calibration"],
        "backend": config["backend"],
        "metric": metrics.get("metric"),
        "dev_manual": row.get("dev_manual"),
        "dev_learned": row.get("dev_learned"),
        "test_manual": row.get("test_manual"),
        "test_learned": row.get("test_learned"),
        "dev": row.get("dev_learned"),
        "test": row.get("test_learned"),
        "test_rows": (metrics.get("test") or {}).get("rows"),
        "prompt": metrics.get("prompt"),
        "stop_reason": metrics.get("stop_reason"),
        "paid_queries": queries.get("paid"),
        "cached_queries": queries.get("cached"),
        "duplicates": queries.get("duplicates"),
        "dollars": queries.get("dollars"),
        "train_paid_queries": steps[-1]["paid_queries"] if steps else 0,
        "steps": len(steps),
        "nonfinite": sum(int(h.get("nonfinite", 0)) for h in steps),
        "floored": sum(int(h.get("floored", 0)) for h in steps),
        "wall_seconds": walls.get(cell.name),
        "history": history,
    }


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
