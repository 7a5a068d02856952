"""Case study: prompt length (1, 3, 5, 10, 20 positions)."""

from parts import _cases

TITLE = "Case study: prompt length"
SWEEP = "prompt_length.toml"
tiny, report = _cases.factor_part(
    "prompt_length", TITLE, ["prompt_length"], ["prompt length"], keep={"prompt_length": 2},
    log_x=True,
    intro="BDPL with 1 to 20 learned positions in front of the template (the reference "
    "code's default is 10; the main job uses 3).",
)  # fmt: skip
