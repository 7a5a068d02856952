"""Choosing a learned prompt over the manual one only when few examples say so clearly.

A dev set of 32 examples is noisy: two examples are 6 points of accuracy, and keeping the best
of many prompts by that number selects noise. The comparison here is paired (the same
examples under both prompts) and one-sided (is the candidate better?), and it looks at the
per-example loss as well as at correctness, because the loss carries more information per
example than a 0/1 answer:

- correctness: McNemar's exact test on the discordant pairs (examples that exactly one of the
  two prompts gets right), a one-sided binomial tail;
- loss: a paired bootstrap of the mean loss difference (resampling examples), the one-sided
  probability that the candidate's mean loss is not lower.

:func:`compare` returns both, and :attr:`Comparison.better` says whether the candidate wins:
its loss is lower with bootstrap p-value below ``alpha``, and its correctness is not worse
(McNemar's p-value for "the baseline is better" is not below ``alpha``).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> base_loss = rng.uniform(0.2, 1.2, 64)
>>> c = compare(base_loss - 0.3, base_loss, [1] * 60 + [0] * 4, [1] * 50 + [0] * 14)
>>> c.better, c.loss_p < 0.01, c.wins, c.losses
(True, True, 10, 0)
>>> compare(base_loss, base_loss, [1] * 64, [1] * 64).better
False
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from bdpl.errors import ConfigError

__all__ = [
    "Comparison",
    "PromptReport",
    "Selection",
    "above_chance",
    "binomial_tail",
    "bootstrap_p",
    "compare",
    "mcnemar_p",
    "metric_interval",
]

FloatLike = Sequence[float] | npt.NDArray[np.floating]
BoolLike = Sequence[bool] | Sequence[int] | npt.NDArray[np.bool_] | npt.NDArray[np.integer]


@dataclass(frozen=True, slots=True)
class Comparison:
    """A paired comparison of a candidate prompt with a baseline on the same examples.

    Attributes:
        n: examples compared.
        candidate_loss: the candidate's mean loss.
        baseline_loss: the baseline's mean loss.
        candidate_accuracy: fraction of examples the candidate gets right.
        baseline_accuracy: the same for the baseline.
        wins: examples only the candidate gets right.
        losses: examples only the baseline gets right.
        loss_p: one-sided bootstrap p-value that the candidate's mean loss is not lower.
        worse_p: one-sided McNemar p-value that the candidate is not worse than the
            baseline at getting examples right (small: the baseline is clearly better).
        alpha: the significance level used for :attr:`better`.
        better: the candidate's loss is lower at level ``alpha`` and its correctness is not
            significantly worse.
    """

    n: int
    candidate_loss: float
    baseline_loss: float
    candidate_accuracy: float
    baseline_accuracy: float
    wins: int
    losses: int
    loss_p: float
    worse_p: float
    alpha: float
    better: bool

    def to_json(self) -> dict[str, object]:
        """Plain JSON (every field)."""
        return asdict(self)


def mcnemar_p(wins: int, losses: int) -> float:
    """One-sided exact McNemar p-value that ``wins`` is not larger than chance would give.

    Under the null hypothesis each of the ``wins + losses`` discordant examples is a fair coin;
    the p-value is ``P(X >= wins)`` for ``X ~ Binomial(wins + losses, 1/2)``; 1.0 with no
    discordant example.

    >>> round(mcnemar_p(6, 0), 4), mcnemar_p(0, 0)
    (0.0156, 1.0)
    """
    if wins < 0 or losses < 0:
        raise ConfigError(f"wins and losses must be >= 0, got {wins} and {losses}")
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(wins, n + 1))
    return min(1.0, float(tail) / float(2**n))


def binomial_tail(k: int, n: int, p: float) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, p)``, exactly.

    >>> round(binomial_tail(44, 64, 0.5), 4), round(binomial_tail(0, 5, 0.3), 9)
    (0.0018, 1.0)
    """
    if not 0 <= k <= n or not 0.0 <= p <= 1.0:
        raise ConfigError(f"binomial_tail needs 0 <= k <= n and p in [0, 1], got {k}, {n}, {p}")
    return min(1.0, sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1)))


def above_chance(
    learned: Sequence[PromptReport],
    manual: Sequence[PromptReport],
    labels: Sequence[Sequence[int]],
    *,
    metric: str,
    num_classes: int,
    level: float,
) -> bool:
    """The ``"above-chance"`` rule: does the learned prompt win on every labelled example?

    The examples of all the datasets given (train and dev: ``learned[i]``, ``manual[i]`` and
    ``labels[i]`` describe dataset ``i``) are pooled. The learned prompt wins when, on the
    pool, its task metric is higher and its mean loss lower than the manual prompt's,
    McNemar's test does not find it worse (at ``level``), and it is itself clearly better than
    always answering the pool's most frequent class: its count of right answers has a
    one-sided binomial p-value below ``level`` against that class's share. The last condition
    is what a prompt fitted to noise fails: on a task the model cannot do, a learned prompt
    can look better than the template on 64 examples and still be at chance.
    """
    from bdpl.metrics import compute_metric

    y = np.concatenate([np.asarray(t, dtype=np.int64) for t in labels])

    def pool(reports: Sequence[PromptReport]) -> tuple[npt.NDArray[np.float64], Any, float]:
        predicted = np.concatenate([r.predictions for r in reports])
        score = compute_metric(metric, y, predicted, num_classes=num_classes)
        right = np.concatenate([r.correct for r in reports])  # as each report scored it
        return np.concatenate([r.losses for r in reports]), right, score

    pooled = [pool(learned), pool(manual)]
    (loss_l, right_l, metric_l), (loss_m, right_m, metric_m) = pooled
    if not y.size or {loss_l.size, loss_m.size} != {y.size}:
        raise ConfigError("above_chance needs reports and labels of the same examples")
    worse_p = mcnemar_p(
        int(np.count_nonzero(right_m & ~right_l)), int(np.count_nonzero(right_l & ~right_m))
    )
    share = float(np.bincount(y).max()) / y.size
    return (
        metric_l > metric_m
        and float(loss_l.mean()) < float(loss_m.mean())
        and worse_p >= level
        and binomial_tail(int(np.count_nonzero(right_l)), y.size, share) < level
    )


def bootstrap_p(diffs: FloatLike, *, resamples: int = 2000, seed: int = 0) -> float:
    """One-sided paired-bootstrap p-value that the mean of ``diffs`` is not above 0.

    ``diffs`` are per-example improvements (baseline loss minus candidate loss). The examples
    are resampled with replacement ``resamples`` times (seeded: the same data give the same
    answer); the p-value is the fraction of resampled means ``<= 0``, with the usual +1
    correction so that it is never exactly 0.

    >>> bootstrap_p([0.1, 0.2, 0.15, 0.3]) < 0.01
    True
    >>> bootstrap_p([0.0, 0.0])
    1.0
    """
    d = np.asarray(diffs, dtype=np.float64).reshape(-1)
    if d.size == 0:
        raise ConfigError("bootstrap_p needs at least one difference")
    if not np.isfinite(d).all():
        raise ConfigError("bootstrap_p: differences must be finite")
    rng = np.random.Generator(np.random.PCG64(seed))
    idx = rng.integers(0, d.size, size=(resamples, d.size))
    means = d[idx].mean(axis=1)
    return float((np.count_nonzero(means <= 0.0) + 1) / (resamples + 1))


def compare(
    candidate_loss: FloatLike,
    baseline_loss: FloatLike,
    candidate_correct: BoolLike,
    baseline_correct: BoolLike,
    *,
    alpha: float = 0.05,
    resamples: int = 2000,
    seed: int = 0,
) -> Comparison:
    """Compare a candidate prompt with a baseline on the same examples (see the module doc).

    Args:
        candidate_loss: per-example losses under the candidate.
        baseline_loss: per-example losses under the baseline, same order.
        candidate_correct: per-example correctness under the candidate.
        baseline_correct: the same under the baseline.
        alpha: significance level, in (0, 1).
        resamples: bootstrap resamples.
        seed: seeds the bootstrap.

    Raises:
        ConfigError: the four sequences differ in length, are empty, or ``alpha`` is not in
            (0, 1).
    """
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha!r}")
    lc = np.asarray(candidate_loss, dtype=np.float64).reshape(-1)
    lb = np.asarray(baseline_loss, dtype=np.float64).reshape(-1)
    cc = np.asarray(candidate_correct, dtype=bool).reshape(-1)
    cb = np.asarray(baseline_correct, dtype=bool).reshape(-1)
    if not lc.size or len({lc.size, lb.size, cc.size, cb.size}) != 1:
        raise ConfigError(
            "compare needs four non-empty per-example sequences of one length, got "
            f"{lc.size}, {lb.size}, {cc.size} and {cb.size}"
        )
    wins = int(np.count_nonzero(cc & ~cb))
    losses = int(np.count_nonzero(cb & ~cc))
    loss_p = bootstrap_p(lb - lc, resamples=resamples, seed=seed)
    worse_p = mcnemar_p(losses, wins)
    return Comparison(
        n=int(lc.size),
        candidate_loss=float(lc.mean()),
        baseline_loss=float(lb.mean()),
        candidate_accuracy=float(cc.mean()),
        baseline_accuracy=float(cb.mean()),
        wins=wins,
        losses=losses,
        loss_p=loss_p,
        worse_p=worse_p,
        alpha=float(alpha),
        better=loss_p < alpha and worse_p >= alpha,
    )


@dataclass(frozen=True)
class PromptReport:
    """How one prompt did on one dataset, example by example.

    Attributes:
        prompt: the prompt (``[]``: the template alone, the manual prompt).
        metric: the task's metric on the dataset.
        losses: per-example loss.
        correct: per-example correctness of the predicted class.
        predictions: per-example predicted class index.
    """

    prompt: tuple[str, ...]
    metric: float
    losses: npt.NDArray[np.float64]
    correct: npt.NDArray[np.bool_]
    predictions: npt.NDArray[np.int64]

    @property
    def loss(self) -> float:
        """Mean loss."""
        return float(self.losses.mean())

    @property
    def accuracy(self) -> float:
        """Fraction of examples predicted right."""
        return float(self.correct.mean())


@dataclass(frozen=True)
class Selection:
    """Which prompt a fit keeps, and the evidence for it.

    Attributes:
        prompt: the prompt kept (``[]`` when the manual prompt was kept).
        candidate: the learned prompt that was compared with the manual one.
        kept_manual: the learned candidate did not beat the manual prompt by the rule in force.
        candidates: distinct learned prompts compared (one per epoch at most).
        alpha: the family-wise significance level; each candidate is tested at
            ``alpha / candidates`` (Bonferroni), so looking at many prompts does not make a
            lucky one more likely to pass.
        dev: the kept prompt's dev metric.
        manual_dev: the manual prompt's dev metric.
        train: the kept prompt's training metric (optimistic for a learned prompt: it was
            learned there), when computed.
        manual_train: the manual prompt's training metric, when computed.
        dev_interval: a 90% paired-bootstrap interval of the kept prompt's dev metric: where
            its metric beyond dev is likely to fall.
        comparison: the paired comparison of the candidate with the manual prompt on dev
            (``None`` when no candidate was compared); its ``better`` is the ``"paired"``
            rule's verdict, ``kept_manual`` the verdict of the rule in force.
    """

    prompt: list[str]
    candidate: list[str]
    kept_manual: bool
    candidates: int
    alpha: float
    dev: float
    manual_dev: float
    train: float | None = None
    manual_train: float | None = None
    dev_interval: tuple[float, float] | None = None
    comparison: Comparison | None = None

    def to_json(self) -> dict[str, object]:
        """Plain JSON, as the command line saves it."""
        out = {k: v for k, v in asdict(self).items() if k != "comparison"}
        out["comparison"] = None if self.comparison is None else self.comparison.to_json()
        out["dev_interval"] = None if self.dev_interval is None else list(self.dev_interval)
        return out


def metric_interval(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    metric: str,
    num_classes: int,
    *,
    level: float = 0.9,
    resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """A percentile-bootstrap interval of ``metric`` (resampling examples), seeded."""
    from bdpl.metrics import compute_metric

    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    rng = np.random.Generator(np.random.PCG64(seed))
    values = [
        compute_metric(metric, t[idx], p[idx], num_classes=num_classes)
        for idx in rng.integers(0, t.size, size=(resamples, t.size))
    ]
    lo, hi = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)
