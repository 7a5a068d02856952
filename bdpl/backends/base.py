"""The :class:`Backend` protocol every model adapter speaks, and what a backend can do.

A backend turns queries into label log-probabilities; it knows nothing of prompts, tasks,
caches, budgets or the optimizer. No inheritance is needed: any object with ``identity`` and
``score`` plugs in. Three things are optional, each typed and read in one place:

- ``capabilities``: a frozen :class:`Capabilities` (model name for prices, batch and
  concurrency limits, pair separator, local or paid). Read with :func:`capabilities_of`;
  a backend without one gets the defaults.
- ``estimate(queries) -> Usage`` (:class:`UsageBounded`): an upper bound on what
  ``score(queries)`` will use, for budgets; the metering layer's conservative rule is used
  when absent.
- ``close()`` (:class:`Closeable`): releases what the backend holds (an HTTP connection pool,
  a model); backends that hold resources are also context managers.
- ``secrets() -> tuple[str, ...]`` (:class:`HasSecrets`): the credentials it holds, so that
  every message and log line bdpl writes can have them redacted.
- ``check_labels(labels)`` (:class:`LabelChecking`): refuses, before anything is paid, a label
  set the backend would score without telling the labels apart (the metering layer calls it
  once per new label tuple).

>>> caps = Capabilities(model="gpt-4o-mini", max_batch_size=16)
>>> caps.max_concurrency, caps.is_local
(1, False)
>>> Capabilities(max_batch_sise=16)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
TypeError: ...unexpected keyword argument 'max_batch_sise'
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Protocol, runtime_checkable

from bdpl.errors import ConfigError
from bdpl.types import LabelScores, Query, Usage

__all__ = [
    "Backend",
    "Capabilities",
    "Closeable",
    "HasSecrets",
    "LabelChecking",
    "UsageBounded",
    "capabilities_of",
    "secrets_of",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class Capabilities:
    """What a backend can do, as the metering layer and the optimizer need to know it.

    Frozen and keyword-only: a misspelt name is a ``TypeError`` when it is built, and a value
    cannot change under a running meter.

    Attributes:
        model: the model name used to look up prices; ``None`` uses the backend's identity.
        max_batch_size: most queries one ``score`` call takes.
        max_concurrency: how many ``score`` calls may run at once; a backend that is not
            thread-safe keeps 1.
        pair_separator: text that joins the two inputs of a pair task (RoBERTa's ``"</s>"``;
            a text API needs a textual one).
        is_local: a local backend is free; its queries and tokens are still counted.

    Raises:
        ConfigError: a value of the wrong type or out of range (the message names it).
    """

    model: str | None = None
    max_batch_size: int = 32
    max_concurrency: int = 1
    pair_separator: str = "\n"
    is_local: bool = False

    def __post_init__(self) -> None:
        if self.model is not None and (not isinstance(self.model, str) or not self.model):
            raise ConfigError(f"Capabilities.model must be a non-empty string, got {self.model!r}")
        for name in ("max_batch_size", "max_concurrency"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"Capabilities.{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.pair_separator, str):
            raise ConfigError(
                f"Capabilities.pair_separator must be a string, got {self.pair_separator!r}"
            )
        if not isinstance(self.is_local, bool):
            raise ConfigError(f"Capabilities.is_local must be a bool, got {self.is_local!r}")


@runtime_checkable
class Backend(Protocol):
    """Turns queries into label log-probabilities.

    Attributes:
        identity: a stable string naming provider, model, endpoint (host, port, path) and
            every scoring setting that changes the answer. It is part of every cache key, so
            two backends with the same identity must give the same answers, and it must not
            change over the backend's life. Never a secret.
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


@runtime_checkable
class UsageBounded(Protocol):
    """A backend that can bound its usage before a call."""

    def estimate(self, queries: Sequence[Query]) -> Usage:
        """An upper bound on what ``score(queries)`` will use (one call)."""
        ...


@runtime_checkable
class Closeable(Protocol):
    """A backend that holds resources (connections, a model) and releases them."""

    def close(self) -> None: ...


@runtime_checkable
class HasSecrets(Protocol):
    """A backend that holds credentials: they are redacted from every message bdpl writes."""

    def secrets(self) -> tuple[str, ...]: ...


@runtime_checkable
class LabelChecking(Protocol):
    """A backend that can tell in advance that it cannot tell some labels apart.

    E.g. an API read through the top-k log-probs of one token scores two labels that start
    with the same token (``" very bad"``, ``" very good"``) identically: every query would get
    equal scores and a fit would run to its end at chance.
    """

    def check_labels(self, labels: Sequence[str]) -> None:
        """Return if this backend can score ``labels`` apart.

        Raises:
            UnsupportedQueryError: it cannot; the message says which labels collide, why, and
                what to change.
        """
        ...


# The optional attributes backends declared before Capabilities existed.
_LEGACY = tuple(f.name for f in fields(Capabilities))


def capabilities_of(backend: object) -> Capabilities:
    """The backend's :class:`Capabilities`: its ``capabilities`` attribute, else the defaults.

    A backend written before ``capabilities`` existed, with plain attributes of the same names
    (``max_batch_size = 8``), still gets them, with a ``DeprecationWarning``.

    Raises:
        ConfigError: ``capabilities`` is not a :class:`Capabilities`, or a legacy attribute
            has a bad value.
    """
    caps = getattr(backend, "capabilities", None)
    if isinstance(caps, Capabilities):
        return caps
    if caps is not None:
        raise ConfigError(
            f"{type(backend).__name__}.capabilities must be a bdpl Capabilities, got "
            f"{type(caps).__name__}"
        )
    legacy = {n: v for n in _LEGACY if (v := getattr(backend, n, None)) is not None}
    if not legacy:
        return Capabilities()
    warnings.warn(
        f"{type(backend).__name__} declares {', '.join(sorted(legacy))} as plain attributes; "
        "give it a `capabilities = Capabilities(...)` attribute instead",
        DeprecationWarning,
        stacklevel=2,
    )
    return Capabilities(**legacy)


def secrets_of(backend: object) -> tuple[str, ...]:
    """The credentials a backend holds (non-empty strings only); ``()`` when it says none."""
    if not isinstance(backend, HasSecrets):
        return ()
    return tuple(s for s in backend.secrets() if isinstance(s, str) and s)
