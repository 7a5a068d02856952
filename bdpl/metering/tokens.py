"""Usage bounds *before* a call, for budgets and cost estimates.

:func:`estimate_usage` asks the backend's own ``estimate`` when it has one, else the
conservative rule of :mod:`bdpl.tokens` (which also holds the token counting rule; its names
are re-exported here for code written before it moved).
"""

from __future__ import annotations

from collections.abc import Sequence

from bdpl.backends.base import UsageBounded, capabilities_of
from bdpl.metering.validation import usage_problem
from bdpl.tokens import (
    COMPLETION_TOKENS_PER_REQUEST,
    REQUEST_OVERHEAD_TOKENS,
    conservative_usage,
    count_tokens,
    local_encoding,
)
from bdpl.types import Query, Usage

__all__ = [
    "COMPLETION_TOKENS_PER_REQUEST",
    "REQUEST_OVERHEAD_TOKENS",
    "conservative_usage",
    "count_tokens",
    "estimate_usage",
    "local_encoding",
]


def estimate_usage(backend: object, queries: Sequence[Query]) -> Usage:
    """An upper bound on what ``backend.score(queries)`` will use.

    The backend's own ``estimate(queries)`` when it has one, else
    :func:`~bdpl.tokens.conservative_usage` with the backend's model name (for tiktoken).

    Raises:
        TypeError: the backend's ``estimate`` returned something other than a ``Usage``.
    """
    if isinstance(backend, UsageBounded):
        usage = backend.estimate(queries)
        # A negative or fractional estimate would credit the budget when it is reserved and
        # when a try whose outcome is unknown is charged at it.
        problem = usage_problem(usage)
        if problem is not None:
            raise TypeError(
                f"{type(backend).__name__}.estimate() must return a Usage of non-negative "
                f"integer counts ({problem})"
            )
        return usage
    return conservative_usage(queries, capabilities_of(backend).model)
