"""The one error boundary: every SDK failure becomes the right bdpl error, never leaking the key."""

from __future__ import annotations

import email.utils
import logging
import time
from typing import Any

import pytest

from bdpl.backends._openai_errors import parse_retry_after, translate_openai_errors
from bdpl.backends.openai_chat import OpenAIChatBackend
from bdpl.backends.openai_completion import OpenAIBackend
from bdpl.errors import (
    AuthenticationError,
    BackendConnectionError,
    BackendError,
    BackendTimeoutError,
    BadRequestError,
    MalformedResponseError,
    ModelNotFoundError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
)
from bdpl.types import Query
from tests.backends.openai_fakes import CANARY_KEY, Recorder, httpx, mock_client

QUERY = Query("A fine film It was", ".", (" great", " bad"))


def error_body(message: str, code: str | None = None, kind: str = "invalid_request_error") -> Any:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


CASES = [
    # status, body, headers, expected error, retryable, retry_after
    (429, error_body("Rate limit reached", "rate_limit_exceeded"), {"retry-after": "7"},
     RateLimitError, True, 7.0),
    (429, error_body("slow down"), {"retry-after-ms": "250", "retry-after": "9"},
     RateLimitError, True, 0.25),
    (429, error_body("slow down"), {}, RateLimitError, True, None),
    (429, error_body("You exceeded your current quota", "insufficient_quota", "insufficient_quota"),
     {"retry-after": "1"}, QuotaExceededError, False, None),
    (401, error_body(f"Incorrect API key provided: {CANARY_KEY}", "invalid_api_key"), {},
     AuthenticationError, False, None),
    (403, error_body("Country not supported", "unsupported_country_region_territory"), {},
     AuthenticationError, False, None),
    (400, error_body("logprobs must be at most 5"), {}, BadRequestError, False, None),
    (422, error_body("unprocessable"), {}, BadRequestError, False, None),
    (404, error_body("The model `gpt-9` does not exist", "model_not_found"), {},
     ModelNotFoundError, False, None),
    (400, error_body("The model `text-davinci-003` has been deprecated"), {},
     ModelNotFoundError, False, None),
    (500, error_body("The server had an error", kind="server_error"), {}, ServerError, True, None),
    (503, b"<html>Service Unavailable</html>", {}, ServerError, True, None),
    (408, error_body("request timeout"), {}, BackendTimeoutError, True, None),
]  # fmt: skip


def answering(status: int, body: Any, headers: dict[str, str]) -> Recorder:
    def respond(request_body: dict[str, Any], request: Any) -> Any:
        if isinstance(body, bytes):
            return httpx.Response(status, content=body, headers=headers)
        return httpx.Response(status, json=body, headers=headers)

    return Recorder(respond=respond)


@pytest.mark.parametrize(("status", "body", "headers", "error", "retryable", "retry_after"), CASES)
@pytest.mark.parametrize("kind", ["completions", "chat"])
def test_http_errors_map_to_typed_errors(
    kind: str,
    status: int,
    body: Any,
    headers: dict[str, str],
    error: type[BackendError],
    retryable: bool,
    retry_after: float | None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rec = answering(status, body, headers)
    backend: Any = (
        OpenAIBackend("m", client=mock_client(rec))
        if kind == "completions"
        else OpenAIChatBackend("m", client=mock_client(rec))
    )
    caplog.set_level(logging.DEBUG)
    with pytest.raises(error) as info:
        backend.score([QUERY])
    err = info.value
    assert type(err) is error
    assert err.retryable is retryable
    # getattr: errors that also inherit a builtin skip BackendError.__init__ (reported upstream).
    assert getattr(err, "retry_after", None) == retry_after
    assert f"HTTP {status}" in str(err)
    assert isinstance(err.__cause__, Exception)  # raise ... from exc
    assert len(rec.requests) == 1  # the SDK did not retry on its own
    # The key appears nowhere: message, repr, the chained SDK error, or the logs.
    for text in (str(err), repr(err), str(err.__cause__), repr(err.__cause__.args), caplog.text):
        assert CANARY_KEY not in text


def test_a_timeout_and_a_refused_connection_are_typed() -> None:
    def slow(request: Any) -> Any:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(BackendTimeoutError) as info:
        OpenAIBackend("m", client=mock_client(slow)).score([QUERY])
    assert info.value.retryable

    def refused(request: Any) -> Any:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(BackendConnectionError, match="connection refused") as info2:
        OpenAIChatBackend("m", client=mock_client(refused)).score([QUERY])
    assert info2.value.retryable


def test_undecodable_json_is_malformed_and_retryable() -> None:
    def garbage(request: Any) -> Any:
        return httpx.Response(
            200, content=b'{"choices": [', headers={"content-type": "application/json"}
        )

    with pytest.raises(MalformedResponseError, match="not valid JSON") as info:
        OpenAIBackend("m", client=mock_client(garbage)).score([QUERY])
    assert info.value.retryable
    with pytest.raises(MalformedResponseError):
        OpenAIChatBackend("m", client=mock_client(garbage)).score([QUERY])


def test_programming_errors_and_bdpl_errors_pass_through_untouched() -> None:
    with pytest.raises(TypeError), translate_openai_errors():
        raise TypeError("a bug")
    with pytest.raises(AttributeError), translate_openai_errors():
        raise AttributeError("a bug")
    original = ServerError("already typed")
    with pytest.raises(ServerError) as info, translate_openai_errors():
        raise original
    assert info.value is original


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "1200"}, 1.2),
        ({"retry-after-ms": "soon", "retry-after": "2"}, 2.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_retry_after_is_read_from_either_header(
    headers: dict[str, str] | None, expected: float | None
) -> None:
    assert parse_retry_after(headers) == expected


def test_retry_after_may_be_an_http_date() -> None:
    when = email.utils.formatdate(time.time() + 30, usegmt=True)
    got = parse_retry_after({"Retry-After": when})
    assert got is not None and 25 <= got <= 31
