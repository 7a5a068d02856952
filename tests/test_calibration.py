"""Calibration: a planted label prior is removed exactly, in training and prediction alike."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from bdpl.backends.base import Capabilities
from bdpl.calibration import (
    CONTENT_FREE_INPUTS,
    batch,
    calibrate,
    calibrated_scores,
    content_free,
    content_free_queries,
    extra_queries,
    normalise,
)
from bdpl.errors import BudgetExceededError, ConfigError
from bdpl.metering import Budget, QueryCache
from bdpl.optimizer import Optimizer
from bdpl.plan import estimate_fit_cost
from bdpl.tasks import PRESETS, Dataset, Example, Task, get_task
from bdpl.testing import FakeBackend, Planted
from bdpl.types import LabelScores, Query

WORDS = [f"w{i}" for i in range(12)]


class PriorBackend:
    """``inner``'s answers with a planted label prior added to every logit.

    Content-free inputs get the prior alone (what a perfectly content-free input would show),
    so contextual calibration must give back exactly ``inner``'s distribution.
    """

    def __init__(self, inner: FakeBackend, prior: Sequence[float]) -> None:
        self.inner = inner
        self.log_prior = np.log(np.asarray(prior, dtype=np.float64))
        self.identity = f"prior:{list(prior)}:{inner.identity}"
        self.capabilities = Capabilities(max_batch_size=64, is_local=True)
        self.content_free_seen = 0

    def score(self, queries: Sequence[Query]) -> list[LabelScores]:
        free = [
            all(q.before[a:b] in CONTENT_FREE_INPUTS for a, b in q.input_spans) for q in queries
        ]
        self.content_free_seen += sum(free)
        real = self.inner.score([q for q, f in zip(queries, free, strict=True) if not f])
        answers = iter(real)
        out = []
        for f in free:
            lp = np.zeros(len(self.log_prior)) if f else np.array(next(answers).logprobs)
            out.append(LabelScores(tuple(normalise(lp + self.log_prior).tolist())))
        return out


def scorer(backend: object) -> object:
    return lambda qs: np.array([s.logprobs for s in backend.score(qs)])  # type: ignore[attr-defined]


def examples(task: Task, n: int = 9) -> tuple[Example, ...]:
    return tuple(
        Example(
            f"text {i} here",
            f"other {i}" if task.is_pair else None,
            label=task.labels[i % len(task.labels)],
        )
        for i in range(n)
    )


# Binary, 3-class pair and 6-class single-text presets.
MULTI = ["sst2", "mnli", "citation_intent"]


def prior_for(task: Task) -> list[float]:
    k = len(task.labels)
    raw = np.arange(1, k + 1, dtype=np.float64) ** 3  # strongly favours the last label
    return (raw / raw.sum()).tolist()


@pytest.mark.parametrize("name", MULTI)
def test_content_free_removes_a_planted_prior_exactly(name: str) -> None:
    task = get_task(name)
    inner = FakeBackend(seed=3)
    biased = PriorBackend(inner, prior_for(task))
    exs = examples(task)
    prompts = [["w1", "w2"], []]
    got = calibrated_scores(scorer(biased), task, prompts, exs, method="content-free")  # type: ignore[arg-type]
    plain = calibrated_scores(scorer(inner), task, prompts, exs, method=None)  # type: ignore[arg-type]
    np.testing.assert_allclose(got, normalise(plain), atol=1e-12)
    # Each prompt sent its content-free inputs once, whatever the number of examples.
    assert biased.content_free_seen == len(prompts) * len(CONTENT_FREE_INPUTS)
    # Uncalibrated, the prior wins nearly everywhere; calibrated, the inner model decides.
    raw = calibrated_scores(scorer(biased), task, prompts, exs, method=None)  # type: ignore[arg-type]
    assert (raw.argmax(-1) == len(task.labels) - 1).mean() > (plain.argmax(-1) == 2).mean()


@pytest.mark.parametrize("k", [2, 3, 6])
def test_content_free_inputs_become_uniform_and_a_prior_shift_cancels(k: int) -> None:
    rng = np.random.default_rng(k)
    lp = normalise(rng.normal(size=(3, 5, k)))
    free = normalise(rng.normal(size=(3, 1, k)))
    shift = np.log(rng.dirichlet(np.ones(k)))[None, None, :]
    # The prior shift is removed exactly, whatever it is (content-free: exactly when the
    # content-free inputs agree, here one input; PriorBackend checks several that agree).
    np.testing.assert_allclose(
        content_free(lp + shift, free + shift), content_free(lp, free), atol=1e-12
    )
    np.testing.assert_allclose(batch(lp + shift), batch(lp), atol=1e-12)
    # One content-free input calibrated by itself is uniform.
    np.testing.assert_allclose(np.exp(content_free(free, free)), 1.0 / k, atol=1e-12)
    # After batch calibration the examples' mean log-prob is the same for every label.
    mean = batch(lp).mean(axis=1)
    np.testing.assert_allclose(mean - mean[:, :1], 0.0, atol=1e-12)
    # Outputs are normalised distributions.
    np.testing.assert_allclose(np.exp(content_free(lp, free)).sum(-1), 1.0, atol=1e-12)


def test_calibrate_checks_its_arguments() -> None:
    lp = np.log(np.full((1, 2, 2), 0.5))
    with pytest.raises(ConfigError, match="calibration must be"):
        calibrate("platt", lp)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="needs the content-free scores"):
        calibrate("content-free", lp)
    with pytest.raises(ConfigError, match="do not fit"):
        content_free(lp, np.zeros((1, 2, 3)))
    with pytest.raises(ConfigError, match="at least one"):
        content_free(lp, np.zeros((1, 0, 2)))
    # -inf and NaN are floored, never propagated.
    got = calibrate("batch", np.array([[[-np.inf, 0.0], [np.nan, 0.0]]]))
    assert np.all(np.isfinite(got))
    assert calibrate(None, lp).shape == lp.shape
    assert extra_queries("content-free") == len(CONTENT_FREE_INPUTS)
    assert extra_queries("batch") == extra_queries(None) == 0


@pytest.mark.parametrize("name", sorted(PRESETS))
@pytest.mark.parametrize("method", [None, "content-free", "batch"])
def test_every_preset_predicts_under_every_calibration(name: str, method: str | None) -> None:
    task = get_task(name)
    data = Dataset(
        task,
        tuple(
            Example(f"text {i}", "pair text" if task.is_pair else None, label=task.labels[0])
            for i in range(4)
        ),
    )
    opt = Optimizer(FakeBackend(), task=task, candidates=WORDS, calibration=method, cache=False)  # type: ignore[arg-type]
    got = opt.predict(data, ["w1"])
    assert len(got) == 4 and all(0 <= y < len(task.labels) for y in got)
    assert opt.queries == 4 + extra_queries(method)  # type: ignore[arg-type]
    for q in content_free_queries(task, ["w1"]):
        inputs = [q.before[a:b] for a, b in q.input_spans]
        assert len(inputs) == (2 if task.is_pair else 1)
        assert all(t in CONTENT_FREE_INPUTS for t in inputs) and q.before.startswith("w1")


def planted_with_prior(train: Dataset) -> tuple[Planted, PriorBackend]:
    planted = Planted.for_dataset(train, WORDS, prompt_length=2, best=[3, 7], strength=2.0)
    return planted, PriorBackend(FakeBackend(planted=planted), [0.9999, 0.0001])


def sst2(n: int, offset: int = 0) -> Dataset:
    return Dataset(
        get_task("sst2"),
        tuple(Example(f"review {i}", label=str(i % 2)) for i in range(offset, offset + n)),
    )


def test_training_with_content_free_calibration_recovers_the_planted_prompt() -> None:
    train = sst2(16)
    planted, biased = planted_with_prior(train)
    settings = {"candidates": WORDS, "prompt_length": 2, "sample_size": 8, "batch_size": 16}
    opt = Optimizer(biased, calibration="content-free", epochs=20, cache=False, **settings)  # type: ignore[arg-type]
    result = opt.fit(train)
    assert result.prompt == planted.best_prompt
    assert opt.evaluate(train) == 1.0
    # Uncalibrated, the prior (99.99% "terrible") hides every prompt's effect at prediction.
    raw = Optimizer(biased, epochs=1, cache=False, **settings)  # type: ignore[arg-type]
    assert raw.evaluate(train, planted.best_prompt) == 0.5
    # Every query, content-free ones included, went through the meter and was counted.
    assert result.queries <= opt.max_queries(len(train))
    assert opt.meter.stats.queries == opt.queries


def test_content_free_queries_are_counted_budgeted_and_cached(tmp_path: Path) -> None:
    data = sst2(5)
    opt = Optimizer(FakeBackend(), task=data.task, candidates=WORDS, calibration="content-free",
                    cache=QueryCache(tmp_path / "c"))  # fmt: skip
    first = opt.predict(data, ["w1"])
    stats = opt.meter.stats
    assert (stats.queries, stats.misses, stats.hits) == (5 + len(CONTENT_FREE_INPUTS), 7, 0)
    assert opt.predict(data, ["w1"]) == first
    assert opt.meter.stats.hits == 7
    tight = Optimizer(FakeBackend(), task=data.task, candidates=WORDS, calibration="content-free",
                      budget=Budget(max_queries=5), cache=False)  # fmt: skip
    with pytest.raises(BudgetExceededError):
        tight.predict(data, ["w1"])


@pytest.mark.parametrize("method", [None, "content-free", "batch"])
def test_cost_estimate_counts_the_extra_queries(method: str | None) -> None:
    train, dev = sst2(20), sst2(6, offset=100)
    opt = Optimizer(FakeBackend(), candidates=WORDS, prompt_length=2, sample_size=4,
                    batch_size=8, epochs=2, calibration=method, cache=False)  # type: ignore[arg-type]  # fmt: skip
    extra = extra_queries(method)  # type: ignore[arg-type]
    n = opt.max_queries(len(train), len(dev))
    # 2 epochs of 3 steps (4 prompts each) and a dev pass; then the paired selection's four
    # passes (manual and learned prompt on dev, kept and manual prompt on train).
    selection = 2 * (6 + extra) + 2 * (20 + extra)
    assert n == 2 * (4 * (20 + 3 * extra) + 6 + extra) + selection
    assert estimate_fit_cost(opt, train, dev).queries == n
    result = opt.fit(train, dev)
    assert result.queries <= n
    # Four distinct prompts per step are rare but possible: the bound is reached exactly then.
    assert opt.meter.stats.queries == result.queries


def test_calibration_is_saved_and_applied_after_load(tmp_path: Path) -> None:
    train = sst2(16)
    _, biased = planted_with_prior(train)
    opt = Optimizer(biased, candidates=WORDS, prompt_length=2, sample_size=8, batch_size=16,
                    epochs=3, calibration="batch", cache=False)  # fmt: skip
    opt.fit(train)
    path = tmp_path / "p.json"
    opt.save(path)
    assert json.loads(path.read_text())["settings"]["calibration"] == "batch"
    loaded = Optimizer.load(path, biased, cache=False)
    assert loaded.calibration == "batch"
    assert loaded.predict(train) == opt.predict(train)
    # A file written before calibration existed loads as uncalibrated (the paper's setting).
    data = json.loads(path.read_text())
    del data["settings"]["calibration"]
    path.write_text(json.dumps(data))
    assert Optimizer.load(path, biased, cache=False).calibration is None


def test_bad_calibration_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="calibration must be None or one of"):
        Optimizer(FakeBackend(), calibration="contextual", cache=False)  # type: ignore[arg-type]
    opt = Optimizer(FakeBackend(), task=get_task("sst2"), candidates=WORDS, calibration="batch",
                    cache=False)  # fmt: skip
    with pytest.raises(ConfigError, match="at least 2 examples"):
        opt.predict(sst2(1), ["w1"])
    with pytest.raises(ConfigError, match="dev set of at least 2"):
        opt.fit(sst2(4), sst2(1, offset=10))
    assert opt.queries == 0  # refused before any query


def test_doctests() -> None:
    import doctest

    import bdpl.calibration

    result = doctest.testmod(bdpl.calibration)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("method", ["manual", "in-context"])
def test_the_baselines_are_calibrated_like_the_prompts_they_are_compared_with(
    method: str,
) -> None:
    from bdpl.baselines import ManualPrompt
    from bdpl.cli.methods import make_optimizer
    from bdpl.metering import Meter

    task = get_task("sst2")
    data = Dataset(task, examples(task, 24))
    biased = PriorBackend(FakeBackend(seed=3), prior_for(task))
    meter = Meter(biased, cache=False)
    settings = {"calibration": "content-free", "seed": 0}
    baseline = make_optimizer(method, biased, data, meter, settings, demonstrations=2)
    assert isinstance(baseline, ManualPrompt) and baseline.calibration == "content-free"
    if method == "manual":
        # The template alone, calibrated: what a calibrated Optimizer gives the empty prompt,
        # not the prior-dominated uncalibrated answer.
        calibrated = Optimizer(biased, cache=False, calibration="content-free")
        plain = ManualPrompt(biased, cache=False)
        assert baseline.predict(data) == calibrated.predict(data, prompt=[])
        assert baseline.predict(data) != plain.predict(data)
        last = len(task.labels) - 1  # the class the planted prior favours
        assert plain.predict(data).count(last) > baseline.predict(data).count(last)
