"""The one place where ``openai`` SDK exceptions become bdpl's typed errors.

Every call the OpenAI-style backends make to the SDK runs inside :func:`translate_openai_errors`:

==============================================  =============================================
SDK exception / condition                       bdpl error
==============================================  =============================================
429 with code/type ``insufficient_quota``        :class:`~bdpl.errors.QuotaExceededError`
                                                (billing: not retryable)
429 otherwise                                   :class:`~bdpl.errors.RateLimitError` with
                                                ``retry_after`` from ``retry-after-ms`` /
                                                ``Retry-After`` (seconds or HTTP date)
401, 403                                        :class:`~bdpl.errors.AuthenticationError`
404, or code ``model_not_found``, or a          :class:`~bdpl.errors.ModelNotFoundError`
message saying the model is retired
400, 409, 413, 422 and other 4xx                :class:`~bdpl.errors.BadRequestError`
5xx                                             :class:`~bdpl.errors.ServerError`
``APITimeoutError``                             :class:`~bdpl.errors.BackendTimeoutError`
``APIConnectionError`` (refused, dropped)       :class:`~bdpl.errors.BackendConnectionError`
undecodable JSON, ``APIResponseValidationError`` :class:`~bdpl.errors.MalformedResponseError`
==============================================  =============================================

Programming errors (``TypeError``, ``AttributeError``, ...) pass through untouched, and bdpl's
own errors raised inside the block are not wrapped again.

The API key never reaches a message: the SDK's message (which echoes the server's error text)
is redacted before it is used, and the chained SDK exception is redacted too, so a traceback
cannot leak it either.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

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

_REDACTED = "[REDACTED]"
# Phrases OpenAI and OpenAI-compatible servers use for a model that is gone or unknown.
_RETIRED_PHRASES = ("has been deprecated", "has been retired", "does not exist", "model_not_found")
_QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached", "billing_not_active"})


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date).

    Returns ``None`` when the server did not say (or said something unreadable).
    """
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        raw = lowered.get(name)
        if raw is None:
            continue
        try:
            value = float(raw) / divisor
        except ValueError:
            continue
        if math.isfinite(value) and value >= 0:
            return value
    raw = lowered.get("retry-after")
    if raw is not None:
        parsed = email.utils.parsedate_tz(raw)
        if parsed is not None:
            return max(0.0, float(email.utils.mktime_tz(parsed)) - time.time())
    return None


def redact(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` replaced (no-op for empty secrets)."""
    if secret and len(secret) >= 4:
        return text.replace(secret, _REDACTED)
    return text


@contextmanager
def translate_openai_errors(*, secret: str | None = None, what: str = "request") -> Iterator[None]:
    """Map ``openai`` SDK exceptions raised in the block to :mod:`bdpl.errors`.

    Args:
        secret: the API key in use, removed from every message.
        what: a few words naming the call, put in front of messages (e.g. the endpoint and model).

    Raises:
        BackendError: the typed subclass for the failure (see the module docstring).
    """
    import openai

    try:
        yield
    except BackendError:
        raise
    except openai.APITimeoutError as exc:  # before APIConnectionError: it is a subclass
        _scrub(exc, secret)
        raise BackendTimeoutError(f"{what}: timed out") from exc
    except openai.APIConnectionError as exc:
        _scrub(exc, secret)
        cause = exc.__cause__
        detail = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
        raise BackendConnectionError(redact(f"{what}: connection failed{detail}", secret)) from exc
    except openai.APIResponseValidationError as exc:
        _scrub(exc, secret)
        raise MalformedResponseError(
            f"{what}: HTTP {exc.status_code} answer does not have the expected shape"
        ) from exc
    except openai.APIStatusError as exc:
        _scrub(exc, secret)
        raise _status_error(exc, secret, what) from exc
    except json.JSONDecodeError as exc:
        raise MalformedResponseError(f"{what}: answer is not valid JSON ({exc.msg})") from exc


def _status_error(exc: Any, secret: str | None, what: str) -> BackendError:
    """The bdpl error for an HTTP error status (``exc`` is an ``openai.APIStatusError``)."""
    status = int(exc.status_code)
    code = str(exc.code or "")
    kind = str(getattr(exc, "type", None) or "")
    message = redact(str(getattr(exc, "message", "") or exc), secret)
    text = f"{what}: HTTP {status}" + (f" [{code}]" if code else "") + f": {message}"
    if status == 429:
        if code in _QUOTA_CODES or kind in _QUOTA_CODES:
            return QuotaExceededError(text)
        headers = dict(exc.response.headers.items()) if exc.response is not None else None
        return RateLimitError(text, retry_after=parse_retry_after(headers))
    if status in (401, 403):
        return AuthenticationError(text)
    lowered = message.lower()
    if status == 404 or code == "model_not_found" or any(p in lowered for p in _RETIRED_PHRASES):
        return ModelNotFoundError(text)
    if status >= 500:
        return ServerError(text)
    if status == 408:  # the server's own request timeout: a retry may succeed
        return BackendTimeoutError(text)
    return BadRequestError(text)


def _scrub(exc: Any, secret: str | None) -> None:
    """Remove ``secret`` from the SDK exception that will be chained as ``__cause__``."""
    if not secret:
        return
    if hasattr(exc, "message") and isinstance(exc.message, str):
        exc.message = redact(exc.message, secret)
    exc.args = tuple(redact(a, secret) if isinstance(a, str) else a for a in exc.args)
    body = getattr(exc, "body", None)
    if body is not None and secret in json.dumps(body, default=str):
        exc.body = None
