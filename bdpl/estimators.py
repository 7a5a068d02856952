"""Gradient estimators for one categorical distribution per prompt position (numpy only).

A prompt of length ``L`` over ``N`` candidates is drawn position by position from the rows of
an ``L x N`` probability matrix. Each step draws ``I`` prompts, measures each one's loss on a
minibatch and moves the parameters along a score-function (policy-gradient) estimate of the
gradient of the expected loss. Two estimators, picked by name with :func:`get_estimator`:

``"reference"`` — faithful to the BDPL reference code (``run_glue_discrete_LM.py``):
    the parameters are the probabilities themselves, initialised uniform;
    ``G = 1/(I-1) * sum_k (L_k - mean(L)) * D_k`` with ``D_k[i, j] = +1/p_ij`` where
    ``j`` was drawn at position ``i`` in sample ``k`` and ``-1/p_ij`` elsewhere; the gradient is
    clipped to total norm 3, AdamW (weight decay 0.1) takes a step, and a 20-step bisection
    finds the shift ``v`` that puts ``clip(p - v, 0, 1)`` back on the simplex (to 1e-3).
    Its expectation is ``2 * (g_ij - sum_j' p_ij' g_ij')`` where ``g = dE[L]/dp``: twice the
    gradient, shifted along ``(1, ..., 1)`` per row (a direction the projection discards).
    Because the centred losses sum to 0, the ``-1/p_ij`` terms cancel in exact arithmetic and
    ``G_ij = 2/(I-1) * sum_k (L_k - mean(L)) * [s_ki = j] / p_ij``; but the bisection sets
    probabilities to exactly 0, where ``-1/p`` is infinite and the sum becomes ``inf - inf``:
    the reference's gradient, and then its parameters, turn NaN. What we do
    about it (the only departure from the reference): after each projection, probabilities
    are floored at ``floor`` (1e-6), so ``1/p`` stays finite (at most 1e6); and losses are
    rescaled before the arithmetic (see :func:`clip_by_norm`) so that no intermediate
    overflows. A run where no probability reaches 0 is the reference's, step for step.

``"loo"`` (the default) — leave-one-out baseline (RLOO, Kool et al. 2019) on logits:
    ``p = softmax(theta)`` per row, ``theta`` initialised at 0 (uniform);
    ``G = 1/(I-1) * sum_k (L_k - mean(L)) * (onehot(s_k) - p)``, which equals the average over
    samples of ``(L_k - mean of the others) * grad log p(s_k)``: unbiased for ``dE[L]/dtheta``.
    Plain SGD takes the step, with the losses standardised per step (see
    :class:`LOOEstimator`). Nothing is ever divided by a probability, every step is bounded,
    the softmax subtracts each row's max and the logits are re-centred, so no learning rate
    (1e-5 to 1 and beyond) produces NaN or inf.

``"loo-rank"`` — the same with rank-shaped losses (see :class:`LOOEstimator`): no longer
    unbiased for ``dE[L]``, but robust to outlying losses; on planted fakes it recovers the
    best prompt more often than ``"loo"`` at the same budget (``benchmarks/estimators.md``).

The estimators are stateless objects; their state is an explicit :class:`EstimatorState`,
so checkpointing is saving its arrays and a counter (the Adam moments only for an estimator
that uses them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import ClassVar, Literal, NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from bdpl.errors import ConfigError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class EstimatorState(NamedTuple):
    """Parameters and, for an estimator that keeps them, optimizer moments.

    Attributes:
        params: ``L x N``: probabilities (``"reference"``) or logits (``"loo"``).
        m: Adam's first moment, same shape; ``None`` for an estimator without moments
            (``"loo"``, plain SGD).
        v: Adam's second moment, same shape; ``None`` likewise.
        step: updates taken so far.
    """

    params: FloatArray
    m: FloatArray | None = None
    v: FloatArray | None = None
    step: int = 0

    def copy(self) -> EstimatorState:
        """A deep copy (arrays are mutable; a state kept as 'best' must not alias)."""
        return EstimatorState(
            self.params.copy(),
            None if self.m is None else self.m.copy(),
            None if self.v is None else self.v.copy(),
            self.step,
        )

    def without_moments(self) -> EstimatorState:
        """The same state with no moments (for an estimator that never reads them)."""
        return self._replace(m=None, v=None)


class Estimator(Protocol):
    """What the optimizer needs from an estimator."""

    @property
    def name(self) -> str:
        """The name :func:`get_estimator` knows it by."""
        ...

    @property
    def learning_rate(self) -> float:
        """The step size."""
        ...

    @property
    def uses_moments(self) -> bool:
        """Whether its state carries Adam moments (``m``, ``v``)."""
        ...

    def init(self, prompt_length: int, n_candidates: int) -> EstimatorState:
        """The starting state: uniform distributions."""
        ...

    def probs(self, state: EstimatorState) -> FloatArray:
        """The ``L x N`` sampling probabilities (rows sum to 1)."""
        ...

    def gradient(self, probs: FloatArray, samples: IntArray, losses: FloatArray) -> FloatArray:
        """The gradient estimate with respect to the parameters."""
        ...

    def update(
        self, state: EstimatorState, samples: IntArray, losses: FloatArray
    ) -> EstimatorState:
        """One step from ``samples`` (``I x L`` candidate indices) and their ``losses``."""
        ...


def _onehot(samples: IntArray, n: int) -> FloatArray:
    """``I x L x N`` indicator of the drawn candidates."""
    out = np.zeros((*samples.shape, n))
    np.put_along_axis(out, samples[..., None], 1.0, axis=-1)
    return out


def _centred(losses: FloatArray) -> tuple[FloatArray, float]:
    """``(L - mean(L)) / scale`` and ``scale``, so huge losses cannot overflow the arithmetic."""
    scale = float(np.max(np.abs(losses))) if losses.size else 0.0
    if scale == 0.0:
        return np.zeros_like(losses), 0.0
    scaled = losses / scale
    return scaled - scaled.mean(), scale


def clip_by_norm(grad: FloatArray, scale: float, max_norm: float) -> FloatArray:
    """``scale * grad`` clipped to total norm ``max_norm`` (as ``torch.nn.utils.clip_grad_norm_``).

    The gradient arrives divided by ``scale`` (the largest |loss|) so that its norm is
    computed without overflow; the product is only formed when it is known to be small.
    """
    norm = float(np.linalg.norm(grad))
    if norm == 0.0 or not np.isfinite(norm):
        return np.zeros_like(grad)
    # Compare scale * norm with max_norm without forming the (possibly overflowing) product.
    if scale > max_norm / norm:
        return grad * (max_norm / norm)
    return grad * scale


def adam(
    state: EstimatorState,
    grad: FloatArray,
    *,
    learning_rate: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> EstimatorState:
    """One Adam step; ``weight_decay`` adds AdamW's decoupled decay (as ``torch.optim.AdamW``).

    Missing moments start at zero, as Adam's do.
    """
    b1, b2 = betas
    t = state.step + 1
    params = state.params * (1.0 - learning_rate * weight_decay)
    m0 = np.zeros_like(state.params) if state.m is None else state.m
    v0 = np.zeros_like(state.params) if state.v is None else state.v
    m = b1 * m0 + (1.0 - b1) * grad
    v = b2 * v0 + (1.0 - b2) * np.square(grad)
    m_hat = m / (1.0 - b1**t)
    v_hat = v / (1.0 - b2**t)
    params = params - learning_rate * m_hat / (np.sqrt(v_hat) + eps)
    return EstimatorState(params, m, v, t)


def project_bisection(probs: FloatArray, *, iterations: int = 20, tol: float = 1e-3) -> FloatArray:
    """The reference's projection: per row, ``clip(p - v, 0, 1)`` with ``v`` found by bisection.

    ``v`` is searched in ``[0, max(p)]`` until ``|sum - 1| < tol`` or ``iterations`` steps,
    exactly as ``solve_v_total_exact`` in the reference code, so rows sum to 1 only within
    ``tol`` and some entries may be exactly 0.
    """
    out = np.empty_like(probs)
    for i, row in enumerate(probs):
        a, b = 0.0, float(row.max())
        v = 0.0
        for _ in range(iterations + 1):
            v = (a + b) / 2
            excess = float(np.clip(row - v, 0.0, 1.0).sum()) - 1.0
            if abs(excess) < tol:
                break
            if excess < 0:
                b = v
            else:
                a = v
        out[i] = np.clip(row - v, 0.0, 1.0)
    return out


def floor_probs(probs: FloatArray, floor: float) -> FloatArray:
    """Raise every probability to at least ``floor`` (a NaN or -inf becomes ``floor`` too).

    Rows are not renormalised, as the reference leaves them after its projection (summing to
    1 within its tolerance); sampling normalises them.
    """
    return np.maximum(np.nan_to_num(probs, nan=0.0, posinf=1.0, neginf=0.0), floor)


def softmax(logits: FloatArray) -> FloatArray:
    """Row-wise softmax, stable for any finite logits."""
    z = np.exp(logits - logits.max(axis=1, keepdims=True))
    out: FloatArray = z / z.sum(axis=1, keepdims=True)
    return out


def _check(samples: IntArray, losses: FloatArray, shape: tuple[int, int]) -> None:
    if samples.ndim != 2 or samples.shape[1] != shape[0] or len(samples) != len(losses):
        raise ConfigError(
            f"expected I x {shape[0]} samples with I losses, got {samples.shape} and {losses.shape}"
        )
    if len(samples) < 2:
        raise ConfigError("a baseline needs at least 2 sampled prompts per step")
    if samples.min() < 0 or samples.max() >= shape[1]:
        raise ConfigError(f"sampled candidate indices must lie in [0, {shape[1]})")
    if not np.all(np.isfinite(losses)):
        raise ConfigError("losses must be finite")


@dataclass(frozen=True)
class ReferenceEstimator:
    """The BDPL reference estimator (see the module docstring). Defaults are the reference's."""

    learning_rate: float = 1e-4
    clip_norm: float = 3.0
    weight_decay: float = 0.1
    floor: float = 1e-6
    name: str = "reference"
    uses_moments: ClassVar[bool] = True

    def init(self, prompt_length: int, n_candidates: int) -> EstimatorState:
        p = np.full((prompt_length, n_candidates), 1.0 / n_candidates)
        return EstimatorState(p, np.zeros_like(p), np.zeros_like(p), 0)

    def probs(self, state: EstimatorState) -> FloatArray:
        # Sampling normalises, as torch.distributions.Categorical does.
        out: FloatArray = state.params / state.params.sum(axis=1, keepdims=True)
        return out

    def gradient(self, probs: FloatArray, samples: IntArray, losses: FloatArray) -> FloatArray:
        """The unclipped estimate ``G`` of the module docstring."""
        centred, scale = _centred(losses)
        return self._scaled_gradient(probs, samples, centred) * scale

    @staticmethod
    def _scaled_gradient(probs: FloatArray, samples: IntArray, centred: FloatArray) -> FloatArray:
        inv = 1.0 / probs
        # D_k = (2 * onehot_k - 1) / p, so sum_k c_k D_k = (2 * sum_k c_k onehot_k - sum_k c_k) / p.
        weighted = np.einsum("k,kij->ij", centred, _onehot(samples, probs.shape[1]))
        out: FloatArray = (2.0 * weighted - centred.sum()) * inv / (len(centred) - 1)
        return out

    def update(
        self, state: EstimatorState, samples: IntArray, losses: FloatArray
    ) -> EstimatorState:
        _check(samples, losses, state.params.shape)
        centred, scale = _centred(losses)
        grad = self._scaled_gradient(state.params, samples, centred)
        grad = clip_by_norm(grad, scale, self.clip_norm)
        new = adam(state, grad, learning_rate=self.learning_rate, weight_decay=self.weight_decay)
        params = floor_probs(project_bisection(new.params), self.floor)
        return new._replace(params=params)


def standardised(losses: FloatArray) -> FloatArray | None:
    """``(L - mean(L)) / std(L)``, computed without overflow; ``None`` when all are equal."""
    centred, _ = _centred(losses)
    spread = float(centred.std())
    return centred / spread if spread > 0.0 else None


def standardised_ranks(losses: FloatArray) -> FloatArray | None:
    """Standardised ranks of the losses (ties share their mean rank); ``None`` when all equal."""
    order = np.argsort(losses, kind="stable")
    ranks = np.empty(len(losses))
    ranks[order] = np.arange(len(losses), dtype=np.float64)
    # Identical prompts have identical losses and must get the same utility.
    _, tie = np.unique(losses, return_inverse=True)
    ranks = (np.bincount(tie, weights=ranks) / np.bincount(tie))[tie]
    return standardised(ranks)


Shaping = Literal["standardise", "rank"]
_SHAPINGS = {"standardise": standardised, "rank": standardised_ranks}


@dataclass(frozen=True)
class LOOEstimator:
    """Leave-one-out-baseline score-function estimator on logits, plain SGD (the default).

    The update is ``theta -= learning_rate * G(a)`` where ``G`` is the estimator of the module
    docstring applied to shaped losses ``a``. With ``shaping="standardise"`` (``"loo"``),
    ``a_k = (L_k - mean(L)) / std(L)``: the step no longer depends on the loss's units
    (cross-entropy of one model, hinge of another), and each ``|a_k| <= sqrt(I - 1)``, so a
    step moves a logit by at most ``learning_rate * sqrt(I - 1)`` whatever the losses are;
    the rescaling is one positive number per step, and :meth:`gradient` is the unscaled,
    unbiased estimate. With ``shaping="rank"`` (``"loo-rank"``), ``a`` are the standardised
    ranks of the losses (fitness shaping, as in natural evolution strategies): invariant to
    any increasing transform of the loss and robust to outliers, but the update then follows
    the expected rank utility rather than ``E[L]``. When all losses are equal nothing moves.
    """

    learning_rate: float = 1.0
    shaping: Shaping = "standardise"
    name: str = "loo"
    uses_moments: ClassVar[bool] = False  # plain SGD

    def init(self, prompt_length: int, n_candidates: int) -> EstimatorState:
        return EstimatorState(np.zeros((prompt_length, n_candidates)))

    def probs(self, state: EstimatorState) -> FloatArray:
        return softmax(state.params)

    def gradient(self, probs: FloatArray, samples: IntArray, losses: FloatArray) -> FloatArray:
        """The unbiased estimate of ``dE[L]/dlogits`` (unshaped)."""
        centred, scale = _centred(losses)
        return self._scaled_gradient(probs, samples, centred) * scale

    @staticmethod
    def _scaled_gradient(probs: FloatArray, samples: IntArray, centred: FloatArray) -> FloatArray:
        weighted = np.einsum("k,kij->ij", centred, _onehot(samples, probs.shape[1]))
        # sum_k c_k (onehot_k - p) = weighted - (sum_k c_k) p; sum_k c_k is 0 up to rounding.
        out: FloatArray = (weighted - centred.sum() * probs) / (len(centred) - 1)
        return out

    def update(
        self, state: EstimatorState, samples: IntArray, losses: FloatArray
    ) -> EstimatorState:
        _check(samples, losses, state.params.shape)
        shaped = _SHAPINGS[self.shaping](losses)
        if shaped is None:
            return EstimatorState(state.params, step=state.step + 1)
        grad = self._scaled_gradient(softmax(state.params), samples, shaped)
        params = state.params - self.learning_rate * grad
        # Only differences of logits matter; re-centring keeps them far from overflow forever.
        params = params - params.max(axis=1, keepdims=True)
        return EstimatorState(params, step=state.step + 1)


ESTIMATORS: dict[str, Callable[..., Estimator]] = {
    "reference": ReferenceEstimator,
    "loo": LOOEstimator,
    "loo-rank": partial(LOOEstimator, shaping="rank", name="loo-rank"),
}


def get_estimator(name: str, *, learning_rate: float | None = None) -> Estimator:
    """The estimator called ``name``, with its default learning rate unless one is given.

    Raises:
        ConfigError: unknown name, or a learning rate that is not a positive finite number.
    """
    try:
        make = ESTIMATORS[name]
    except KeyError:
        raise ConfigError(f"unknown estimator {name!r}; use one of {sorted(ESTIMATORS)}") from None
    if learning_rate is None:
        return make()
    if not (np.isfinite(learning_rate) and learning_rate > 0):
        raise ConfigError(f"learning_rate must be a positive finite number, got {learning_rate}")
    return make(learning_rate=float(learning_rate))


def as_samples(prompts: Sequence[Sequence[int]] | Sequence[IntArray] | IntArray) -> IntArray:
    """Prompts (candidate indices) as an ``I x L`` integer array."""
    return np.asarray(prompts, dtype=np.int64).reshape(len(prompts), -1)
