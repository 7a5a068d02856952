"""What a run would cost in the worst case (no cache hits), worked out without calling the model."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from bdpl.backends.base import capabilities_of
from bdpl.calibration import content_free_queries, extra_queries
from bdpl.errors import ConfigError
from bdpl.metering.prices import Price, price_for
from bdpl.metering.tokens import estimate_usage
from bdpl.types import Query, Usage

if TYPE_CHECKING:  # the optimizer imports this package: no import at run time
    from bdpl.optimizer import Optimizer
    from bdpl.tasks import Dataset

__all__ = ["CostEstimate", "estimate_cost", "estimate_fit_cost"]


@dataclass(frozen=True, slots=True)
class CostEstimate:
    """Upper bounds on what a run would spend if nothing came from the cache.

    Attributes:
        queries: queries sent.
        requests: requests made.
        prompt_tokens: prompt tokens billed.
        completion_tokens: completion tokens billed.
        dollars: cost at ``price``.
        model: the model priced.
        price: the price used.
    """

    queries: int
    requests: int
    prompt_tokens: int
    completion_tokens: int
    dollars: float
    model: str
    price: Price

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def __str__(self) -> str:
        return (
            f"at most {self.queries:,} queries in {self.requests:,} requests, "
            f"{self.tokens:,} tokens, ${self.dollars:,.4f} ({self.model})"
        )


def estimate_cost(
    backend: object,
    queries_sample: Sequence[Query],
    n_queries: int,
    *,
    batch_sizes: Sequence[int] | None = None,
    price: Price | None = None,
    max_batch_size: int | None = None,
) -> CostEstimate:
    """Worst-case cost of sending ``n_queries`` queries like those in ``queries_sample``.

    Every query is assumed to be as expensive as the most expensive sampled one, so the result
    is an upper bound as long as the sample holds the longest queries the run will send (e.g.
    each example rendered with the longest possible prompt).

    Args:
        backend: the backend that would answer; its ``estimate`` is used when it has one (else
            the conservative rule of :mod:`bdpl.metering.tokens`). It is never called to score.
        queries_sample: representative queries, the longest included.
        n_queries: how many queries the run sends at most (e.g. the optimizer's
            ``max_queries(n_train, n_dev)``).
        batch_sizes: sizes of the ``Meter.score`` calls the run makes (each is split into
            chunks of ``max_batch_size``, one backend call each); default: one call of
            ``n_queries``. Needed for a right bound on requests.
        price: overrides the price table, as for :class:`~bdpl.metering.Meter`.
        max_batch_size: queries per backend call; defaults to the backend's ``max_batch_size``.

    Raises:
        ConfigError: ``n_queries`` is negative, positive with an empty sample, or not the sum
            of ``batch_sizes``.
        UnknownPriceError: as for :class:`~bdpl.metering.Meter`.

    >>> from bdpl.backends.base import Capabilities
    >>> class Api:
    ...     identity = 'api'
    ...     capabilities = Capabilities(model='gpt-4o-mini', max_batch_size=20)
    ...     def estimate(self, queries):
    ...         return Usage(10 * len(queries), len(queries), 1)
    >>> e = estimate_cost(Api(), [Query("It was", ".", (" bad", " good"))], 100)
    >>> (e.queries, e.requests, e.prompt_tokens, e.completion_tokens)
    (100, 5, 1000, 100)
    >>> estimate_cost(Api(), [Query("It was", ".", (" bad", " good"))], 100,
    ...               batch_sizes=[30, 30, 40]).requests
    6
    """
    if n_queries < 0:
        raise ConfigError(f"n_queries must be >= 0, got {n_queries}")
    sizes = [n_queries] if batch_sizes is None else [int(b) for b in batch_sizes]
    if sum(sizes) != n_queries or any(b < 0 for b in sizes):
        raise ConfigError(f"batch_sizes must be >= 0 and add up to n_queries={n_queries}")
    chosen = price_for(backend, price)
    caps = capabilities_of(backend)
    model = caps.model or str(getattr(backend, "identity", "?"))
    if n_queries == 0:
        return CostEstimate(0, 0, 0, 0, 0.0, model, chosen)
    if not queries_sample:
        raise ConfigError("estimate_cost needs at least one sample query")
    batch = max(1, max_batch_size or caps.max_batch_size)
    chunks: Counter[int] = Counter()  # backend calls, by number of queries
    for b in sizes:
        full, rest = divmod(b, batch)
        chunks[batch] += full
        if rest:
            chunks[rest] += 1
    sample = list(dict.fromkeys(queries_sample))
    total = Usage()
    for k, count in chunks.items():
        if count == 0:
            continue
        worst = Usage()
        for q in sample:
            u = estimate_usage(backend, [q] * k)
            worst = Usage(
                max(worst.prompt_tokens, u.prompt_tokens),
                max(worst.completion_tokens, u.completion_tokens),
                max(worst.requests, u.requests),
            )
        total += Usage(
            worst.prompt_tokens * count, worst.completion_tokens * count, worst.requests * count
        )
    return CostEstimate(
        n_queries,
        total.requests,
        total.prompt_tokens,
        total.completion_tokens,
        chosen.cost(total),
        model,
        chosen,
    )


def estimate_fit_cost(
    optimizer: Optimizer,
    train: Dataset,
    dev: Dataset | None = None,
    *,
    price: Price | None = None,
) -> CostEstimate:
    """Worst-case cost of ``optimizer.fit(train, dev)``, without calling the model.

    Every query is bounded by its example rendered with the longest candidate at every prompt
    position, and the number of queries by ``optimizer.max_queries(len(train), len(dev))``
    (no prompt de-duplication, no cache hits), sent as ``fit`` sends them: per epoch, one
    metered batch of ``sample_size x batch_size`` queries per step, and one of the dev set.

    Args:
        optimizer: a configured :class:`~bdpl.optimizer.Optimizer` with its candidates set
            (pass ``candidates=``; without them the vocabulary is only built inside ``fit``).
        train: the training set ``fit`` would get.
        dev: the dev set ``fit`` would get.
        price: overrides the price table; defaults to the optimizer's meter's price.

    Raises:
        ConfigError: the optimizer has no candidates yet, or no task.
    """
    if optimizer.candidates is None:
        raise ConfigError(
            "estimate_fit_cost needs the optimizer's candidates: pass candidates= to Optimizer"
        )
    task = optimizer.task if optimizer.task is not None else train.task
    backend = optimizer.meter.backend
    probe = train.examples[0]

    def cost(candidate: str) -> int:
        # By the backend's own token count: a shorter word can have more tokens.
        query = task.render([candidate], probe, separator=optimizer.separator)
        return estimate_usage(backend, [query]).total_tokens

    longest = max(optimizer.candidates, key=lambda c: (cost(c), len(c.encode())))
    prompt = [longest] * optimizer.prompt_length
    examples = list(train.examples) + (list(dev.examples) if dev is not None else [])
    sample = [task.render(prompt, e, separator=optimizer.separator) for e in examples]
    # Content-free calibration adds queries of its own inputs to every metered call.
    extra = extra_queries(optimizer.calibration)
    if extra:
        sample += content_free_queries(task, prompt, separator=optimizer.separator)
    n_dev = len(dev) if dev is not None else 0
    per_epoch = [
        optimizer.sample_size * (min(optimizer.batch_size, len(train) - start) + extra)
        for start in range(0, len(train), optimizer.batch_size)
    ] + ([n_dev + extra] if n_dev else [])
    n = optimizer.max_queries(len(train), n_dev)
    return estimate_cost(
        backend,
        sample,
        n,
        batch_sizes=per_epoch * optimizer.epochs,
        price=price if price is not None else optimizer.meter.price,
        max_batch_size=optimizer.meter.max_batch_size,
    )
