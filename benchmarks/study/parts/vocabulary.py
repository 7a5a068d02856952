"""Case study: prompt vocabulary size (25 and 200 candidates) and source (train, pool,
English words)."""

from parts import _cases

TITLE = "Case study: prompt vocabulary"
SWEEP = "vocabulary.toml"
tiny, report = _cases.factor_part(
    "vocabulary", TITLE, ["vocab_source", "vocab_size"], ["source", "size"], log_x=True,
    intro="The candidates each position chooses from (`--vocab-source`, `--vocab-size`): "
    "`train` is the default (PMI n-grams of the few-shot training texts, filled up with "
    "relaxed PMI n-grams and then frequent English words), `pool` adds the task's whole "
    "training data as unlabelled text (all candidates are PMI n-grams), `english` takes the "
    "most frequent English words alone.",
)  # fmt: skip
