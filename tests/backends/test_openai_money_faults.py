"""Money under faults, over real HTTP: what the provider billed against what bdpl charges.

The fault server keeps the provider's books (:attr:`FaultServer.bill`), so every test that
involves money checks both sides: bdpl never charges less than the provider billed for what it
could not read, never credits, and says when a request's outcome is unknown.
"""

from __future__ import annotations

import email.utils
import logging
import math
import secrets
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from bdpl.backends._openai_errors import MAX_RETRY_AFTER_S
from bdpl.backends.openai_chat import OpenAIChatBackend
from bdpl.backends.openai_completion import OpenAIBackend
from bdpl.errors import (
    BackendConnectionError,
    BackendTimeoutError,
    ConfigError,
    MalformedResponseError,
    RateLimitError,
    ReplyTooLargeError,
    ServerError,
    UnsupportedQueryError,
)
from bdpl.metering import Budget, Meter, Price, RetryPolicy
from bdpl.types import Query
from tests.backends.openai_fakes import CANARY_KEY, MISSING, FakeLM, Fault, FaultServer, Waits

LM = FakeLM()
PRICE = Price(input_per_1m=2.0, output_per_1m=2.0)
QUERIES = [Query(f"Review {i}: fine. It was", ".", (" great", " terrible")) for i in range(4)]


OPENED: list[Any] = []  # backends a test built, closed after it (no socket left to the GC)


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as s:
        try:
            yield s
        finally:
            while OPENED:
                OPENED.pop()._client.close()


def completions(server: FaultServer, **kwargs: Any) -> OpenAIBackend:
    settings: dict[str, Any] = {"api_key": CANARY_KEY, "base_url": server.base_url, "timeout": 2.0}
    settings.update(kwargs)
    backend = OpenAIBackend("davinci-002", top_logprobs=18, **settings)
    OPENED.append(backend)
    return backend


def chat(server: FaultServer, **kwargs: Any) -> OpenAIChatBackend:
    settings: dict[str, Any] = {"api_key": CANARY_KEY, "base_url": server.base_url, "timeout": 2.0}
    settings.update(kwargs)
    backend = OpenAIChatBackend("gpt-4o-mini", **settings)
    OPENED.append(backend)
    return backend


expected = LM.label_logprobs


# -- 3. provider usage is never trusted blindly ---------------------------------------------------

UNUSABLE = [
    {"prompt_tokens": -10_000_000, "completion_tokens": 1, "total_tokens": -9_999_999},
    {"prompt_tokens": math.nan, "completion_tokens": 1},
    {"prompt_tokens": math.inf, "completion_tokens": 1},
    {"prompt_tokens": 10**30, "completion_tokens": 1},
    {"prompt_tokens": 12.5, "completion_tokens": 1},
    {"prompt_tokens": "12", "completion_tokens": 1},
    {"prompt_tokens": True, "completion_tokens": 1},
    {"prompt_tokens": 12},  # completion_tokens missing
    "lots",
    MISSING,
]


@pytest.mark.parametrize("usage", UNUSABLE, ids=repr)
def test_unusable_usage_is_reported_as_no_tokens_never_negative_never_raising(
    server: FaultServer, usage: Any, caplog: pytest.LogCaptureFixture
) -> None:
    server.script.append(Fault(usage=usage))
    backend = completions(server)
    got = backend.score(QUERIES)
    for q, s in zip(QUERIES, got, strict=True):
        assert s.logprobs == pytest.approx(expected(q))  # the answers themselves are fine
    assert sum(s.usage.requests for s in got) == 1
    assert all(s.usage.prompt_tokens == 0 and s.usage.completion_tokens == 0 for s in got)
    assert "unusable token usage" in caplog.text
    # Warned once per backend, not once per call.
    server.script.append(Fault(usage=usage))
    backend.score(QUERIES)
    assert caplog.text.count("unusable token usage") == 1


def test_one_unusable_report_among_a_calls_requests_drops_the_whole_calls_tokens(
    server: FaultServer,
) -> None:
    # Chat: one request per query; the third reports a negative count.
    server.script.extend([Fault(), Fault(), Fault(usage={"prompt_tokens": -50})])
    got = chat(server).score(QUERIES[:3])
    assert [s.usage.requests for s in got] == [1, 1, 1]
    assert sum(s.usage.total_tokens for s in got) == 0  # no partial, no negative number


@pytest.mark.parametrize("usage", UNUSABLE[:4], ids=repr)
def test_the_meter_charges_at_least_the_providers_bill_for_unusable_usage(
    server: FaultServer, usage: Any
) -> None:
    server.script.append(Fault(usage=usage))
    budget = Budget(max_dollars=0.05)
    with Meter(completions(server), cache=False, price=PRICE, budget=budget) as meter:
        meter.score(QUERIES)
        stats = meter.stats
    provider = server.settled()
    assert provider.requests == 1 and stats.requests == 1
    # The estimate is an upper bound on what the provider billed; nothing was credited.
    assert stats.prompt_tokens >= provider.prompt_tokens > 0
    assert stats.completion_tokens >= provider.completion_tokens
    assert stats.dollars >= provider.dollars(PRICE) > 0
    assert budget.spent.dollars >= provider.dollars(PRICE)


# -- 4. answers are never matched to the wrong query -------------------------------------------


def test_choices_without_index_are_refused_not_guessed(server: FaultServer) -> None:
    server.script.append(Fault(unindexed=True))  # shuffled (reversed), no index
    with pytest.raises(MalformedResponseError, match="max_batch_size=1") as info:
        completions(server).score(QUERIES)
    assert not info.value.retryable  # the server always answers so
    assert info.value.usage is not None and info.value.usage.requests == 1  # it was billed
    assert server.settled().requests == 1
    # One prompt per request needs no index: the advice works.
    server.script.append(Fault(unindexed=True))
    [one] = completions(server, max_batch_size=1).score(QUERIES[:1])
    assert one.logprobs == pytest.approx(expected(QUERIES[0]))


# -- 5. Retry-After on every retryable status ----------------------------------------------------


def _in(seconds: float) -> str:
    return email.utils.formatdate(time.time() + seconds, usegmt=True)


@pytest.mark.parametrize(
    ("status", "headers", "error", "low", "high"),
    [
        (503, {"Retry-After": "2"}, ServerError, 2.0, 2.0),
        (500, {"retry-after-ms": "1500"}, ServerError, 1.5, 1.5),
        (502, {"Retry-After": "in 300 s"}, ServerError, 290.0, 301.0),  # an HTTP date
        (408, {"Retry-After": "3"}, BackendTimeoutError, 3.0, 3.0),
        (429, {"Retry-After": "99999999"}, RateLimitError, MAX_RETRY_AFTER_S, MAX_RETRY_AFTER_S),
        (503, {"Retry-After": "-5"}, ServerError, None, None),
    ],
)
def test_retry_after_is_read_on_every_retryable_status(
    server: FaultServer,
    status: int,
    headers: dict[str, str],
    error: type[Exception],
    low: float | None,
    high: float | None,
) -> None:
    # An HTTP date is written now, not at collection (a long run would age it).
    headers = {k: _in(300) if v == "in 300 s" else v for k, v in headers.items()}
    server.script.append(Fault(status, {"error": {"message": "busy"}}, headers))
    with pytest.raises(error) as info:
        completions(server).score(QUERIES)
    got = info.value.retry_after  # type: ignore[attr-defined]
    if low is None:
        assert got is None
    else:
        assert got is not None and low <= got <= (high or low)
    assert server.settled().requests == 0  # an error status is not billed


def test_the_meter_waits_what_a_503_asked_then_succeeds(server: FaultServer) -> None:
    server.script.append(Fault(503, "Service Unavailable", {"Retry-After": "2"}))
    waits = Waits()
    policy = RetryPolicy(initial_wait=0.01, jitter=0.0, sleep=waits)
    with Meter(completions(server), cache=False, price=PRICE, retry=policy) as meter:
        got = meter.score(QUERIES)
    assert waits.waits == [2.0]  # not the 0.01 s backoff
    assert got[0].logprobs == pytest.approx(expected(QUERIES[0]))
    assert server.settled().requests == 1


# -- 8. a key echoed back never leaks ------------------------------------------------------------


def test_a_key_of_any_shape_echoed_into_a_malformed_field_is_redacted(
    server: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = "azure" + secrets.token_hex(12)  # not sk-shaped: only the actual key can catch it
    backend = completions(server, api_key=key, max_batch_size=1)
    assert backend.secrets() == (key,)
    server.script.extend([Fault(echo_key=True)] * 2)
    policy = RetryPolicy(max_attempts=2, initial_wait=0.0, jitter=0.0, sleep=Waits())
    with (
        Meter(backend, cache=False, price=PRICE, retry=policy) as meter,
        pytest.raises(MalformedResponseError) as info,
    ):
        meter.score(QUERIES[:1])
    assert server.seen[0][1]["authorization"] == f"Bearer {key}"  # it was sent and echoed
    err = info.value
    texts = [str(err), repr(err), str(err.__cause__), caplog.text]
    assert "choice index" in str(err) and "[REDACTED]" in str(err)
    for text in texts:
        assert key not in text and key[-12:] not in text
    # Straight from the backend, without the meter, too.
    server.script.append(Fault(echo_key=True))
    with pytest.raises(MalformedResponseError) as direct:
        backend.score(QUERIES[:1])
    assert key not in str(direct.value)


@pytest.mark.parametrize(
    "url",
    [
        "http://user:pass@127.0.0.1:9/v1",
        "http://127.0.0.1:9/v1?api_key=abc123",
        "http://127.0.0.1:9/v1?token=abc123",
        "http://127.0.0.1:9/v1?key=abc123",
    ],
)
def test_credentials_in_a_base_url_are_refused(url: str) -> None:
    for make in (OpenAIBackend, OpenAIChatBackend):
        with pytest.raises(ConfigError, match="api_key=") as info:
            make("m", base_url=url)
        assert "abc123" not in str(info.value) and "pass" not in str(info.value).split("://")[1][:5]


# -- outcome_unknown: what the provider may have billed ------------------------------------------


def test_a_reply_billed_after_the_client_timed_out_is_an_unknown_outcome(
    server: FaultServer,
) -> None:
    server.script.append(Fault(slow_after_billing=1.0))
    with pytest.raises(BackendTimeoutError) as info:
        completions(server, timeout=0.3).score(QUERIES)
    assert info.value.outcome_unknown and info.value.retryable
    assert server.settled().requests == 1  # the provider billed it all the same


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (Fault(reset_mid_reply=True), BackendConnectionError),
        (Fault(200, '{"id": "cmpl", "choices": [', bill=True), MalformedResponseError),
        (Fault(200, b"\xff\xfe not json", bill=True), MalformedResponseError),
    ],
)
def test_a_reset_or_unreadable_reply_is_an_unknown_outcome(
    server: FaultServer, fault: Fault, error: type[Exception]
) -> None:
    server.script.append(fault)
    with pytest.raises(error) as info:
        completions(server).score(QUERIES)
    assert info.value.outcome_unknown  # type: ignore[attr-defined]
    assert info.value.usage is None  # type: ignore[attr-defined]  # nothing readable came back
    assert server.settled().requests == 1


def test_known_outcomes_are_not_unknown(server: FaultServer) -> None:
    server.script.append(Fault(500, {"error": {"message": "boom"}}))
    with pytest.raises(ServerError) as status:
        completions(server).score(QUERIES)
    assert not status.value.outcome_unknown
    with socket.socket() as s:  # a port nobody listens on: the request was never sent
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(BackendConnectionError) as refused:
        OpenAIBackend("m", base_url=f"http://127.0.0.1:{port}/v1", timeout=2.0).score(QUERIES)
    assert not refused.value.outcome_unknown
    assert server.settled().requests == 0


# -- 10. replies have a size cap -----------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_an_oversized_reply_is_a_typed_error_and_was_billed(
    server: FaultServer, chunked: bool
) -> None:
    cap = 256 * 1024
    backend = completions(server, max_reply_bytes=cap)
    server.script.append(Fault(pad_to=4 * cap, chunked=chunked))
    with pytest.raises(ReplyTooLargeError, match="max_reply_bytes=262144") as info:
        backend.score(QUERIES)
    assert isinstance(info.value, MalformedResponseError)
    assert info.value.outcome_unknown and not info.value.retryable
    assert server.settled().requests == 1
    got = backend.score(QUERIES)  # a normal reply under the cap is read
    assert got[0].logprobs == pytest.approx(expected(QUERIES[0]))


def test_the_reply_cap_is_validated() -> None:
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ConfigError, match="max_reply_bytes"):
            OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", max_reply_bytes=bad)


# -- 9. labels the backend cannot tell apart -----------------------------------------------------

CLASHING = (" very bad", " very good")


def test_chat_refuses_labels_sharing_a_first_token_before_paying(server: FaultServer) -> None:
    backend = chat(server)
    with pytest.raises(UnsupportedQueryError, match="'very'") as info:
        backend.check_labels(CLASHING)
    assert "first token" in str(info.value) and "Use label words" in str(info.value)
    with pytest.raises(UnsupportedQueryError):
        backend.check_labels((" great", "great"))  # the same reply
    backend.check_labels((" great", " terrible"))  # distinct: fine
    queries = [Query(q.before, ".", CLASHING) for q in QUERIES]
    with Meter(backend, cache=False, price=PRICE) as meter, pytest.raises(UnsupportedQueryError):
        meter.score(queries)
    assert server.seen == []  # nothing was sent, nothing paid


def test_completions_refuse_clashing_labels_only_without_an_exact_fallback(
    server: FaultServer,
) -> None:
    queries = [Query(q.before, ".", CLASHING) for q in QUERIES]
    with (
        Meter(completions(server, fallback="none"), cache=False, price=PRICE) as meter,
        pytest.raises(UnsupportedQueryError, match="fallback='echo'"),
    ):
        meter.score(queries)
    assert server.seen == []
    with Meter(completions(server), cache=False, price=PRICE) as meter:
        got = meter.score(queries)  # echo scores both labels exactly: they differ
    assert got[0].logprobs[0] != got[0].logprobs[1]


def test_the_meter_checks_each_label_tuple_once(server: FaultServer) -> None:
    backend = chat(server)
    calls: list[tuple[str, ...]] = []
    original = backend.check_labels
    backend.check_labels = lambda labels: calls.append(tuple(labels)) or original(labels)  # type: ignore[method-assign,func-returns-value]
    with Meter(backend, cache=False, price=PRICE) as meter:
        meter.score(QUERIES[:2])
        meter.score(QUERIES[2:])
    assert calls == [(" great", " terrible")]


# -- 10. settings that were accepted and should not have been ----------------------------------


def test_chat_max_concurrency_must_be_an_integer() -> None:
    with pytest.raises(ConfigError, match="max_concurrency"):
        OpenAIChatBackend("m", base_url="http://127.0.0.1:9/v1", max_concurrency=2.5)  # type: ignore[arg-type]
