"""The reduced comparison (the README's default): 3 tasks x 3 split seeds x every method."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import compare

TITLE = "Reduced comparison (the default run)"
SWEEP = "reduced.toml"


def tiny(config: dict[str, Any]) -> dict[str, Any]:
    """One task, two seeds (so a std exists), one epoch, every method."""
    return compare.tiny(config, tasks=1, seeds=2)


def report(results: Path, figures: Path) -> str:
    return compare.section("reduced", TITLE, results, figures)
