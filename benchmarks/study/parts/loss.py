"""Case study: cross-entropy vs hinge loss."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import common
from parts import _cases

TITLE = "Case study: loss"
SWEEP = "loss.toml"


def tiny(config: dict[str, Any]) -> dict[str, Any]:
    """One data seed, 1 epoch, both losses."""
    return _cases.shrink(config)


def report(results: Path, figures: Path) -> str:
    return _cases.factor_section(
        TITLE,
        common.load_results(results, "loss"),
        ["loss"],
        ["loss"],
        figures,
        "loss",
        intro="BDPL minimising the cross-entropy of the label scores (`ce`, the paper's) or "
        "the multi-class hinge `max(0, 1 - (s_y - max_k s_k))` on the label log-probabilities "
        "(`hinge`).",
    )
