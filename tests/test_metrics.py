"""Metrics against hand-computed values and against the textbook formulas."""

from __future__ import annotations

import doctest
import math

import numpy as np
import pytest

import bdpl.metrics
from bdpl.errors import ConfigError
from bdpl.metrics import METRICS, accuracy, compute_metric, f1, macro_f1, matthews

# TP=1 (index 1), TN=2, FP=0, FN=1
Y_TRUE = [0, 1, 1, 0]
Y_PRED = [0, 1, 0, 0]


def test_hand_computed_binary_values() -> None:
    assert accuracy(Y_TRUE, Y_PRED) == 0.75
    assert f1(Y_TRUE, Y_PRED) == pytest.approx(2 * 1 / (2 * 1 + 0 + 1))
    # class 0: TP=2 FP=1 FN=0 -> 4/5; class 1: 2/3
    assert macro_f1(Y_TRUE, Y_PRED) == pytest.approx((4 / 5 + 2 / 3) / 2)
    assert matthews(Y_TRUE, Y_PRED) == pytest.approx((1 * 2 - 0 * 1) / math.sqrt(1 * 2 * 2 * 3))
    # TP=2 TN=0 FP=1 FN=1 -> (0 - 1) / sqrt(3 * 3 * 1 * 1)
    assert matthews([1, 1, 1, 0], [1, 0, 1, 1]) == pytest.approx(-1 / 3)


def test_perfect_and_inverted_predictions() -> None:
    y = [0, 1, 2, 1, 0, 2]
    assert accuracy(y, y) == 1.0
    assert macro_f1(y, y) == 1.0
    assert matthews(y, y) == 1.0
    assert matthews([0, 1, 0, 1], [1, 0, 1, 0]) == -1.0
    assert f1([0, 1], [1, 0]) == 0.0


def test_zero_division_cases_are_zero() -> None:
    # No positive true or predicted: F1 of class 1 is 0/0 -> 0.0 (scikit-learn zero_division=0).
    assert f1([0, 0, 0], [0, 0, 0]) == 0.0
    # One class only: the MCC denominator is 0.
    assert matthews([1, 1, 1], [1, 1, 1]) == 0.0
    assert matthews([0, 1, 0], [1, 1, 1]) == 0.0
    # A class that never occurs counts only when num_classes asks for it.
    assert macro_f1([0, 0, 1], [0, 0, 1]) == 1.0
    assert macro_f1([0, 0, 1], [0, 0, 1], num_classes=3) == pytest.approx(2 / 3)


def _textbook_f1_per_class(t: list[int], p: list[int], c: int) -> float:
    tp = sum(1 for a, b in zip(t, p, strict=True) if a == c and b == c)
    predicted = sum(1 for b in p if b == c)
    actual = sum(1 for a in t if a == c)
    precision = tp / predicted if predicted else 0.0
    recall = tp / actual if actual else 0.0
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def _textbook_mcc(t: list[int], p: list[int], n: int) -> float:
    """Gorodkin (2004), written with the explicit triple sum."""
    c = np.zeros((n, n))
    for a, b in zip(t, p, strict=True):
        c[a, b] += 1
    num = sum(
        c[k, k] * c[m, j] - c[k, j] * c[m, k] for k in range(n) for j in range(n) for m in range(n)
    )
    left = sum(c[k, :].sum() * sum(c[g, :].sum() for g in range(n) if g != k) for k in range(n))
    right = sum(c[:, k].sum() * sum(c[:, g].sum() for g in range(n) if g != k) for k in range(n))
    return float(num / math.sqrt(left * right)) if left * right else 0.0


@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_against_textbook_formulas(n_classes: int) -> None:
    rng = np.random.default_rng(n_classes)
    for _ in range(20):
        size = int(rng.integers(1, 40))
        t = rng.integers(0, n_classes, size).tolist()
        # Mostly right predictions, so that every regime (good, bad, degenerate) shows up.
        p = [a if rng.random() < 0.6 else int(rng.integers(0, n_classes)) for a in t]
        present = sorted(set(t) | set(p))
        expected_macro = np.mean([_textbook_f1_per_class(t, p, c) for c in present])
        assert macro_f1(t, p) == pytest.approx(expected_macro)
        assert f1(t, p) == pytest.approx(_textbook_f1_per_class(t, p, 1))
        assert matthews(t, p) == pytest.approx(_textbook_mcc(t, p, n_classes), abs=1e-12)
        assert accuracy(t, p) == pytest.approx(np.mean(np.array(t) == np.array(p)))


def test_compute_metric_dispatches_by_name() -> None:
    for name, fn in METRICS.items():
        assert compute_metric(name, Y_TRUE, Y_PRED) == fn(Y_TRUE, Y_PRED)
    assert compute_metric("macro_f1", [0, 0], [0, 0], num_classes=2) == 0.5
    # numpy arrays work as well as lists, and results are plain floats
    value = compute_metric("accuracy", np.array(Y_TRUE), np.array(Y_PRED))
    assert type(value) is float


@pytest.mark.parametrize(
    ("name", "y_true", "y_pred", "match"),
    [
        ("precision", [0], [0], "unknown metric"),
        ("accuracy", [0, 1], [0], "2 labels"),
        ("accuracy", [], [], "zero examples"),
        ("f1", [0, -1], [0, 1], "non-negative"),
    ],
)
def test_bad_arguments_raise_config_error(
    name: str, y_true: list[int], y_pred: list[int], match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        compute_metric(name, y_true, y_pred)


def test_macro_f1_rejects_index_beyond_num_classes() -> None:
    with pytest.raises(ConfigError, match="out of range"):
        macro_f1([0, 2], [0, 1], num_classes=2)


def test_docstring_examples() -> None:
    result = doctest.testmod(bdpl.metrics)
    assert result.attempted > 0 and result.failed == 0
