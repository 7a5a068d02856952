"""Case study: sample size (prompts sampled per step: 2, 4, 8, 16)."""

from parts import _cases

TITLE = "Case study: sample size"
SWEEP = "sample_size.toml"
tiny, report = _cases.factor_part(
    "sample_size", TITLE, ["sample_size"], ["sample size"], keep={"sample_size": 2},
    log_x=True,
    intro="BDPL sampling 2 to 16 prompts per step (the variance-reduced estimator needs at "
    "least 2; the reference code's default is 20, the main job's 8); training queries grow "
    "with the sample size, so the queries column is the price of each row.",
)  # fmt: skip
