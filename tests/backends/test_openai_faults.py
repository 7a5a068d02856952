"""Faults over real HTTP: a scripted server of our own on 127.0.0.1 in front of the fake model."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from bdpl.backends.openai_chat import OpenAIChatBackend
from bdpl.backends.openai_completion import OpenAIBackend
from bdpl.errors import (
    BackendConnectionError,
    BackendError,
    BackendTimeoutError,
    MalformedResponseError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
)
from bdpl.types import Query, Usage
from tests.backends.openai_fakes import CANARY_KEY, FakeLM, Fault, FaultServer

LM = FakeLM()
QUERIES = [Query(f"Review {i}: fine. It was", ".", (" great", " terrible")) for i in range(4)]


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as s:
        yield s


def completions(server: FaultServer, **kwargs: Any) -> OpenAIBackend:
    settings: dict[str, Any] = {"api_key": CANARY_KEY, "base_url": server.base_url, "timeout": 2.0}
    return OpenAIBackend("fake-model", **settings, **kwargs)


FAULTS = [
    (Fault(429, {"error": {"message": "Rate limit", "code": "rate_limit_exceeded"}},
           {"Retry-After": "2"}), RateLimitError, True),
    (Fault(429, {"error": {"message": "quota", "type": "insufficient_quota",
                           "code": "insufficient_quota"}}), QuotaExceededError, False),
    (Fault(500, {"error": {"message": "boom"}}), ServerError, True),
    (Fault(503, "Service Unavailable"), ServerError, True),
    (Fault(delay=3.0), BackendTimeoutError, True),
    (Fault(drop=True), BackendConnectionError, True),
    (Fault(200, '{"id": "cmpl", "choices": [{"index": 0, "logprobs": {'), MalformedResponseError,
     True),
    (Fault(strip_logprobs=True), MalformedResponseError, False),
]  # fmt: skip


@pytest.mark.parametrize(("fault", "error", "retryable"), FAULTS)
def test_each_fault_is_a_typed_error_and_the_next_call_succeeds(
    server: FaultServer,
    fault: Fault,
    error: type[BackendError],
    retryable: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    backend = completions(server, top_logprobs=18)
    server.script.append(fault)
    with pytest.raises(error) as info:
        backend.score(QUERIES)
    assert info.value.retryable is retryable
    if error is RateLimitError:
        assert info.value.retry_after == 2.0
    assert len(server.seen) == 1  # no retry behind the caller's back
    for text in (str(info.value), repr(info.value), str(info.value.__cause__), caplog.text):
        assert CANARY_KEY not in text
    # The server is healthy again: the same call now answers with the model's values.
    got = backend.score(QUERIES)
    for q, s in zip(QUERIES, got, strict=True):
        assert s.logprobs == pytest.approx([LM.logprob(q.before, lab) for lab in q.labels])


def test_a_fault_in_the_fallback_request_fails_the_whole_call(server: FaultServer) -> None:
    top = list(LM.top(QUERIES[0].before, 18))
    missing = Query(QUERIES[0].before, ".", (top[0], " unheard"))
    server.script.extend([Fault(), Fault(502, {"error": {"message": "bad gateway"}})])
    with pytest.raises(ServerError) as info:
        completions(server, top_logprobs=3).score([missing])
    assert [body.get("echo") for _, _, body in server.seen] == [None, True]
    # The answered first request was billed: the error says so, for the metering layer.
    [billed] = server.billed
    assert info.value.usage == Usage(billed["prompt_tokens"], billed["completion_tokens"], 1)


def test_a_label_missing_from_the_top_k_over_http(server: FaultServer) -> None:
    before = QUERIES[1].before
    ranked = [t for t in LM.top(before, 18) if t.strip().isalpha()]
    q = Query(before, ".", (ranked[0], ranked[-1]))
    [exact] = completions(server, top_logprobs=2).score([q])
    [bound] = completions(server, top_logprobs=2, fallback="none").score([q])
    true = LM.logprob(before, ranked[-1])
    assert exact.exact and exact.logprobs[1] == pytest.approx(true)
    assert not bound.exact and true < bound.logprobs[1] <= 0
    assert exact.usage.requests == 2 and bound.usage.requests == 1


def test_the_key_never_leaves_in_an_error_even_when_the_server_echoes_it(
    server: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    echoed = f"Incorrect API key provided: Bearer {CANARY_KEY}"
    server.script.append(Fault(401, {"error": {"message": echoed, "code": "invalid_api_key"}}))
    with pytest.raises(BackendError) as info:
        OpenAIChatBackend("m", api_key=CANARY_KEY, base_url=server.base_url).score(QUERIES[:1])
    assert server.seen[0][1]["authorization"] == f"Bearer {CANARY_KEY}"  # it was sent ...
    err = info.value
    for text in (str(err), repr(err), str(err.__cause__), repr(err.__cause__), caplog.text):
        assert CANARY_KEY not in text  # ... and is nowhere in what the caller sees
    assert "[REDACTED]" in str(err)
