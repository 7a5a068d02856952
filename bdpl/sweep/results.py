"""The results table of a sweep: one row per cell and mean ± std over seeds per group.

Written as ``results.json`` and ``results.csv`` in the sweep's folder each time a cell
finishes (atomically: a kill leaves the previous table or the new one).
"""

from __future__ import annotations

import csv
import io
import json
import os
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bdpl.sweep.grid import Cell

__all__ = ["ResultsTable"]

_SCORES = ("dev_manual", "dev_learned", "test_manual", "test_learned")
_COLUMNS = ("cell", "group", "status", *_SCORES, "prompt", "stop_reason", "paid_queries",
            "cached_queries", "dollars", "error")  # fmt: skip


class ResultsTable:
    """Rows of finished (or failed) cells, kept in grid order, written to ``folder``."""

    def __init__(self, folder: Path, cells: tuple[Cell, ...]) -> None:
        self.folder = folder
        self._cells = cells
        self._rows: dict[str, dict[str, Any]] = {}

    def add(self, cell: Cell, metrics: Mapping[str, Any]) -> None:
        """Record a finished cell from its ``metrics.json`` content."""
        row: dict[str, Any] = {"cell": cell.name, "group": cell.group, "status": "done"}
        row.update(dict(cell.values))
        for split in ("dev", "test"):
            scores = metrics.get(split) or {}
            row[f"{split}_manual"] = scores.get("manual")
            row[f"{split}_learned"] = scores.get("learned")
        queries = metrics.get("queries", {})
        row["prompt"] = " ".join(metrics.get("prompt", []))
        row["stop_reason"] = metrics.get("stop_reason")
        row["paid_queries"] = queries.get("paid")
        row["cached_queries"] = queries.get("cached")
        row["dollars"] = queries.get("dollars")
        self._rows[cell.name] = row

    def fail(self, cell: Cell, error: str) -> None:
        """Record a cell that failed (it is run again by the next run of the sweep)."""
        row: dict[str, Any] = {"cell": cell.name, "group": cell.group, "status": "failed"}
        row.update(dict(cell.values))
        row["error"] = error
        self._rows[cell.name] = row

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The recorded rows, in grid order."""
        return [self._rows[c.name] for c in self._cells if c.name in self._rows]

    def groups(self) -> list[dict[str, Any]]:
        """Per group of finished cells: how many, and each score's mean and std over seeds
        (the sample standard deviation; 0 for one seed)."""
        out: list[dict[str, Any]] = []
        by_group: dict[str, list[dict[str, Any]]] = {}
        for row in self.rows:
            if row["status"] == "done":
                by_group.setdefault(row["group"], []).append(row)
        for group, rows in by_group.items():
            entry: dict[str, Any] = {"group": group, "cells": len(rows)}
            for score in _SCORES:
                values = [float(r[score]) for r in rows if r.get(score) is not None]
                if values:
                    entry[f"{score}_mean"] = statistics.fmean(values)
                    entry[f"{score}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
            out.append(entry)
        return out

    def write(self) -> None:
        """Write ``results.json`` (cells and groups) and ``results.csv`` (cells)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        doc = {"cells": self.rows, "groups": self.groups()}
        _atomic(self.folder / "results.json", json.dumps(doc, indent=1, sort_keys=True))
        extra = sorted({k for r in self.rows for k in r} - set(_COLUMNS))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=[*_COLUMNS[:2], *extra, *_COLUMNS[2:]])
        writer.writeheader()
        for row in self.rows:
            writer.writerow(row)
        _atomic(self.folder / "results.csv", buf.getvalue())


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
