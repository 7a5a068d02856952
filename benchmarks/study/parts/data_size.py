"""Case study: how much labelled data BDPL needs (k = 4, 8, 16, 32 examples per class)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import common
from parts import _cases

TITLE = "Case study: training data size"
SWEEP = "data_size.toml"


def tiny(config: dict[str, Any]) -> dict[str, Any]:
    """One data seed, 1 epoch, k = 4 and 8."""
    return _cases.shrink(config, {"k": 2})


def report(results: Path, figures: Path) -> str:
    return _cases.factor_section(
        TITLE,
        common.load_results(results, "data_size"),
        ["k"],
        ["k per class"],
        figures,
        "data_size",
        intro="BDPL with k training and k dev examples per class, each sampled by data seed "
        "from the task's training data (16 per class is the paper's setting).",
        log_x=True,
    )
