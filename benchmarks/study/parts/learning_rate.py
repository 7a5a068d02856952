"""Case study: the default estimator's step size (1, 3, 10)."""

from parts import _cases

TITLE = "Case study: learning rate"
SWEEP = "learning_rate.toml"
tiny, report = _cases.factor_part(
    "learning_rate", TITLE, ["learning_rate"], ["learning rate"], log_x=True,
    intro="BDPL (the default `loo` estimator) with step sizes 1 (its default), 3 and 10 on "
    "the logits of the prompt distribution.",
)  # fmt: skip
