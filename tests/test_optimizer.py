"""Optimizer: planted recovery, ask/tell, best copy, save/load, determinism, dedup, budget."""

from __future__ import annotations

import doctest
import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bdpl.errors import ConfigError
from bdpl.metering import Budget, Meter
from bdpl.optimizer import Optimizer, OptimizerState
from bdpl.tasks import Dataset, Example, get_task
from bdpl.testing import FakeBackend, Planted
from bdpl.types import Query

ROOT = Path(__file__).resolve().parents[1]
WORDS = [f"w{i}" for i in range(20)]


def make_optimizer(backend: FakeBackend, **kwargs: Any) -> Optimizer:
    if "meter" not in kwargs:
        kwargs.setdefault("cache", False)  # these tests count backend calls
    return Optimizer(backend, **kwargs)


def sst2(n: int = 32, offset: int = 0) -> Dataset:
    return Dataset(
        get_task("sst2"),
        tuple(
            Example(f"review {i} of a film", label=str(i % 2)) for i in range(offset, offset + n)
        ),
    )


def planted(seed: int, data: Dataset | list[Dataset], prompt_length: int = 4) -> Planted:
    return Planted.for_dataset(data, WORDS, prompt_length=prompt_length, seed=seed)


# Planted recovery: 4 positions x 20 candidates, 16 training examples, 80 steps of 20 prompts.
# Worst case (Optimizer.max_queries) is 40 * 20 * 16 = 12,800 queries per seed; prompt
# de-duplication brings the actual number under that.
RECOVERY = {"prompt_length": 4, "sample_size": 20, "batch_size": 8, "epochs": 40}
RECOVERY_BUDGET = 12_800


@pytest.mark.parametrize("estimator", ["loo", "loo-rank", "reference"])
def test_recovers_planted_prompt_for_9_of_10_seeds(estimator: str) -> None:
    """Within 12,800 queries per seed, the best prompt is found at every position."""
    train = sst2(16)
    found = 0
    for seed in range(10):
        plant = planted(seed, train)
        opt = make_optimizer(
            FakeBackend(planted=plant, seed=seed),
            candidates=WORDS,
            estimator=estimator,
            learning_rate=1e-2 if estimator == "reference" else None,
            seed=seed,
            **RECOVERY,  # type: ignore[arg-type]
        )
        assert opt.max_queries(len(train)) == RECOVERY_BUDGET
        result = opt.fit(train)
        assert result.queries <= RECOVERY_BUDGET and result.stop_reason == "epochs"
        found += result.prompt == plant.best_prompt
    assert found >= 9


def test_ask_tell_recommend() -> None:
    opt = make_optimizer(FakeBackend(), candidates=WORDS[:5], prompt_length=3, sample_size=4)
    prompts = opt.ask()
    assert len(prompts) == 4 and all(p.shape == (3,) and p.dtype == np.int64 for p in prompts)
    assert all(0 <= i < 5 for p in prompts for i in p)
    np.testing.assert_allclose(opt.probs, 0.2)
    # Telling a low loss for candidate 3 at every position makes it the recommendation.
    for _ in range(20):
        prompts = [np.array([3, 3, 3]), np.array([0, 1, 2]), np.array([4, 0, 1])]
        opt.tell(prompts, [0.0, 1.0, 1.0])
    assert opt.recommend() == ["w3", "w3", "w3"]


def test_dedup_scores_identical_prompts_once() -> None:
    train = sst2(8)
    fake = FakeBackend()
    opt = make_optimizer(
        fake, task=train.task, candidates=WORDS[:3], prompt_length=2, sample_size=10
    )
    # A distribution peaked on one prompt: every sample is the same prompt.
    state = opt.state
    peaked = np.full_like(state.estimator.params, -50.0)
    peaked[:, 1] = 0.0
    opt.state = OptimizerState(state.estimator._replace(params=peaked), state.rng)
    opt.step(list(train.examples))
    assert sum(len(c) for c in fake.calls) == len(train) == opt.queries


def test_fit_keeps_a_copy_of_the_best_and_evaluates() -> None:
    train, dev = sst2(16), sst2(16, offset=100)
    plant = Planted.for_dataset(
        Dataset(train.task, train.examples + dev.examples), WORDS, prompt_length=2, seed=1
    )
    fake = FakeBackend(planted=plant)
    opt = make_optimizer(
        fake, candidates=WORDS, prompt_length=2, sample_size=8, batch_size=8, epochs=15
    )
    opt.evaluate(dev, [])  # before the fit: not counted in the fit's queries
    before = sum(len(c) for c in fake.calls)
    result = opt.fit(train, dev)
    assert result.queries == sum(len(c) for c in fake.calls) - before
    # The selection after the last epoch scores the manual prompt too.
    assert result.history[-1].queries < result.queries <= opt.max_queries(16, 16)
    assert len(result.history) == 15 and all(r.dev_score is not None for r in result.history)
    assert result.dev_score == max(r.dev_score or 0.0 for r in result.history)
    assert result.prompt == opt.best_prompt == plant.best_prompt
    assert opt.evaluate(dev) == result.dev_score == 1.0
    assert opt.predict(dev) == dev.label_indices()
    assert opt.best_state is not None
    kept = opt.best_state.params.copy()
    assert not np.shares_memory(opt.best_state.params, opt.state.estimator.params)
    for _ in range(5):
        opt.step(list(train.examples))
    np.testing.assert_array_equal(opt.best_state.params, kept)


def fit_digest(seed: int) -> str:
    train = sst2(16)
    opt = make_optimizer(
        FakeBackend(planted=planted(3, train, 3)),
        candidates=WORDS,
        prompt_length=3,
        sample_size=6,
        batch_size=8,
        epochs=3,
        seed=seed,
    )
    result = opt.fit(train)
    blob = opt.probs.tobytes() + json.dumps(result.prompt).encode()
    return hashlib.sha256(blob).hexdigest()


def test_same_seed_same_result_across_processes() -> None:
    here = fit_digest(5)
    assert fit_digest(5) == here != fit_digest(6)
    code = "from tests.test_optimizer import fit_digest; print(fit_digest(5))"
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert out.stdout.strip() == here


def test_budget_stops_cleanly_with_best_so_far() -> None:
    train, dev = sst2(16), sst2(8, offset=50)
    fake = FakeBackend(planted=planted(0, [train, dev], 2))
    meter = Meter(fake, budget=Budget(max_queries=1000), cache=False)
    opt = make_optimizer(
        fake, candidates=WORDS, prompt_length=2, sample_size=8, batch_size=16, meter=meter
    )
    result = opt.fit(train, dev)
    assert result.stop_reason == "budget: queries"
    used = meter.stats.paid_queries
    assert used <= 1000 and sum(len(c) for c in fake.calls) == used
    assert len(result.prompt) == 2 and result.dev_score is not None
    assert result.history[-1].dev_score is None  # the budget stopped that epoch


def test_fit_builds_vocabulary_and_shows_progress(capsys: pytest.CaptureFixture[str]) -> None:
    words = ["the", "plot", "was", "good", "and", "acting", "bad", "but", "music", "fine"]
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(words, 12)) for i in range(60)]
    train = Dataset(
        get_task("sst2"), tuple(Example(t, label=str(i % 2)) for i, t in enumerate(texts))
    )
    opt = make_optimizer(
        FakeBackend(),
        prompt_length=2,
        sample_size=3,
        batch_size=60,
        epochs=1,
        vocab_size=10,
        progress=True,
    )
    result = opt.fit(train)
    assert opt.candidates is not None and 2 <= len(opt.candidates) <= 10
    assert all(t in opt.candidates for t in result.prompt)
    assert "bdpl" in capsys.readouterr().err


def test_max_queries() -> None:
    opt = make_optimizer(FakeBackend(), sample_size=20, epochs=30)
    # 30 epochs of 20 prompts x 32 examples and one dev pass; then the selection's
    # comparison: the manual and the best prompt on dev and on train.
    assert opt.max_queries(32, 32) == 30 * (20 * 32 + 32) + 4 * 32
    assert opt.max_queries(32, 0) == 30 * 20 * 32
    paired = make_optimizer(FakeBackend(), sample_size=20, epochs=30, selection="paired")
    assert paired.max_queries(32, 32) == opt.max_queries(32, 32)  # both rules compare


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"prompt_length": 0}, "prompt_length"),
        ({"sample_size": 1}, "sample_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"epochs": True}, "epochs"),
        ({"vocab_size": 1}, "vocab_size"),
        ({"seed": -1}, "seed"),
        ({"estimator": "sgd"}, "unknown estimator"),
        ({"learning_rate": -0.1}, "learning_rate"),
        ({"learning_rate": "fast"}, "learning_rate"),
        ({"loss": "mse"}, "loss"),
        ({"margin": 0}, "margin"),
        ({"candidates": ["a", "a"]}, "candidates"),
        ({"candidates": "abc"}, "candidates"),
        ({"cache": False, "meter": object()}, "meter"),
    ],
)
def test_validation(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        make_optimizer(FakeBackend(), **kwargs)  # type: ignore[arg-type]


def test_fit_rejects_empty_data() -> None:
    opt = make_optimizer(FakeBackend(), candidates=WORDS[:3], prompt_length=1, sample_size=2)
    with pytest.raises(ConfigError, match="training set is empty"):
        opt.fit(sst2(0))
    with pytest.raises(ConfigError, match="dev set is empty"):
        opt.fit(sst2(4), sst2(0))


def test_ask_needs_candidates() -> None:
    with pytest.raises(ConfigError, match="candidates"):
        make_optimizer(FakeBackend()).ask()


def test_doctests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bdpl.optimizer

    monkeypatch.setenv("BDPL_CACHE_DIR", str(tmp_path))  # keep any query cache out of $HOME
    result = doctest.testmod(bdpl.optimizer, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_a_bad_label_anywhere_is_reported_before_any_query() -> None:
    from bdpl.errors import DataError

    task = get_task("sst2")
    good = tuple(Example(f"text {i}", label=str(i % 2)) for i in range(8))
    bad_dev = Dataset(task, (*good[:3], Example("odd one", label="2")))
    backend = FakeBackend()
    opt = Optimizer(backend, candidates=["a", "b", "c"], prompt_length=2, epochs=1, cache=False)
    with pytest.raises(DataError, match="'2'"):
        opt.fit(Dataset(task, good), bad_dev)
    assert backend.call_count == 0


def test_a_meter_alone_configures_the_optimizer() -> None:
    fake = FakeBackend()
    with Meter(fake, cache=False) as meter:
        opt = Optimizer(meter=meter, candidates=WORDS[:3], prompt_length=1, sample_size=2)
        assert opt.backend is fake is meter.backend
        with pytest.raises(AttributeError):
            opt.backend = FakeBackend()  # type: ignore[misc]
        assert Optimizer(fake, meter=meter).meter is meter  # the same object: fine
        opt.close()
        opt.close()  # idempotent, and a meter passed in is left open:
        assert meter.score([Query("It was", ".", (" bad", " good"))])


def test_a_backend_that_is_not_the_meters_is_refused() -> None:
    with (
        Meter(FakeBackend(), cache=False) as meter,
        pytest.raises(ConfigError, match="not the meter's backend"),
    ):
        Optimizer(FakeBackend(), meter=meter)
    with pytest.raises(ConfigError, match="no backend"):
        Optimizer()
    with pytest.raises(ConfigError, match="not both"):
        Optimizer(meter=Meter(FakeBackend(), cache=False), cache=False)


def test_meter_options_still_work_with_a_deprecation_warning(tmp_path: Path) -> None:
    fake = FakeBackend()
    with pytest.warns(DeprecationWarning, match=r"meter=Meter\(backend, price=") as caught:
        opt = Optimizer(fake, candidates=WORDS[:3], meter_options={"cache": False})
    assert caught[0].filename == __file__  # points at the caller
    assert opt.meter.cache.enabled is False and opt.backend is fake
    opt.save(tmp_path / "p.json")
    with pytest.warns(DeprecationWarning, match="meter_options is deprecated") as caught:
        again = Optimizer.load(tmp_path / "p.json", fake, meter_options={"cache": False})
    assert caught[0].filename == __file__
    assert again.meter.cache.enabled is False and again.candidates == WORDS[:3]
    again.close()


class ClosingBackend(FakeBackend):
    """A fake that counts close() calls (the optimizer and meter must make none)."""

    closed = 0

    def close(self) -> None:
        self.closed += 1


def test_closing_an_optimizer_never_closes_the_users_backend() -> None:
    backend = ClosingBackend()
    with Optimizer(backend, candidates=WORDS[:3], cache=False) as opt:
        pass
    opt.close()
    assert backend.closed == 0


def test_phrases_and_the_tokens_alias() -> None:
    opt = make_optimizer(FakeBackend(), candidates=["a film", "the plot", "meh"], prompt_length=2)
    assert opt.phrases([0, 1]) == ["a film", "the plot"] == opt.tokens([0, 1])
