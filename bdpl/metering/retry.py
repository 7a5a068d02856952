"""The one retry layer: exponential backoff with jitter, honouring ``Retry-After``, on tenacity.

Only :class:`~bdpl.errors.BackendError` s marked ``retryable`` are retried (rate limits, 5xx,
timeouts, dropped connections, malformed answers). Quota/billing, authentication, bad-request,
unknown-model and unsupported-query errors never are, whatever their flag says; nor is
anything else (programming errors pass straight through).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception

from bdpl._validate import finite_number, positive_int
from bdpl.errors import (
    AuthenticationError,
    BackendError,
    BadRequestError,
    ConfigError,
    ModelNotFoundError,
    QuotaExceededError,
    UnsupportedQueryError,
)

__all__ = ["NEVER_RETRIED", "RetryPolicy", "is_retryable"]

T = TypeVar("T")

NEVER_RETRIED: tuple[type[BackendError], ...] = (
    QuotaExceededError,
    AuthenticationError,
    BadRequestError,
    ModelNotFoundError,
    UnsupportedQueryError,
)


def is_retryable(exc: BaseException) -> bool:
    """Whether the retry layer tries again after ``exc``."""
    return isinstance(exc, BackendError) and exc.retryable and not isinstance(exc, NEVER_RETRIED)


@dataclass(frozen=True)
class RetryPolicy:
    """How a failed call is tried again.

    The wait before retry ``n`` (1-based) is ``min(max_wait, initial_wait * exp_base**(n-1))``
    plus a uniform jitter in ``[0, jitter]``, or the server's ``retry_after`` when that is
    longer (a server's wait is read from ``retry-after-ms`` or ``Retry-After`` on every
    retryable status, and cut to 600 s by the backends). Retrying stops after ``max_attempts``
    tries, or when the next wait would end more than ``max_time`` seconds after the first try;
    the last error is then raised as is.

    Args:
        max_attempts: tries in all, the first included (1 = never retry).
        initial_wait: seconds before the first retry.
        max_wait: cap on the backoff (not on a server's ``retry_after``).
        exp_base: growth of the backoff per retry.
        jitter: most random seconds added to each wait, to spread out concurrent retries.
        max_time: seconds after the first try beyond which no retry starts.
        sleep: how to wait (tests pass a fake clock).

    Raises:
        ConfigError: ``max_attempts`` not an integer >= 1, a wait or time that is negative or
            not finite (NaN would switch the limit off), or ``exp_base`` below 1.
    """

    max_attempts: int = 6
    initial_wait: float = 1.0
    max_wait: float = 60.0
    exp_base: float = 2.0
    jitter: float = 1.0
    max_time: float = 300.0
    sleep: Callable[[float], None] = time.sleep

    def __post_init__(self) -> None:
        # NaN compares false with everything, so it would switch a limit off: refuse it here.
        positive_int("RetryPolicy.max_attempts", self.max_attempts)
        for name in ("initial_wait", "max_wait", "jitter", "max_time"):
            finite_number(f"RetryPolicy.{name}", getattr(self, name))
        finite_number("RetryPolicy.exp_base", self.exp_base, least=1.0)
        if not callable(self.sleep):
            raise ConfigError(f"RetryPolicy.sleep must be callable, got {self.sleep!r}")

    def wait_for(self, retry_number: int, error: BaseException | None = None) -> float:
        """Seconds to wait before retry ``retry_number`` (1-based) after ``error``."""
        backoff = min(self.max_wait, self.initial_wait * self.exp_base ** (retry_number - 1))
        backoff += random.uniform(0.0, self.jitter)
        server = getattr(error, "retry_after", None)
        if isinstance(server, (int, float)) and server > backoff:
            return float(server)
        return backoff

    def call(
        self,
        fn: Callable[[], T],
        *,
        on_retry: Callable[[int, float, BaseException | None], None] | None = None,
    ) -> T:
        """Run ``fn`` until it succeeds, retrying retryable errors by this policy.

        Args:
            fn: the call.
            on_retry: called before each wait with the number of the try that failed, the
                seconds about to be waited and the error.
        """

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome is not None else None
            return self.wait_for(state.attempt_number, error)

        def stop(state: RetryCallState) -> bool:
            if state.attempt_number >= self.max_attempts:
                return True
            elapsed = state.seconds_since_start or 0.0
            return elapsed + float(getattr(state, "upcoming_sleep", 0.0)) > self.max_time

        def before_sleep(state: RetryCallState) -> None:
            if on_retry is not None:
                error = state.outcome.exception() if state.outcome is not None else None
                on_retry(state.attempt_number, float(getattr(state, "upcoming_sleep", 0.0)), error)

        retrying = Retrying(
            retry=retry_if_exception(is_retryable),
            wait=wait,
            stop=stop,
            sleep=self.sleep,
            before_sleep=before_sleep,
            reraise=True,
        )
        return retrying(fn)
