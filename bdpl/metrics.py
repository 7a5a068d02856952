"""Classification metrics on class indices, in plain numpy.

Every metric takes true and predicted class indices (as :meth:`bdpl.Task.label_index` gives
them) and returns a float. Where a ratio has a zero denominator the term is 0.0, as in
scikit-learn with ``zero_division=0``; nothing here warns or returns NaN.

>>> accuracy([0, 1, 1, 0], [0, 1, 0, 0])
0.75
>>> round(f1([0, 1, 1, 0], [0, 1, 0, 0]), 4)
0.6667
>>> compute_metric("matthews", [0, 1, 1, 0], [0, 1, 1, 0])
1.0
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from bdpl.errors import ConfigError

Labels = Sequence[int] | npt.NDArray[np.integer]


def _check(y_true: Labels, y_pred: Labels) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    t = np.asarray(y_true, dtype=np.int64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.int64).reshape(-1)
    if t.shape != p.shape:
        raise ConfigError(f"y_true has {t.size} labels but y_pred has {p.size}")
    if t.size == 0:
        raise ConfigError("cannot compute a metric on zero examples")
    if (t < 0).any() or (p < 0).any():
        raise ConfigError("class indices must be non-negative")
    return t, p


def _confusion(t: npt.NDArray[np.int64], p: npt.NDArray[np.int64], n: int) -> npt.NDArray[np.int64]:
    """``c[i, j]`` = number of examples of true class ``i`` predicted as ``j``."""
    c = np.zeros((n, n), dtype=np.int64)
    np.add.at(c, (t, p), 1)
    return c


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den else 0.0


def _per_class_f1(c: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
    tp = np.diag(c).astype(np.float64)
    # F1 = 2TP / (2TP + FP + FN): one formula, defined (0.0) when the class is never seen.
    den = 2 * tp + (c.sum(axis=0) - tp) + (c.sum(axis=1) - tp)
    out: npt.NDArray[np.float64] = np.divide(2 * tp, den, out=np.zeros_like(tp), where=den > 0)
    return out


def accuracy(y_true: Labels, y_pred: Labels) -> float:
    """Fraction of predictions equal to the true class."""
    t, p = _check(y_true, y_pred)
    return float(np.mean(t == p))


def f1(y_true: Labels, y_pred: Labels) -> float:
    """Binary F1 of the positive class, index 1 (the task's second label).

    With more than two classes this is class 1 against the rest.

    0.0 when class 1 is neither true nor predicted anywhere (no true positives possible).
    """
    t, p = _check(y_true, y_pred)
    n = max(2, int(max(t.max(), p.max())) + 1)
    return float(_per_class_f1(_confusion(t, p, n))[1])


def macro_f1(y_true: Labels, y_pred: Labels, *, num_classes: int | None = None) -> float:
    """Unweighted mean of the per-class F1 scores.

    Args:
        y_true: true class indices.
        y_pred: predicted class indices.
        num_classes: average over classes ``0 .. num_classes-1`` (a class that never occurs
            counts as 0.0). By default, over the classes that occur in ``y_true`` or
            ``y_pred``, as scikit-learn does.
    """
    t, p = _check(y_true, y_pred)
    n = int(max(t.max(), p.max())) + 1
    if num_classes is not None:
        if n > num_classes:
            raise ConfigError(f"class index {n - 1} out of range for {num_classes} classes")
        n = num_classes
    c = _confusion(t, p, n)
    scores = _per_class_f1(c)
    if num_classes is None:
        present = (c.sum(axis=0) + c.sum(axis=1)) > 0
        scores = scores[present]
    return float(scores.mean())


def matthews(y_true: Labels, y_pred: Labels) -> float:
    """Matthews correlation coefficient (multi-class form of Gorodkin 2004, as scikit-learn).

    For two classes it is ``(TP·TN - FP·FN) / sqrt((TP+FP)(TP+FN)(TN+FP)(TN+FN))``. 0.0 when
    the denominator is 0, e.g. when all true labels or all predictions are one class.
    """
    t, p = _check(y_true, y_pred)
    n = int(max(t.max(), p.max())) + 1
    c = _confusion(t, p, n).astype(np.float64)
    s = c.sum()
    correct = np.trace(c)
    true_k, pred_k = c.sum(axis=1), c.sum(axis=0)
    cov_tp = correct * s - pred_k @ true_k
    cov_pp = s * s - pred_k @ pred_k
    cov_tt = s * s - true_k @ true_k
    return _ratio(cov_tp, float(np.sqrt(cov_pp * cov_tt)))


METRICS: dict[str, Callable[[Labels, Labels], float]] = {
    "accuracy": accuracy,
    "f1": f1,
    "macro_f1": macro_f1,
    "matthews": matthews,
}


def compute_metric(
    name: str, y_true: Labels, y_pred: Labels, *, num_classes: int | None = None
) -> float:
    """The metric called ``name`` (``"accuracy"``, ``"f1"``, ``"macro_f1"``, ``"matthews"``).

    Args:
        name: the metric, as in :attr:`bdpl.Task.metric`.
        y_true: true class indices.
        y_pred: predicted class indices.
        num_classes: passed to :func:`macro_f1` (ignored by the other metrics).

    Raises:
        ConfigError: unknown name, mismatched lengths, no examples, or a negative index.
    """
    try:
        fn = METRICS[name]
    except KeyError:
        raise ConfigError(f"unknown metric {name!r}; use one of {sorted(METRICS)}") from None
    if fn is macro_f1:
        return macro_f1(y_true, y_pred, num_classes=num_classes)
    return fn(y_true, y_pred)
