"""Estimators: unbiasedness against exact gradients, faithfulness to the reference, no NaN/inf."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bdpl.errors import ConfigError
from bdpl.estimators import (
    EstimatorState,
    LOOEstimator,
    ReferenceEstimator,
    adam,
    clip_by_norm,
    floor_probs,
    get_estimator,
    project_bisection,
    softmax,
    standardised,
    standardised_ranks,
)

L, N = 2, 3
PROMPTS = np.array(list(itertools.product(range(N), repeat=L)))  # all 9 prompts


def loss_table(rng: np.random.Generator) -> dict[tuple[int, ...], float]:
    return {tuple(p): float(x) for p, x in zip(PROMPTS, rng.normal(size=len(PROMPTS)), strict=True)}


def exact_conditionals(
    probs: np.ndarray, table: dict[tuple[int, ...], float]
) -> tuple[np.ndarray, float]:
    """``E[L | s_i = j]`` for every position and candidate, and ``E[L]``, by enumeration."""
    weights = np.array([np.prod(probs[np.arange(L), p]) for p in PROMPTS])
    losses = np.array([table[tuple(p)] for p in PROMPTS])
    mean = float(weights @ losses)
    cond = np.zeros((L, N))
    for i in range(L):
        for j in range(N):
            sel = PROMPTS[:, i] == j
            cond[i, j] = (weights[sel] @ losses[sel]) / weights[sel].sum()
    return cond, mean


def monte_carlo(
    gradient: object,
    probs: np.ndarray,
    table: dict[tuple[int, ...], float],
    *,
    batches: int,
    size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error of ``gradient(probs, samples, losses)`` over many steps."""
    rng = np.random.default_rng(7)
    cdf = np.cumsum(probs, axis=1)
    grads = np.empty((batches, L, N))
    for b in range(batches):
        samples = (rng.random((size, L))[:, :, None] >= cdf[None]).sum(axis=2)
        samples = np.minimum(samples, N - 1)
        losses = np.array([table[tuple(s)] for s in samples])
        grads[b] = gradient(probs, samples, losses)  # type: ignore[operator]
    return grads.mean(axis=0), grads.std(axis=0) / np.sqrt(batches)


def test_loo_estimator_is_unbiased_for_the_logit_gradient() -> None:
    """E[G] = dE[L]/dtheta_ij = p_ij (E[L | s_i = j] - E[L]) on a 2 x 3 problem (all 9 prompts)."""
    rng = np.random.default_rng(0)
    probs = softmax(rng.normal(size=(L, N)))
    table = loss_table(rng)
    cond, mean = exact_conditionals(probs, table)
    exact = probs * (cond - mean)

    # Cross-check the closed form with central finite differences of the enumerated E[L].
    def expected(theta: np.ndarray) -> float:
        p = softmax(theta)
        return float(sum(np.prod(p[np.arange(L), q]) * table[tuple(q)] for q in PROMPTS))

    theta = np.log(probs)
    fd = np.zeros((L, N))
    for i, j in itertools.product(range(L), range(N)):
        e = np.zeros((L, N))
        e[i, j] = 1e-6
        fd[i, j] = (expected(theta + e) - expected(theta - e)) / 2e-6
    np.testing.assert_allclose(fd, exact, atol=1e-8)

    est, se = monte_carlo(LOOEstimator().gradient, probs, table, batches=20_000, size=4)
    assert np.all(np.abs(est - exact) <= 4 * se + 1e-4), (est, exact, se)
    assert np.max(se) < 0.01  # the tolerance is tight enough to mean something


def test_reference_estimator_expectation() -> None:
    """E[G_ij] = 2 (E[L | s_i = j] - E[L]): twice dE[L]/dp_ij, shifted per row along (1, ..., 1)."""
    rng = np.random.default_rng(1)
    probs = softmax(rng.normal(size=(L, N)))
    table = loss_table(rng)
    cond, mean = exact_conditionals(probs, table)
    exact = 2 * (cond - mean)
    est, se = monte_carlo(ReferenceEstimator().gradient, probs, table, batches=20_000, size=4)
    assert np.all(np.abs(est - exact) <= 4 * se + 1e-4), (est, exact, se)


ADVERSARIAL = [
    lambda k, rng: rng.normal(size=k) * 1e300,
    lambda k, rng: np.where(np.arange(k) % 2, 1e308, -1e308),
    lambda k, rng: np.full(k, 5.0),
    lambda k, rng: rng.normal(size=k) * 1e-300,
    lambda k, rng: np.concatenate([[1e6], np.zeros(k - 1)]),
    lambda k, rng: rng.normal(size=k),
]


@pytest.mark.parametrize("name", ["loo", "loo-rank", "reference"])
@pytest.mark.parametrize("lr", [1e-5, 1e-3, 1e-1, 1.0, 10.0])
def test_no_nan_or_inf_for_any_learning_rate(name: str, lr: float) -> None:
    rng = np.random.default_rng(3)
    est = get_estimator(name, learning_rate=lr)
    state = est.init(4, 6)
    for step in range(60):
        probs = est.probs(state)
        samples = np.minimum((rng.random((5, 4))[:, :, None] >= np.cumsum(probs, 1)).sum(2), 5)
        # Push one candidate hard, so the distribution collapses and probabilities hit 0.
        losses = ADVERSARIAL[step % len(ADVERSARIAL)](5, rng) + 1e3 * (samples[:, 0] != 2)
        losses = np.nan_to_num(losses, posinf=1e308, neginf=-1e308)
        state = est.update(state, samples, losses)
        for arr in (state.params, state.m, state.v, est.probs(state)):
            assert arr is None or np.all(np.isfinite(arr)), (name, lr, step)
        probs = est.probs(state)
        assert np.all(probs >= 0) and np.allclose(probs.sum(axis=1), 1.0)


def test_reference_projection_zeroes_and_floor() -> None:
    """The reference's bisection sets probabilities to exactly 0; the floor keeps 1/p finite."""
    p = np.array([[0.9, 0.5, 0.1, 0.05], [0.25, 0.25, 0.25, 0.25]])
    projected = project_bisection(p)
    assert np.all(np.abs(projected.sum(axis=1) - 1) < 1e-3)
    assert np.count_nonzero(projected[0] == 0) >= 1
    floored = floor_probs(projected, 1e-6)
    assert floored.min() == 1e-6
    assert np.all(np.abs(floored.sum(axis=1) - 1) < 1e-3 + 4e-6)
    # With the floor the estimator's -1/p terms are large but finite.
    g = ReferenceEstimator().gradient(floored, np.array([[0, 1], [2, 3]]), np.array([1.0, 0.0]))
    assert np.all(np.isfinite(g))


def test_without_the_floor_a_zero_probability_gives_nan() -> None:
    """Why the floor exists: the reference formula at p_ij = 0 is 0 * inf."""
    probs = np.array([[0.5, 0.5, 0.0]])
    with np.errstate(all="ignore"):
        g = ReferenceEstimator().gradient(probs, np.array([[0], [1]]), np.array([1.0, 0.0]))
    assert np.isnan(g[0, 2]) and np.all(np.isfinite(g[0, :2]))
    state = ReferenceEstimator(learning_rate=1.0).init(1, 3)
    for _ in range(5):  # a collapse that zeroes probabilities, then updates on the floor
        state = ReferenceEstimator(learning_rate=1.0).update(
            state, np.array([[0], [1]]), np.array([0.0, 1.0])
        )
    assert state.params[0, 0] > 0.99 and state.params.min() == 1e-6
    assert np.all(np.isfinite(state.params))
    assert state.v is not None and np.all(np.isfinite(state.v))


def test_clip_by_norm_and_adam_match_torch() -> None:
    """One reference update equals a transcription of the reference loop in torch."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    p0 = rng.random((3, 5)) + 0.1
    p0 /= p0.sum(axis=1, keepdims=True)
    samples = rng.integers(0, 5, size=(6, 3))
    losses = rng.normal(size=6) * 10

    # The reference loop, written with torch as in run_glue_discrete_LM.py.
    probs = torch.tensor(p0, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.AdamW([{"params": [probs], "weight_decay": 0.1}], lr=1e-2)
    for _ in range(3):
        derivative = (-1 / probs).detach().repeat(6, 1, 1)
        for k in range(6):
            for i in range(3):
                derivative[k][i][samples[k][i]] *= -1
        probs.grad = torch.zeros_like(probs)
        mean = sum(losses) / 6
        for k in range(6):
            probs.grad += 1 / 5 * (losses[k] - mean) * derivative[k]
        torch.nn.utils.clip_grad_norm_(probs, 3)
        opt.step()
        with torch.no_grad():
            probs.copy_(torch.tensor(project_bisection(probs.detach().numpy())))

    est = ReferenceEstimator(learning_rate=1e-2, floor=0.0)
    state = EstimatorState(p0, np.zeros_like(p0), np.zeros_like(p0), 0)
    for _ in range(3):
        state = est.update(state, samples, losses)
    # torch's clip divides by (norm + 1e-6): agreement to ~1e-6 relative.
    np.testing.assert_allclose(state.params, probs.detach().numpy(), rtol=1e-5, atol=1e-7)


def test_clip_by_norm_handles_scale_without_overflow() -> None:
    g = np.array([[3.0, 4.0]])
    np.testing.assert_allclose(clip_by_norm(g, 1.0, 3.0), [[1.8, 2.4]])
    np.testing.assert_allclose(clip_by_norm(g, 0.1, 3.0), [[0.3, 0.4]])
    np.testing.assert_allclose(clip_by_norm(g, 1e308, 3.0), [[1.8, 2.4]])
    assert not np.any(clip_by_norm(np.zeros((1, 2)), 5.0, 3.0))


def test_adam_bias_corrected_first_step() -> None:
    s = EstimatorState(np.zeros((1, 2)), np.zeros((1, 2)), np.zeros((1, 2)), 0)
    out = adam(s, np.array([[2.0, -0.5]]), learning_rate=0.1)
    np.testing.assert_allclose(out.params, [[-0.1, 0.1]], rtol=1e-6)
    assert out.step == 1


def test_shapings() -> None:
    losses = np.array([3.0, 1.0, 3.0, 2.0])
    ranks = standardised_ranks(losses)
    assert ranks is not None
    # Ranks 0..3 with the tie sharing 2.5: [2.5, 0, 2.5, 1], then standardised.
    expected = np.array([2.5, 0.0, 2.5, 1.0])
    expected = (expected - expected.mean()) / expected.std()
    np.testing.assert_allclose(ranks, expected)
    np.testing.assert_allclose(standardised_ranks(losses * 1e300 + 7), ranks)  # invariant
    assert standardised(np.full(3, 2.0)) is None and standardised_ranks(np.full(3, 2.0)) is None
    s = standardised(np.array([1e308, -1e308, 0.0]))
    assert s is not None and np.all(np.isfinite(s))


def test_get_estimator_validates() -> None:
    assert get_estimator("loo").learning_rate == LOOEstimator().learning_rate
    assert get_estimator("reference", learning_rate=0.5).learning_rate == 0.5
    rank = get_estimator("loo-rank", learning_rate=0.5)
    assert isinstance(rank, LOOEstimator) and rank.shaping == "rank" and rank.name == "loo-rank"
    with pytest.raises(ConfigError, match="unknown estimator"):
        get_estimator("adam")
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="learning_rate"):
            get_estimator("loo", learning_rate=bad)
    est = LOOEstimator()
    state = est.init(2, 3)
    with pytest.raises(ConfigError, match="at least 2"):
        est.update(state, np.array([[0, 1]]), np.array([1.0]))
    with pytest.raises(ConfigError, match="finite"):
        est.update(state, np.array([[0, 1], [1, 2]]), np.array([1.0, np.nan]))
    with pytest.raises(ConfigError, match=r"\[0, 3\)"):
        est.update(state, np.array([[0, 3], [1, 2]]), np.array([1.0, 2.0]))


@pytest.mark.parametrize("name", ["loo", "loo-rank"])
def test_loo_carries_no_adam_moments(name: str) -> None:
    """Plain SGD keeps no moments, so its checkpoints carry none."""
    est = get_estimator(name)
    assert est.uses_moments is False
    state = est.init(2, 3)
    assert state.m is None and state.v is None
    state = est.update(state, np.array([[0, 1], [2, 0]]), np.array([1.0, 0.0]))
    assert state.m is None and state.v is None and state.step == 1
    # Moments loaded from an old checkpoint are dropped by the first update.
    old = EstimatorState(state.params, np.zeros((2, 3)), np.zeros((2, 3)), 1)
    assert est.update(old, np.array([[0, 1], [2, 0]]), np.array([1.0, 0.0])).m is None


def test_reference_keeps_its_moments() -> None:
    est = get_estimator("reference")
    assert est.uses_moments is True
    state = est.update(est.init(2, 3), np.array([[0, 1], [2, 0]]), np.array([1.0, 0.0]))
    assert state.m is not None and state.v is not None and state.m.shape == (2, 3)
    copy = state.copy()
    assert copy.m is not None and not np.shares_memory(copy.m, state.m)
