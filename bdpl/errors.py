"""The library's exceptions, all rooted at :class:`BDPLError`.

Every error a user can act on is typed; where a builtin exception fits, the error
also inherits it, so ``except ValueError`` keeps working::

    BDPLError
    ├── ConfigError (ValueError)            bad settings or arguments
    │   ├── InvalidTaskError                template / verbalizer / task name
    │   ├── DataError                       unreadable data file, unknown label (names the row)
    │   └── UnknownPriceError               a paid model with no price and none given
    ├── BudgetExceededError                 the next paid call would pass the budget
    ├── CacheError                          the cache directory cannot be used
    │   └── CacheDamagedError               the cache's database is damaged (``path``; repair it)
    └── BackendError                        a backend failed (``retryable``: may a retry help?)
        ├── RateLimitError                  429; ``retry_after`` in seconds when the server said
        ├── QuotaExceededError              billing / quota exhausted (not retryable)
        ├── AuthenticationError (PermissionError)
        ├── BadRequestError (ValueError)    the request itself is wrong (not retryable)
        ├── ModelNotFoundError (LookupError) unknown or retired model
        ├── ServerError                     5xx
        ├── BackendTimeoutError (TimeoutError)
        ├── BackendConnectionError (ConnectionError)
        ├── MalformedResponseError          the answer could not be parsed, or lacks logprobs
        │   └── ReplyTooLargeError          the reply passed the backend's size cap
        └── UnsupportedQueryError (ValueError) a query this backend was not built to answer
"""

from __future__ import annotations

from bdpl.types import Usage


class BDPLError(Exception):
    """Root of every exception raised by bdpl."""


class ConfigError(ValueError, BDPLError):
    """Invalid settings or arguments."""


class InvalidTaskError(ConfigError):
    """A task's template, verbalizer or name is invalid."""


class DataError(ConfigError):
    """A data file cannot be read or holds a row the task cannot use."""


class UnknownPriceError(ConfigError):
    """A paid model has no entry in the price table and no price was given."""


class BudgetExceededError(BDPLError):
    """The next paid call could pass the budget, so it was not made.

    Attributes:
        limit: name of the budget limit that would be passed (``"queries"``, ``"requests"``,
            ``"tokens"`` or ``"dollars"``).
    """

    def __init__(self, message: str, *, limit: str) -> None:
        super().__init__(message)
        self.limit = limit


class CacheError(BDPLError):
    """The query cache cannot be opened or written."""


class CacheDamagedError(CacheError):
    """The query cache's database is damaged, so its answers cannot be trusted.

    Raised instead of treating the damage as misses, which would pay the same queries again
    run after run. The message names the fix (check, repair, or move the directory aside).

    Attributes:
        path: the cache directory.
    """

    def __init__(self, message: str, *, path: str) -> None:
        super().__init__(message)
        self.path = path


class BackendError(BDPLError):
    """A backend failed to answer.

    Attributes:
        retryable: whether trying the same call again may succeed.
        retry_after: seconds the server asked to wait before retrying, if it said.
        usage: what the failed call had already been billed (e.g. a first request that
            succeeded before a second one failed), so the metering layer can charge it;
            ``None`` when nothing was billed.
        outcome_unknown: True when the request that failed may have reached the provider and
            been billed without bdpl learning its usage: a timeout, a connection lost after the
            request was sent (a reset mid-reply), a reply that could not be read (an
            undecodable or oversized 200). Such a request must be charged at its estimate,
            never as free. False when it was certainly not billed (the connection was never
            made, an HTTP error status) or its usage is known (then it is in ``usage``).
            ``usage`` never covers the failed request itself, only the call's earlier ones.
    """

    retryable: bool = False
    retry_after: float | None = None
    usage: Usage | None = None
    outcome_unknown: bool = False

    def __init__(
        self,
        message: str,
        *,
        retryable: bool | None = None,
        retry_after: float | None = None,
        outcome_unknown: bool | None = None,
    ) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable
        self.retry_after = retry_after
        if outcome_unknown is not None:
            self.outcome_unknown = outcome_unknown


class RateLimitError(BackendError):
    """The provider rate-limited the call (HTTP 429 without a quota problem)."""

    retryable = True


class QuotaExceededError(BackendError):
    """The account's quota or billing limit is exhausted; retrying does not help."""


class AuthenticationError(BackendError, PermissionError):
    """The credentials were rejected (HTTP 401/403)."""


class BadRequestError(BackendError, ValueError):
    """The provider rejected the request as malformed (HTTP 400/422)."""


class ModelNotFoundError(BackendError, LookupError):
    """The model does not exist on this endpoint or has been retired."""


class ServerError(BackendError):
    """The provider failed (HTTP 5xx)."""

    retryable = True


class BackendTimeoutError(BackendError, TimeoutError):
    """The call took longer than its timeout."""

    retryable = True
    outcome_unknown = True


class BackendConnectionError(BackendError, ConnectionError):
    """The connection failed or was dropped."""

    retryable = True
    outcome_unknown = True


class MalformedResponseError(BackendError):
    """The answer could not be parsed or lacks what scoring needs (e.g. logprobs)."""

    retryable = True


class ReplyTooLargeError(MalformedResponseError):
    """The reply was larger than the backend's ``max_reply_bytes``; it was not read.

    Not retryable (the same request would get the same reply), and its outcome is unknown: the
    provider produced, and may have billed, the reply.
    """

    retryable = False
    outcome_unknown = True


class UnsupportedQueryError(BackendError, ValueError):
    """The backend was asked something it was not built to answer."""
