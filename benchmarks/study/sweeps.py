"""Running one sweep of the study in-process and turning its run folders into records."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

# History keys kept in the compact results: the distributions are large and no table uses them.
_DROPPED = ("distribution", "entropy")


def run(
    name: str,
    config: Mapping[str, Any],
    out: Path,
    workers: int = 0,
    *,
    only: Mapping[str, Sequence[Any]] | None = None,
    collect: bool = False,
    cache: Path | None = None,
    on_start: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Run (or resume) the sweep ``config`` (``{"base", "grid", "budget"}``) in
    ``out/runs/<name>`` with the study's cache ``out/runs/cache`` (or ``cache``).

    Args:
        name: the part (its folder under ``out/runs``).
        config: the sweep, as a sweep file's dict.
        out: the study's folder.
        workers: as ``bdpl sweep --workers`` (each run records its own wall time; with
            several workers on one machine they share its cores).
        only: run only the cells whose grid values are among these (``{"task": ["sst2"]}``),
            to run a long sweep in parts; the records still cover every finished cell.
        collect: run nothing; only read the finished cells' folders.
        cache: the query cache's folder, when not the study's shared one.
        on_start: called once the arguments are checked, before the first cell runs (not
            when collecting).

    Returns:
        ``{"cells": [record, ...], "failed": {cell: error}, "sweep_config": config}``: one
        record per cell of the whole grid (:data:`common.RECORD_FIELDS`; ``status`` is
        ``done``, ``failed`` or ``not run``).

    Raises:
        ConfigError: an ``only`` key that is not a grid key, or a value not in its list.
    """
    from bdpl.errors import ConfigError
    from bdpl.sweep import Sweep, run_sweep

    grid = dict(config.get("grid", {}))
    sweep = Sweep.build(config.get("base", {}), grid, config.get("budget"), config.get("when"))
    for key, values in (only or {}).items():
        unknown = [v for v in values if v not in grid.get(key, [])]
        if key not in grid or unknown:
            raise ConfigError(f"--only {key}: not among the grid's values {grid.get(key)}")
    # The chosen cells exactly as the whole sweep has them (the same budget shares), so a
    # part run and a full run resume each other's cells.
    chosen = [
        c for c in sweep.cells
        if all(dict(c.values)[k] in values for k, values in (only or {}).items())
    ]  # fmt: skip
    folder = out / "runs" / name
    folder.mkdir(parents=True, exist_ok=True)

    def on_cell(cell: str, status: str) -> None:
        print(f"[{name}] {cell}: {status}", file=sys.stderr, flush=True)

    failed: dict[str, str] = {}
    if not collect:
        if on_start is not None:
            on_start()
        part = Sweep(tuple(chosen), sweep.limits)
        where = str(cache or out / "runs" / "cache")
        failed = run_sweep(part, folder, workers=workers, cache=where, on_cell=on_cell).failed
    cells = [_record(c, folder / "cells" / c.name, failed.get(c.name)) for c in sweep.cells]
    return {"cells": cells, "failed": failed, "sweep_config": config}


def ledger_span(folder: Path) -> tuple[str, str] | None:
    """The first and the last time in the ledgers of the sweep's cells under ``folder``
    (UTC, to the second, as the results record times); None when no cell has a ledger."""
    times = []
    for ledger in folder.glob("cells/*/ledger.jsonl"):
        lines = [ln for ln in ledger.read_text(encoding="utf-8").splitlines() if ln.strip()]
        for line in (lines[:1] + lines[-1:]) if lines else []:
            stamp = json.loads(line).get("time")
            if stamp:
                times.append(datetime.fromisoformat(stamp.replace("Z", "+00:00")))
    if not times:
        return None
    shown = [t.astimezone(timezone.utc).replace(microsecond=0).isoformat() for t in times]
    return min(shown), max(shown)


def _record(cell: Any, run: Path, error: str | None) -> dict[str, Any]:
    """One cell's record (``common.RECORD_FIELDS``) from its run folder."""
    config = {**cell.config.model_dump(), "method": cell.method,
              "demonstrations": cell.demonstrations}  # fmt: skip
    metrics: dict[str, Any] = {}
    if (run / "metrics.json").is_file():
        metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    history: list[dict[str, Any]] = []
    entropy: list[float] = []  # the last step's, per position (log(candidates): uniform)
    if (run / "history.jsonl").is_file():
        for line in (run / "history.jsonl").read_text(encoding="utf-8").splitlines():
            if line.strip():
                entry = json.loads(line)
                if entry.get("kind") == "step" and entry.get("entropy"):
                    entropy = entry["entropy"]
                history.append({k: v for k, v in entry.items() if k not in _DROPPED})
    steps = [h for h in history if h.get("kind") == "step"]
    queries = metrics.get("queries", {})
    dev, test = metrics.get("dev") or {}, metrics.get("test") or {}
    status = "done" if metrics else "failed" if error is not None else "not run"
    return {
        "cell": cell.name,
        "group": cell.group,
        "status": status,
        "error": error,
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
        "dev_manual": dev.get("manual"),
        "dev_learned": dev.get("learned"),
        "test_manual": test.get("manual"),
        "test_learned": test.get("learned"),
        "dev": dev.get("learned"),
        "test": test.get("learned"),
        "test_rows": test.get("rows"),
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
        "final_entropy": round(sum(entropy) / len(entropy), 4) if entropy else None,
        "wall_seconds": metrics.get("seconds"),  # the run's own clock (None: not recorded)
        "history": history,
    }
