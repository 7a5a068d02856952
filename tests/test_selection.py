"""The paired comparison that decides whether a learned prompt replaces the manual one."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from bdpl.data import load_split
from bdpl.errors import ConfigError
from bdpl.optimizer import Optimizer
from bdpl.selection import (
    PromptReport,
    above_chance,
    binomial_tail,
    bootstrap_p,
    compare,
    mcnemar_p,
)
from bdpl.tasks import Dataset
from bdpl.testing import FakeBackend, Planted


def test_mcnemar_is_the_binomial_tail() -> None:
    # P(X >= 6) for X ~ Bin(8, 1/2) = (28 + 8 + 1) / 256
    assert mcnemar_p(6, 2) == pytest.approx(37 / 256)
    assert mcnemar_p(0, 5) == 1.0
    assert mcnemar_p(0, 0) == 1.0
    with pytest.raises(ConfigError):
        mcnemar_p(-1, 2)


def test_bootstrap_is_seeded_and_one_sided() -> None:
    rng = np.random.default_rng(1)
    better = rng.normal(0.2, 0.3, 40)
    assert bootstrap_p(better, seed=3) == bootstrap_p(better, seed=3)
    assert bootstrap_p(better) < 0.01
    assert bootstrap_p(-better) > 0.99
    with pytest.raises(ConfigError):
        bootstrap_p([])
    with pytest.raises(ConfigError):
        bootstrap_p([0.1, float("nan")])


def test_two_lucky_examples_are_not_enough() -> None:
    # 28/32 against 26/32 (two examples only the candidate gets right), with losses that
    # differ only by noise: the dev-lucky case.
    rng = np.random.default_rng(7)
    base = rng.uniform(0.3, 0.9, 32)
    lucky = base + rng.normal(0.0, 0.1, 32)
    base_ok = np.array([True] * 26 + [False] * 6)
    cand_ok = np.array([True] * 28 + [False] * 4)
    c = compare(lucky, base, cand_ok, base_ok)
    assert (c.wins, c.losses) == (2, 0)
    assert c.candidate_accuracy - c.baseline_accuracy == pytest.approx(2 / 32)
    assert not c.better


def test_a_clearly_better_prompt_wins_and_a_worse_one_loses() -> None:
    rng = np.random.default_rng(11)
    base = rng.uniform(0.4, 1.0, 32)
    good = base - rng.uniform(0.1, 0.3, 32)
    ok_base = base < 0.7
    ok_good = good < 0.7
    assert compare(good, base, ok_good, ok_base).better
    assert not compare(base, good, ok_base, ok_good).better


def test_bad_input_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="one length"):
        compare([0.1, 0.2], [0.1], [1, 1], [1, 1])
    with pytest.raises(ConfigError, match="alpha"):
        compare([0.1], [0.2], [1], [1], alpha=1.5)


# -- the selection inside the optimizer, on the fake ------------------------------------------

WORDS = [f"w{i}" for i in range(12)]


def _sst2(split: str, n: int | None = None) -> Dataset:
    data = load_split("sst2", split)
    return Dataset(data.task, data.examples[:n])


@pytest.mark.parametrize("rule", ["paired", "above-chance"])
def test_a_dev_lucky_prompt_is_not_kept(rule: str) -> None:
    # An unplanted fake: a prompt changes each answer by hash noise only, so some prompt is
    # better on the 32 dev examples by chance and no better beyond them.
    train, dev, held_out = _sst2("train"), _sst2("dev"), _sst2("test", 300)
    opt = Optimizer(
        FakeBackend(seed=3), candidates=WORDS, prompt_length=2, cache=False, selection=rule
    )
    manual_dev, manual_out = opt.report(dev, []).accuracy, opt.report(held_out, []).accuracy
    lucky = next(
        list(p)
        for p in itertools.product(WORDS, repeat=2)
        if opt.report(dev, p).accuracy >= manual_dev + 3 / 32
        and opt.report(held_out, p).accuracy < manual_out
    )
    chosen = opt.choose(train, dev, lucky, looked_at=10)
    assert chosen.kept_manual and chosen.prompt == [] and chosen.dev == manual_dev
    assert chosen.comparison is not None and chosen.comparison.wins > chosen.comparison.losses


@pytest.mark.parametrize("rule", ["paired", "above-chance"])
def test_a_truly_better_prompt_is_kept(rule: str) -> None:
    train, dev = _sst2("train"), _sst2("dev")
    planted = Planted.for_dataset([train, dev], WORDS, prompt_length=2, best=[4, 7], seed=1)
    opt = Optimizer(
        FakeBackend(planted=planted), candidates=WORDS, prompt_length=2, cache=False,
        selection=rule,
    )  # fmt: skip
    chosen = opt.choose(train, dev, planted.best_prompt, looked_at=10)
    assert not chosen.kept_manual and chosen.prompt == planted.best_prompt
    assert chosen.dev > chosen.manual_dev and chosen.train is not None
    assert chosen.dev_interval is not None and chosen.dev_interval[0] <= chosen.dev
    assert json.loads(json.dumps(chosen.to_json()))["kept_manual"] is False


def test_fit_reports_its_selection_and_keeps_the_manual_prompt_when_nothing_wins() -> None:
    train, dev = _sst2("train"), _sst2("dev")
    opt = Optimizer(
        FakeBackend(seed=5), candidates=WORDS, prompt_length=2, sample_size=4, batch_size=16,
        epochs=3, cache=False, selection="paired",
    )  # fmt: skip
    result = opt.fit(train, dev)
    assert result.selection is not None
    if result.selection.kept_manual:
        assert result.prompt == [] and result.indices == [] and opt.best_prompt == []
        assert opt.evaluate(dev) == result.selection.manual_dev
    assert result.selection.candidates == len(opt.dev_prompts) >= 1
    best_dev = Optimizer(
        FakeBackend(seed=5), candidates=WORDS, prompt_length=2, sample_size=4, batch_size=16,
        epochs=3, cache=False, selection="best-dev",
    )  # fmt: skip
    reported = best_dev.fit(train, dev)
    assert reported.selection is not None and not reported.selection.kept_manual
    assert reported.prompt == reported.selection.candidate  # reported, not enforced


# -- the above-chance rule ----------------------------------------------------------------------


def test_binomial_tail_is_exact() -> None:
    assert binomial_tail(6, 8, 0.5) == pytest.approx(37 / 256)
    assert binomial_tail(0, 3, 0.2) == pytest.approx(1.0)
    assert binomial_tail(3, 3, 0.2) == pytest.approx(0.008)
    with pytest.raises(ConfigError):
        binomial_tail(4, 3, 0.5)


def _reports(labels: np.ndarray, right: int, loss: float) -> PromptReport:
    """Answers right on the first ``right`` examples, wrong (the other class) on the rest."""
    predicted = np.where(np.arange(labels.size) < right, labels, 1 - labels)
    return PromptReport((), 0.0, np.full(labels.size, loss), predicted == labels, predicted)


def test_above_chance_needs_the_learned_prompt_clearly_above_the_majority_class() -> None:
    labels = np.array([0, 1] * 16)  # balanced: always one class gets half right
    level = 0.05

    def verdict(learned_right: int, manual_right: int) -> bool:
        halves = [(labels, learned_right, 0.6), (labels, manual_right, 0.7)]
        learned, manual = (_reports(y, r, loss) for y, r, loss in halves)
        return above_chance(
            [learned, learned], [manual, manual], [labels, labels],
            metric="accuracy", num_classes=2, level=level,
        )  # fmt: skip

    # Better than the template on all 64, but 36/64 right is what chance gives (p = 0.19).
    assert binomial_tail(36, 64, 0.5) > level and not verdict(18, 15)
    # 44/64 right is not chance (p = 0.002), and better than the template: kept.
    assert binomial_tail(44, 64, 0.5) < level and verdict(22, 18)
    # Clearly above chance but not better than the template: not kept.
    assert not verdict(22, 22)
    with pytest.raises(ConfigError):
        above_chance(
            [_reports(labels, 20, 0.5)], [_reports(labels, 20, 0.5)], [labels[:-1]],
            metric="accuracy", num_classes=2, level=level,
        )  # fmt: skip
