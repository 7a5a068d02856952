"""What :meth:`Optimizer.fit <bdpl.optimizer.Optimizer.fit>` will send, and its worst-case cost.

:class:`FitPlan` is the one place that says how a fit batches its queries: ``fit`` walks it,
and :func:`estimate_fit_cost` prices it, so the estimate cannot drift from what is sent.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bdpl._validate import positive_int
from bdpl.calibration import content_free_queries, extra_queries
from bdpl.errors import ConfigError
from bdpl.metering import CostEstimate, Price, estimate_cost, estimate_usage

if TYPE_CHECKING:
    from bdpl.optimizer import Optimizer
    from bdpl.tasks import Dataset

__all__ = ["FitPlan", "estimate_fit_cost"]


@dataclass(frozen=True)
class FitPlan:
    """How a fit sends its queries, in the worst case (no duplicate prompts, no cache hits).

    Each epoch walks the shuffled training set in :attr:`batches`; each step scores
    ``sample_size`` prompts on its batch in one metered call, and after the steps one more
    call scores the dev set (when there is one) with the argmax prompt.

    After the epochs, with a dev set, the selection (see :class:`~bdpl.optimizer.Optimizer`)
    scores the manual and the best-dev prompt on dev, and the kept and the manual prompt on
    the training set: :attr:`final_calls`.

    Attributes:
        epochs: passes over the training set.
        sample_size: prompts scored per step.
        batches: training examples in each step of an epoch, in order.
        dev_size: dev examples scored once per epoch (0 without a dev set).
        final_calls: queries of each metered call after the epochs.
        extra: queries a calibration adds per prompt scored in a call (content-free
            calibration scores its content-free inputs under each prompt).

    >>> plan = FitPlan.for_fit(n_train=20, n_dev=4, batch_size=8, sample_size=3, epochs=2)
    >>> plan.batches, plan.epoch_calls
    ((8, 8, 4), (24, 24, 12, 4))
    >>> plan.queries_per_epoch, plan.max_queries, plan.steps
    (64, 128, 6)
    """

    epochs: int
    sample_size: int
    batches: tuple[int, ...]
    dev_size: int = 0
    final_calls: tuple[int, ...] = ()
    extra: int = 0

    @classmethod
    def for_fit(
        cls,
        *,
        n_train: int,
        n_dev: int,
        batch_size: int,
        sample_size: int,
        epochs: int,
        paired_selection: bool = False,
        extra: int = 0,
    ) -> FitPlan:
        """The plan of a fit on ``n_train`` training and ``n_dev`` dev examples.

        ``paired_selection`` adds the selection's comparison with the manual prompt (only
        with a dev set); ``extra`` is
        what a calibration adds per prompt scored in a call.

        Raises:
            ConfigError: a count that is not a non-negative (sizes: positive) integer.
        """
        n_train = positive_int("n_train", n_train, 0)
        n_dev = positive_int("n_dev", n_dev, 0)
        batch_size = positive_int("batch_size", batch_size)
        full, rest = divmod(n_train, batch_size)
        batches = (batch_size,) * full + ((rest,) if rest else ())
        return cls(
            epochs=positive_int("epochs", epochs),
            sample_size=positive_int("sample_size", sample_size),
            batches=batches,
            dev_size=n_dev,
            final_calls=(
                tuple(n + extra for n in (n_dev, n_dev, n_train, n_train))
                if paired_selection and n_dev
                else ()
            ),
            extra=positive_int("extra", extra, 0),
        )

    @property
    def steps_per_epoch(self) -> int:
        """Updates per epoch."""
        return len(self.batches)

    @property
    def steps(self) -> int:
        """Updates over the whole fit."""
        return self.epochs * self.steps_per_epoch

    @property
    def batch_bounds(self) -> tuple[tuple[int, int], ...]:
        """``(start, stop)`` of each step's batch in an epoch's shuffled order."""
        ends = list(itertools.accumulate(self.batches))
        return tuple(zip([0, *ends], ends, strict=False))

    @property
    def epoch_calls(self) -> tuple[int, ...]:
        """Queries in each metered call of an epoch, at most: the steps', then the dev set's."""
        steps = tuple(self.sample_size * (b + self.extra) for b in self.batches)
        return steps + ((self.dev_size + self.extra,) if self.dev_size else ())

    @property
    def calls(self) -> tuple[int, ...]:
        """Queries in each metered call of the fit, at most."""
        return self.epoch_calls * self.epochs + self.final_calls

    @property
    def queries_per_epoch(self) -> int:
        """Worst-case queries of one epoch."""
        return sum(self.epoch_calls)

    @property
    def max_queries(self) -> int:
        """Worst-case queries of the whole fit."""
        return self.epochs * self.queries_per_epoch + sum(self.final_calls)


def estimate_fit_cost(
    optimizer: Optimizer,
    train: Dataset,
    dev: Dataset | None = None,
    *,
    price: Price | None = None,
) -> CostEstimate:
    """Worst-case cost of ``optimizer.fit(train, dev)``, without calling the model.

    The queries are those of :meth:`Optimizer.plan <bdpl.optimizer.Optimizer.plan>`, sent in
    its calls; every query is bounded by its example rendered with the candidate the backend
    counts most tokens for, at every prompt position.

    Args:
        optimizer: a configured :class:`~bdpl.optimizer.Optimizer` with its candidates set
            (pass ``candidates=``, or call :meth:`~bdpl.optimizer.Optimizer.prepare` first;
            :meth:`~bdpl.optimizer.Optimizer.estimate_cost` does that for you).
        train: the training set ``fit`` would get.
        dev: the dev set ``fit`` would get.
        price: overrides the price table; defaults to the optimizer's meter's price.

    Raises:
        ConfigError: the optimizer has no candidates yet, or the training set is empty.
        UnknownPriceError: a paid model with no price, as for :class:`~bdpl.metering.Meter`.
    """
    if optimizer.candidates is None:
        raise ConfigError(
            "estimate_fit_cost needs the optimizer's candidates: pass candidates= to Optimizer "
            "or use optimizer.estimate_cost(train, dev), which builds them"
        )
    if len(train) == 0:
        raise ConfigError("the training set is empty")
    task = optimizer.task if optimizer.task is not None else train.task
    meter = optimizer.meter
    probe = train.examples[0]

    def cost(candidate: str) -> int:
        # By the backend's own token count: a shorter word can have more tokens.
        query = task.render([candidate], probe, separator=optimizer.separator)
        return estimate_usage(meter.backend, [query]).total_tokens

    longest = max(optimizer.candidates, key=lambda c: (cost(c), len(c.encode())))
    prompt = [longest] * optimizer.prompt_length
    examples = list(train.examples) + (list(dev.examples) if dev is not None else [])
    sample = [task.render(prompt, e, separator=optimizer.separator) for e in examples]
    if extra_queries(optimizer.calibration):  # its content-free inputs under the same prompt
        sample += content_free_queries(task, prompt, separator=optimizer.separator)
    plan = optimizer.plan(len(train), len(dev) if dev is not None else 0)
    return estimate_cost(
        meter.backend,
        sample,
        plan.max_queries,
        batch_sizes=plan.calls,
        price=price if price is not None else meter.price,
        max_batch_size=meter.max_batch_size,
    )
