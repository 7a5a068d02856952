"""k-shot sampling: stratified, seeded, order-keeping, with clear errors."""

from __future__ import annotations

from collections import Counter

import pytest

from bdpl.data import sample_k_shot
from bdpl.errors import ConfigError, DataError
from bdpl.tasks import Example


def _examples(counts: dict[str, int]) -> list[Example]:
    return [Example(f"{label} {i}", label=label) for label, n in counts.items() for i in range(n)]


def test_sample_k_shot_is_stratified_seeded_and_ordered() -> None:
    examples = _examples({"0": 10, "1": 30})
    sample = sample_k_shot(examples, "sst2", 4, seed=3)
    assert Counter(e.label for e in sample) == {"0": 4, "1": 4}
    assert sample == sorted(sample, key=examples.index)  # input order kept
    assert sample_k_shot(examples, "sst2", 4, seed=3) == sample
    assert sample_k_shot(examples, "sst2", 4, seed=4) != sample
    # A short class gives all it has.
    assert Counter(e.label for e in sample_k_shot(examples, "sst2", 12, seed=0)) == {
        "0": 10,
        "1": 12,
    }


@pytest.mark.parametrize("k", [0, -1, 1.5, True])
def test_sample_k_shot_rejects_bad_k(k: object) -> None:
    with pytest.raises(ConfigError, match="k must be"):
        sample_k_shot(_examples({"0": 2}), "sst2", k, seed=0)  # type: ignore[arg-type]


def test_sample_k_shot_rejects_unknown_labels() -> None:
    with pytest.raises(DataError, match=r"example 1: label '7'"):
        sample_k_shot([Example("a", label="0"), Example("b", label="7")], "sst2", 1, seed=0)
