"""What a run would cost in the worst case (no cache hits), worked out without calling the model."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bdpl.backends.base import backend_option
from bdpl.errors import ConfigError
from bdpl.metering.prices import Price, price_for
from bdpl.metering.tokens import estimate_usage
from bdpl.types import Query, Usage

__all__ = ["CostEstimate", "estimate_cost"]


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
    price: Price | None = None,
    max_batch_size: int | None = None,
) -> CostEstimate:
    """Worst-case cost of sending ``n_queries`` queries like those in ``queries_sample``.

    Every query is assumed to be as expensive as the most expensive sampled one, and every
    chunk full, so the result is an upper bound as long as the sample holds the longest queries
    the run will send (e.g. each example rendered with the longest possible prompt).

    Args:
        backend: the backend that would answer; its ``estimate`` is used when it has one (else
            the conservative rule of :mod:`bdpl.metering.tokens`). It is never called to score.
        queries_sample: representative queries, the longest included.
        n_queries: how many queries the run sends at most (e.g. the optimizer's
            ``max_queries(n_train, n_dev)``).
        price: overrides the price table, as for :class:`~bdpl.metering.Meter`.
        max_batch_size: queries per call; defaults to the backend's ``max_batch_size``.

    Raises:
        ConfigError: ``n_queries`` is negative, or positive with an empty sample.
        UnknownPriceError: as for :class:`~bdpl.metering.Meter`.

    >>> class Api:
    ...     identity, model, max_batch_size = "api", "gpt-4o-mini", 20
    ...     def estimate(self, queries):
    ...         return Usage(10 * len(queries), len(queries), 1)
    >>> e = estimate_cost(Api(), [Query("It was", ".", (" bad", " good"))], 100)
    >>> (e.queries, e.requests, e.prompt_tokens, e.completion_tokens)
    (100, 5, 1000, 100)
    """
    if n_queries < 0:
        raise ConfigError(f"n_queries must be >= 0, got {n_queries}")
    chosen = price_for(backend, price)
    identity = str(getattr(backend, "identity", "?"))
    model = str(backend_option(backend, "model", identity))
    if n_queries == 0:
        return CostEstimate(0, 0, 0, 0, 0.0, model, chosen)
    if not queries_sample:
        raise ConfigError("estimate_cost needs at least one sample query")
    batch = max_batch_size or int(backend_option(backend, "max_batch_size", 32))
    batch = max(1, min(batch, n_queries))
    chunks = math.ceil(n_queries / batch)
    worst = Usage()
    for q in dict.fromkeys(queries_sample):
        u = estimate_usage(backend, [q] * batch)
        worst = Usage(
            max(worst.prompt_tokens, u.prompt_tokens),
            max(worst.completion_tokens, u.completion_tokens),
            max(worst.requests, u.requests),
        )
    total = Usage(
        worst.prompt_tokens * chunks, worst.completion_tokens * chunks, worst.requests * chunks
    )
    # The last chunk may be partial: count its queries exactly, its cost as a full chunk's.
    return CostEstimate(
        n_queries,
        total.requests,
        total.prompt_tokens,
        total.completion_tokens,
        chosen.cost(total),
        model,
        chosen,
    )
