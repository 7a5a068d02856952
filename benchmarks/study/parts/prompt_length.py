"""Case study: prompt length (1, 3, 5, 10, 20 positions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import common
from parts import _cases

TITLE = "Case study: prompt length"
SWEEP = "prompt_length.toml"


def tiny(config: dict[str, Any]) -> dict[str, Any]:
    """One data seed, 1 epoch, lengths 1 and 3."""
    return _cases.shrink(config, {"prompt_length": 2})


def report(results: Path, figures: Path) -> str:
    return _cases.factor_section(
        TITLE,
        common.load_results(results, "prompt_length"),
        ["prompt_length"],
        ["prompt length"],
        figures,
        "prompt_length",
        intro="BDPL with 1 to 20 learned positions in front of the template (the paper "
        "uses up to 50 with RoBERTa-large; the main job uses 3).",
        log_x=True,
    )
