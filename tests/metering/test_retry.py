"""RetryPolicy: exponential backoff with jitter, Retry-After, bounded tries and time."""

from __future__ import annotations

import math
from typing import Any

import pytest

from bdpl.errors import (
    AuthenticationError,
    BackendConnectionError,
    BadRequestError,
    ConfigError,
    ModelNotFoundError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
    UnsupportedQueryError,
)
from bdpl.metering import RetryPolicy
from bdpl.metering.retry import is_retryable


def flaky(errors: list[BaseException]) -> tuple[list[int], object]:
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if errors:
            raise errors.pop(0)
        return "ok"

    return calls, fn


def test_backoff_grows_caps_and_jitters() -> None:
    p = RetryPolicy(initial_wait=1, max_wait=5, exp_base=2, jitter=0.5)
    waits = [p.wait_for(n) for n in range(1, 6)]
    for w, base in zip(waits, [1, 2, 4, 5, 5], strict=True):
        assert base <= w <= base + 0.5
    assert p.wait_for(1, RateLimitError("x", retry_after=30)) == 30  # the server knows best
    assert p.wait_for(3, RateLimitError("x", retry_after=0.1)) >= 4


def test_retries_then_succeeds() -> None:
    slept: list[float] = []
    p = RetryPolicy(initial_wait=0.01, jitter=0, sleep=slept.append)
    calls, fn = flaky([ServerError("500"), BackendConnectionError("reset")])
    retried: list[tuple[int, str]] = []

    def on_retry(n: int, wait: float, error: BaseException | None) -> None:
        retried.append((n, type(error).__name__))

    assert p.call(fn, on_retry=on_retry) == "ok"  # type: ignore[arg-type]
    assert retried == [(1, "ServerError"), (2, "BackendConnectionError")]
    assert len(calls) == 3 and slept == [0.01, 0.02]


def test_attempts_are_bounded_and_the_last_error_is_raised() -> None:
    p = RetryPolicy(max_attempts=3, initial_wait=0, jitter=0, sleep=lambda s: None)
    calls, fn = flaky([ServerError(str(i)) for i in range(10)])
    with pytest.raises(ServerError, match="2"):
        p.call(fn)  # type: ignore[arg-type]
    assert len(calls) == 3


def test_total_time_is_bounded() -> None:
    p = RetryPolicy(max_attempts=100, max_time=10, jitter=0, sleep=lambda s: None)
    calls, fn = flaky([RateLimitError("429", retry_after=60)])
    with pytest.raises(RateLimitError):
        p.call(fn)  # type: ignore[arg-type]
    assert len(calls) == 1  # waiting 60 s would pass max_time: give up at once


@pytest.mark.parametrize(
    "error",
    [
        QuotaExceededError("q", retryable=True),
        AuthenticationError("a"),
        BadRequestError("b"),
        ModelNotFoundError("m"),
        UnsupportedQueryError("u"),
        ValueError("a bug"),
    ],
)
def test_never_retried(error: BaseException) -> None:
    assert not is_retryable(error)
    calls, fn = flaky([error])
    with pytest.raises(type(error)):
        RetryPolicy(sleep=lambda s: None).call(fn)  # type: ignore[arg-type]
    assert len(calls) == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"max_attempts": 2.5},
        {"max_attempts": True},
        {"initial_wait": -1},
        {"exp_base": 0.5},
        {"exp_base": math.inf},
        {"max_time": math.nan},  # NaN would switch the time limit off
        {"max_time": math.inf},
        {"max_wait": math.nan},
        {"jitter": "1"},
        {"sleep": None},
    ],
)
def test_invalid_policy(kwargs: dict[str, Any]) -> None:
    name = next(iter(kwargs))
    with pytest.raises(ConfigError, match=name):
        RetryPolicy(**kwargs)
