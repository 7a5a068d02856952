"""Per-example losses from label log-probabilities, as the optimizer scores sampled prompts."""

from __future__ import annotations

from typing import Literal

import numpy as np

from bdpl.estimators import FloatArray, IntArray

__all__ = ["LOSSES", "LossName", "losses_from_scores"]

LossName = Literal["ce", "hinge"]
LOSSES: tuple[LossName, ...] = ("ce", "hinge")
# Log-probs are floored here before the loss, so a backend's -inf (or a tiny value) gives a
# large but finite loss; torch's BCE clamps log at -100 for the same reason.
_MIN_LOGPROB = -1e4


def losses_from_scores(
    logprobs: FloatArray, labels: IntArray, *, loss: LossName = "ce", margin: float = 1.0
) -> FloatArray:
    """Per-example losses from label log-probs (``... x K``) and true classes (``...``).

    ``"ce"``: cross-entropy after renormalising over the labels (the reference's
    ``CrossEntropyLoss`` on the label logits). ``"hinge"``: ``max(0, margin - (s_y - max_k s_k))``
    over the other labels ``k``, the usual multi-class hinge. (The reference's ``MarginLoss``
    with ``target=False`` has this difference the other way round, which rewards wrong
    answers; its runs used cross-entropy.)

    >>> lp = np.log(np.array([[0.2, 0.8], [0.5, 0.5]]))
    >>> losses_from_scores(lp, np.array([1, 0])).round(4).tolist()
    [0.2231, 0.6931]
    """
    lp = np.maximum(np.nan_to_num(logprobs, nan=_MIN_LOGPROB, neginf=_MIN_LOGPROB), _MIN_LOGPROB)
    true = np.take_along_axis(lp, labels[..., None], axis=-1)[..., 0]
    if loss == "ce":
        m = lp.max(axis=-1)
        lse = m + np.log(np.exp(lp - m[..., None]).sum(axis=-1))
        return np.asarray(lse - true, dtype=np.float64)
    others = lp.copy()
    np.put_along_axis(others, labels[..., None], -np.inf, axis=-1)
    return np.asarray(np.maximum(0.0, margin - (true - others.max(axis=-1))), dtype=np.float64)
