"""Case study: cross-entropy vs hinge loss."""

from parts import _cases

TITLE = "Case study: loss"
SWEEP = "loss.toml"
tiny, report = _cases.factor_part(
    "loss", TITLE, ["loss"], ["loss"],
    intro="BDPL minimising the cross-entropy of the label scores (`ce`, the paper's) or the "
    "multi-class hinge `max(0, 1 - (s_y - max_k s_k))` on the label log-probabilities "
    "(`hinge`).",
)  # fmt: skip
