"""RandomSearch and ManualPrompt: same surface and metering as the Optimizer."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import bdpl
import bdpl.baselines
from bdpl.baselines import ManualPrompt, RandomSearch
from bdpl.metering import Budget
from bdpl.optimizer import Optimizer
from bdpl.tasks import Dataset, Example, get_task
from bdpl.testing import FakeBackend, Planted

WORDS = [f"w{i}" for i in range(12)]


def sst2(n: int = 16, offset: int = 0) -> Dataset:
    return Dataset(
        get_task("sst2"),
        tuple(Example(f"review {i}", label=str(i % 2)) for i in range(offset, offset + n)),
    )


TRAIN, DEV = sst2(), sst2(8, offset=100)
FAKE = FakeBackend(
    planted=Planted.for_dataset(
        Dataset(TRAIN.task, TRAIN.examples + DEV.examples), WORDS, prompt_length=3, seed=1
    )
)


def search(seed: int = 0, **kwargs: object) -> RandomSearch:
    options: dict[str, object] = {"prompt_length": 3, "sample_size": 6, "epochs": 4}
    options.update(kwargs)
    return RandomSearch(FAKE, candidates=WORDS, seed=seed, cache=False, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("limit", [1, 7, 50, 100, 333, 1000])
def test_random_search_never_exceeds_its_budget(limit: int) -> None:
    rs = search(budget=Budget(max_queries=limit), epochs=20)
    result = rs.fit(TRAIN, DEV)
    assert rs.meter.stats.paid_queries <= limit
    assert result.stop_reason.startswith("budget")
    assert len(result.prompt) == 3 and all(p in WORDS for p in result.prompt)


def test_random_search_is_reproducible_by_seed() -> None:
    a, b, c = search(seed=5), search(seed=5), search(seed=6)
    ra, rb, rc = a.fit(TRAIN, DEV), b.fit(TRAIN, DEV), c.fit(TRAIN, DEV)
    assert ra == rb
    assert [h.prompt for h in ra.history] != [h.prompt for h in rc.history]
    assert [x.tolist() for x in search(seed=5).ask()] == [x.tolist() for x in search(seed=5).ask()]
    assert [x.tolist() for x in search(seed=5).ask()] != [x.tolist() for x in search(seed=6).ask()]


def test_random_search_draws_uniformly_and_ignores_losses() -> None:
    rs = search(sample_size=500)
    before = np.array([x for x in rs.ask()])
    assert before.shape == (500, 3) and set(before.ravel().tolist()) == set(range(len(WORDS)))
    counts = np.bincount(before.ravel(), minlength=len(WORDS))
    assert counts.min() > 80 and counts.max() < 170  # 125 expected per candidate
    twin = search(sample_size=500)
    twin.ask()
    twin.tell([[0, 0, 0]], [0.0])  # what it is told does not bias what it asks
    assert [x.tolist() for x in twin.ask()] == [x.tolist() for x in rs.ask()]


def test_recommend_is_the_lowest_mean_told_loss() -> None:
    rs = search()
    assert rs.recommend() == [WORDS[0]] * 3  # nothing told yet
    rs.tell([[1, 2, 3], [4, 5, 6]], [0.5, 0.7])
    assert rs.recommend() == ["w1", "w2", "w3"]
    rs.tell([[1, 2, 3]], [1.3])  # its mean is now 0.9
    assert rs.recommend() == ["w4", "w5", "w6"]
    with pytest.raises(bdpl.ConfigError, match="2 prompts but 1 losses"):
        rs.tell([[1, 2, 3], [1, 1, 1]], [0.1])


def test_random_search_has_the_optimizers_query_structure() -> None:
    rs, opt = (
        search(),
        Optimizer(
            FAKE, candidates=WORDS, prompt_length=3, sample_size=6, epochs=4, seed=0, cache=False
        ),
    )
    assert rs.max_queries(len(TRAIN), len(DEV)) == opt.max_queries(len(TRAIN), len(DEV))
    result = rs.fit(TRAIN, DEV)
    assert result.queries == rs.meter.stats.queries <= rs.max_queries(len(TRAIN), len(DEV))
    assert result.indices == [WORDS.index(p) for p in result.prompt]
    assert result.dev_score == max(h.dev_score for h in result.history if h.dev_score is not None)
    assert rs.evaluate(DEV) == result.dev_score  # the best on dev is what it keeps


def test_manual_prompt_is_the_template_alone() -> None:
    manual = ManualPrompt(FAKE, cache=False)
    result = manual.fit(TRAIN, DEV)
    opt = Optimizer(FAKE, candidates=WORDS, prompt_length=3, cache=False)
    assert result.prompt == [] and result.dev_score == opt.evaluate(DEV, prompt=[])
    assert result.queries == len(DEV) == manual.meter.stats.queries
    assert manual.evaluate(TRAIN) == opt.evaluate(TRAIN, prompt=[])
    assert manual.predict(DEV) == opt.predict(DEV, prompt=[])


def test_manual_prompt_stops_cleanly_at_its_budget() -> None:
    manual = ManualPrompt(FAKE, cache=False, budget=Budget(max_queries=3))
    result = manual.fit(TRAIN, DEV)
    assert result.dev_score is None and result.stop_reason.startswith("budget")
    assert manual.meter.stats.paid_queries <= 3


def test_doctests() -> None:
    result = doctest.testmod(bdpl.baselines)
    assert result.attempted > 0 and result.failed == 0


def test_baselines_reject_settings_they_do_not_use() -> None:
    with pytest.raises(bdpl.ConfigError, match="learning_rate"):
        RandomSearch(FAKE, learning_rate=0.1)
    with pytest.raises(bdpl.ConfigError, match="prompt_length"):
        ManualPrompt(FAKE, prompt_length=3)
    assert ManualPrompt(FAKE, budget=Budget(max_queries=5)).meter.budget.max_queries == 5
