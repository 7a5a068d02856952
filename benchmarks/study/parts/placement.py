"""Case study: prompt placement (first, after the input, just before the label slot)."""

from typing import Any

from parts import _cases

TITLE = "Case study: prompt placement"
SWEEP = "placement.toml"
# A template's placement, by where its <prompt> placeholder is.
PLACES = {
    "<s1> It was <slot>.": "first (paper)",
    "<s1> <prompt> It was <slot>.": "after the input",
    "<s1> It was <prompt> <slot>.": "before the slot",
}


def show(key: str, value: Any) -> str:
    """A template as its placement and the template itself."""
    if key == "template":
        return f"{PLACES.get(str(value), 'other')}: `{value}`"
    return str(value)


def place(key: str, value: Any) -> str:
    """A template as its placement alone (the figure's ticks)."""
    return PLACES.get(str(value), str(value))


tiny, report = _cases.factor_part(
    "placement", TITLE, ["template"], ["placement: template"], show=show, tick=place,
    intro="The same learned prompt length in three places of the paper's template "
    "(`<prompt>` marks where it goes; without it the prompt goes first, as in the paper).",
)  # fmt: skip
