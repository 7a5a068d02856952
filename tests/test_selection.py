"""The paired comparison that decides whether a learned prompt replaces the manual one."""

from __future__ import annotations

import numpy as np
import pytest

from bdpl.errors import ConfigError
from bdpl.selection import bootstrap_p, compare, mcnemar_p


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
