"""Case study: prompt vocabulary size (25 and 200 candidates) and source (train, pool,
English words)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import common
from parts import _cases

TITLE = "Case study: prompt vocabulary"
SWEEP = "vocabulary.toml"


def tiny(config: dict[str, Any]) -> dict[str, Any]:
    """One data seed, 1 epoch, every source and size."""
    return _cases.shrink(config)


def report(results: Path, figures: Path) -> str:
    return _cases.factor_section(
        TITLE,
        common.load_results(results, "vocabulary"),
        ["vocab_source", "vocab_size"],
        ["source", "size"],
        figures,
        "vocabulary",
        intro="The candidates each position chooses from (`--vocab-source`, `--vocab-size`): "
        "`train` is the default (PMI n-grams of the few-shot training texts, filled up with "
        "relaxed PMI n-grams and then frequent English words), `pool` adds the task's whole "
        "training data as unlabelled text (all candidates are PMI n-grams), `english` takes "
        "the most frequent English words alone.",
        log_x=True,
    )
