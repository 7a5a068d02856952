"""The methods a run can learn a prompt with: BDPL and the baselines it is compared with.

- ``bdpl``: :class:`~bdpl.optimizer.Optimizer` (either estimator, from the settings);
- ``random``: :class:`~bdpl.baselines.RandomSearch` over the same candidates and budget;
- ``manual``: :class:`~bdpl.baselines.ManualPrompt`, the template alone (learns nothing);
- ``in-context``: the template alone after ``demonstrations`` training examples
  (:func:`~bdpl.demonstrations.with_demonstrations`, chosen by the run's seed).

Only ``bdpl`` runs resume from a checkpoint; the others run again from the start when
resumed, and the query cache answers every query they had already paid for (same seed, same
queries), so nothing is paid twice and the result is the uninterrupted run's.
"""

from __future__ import annotations

from typing import Any, Literal, get_args

from bdpl.backends.base import Backend
from bdpl.baselines import ManualPrompt, RandomSearch
from bdpl.demonstrations import with_demonstrations
from bdpl.errors import ConfigError
from bdpl.metering import Meter
from bdpl.optimizer import Optimizer
from bdpl.tasks import Dataset

__all__ = ["METHODS", "Method", "make_optimizer"]

Method = Literal["bdpl", "random", "manual", "in-context"]
METHODS: tuple[str, ...] = get_args(Method)
_NOT_SEARCHED = ("learning_rate", "estimator")  # random search has no distribution


def make_optimizer(
    method: str,
    backend: Backend,
    train: Dataset,
    meter: Meter,
    settings: dict[str, Any],
    *,
    demonstrations: int = 4,
) -> Optimizer:
    """The optimizer ``method`` names, over ``train``'s task, metered by ``meter``.

    Args:
        method: one of :data:`METHODS`.
        backend: the model.
        train: the training set (its task; the in-context demonstrations come from it).
        meter: the run's meter.
        settings: the :class:`~bdpl.optimizer.Optimizer` keyword arguments of the run.
        demonstrations: examples shown by ``in-context``.

    Raises:
        ConfigError: an unknown method.
    """
    task = train.task
    if method == "bdpl":
        return Optimizer(backend, task=task, meter=meter, **settings)
    if method == "random":
        kept = {k: v for k, v in settings.items() if k not in _NOT_SEARCHED}
        return RandomSearch(backend, task=task, meter=meter, **kept)
    calibration = settings.get("calibration")  # the baselines are scored as BDPL's prompts are
    if method == "manual":
        return ManualPrompt(backend, task=task, meter=meter, calibration=calibration)
    if method == "in-context":
        shown = with_demonstrations(train, demonstrations, seed=int(settings.get("seed", 0)))
        return ManualPrompt(backend, task=shown, meter=meter, calibration=calibration)
    raise ConfigError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
