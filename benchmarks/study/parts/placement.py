"""Case study: prompt placement (first, after the input, just before the label slot)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import common
from parts import _cases

TITLE = "Case study: prompt placement"
SWEEP = "placement.toml"
# A template's placement, by where its <prompt> placeholder is.
PLACES = {
    "<s1> It was <slot>.": "first (paper)",
    "<s1> <prompt> It was <slot>.": "after the input",
    "<s1> It was <prompt> <slot>.": "before the slot",
}


def tiny(config: dict[str, Any]) -> dict[str, Any]:
    """One data seed, 1 epoch, every placement."""
    return _cases.shrink(config)


def show(key: str, value: Any) -> str:
    """A template as its placement and the template itself."""
    if key == "template":
        return f"{PLACES.get(str(value), 'other')}: `{value}`"
    return str(value)


def report(results: Path, figures: Path) -> str:
    return _cases.factor_section(
        TITLE,
        common.load_results(results, "placement"),
        ["template"],
        ["placement: template"],
        figures,
        "placement",
        intro="The same learned prompt length in three places of the paper's template "
        "(`<prompt>` marks where it goes; without it the prompt goes first, as in the paper).",
        show=show,
    )
