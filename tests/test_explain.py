"""Optimizer.explain: per-position candidates and ablations, metered, JSON."""

from __future__ import annotations

import doctest
import json

import numpy as np
import pytest

import bdpl.explain
from bdpl.errors import BudgetExceededError, ConfigError
from bdpl.metering import Budget, Meter
from bdpl.optimizer import Optimizer
from bdpl.tasks import Dataset, Example, get_task
from bdpl.testing import FakeBackend, Planted

WORDS = [f"w{i}" for i in range(10)]
DATA = Dataset(get_task("sst2"), tuple(Example(f"review {i}", label=str(i % 2)) for i in range(24)))
TRAIN, DEV = Dataset(DATA.task, DATA.examples[:16]), Dataset(DATA.task, DATA.examples[16:])
FAKE = FakeBackend(planted=Planted.for_dataset(DATA, WORDS, prompt_length=3, seed=4))


def fitted(**kwargs: object) -> Optimizer:
    opt = Optimizer(
        FAKE,
        candidates=WORDS,
        prompt_length=3,
        sample_size=6,
        batch_size=16,
        epochs=6,
        seed=0,
        **kwargs,  # type: ignore[arg-type]
    )
    opt.fit(TRAIN, DEV)
    return opt


def test_ablations_equal_direct_evaluations() -> None:
    opt = fitted(cache=False)
    report = opt.explain(DEV, top=4)
    prompt = opt.best_prompt
    assert prompt is not None and report.prompt == prompt
    assert report.score == opt.evaluate(DEV, prompt) and report.metric == "accuracy"
    assert report.manual_score == opt.evaluate(DEV, [])
    assert opt.best_state is not None
    probs = opt.estimator.probs(opt.best_state)
    for i, pos in enumerate(report.positions):
        assert pos.position == i and pos.phrase == prompt[i]
        assert pos.removed_score == opt.evaluate(DEV, prompt[:i] + prompt[i + 1 :])
        swapped = [*prompt[:i], pos.replacement, *prompt[i + 1 :]]
        assert pos.replaced_score == opt.evaluate(DEV, swapped)
        assert pos.removed_change == pos.removed_score - report.score
        assert pos.replaced_change == pos.replaced_score - report.score
        order = np.argsort(-probs[i], kind="stable")
        assert [p for p, _ in pos.top] == [WORDS[j] for j in order[:4]]
        assert [q for _, q in pos.top] == sorted((q for _, q in pos.top), reverse=True)
        assert pos.probability == probs[i][WORDS.index(pos.phrase)]
        assert pos.replacement != pos.phrase
        assert pos.replacement == next(WORDS[j] for j in order if WORDS[j] != pos.phrase)


def test_every_evaluation_is_metered() -> None:
    opt = fitted(cache=False)
    before = opt.meter.stats.queries
    report = opt.explain(DEV)
    assert report.queries == (2 * 3 + 2) * len(DEV) == opt.meter.stats.queries - before
    spent = fitted(cache=False).meter.stats.paid_queries  # what the fit alone pays
    again = fitted(meter=Meter(FAKE, cache=False, budget=Budget(max_queries=spent + 20)))
    with pytest.raises(BudgetExceededError):
        again.explain(DEV)
    assert again.meter.stats.paid_queries <= spent + 20


def test_json_round_trip_and_explicit_prompt() -> None:
    opt = fitted(cache=False)
    report = opt.explain(DEV, top=2, prompt=["w1", "w2", "w3"])
    data = json.loads(report.dumps())
    assert data == report.to_json() and data["prompt"] == ["w1", "w2", "w3"]
    assert data["positions"][0]["top"][0][0] in WORDS and len(data["positions"]) == 3
    with pytest.raises(ConfigError, match="not among"):
        opt.explain(DEV, prompt=["w1", "w2", "nope"])
    with pytest.raises(ConfigError, match="has 2 phrases"):
        opt.explain(DEV, prompt=["w1", "w2"])
    with pytest.raises(ConfigError, match="top"):
        opt.explain(DEV, top=0)
    with pytest.raises(ConfigError, match="candidates"):
        Optimizer(FAKE, cache=False).explain(DEV)


def test_doctests() -> None:
    result = doctest.testmod(bdpl.explain)
    assert result.attempted > 0 and result.failed == 0


def test_ablations_are_not_trivial_on_a_planted_fake() -> None:
    report = fitted(cache=False).explain(DEV)
    scores = {report.score, report.manual_score}
    scores |= {p.removed_score for p in report.positions}
    scores |= {p.replaced_score for p in report.positions}
    assert len(scores) > 2, report.dumps()  # the positions matter, and differently
