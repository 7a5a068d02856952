"""The :class:`Backend` protocol every model adapter speaks.

A backend turns queries into label log-probabilities; it knows nothing of prompts, tasks,
caches, budgets or the optimizer. No inheritance is needed: any object with ``identity`` and
``score`` plugs in.

Backends may also expose these optional attributes, which the metering layer and the
optimizer read with :func:`backend_option` (defaults in brackets):

- ``max_batch_size: int`` [32]: most queries one ``score`` call takes (one request).
- ``max_concurrency: int`` [1]: how many ``score`` calls may run at once. A backend that is
  not thread-safe keeps 1.
- ``pair_separator: str`` ["\\n"]: text that joins the two inputs of a pair task (RoBERTa's
  ``"</s>"``; a text API needs a textual one).
- ``model: str`` [identity]: the model name used to look up prices.
- ``is_local: bool`` [False]: a local backend is free; its queries and tokens are still counted.
- ``estimate(queries) -> Usage``: an upper bound on what ``score(queries)`` will use, for
  budgets; the metering layer's conservative rule is used when absent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar, runtime_checkable

from bdpl.types import LabelScores, Query

T = TypeVar("T")


@runtime_checkable
class Backend(Protocol):
    """Turns queries into label log-probabilities.

    Attributes:
        identity: a stable string naming provider, model, endpoint (host, port, path) and
            every scoring setting that changes the answer. It is part of every cache key, so
            two backends with the same identity must give the same answers. Never a secret.
    """

    @property
    def identity(self) -> str: ...

    def score(self, queries: Sequence[Query]) -> list[LabelScores]:
        """Score each query's labels.

        Returns:
            One :class:`LabelScores` per query, in the same order.

        Raises:
            BackendError: a subclass saying what went wrong and whether a retry may help.
        """
        ...


def backend_option(backend: object, name: str, default: T) -> T:
    """Read an optional backend attribute (see module docstring), falling back to ``default``."""
    value = getattr(backend, name, default)
    return default if value is None else value
