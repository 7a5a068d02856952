"""Calibration: removing a prompt's own label prior from the label scores.

A small model asked ``<s1> It was <slot>.`` may answer "great" for nearly every review: the
prompt and template carry a prior over the labels that swamps the input. Calibration divides
that prior out of each prediction, the same way in training (the losses the optimizer learns
from) and in prediction, so a learned prompt is judged by what it adds over its own bias.

Two methods, by name (the ``calibration`` option of :class:`~bdpl.optimizer.Optimizer`):

- ``"content-free"`` — contextual calibration (Zhao et al., *Calibrate Before Use*, ICML 2021).
  The same prompt and template are scored on content-free inputs
  (:data:`CONTENT_FREE_INPUTS`: ``"N/A"`` and the empty string, in every input slot); the
  mean of their label distributions is the prior ``p_cf``, and each example's label
  distribution ``p`` becomes ``normalise(p / p_cf)``. The content-free inputs contain no mask
  token or other model-specific string, so every backend scores them as plain text (a masked
  LM keeps its one mask, in the slot). They cost :data:`CONTENT_FREE_INPUTS` extra queries per
  distinct prompt in each metered call, which go through the meter like any other (cached,
  counted, budgeted) and are part of the optimizer's cost estimates.
- ``"batch"`` — batch calibration (Zhou et al., *Batch Calibration*, ICLR 2024), in log space:
  the mean label log-probability over the examples scored together with one prompt (a
  training minibatch, or the whole set given to ``predict``/``evaluate``) is subtracted from
  each example's, then renormalised. No extra queries, but a prediction depends on the other
  examples scored with it, and one example alone is always uniform.
- ``None`` — no calibration (the BDPL paper's setting).

All functions take label log-probs as an array ``... x N x K`` (prompts, examples, labels)
and return normalised log-probs of the same shape.

>>> import numpy as np
>>> prior = np.log([[0.8, 0.2]])                # what the prompt says with no input
>>> lp = np.log([[[0.9, 0.1], [0.6, 0.4]]])     # one prompt, two examples
>>> np.exp(content_free(lp, prior[:, None, :])).round(3).tolist()
[[[0.692, 0.308], [0.273, 0.727]]]
>>> np.exp(batch(lp)).round(3).tolist()
[[[0.71, 0.29], [0.29, 0.71]]]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from bdpl.errors import ConfigError
from bdpl.tasks import Example, Task
from bdpl.types import Query

FloatArray = npt.NDArray[np.float64]
Calibration = Literal["content-free", "batch"]
CALIBRATIONS: tuple[str, ...] = ("content-free", "batch")
# Zhao et al. average "N/A", "" and "[MASK]"; "[MASK]" is a real mask token for BERT-style
# models (a second mask beside the slot's), so only the two plain-text inputs are used.
CONTENT_FREE_INPUTS: tuple[str, ...] = ("N/A", "")
# Log-probs are floored here so that a backend's -inf gives a finite (if large) correction.
MIN_LOGPROB = -1e4

__all__ = [
    "CALIBRATIONS",
    "CONTENT_FREE_INPUTS",
    "Calibration",
    "batch",
    "calibrate",
    "calibrated_scores",
    "check_calibration",
    "content_free",
    "content_free_examples",
    "content_free_queries",
    "extra_queries",
    "normalise",
]


def check_calibration(value: object) -> Calibration | None:
    """``value`` if it names a calibration method (or is ``None``).

    Raises:
        ConfigError: any other value (the message lists the valid ones).
    """
    if value is None or value in CALIBRATIONS:
        return value  # type: ignore[return-value]
    raise ConfigError(f"calibration must be None or one of {list(CALIBRATIONS)}, got {value!r}")


def normalise(logprobs: npt.ArrayLike) -> FloatArray:
    """Log-probs renormalised over the last axis (labels), floored at :data:`MIN_LOGPROB`."""
    lp = np.asarray(logprobs, dtype=np.float64)
    lp = np.maximum(np.nan_to_num(lp, nan=MIN_LOGPROB, neginf=MIN_LOGPROB), MIN_LOGPROB)
    m = lp.max(axis=-1, keepdims=True)
    out: FloatArray = lp - (m + np.log(np.exp(lp - m).sum(axis=-1, keepdims=True)))
    return out


def content_free(logprobs: npt.ArrayLike, free: npt.ArrayLike) -> FloatArray:
    """Contextual calibration: ``normalise(p / mean(p_cf))`` per prompt.

    Args:
        logprobs: label log-probs, ``P x N x K``.
        free: the same prompts' label log-probs on content-free inputs, ``P x M x K``
            (``M >= 1``); their label distributions are averaged (in probability space).

    Raises:
        ConfigError: the shapes do not match.
    """
    lp, cf = normalise(logprobs), normalise(free)
    if cf.ndim != lp.ndim or cf.shape[:-2] != lp.shape[:-2] or cf.shape[-1] != lp.shape[-1]:
        raise ConfigError(f"content-free scores of shape {cf.shape} do not fit {lp.shape}")
    if cf.shape[-2] == 0:
        raise ConfigError("content-free calibration needs at least one content-free input")
    m = cf.max(axis=-2, keepdims=True)
    log_prior = m + np.log(np.exp(cf - m).mean(axis=-2, keepdims=True))
    return normalise(lp - log_prior)


def batch(logprobs: npt.ArrayLike) -> FloatArray:
    """Batch calibration: subtract each prompt's mean label log-prob over its examples.

    Args:
        logprobs: label log-probs, ``P x N x K``, the ``N`` examples scored with each prompt.
    """
    lp = normalise(logprobs)
    if lp.shape[-2] == 0:
        return lp
    return normalise(lp - lp.mean(axis=-2, keepdims=True))


def calibrate(
    method: Calibration | None, logprobs: npt.ArrayLike, free: npt.ArrayLike | None = None
) -> FloatArray:
    """Apply ``method`` (``None``: only renormalise) to ``logprobs`` (``P x N x K``).

    Raises:
        ConfigError: ``"content-free"`` without ``free`` scores, or an unknown method.
    """
    method = check_calibration(method)
    if method is None:
        return normalise(logprobs)
    if method == "batch":
        return batch(logprobs)
    if free is None:
        raise ConfigError("content-free calibration needs the content-free scores (free=)")
    return content_free(logprobs, free)


def content_free_examples(task: Task) -> list[Example]:
    """The content-free inputs as examples of ``task`` (both texts for a pair task)."""
    return [Example(t, t if task.is_pair else None) for t in CONTENT_FREE_INPUTS]


def content_free_queries(
    task: Task, prompt: Sequence[str], *, separator: str = "\n"
) -> list[Query]:
    """The queries that measure ``prompt``'s label prior under ``task``'s template.

    >>> from bdpl.tasks import get_task
    >>> [q.before for q in content_free_queries(get_task("sst2"), ["truly"])]
    ['truly N/A It was', 'truly  It was']
    """
    return [task.render(prompt, e, separator=separator) for e in content_free_examples(task)]


def extra_queries(method: Calibration | None) -> int:
    """Extra queries per distinct prompt per metered call that ``method`` sends."""
    return len(CONTENT_FREE_INPUTS) if method == "content-free" else 0


def calibrated_scores(
    score: Callable[[list[Query]], FloatArray],
    task: Task,
    prompts: Sequence[Sequence[str]],
    examples: Sequence[Example],
    *,
    method: Calibration | None,
    separator: str = "\n",
) -> FloatArray:
    """Label log-probs of every (prompt, example) pair, ``P x N x K``, calibrated by ``method``.

    All queries, the content-free ones included, go to ``score`` in one call (so a metered
    ``score`` caches, counts and budgets them together).

    Args:
        score: answers a list of queries with an ``len(queries) x K`` array of label log-probs.
        task: renders the queries.
        prompts: the prompts, as token lists.
        examples: the examples, scored under every prompt.
        method: the calibration; ``None`` returns the scores as they came.
        separator: the backend's pair separator.
    """
    method = check_calibration(method)
    queries = [task.render(p, e, separator=separator) for p in prompts for e in examples]
    free_examples = content_free_examples(task) if method == "content-free" else []
    queries += [task.render(p, e, separator=separator) for p in prompts for e in free_examples]
    k = len(task.label_words)
    arr = np.asarray(score(queries), dtype=np.float64).reshape(-1, k)
    n = len(prompts) * len(examples)
    lp = arr[:n].reshape(len(prompts), len(examples), k)
    if method is None:
        return lp
    free = arr[n:].reshape(len(prompts), len(free_examples), k) if free_examples else None
    return calibrate(method, lp, free)
