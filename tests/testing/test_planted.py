"""Planted: validation, a stable sha256, and planting over several datasets at once."""

from __future__ import annotations

import pytest

from bdpl.errors import ConfigError
from bdpl.tasks import Dataset, Example, get_task
from bdpl.testing import FakeBackend, Planted

CANDIDATES = ["alpha", "beta", "gamma delta", "gamma", "delta", "eps"]


def sst2_data(n: int = 40, offset: int = 0) -> Dataset:
    return Dataset(
        get_task("sst2"),
        tuple(
            Example(f"review {i} says things", label=str(i % 2)) for i in range(offset, offset + n)
        ),
    )


def test_planted_validation() -> None:
    data = sst2_data()
    with pytest.raises(ConfigError):
        Planted.for_dataset(data, ["a", "a"], prompt_length=1)
    with pytest.raises(ConfigError):
        Planted.for_dataset(data, ["a", "  "], prompt_length=1)
    with pytest.raises(ConfigError):
        Planted.for_dataset(data, ["a", "b"], prompt_length=2, best=[0])
    bad = Dataset(data.task, (Example("x", label="7"),))
    with pytest.raises(ConfigError):
        Planted.for_dataset(bad, ["a", "b"], prompt_length=1)
    a = Planted.for_dataset(data, CANDIDATES, prompt_length=2, seed=1)
    b = Planted.for_dataset(sst2_data(), CANDIDATES, prompt_length=2, seed=1)
    assert a.sha256 == b.sha256 and a == b
    assert Planted.for_dataset(data, CANDIDATES, prompt_length=2, seed=2).sha256 != a.sha256


def test_planting_over_train_and_dev_is_planting_over_their_union() -> None:
    train, dev = sst2_data(16), sst2_data(8, offset=100)
    union = Dataset(train.task, train.examples + dev.examples)
    both = Planted.for_dataset([train, dev], CANDIDATES, prompt_length=2, seed=4)
    assert both == Planted.for_dataset(union, CANDIDATES, prompt_length=2, seed=4)
    assert (
        both.sha256 == Planted.for_dataset((train, dev), CANDIDATES, prompt_length=2, seed=4).sha256
    )
    assert len(both.answers) == 24
    fake = FakeBackend(planted=both)
    assert len(fake.score([dev.task.render(both.best_prompt, e) for e in dev])) == 8


def test_planting_over_several_datasets_needs_one_task() -> None:
    other = Dataset(get_task("mrpc"), (Example("a", "b", label="1"),))
    with pytest.raises(ConfigError, match="one task"):
        Planted.for_dataset([sst2_data(), other], CANDIDATES, prompt_length=1)
    with pytest.raises(ConfigError, match="at least one dataset"):
        Planted.for_dataset([], CANDIDATES, prompt_length=1)
