"""Losses from label log-probs: cross-entropy over the labels and the multi-class hinge."""

from __future__ import annotations

import doctest

import numpy as np

import bdpl.losses
from bdpl.losses import losses_from_scores


def test_losses_from_scores() -> None:
    lp = np.array([[np.log(0.2), np.log(0.8)], [np.log(0.5), np.log(0.5)], [0.0, -np.inf]])
    labels = np.array([1, 0, 1])
    ce = losses_from_scores(lp, labels)
    np.testing.assert_allclose(ce[:2], [-np.log(0.8), np.log(2)])
    assert np.isfinite(ce[2]) and ce[2] > 100  # -inf log-prob: large, finite
    # Renormalised over the labels: unnormalised scores give the same loss.
    np.testing.assert_allclose(losses_from_scores(lp[:2] - 3.0, labels[:2]), ce[:2])
    hinge = losses_from_scores(lp, labels, loss="hinge", margin=1.0)
    np.testing.assert_allclose(hinge[:2], [max(0, 1 - np.log(4)), 1.0])


def test_the_old_import_path_still_works() -> None:
    from bdpl.optimizer import losses_from_scores as old

    assert old is losses_from_scores


def test_doctests() -> None:
    result = doctest.testmod(bdpl.losses)
    assert result.attempted > 0 and result.failed == 0
