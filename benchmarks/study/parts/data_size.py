"""Case study: how much labelled data BDPL needs (k = 4, 8, 16, 32 examples per class)."""

from parts import _cases

TITLE = "Case study: training data size"
SWEEP = "data_size.toml"
tiny, report = _cases.factor_part(
    "data_size", TITLE, ["k"], ["k per class"], keep={"k": 2}, log_x=True,
    intro="BDPL with k training and k dev examples per class, each sampled by data seed from "
    "the task's training data (16 per class is the paper's setting).",
)  # fmt: skip
