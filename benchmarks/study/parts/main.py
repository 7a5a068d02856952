"""The full comparison: 11 tasks x 5 split seeds x every method x both calibrations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import compare

TITLE = "Main comparison (full run)"
SWEEP = "main.toml"


def tiny(config: dict[str, Any]) -> dict[str, Any]:
    """Two tasks, one seed, one epoch: every method, estimator and calibration still runs."""
    return compare.tiny(config, tasks=2, seeds=1)


def report(results: Path, figures: Path) -> str:
    return compare.section("main", TITLE, results, figures)
