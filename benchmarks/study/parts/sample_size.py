"""Case study: sample size (prompts sampled per step: 2, 4, 8, 16)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import common
from parts import _cases

TITLE = "Case study: sample size"
SWEEP = "sample_size.toml"


def tiny(config: dict[str, Any]) -> dict[str, Any]:
    """One data seed, 1 epoch, sample sizes 2 and 4."""
    return _cases.shrink(config, {"sample_size": 2})


def report(results: Path, figures: Path) -> str:
    return _cases.factor_section(
        TITLE,
        common.load_results(results, "sample_size"),
        ["sample_size"],
        ["sample size"],
        figures,
        "sample_size",
        intro="BDPL sampling 2 to 16 prompts per step (the variance-reduced estimator needs "
        "at least 2); training queries grow with the sample size, so the paid-query column "
        "is the price of each row.",
        log_x=True,
    )
