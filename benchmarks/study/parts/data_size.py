"""Case study: how much labelled data BDPL needs (k = 4, 8, 16, 32 examples per class)."""

from parts import _cases

TITLE = "Case study: training data size"
SWEEP = "data_size.toml"
tiny, report = _cases.factor_part(
    "data_size", TITLE, ["k"], ["k per class"], keep={"k": 2}, log_x=True,
    intro="BDPL with k training and k dev examples per class (16 is the paper's setting). "
    "k = 16 reads the LM-BFF 16-shot folders of each data seed, the paper's splits; every "
    "other k is a stratified sample that `load_split` draws by the data seed from the "
    "task's cleaned training data, so only k = 16 comes from another sampler.",
    not_chosen="k is the labelled data a user has, not a setting, and the dev set grows with "
    "it (8 examples at k = 4 on a 2-class task, 64 at k = 32, so their dev scores are not "
    "comparable): dev does not choose it here.",
)  # fmt: skip
