"""The one place where ``openai`` SDK exceptions become bdpl's typed errors.

Every call the OpenAI-style backends make to the SDK runs inside :func:`translate_openai_errors`:

==============================================  =============================================
SDK exception / condition                       bdpl error
==============================================  =============================================
429 with code/type ``insufficient_quota``        :class:`~bdpl.errors.QuotaExceededError`
                                                (billing: not retryable)
429 otherwise                                   :class:`~bdpl.errors.RateLimitError`
401, 403                                        :class:`~bdpl.errors.AuthenticationError`
404, or code ``model_not_found``, or a          :class:`~bdpl.errors.ModelNotFoundError`
message saying the model is retired
400, 409, 413, 422 and other 4xx                :class:`~bdpl.errors.BadRequestError`
5xx                                             :class:`~bdpl.errors.ServerError`
``APITimeoutError``                             :class:`~bdpl.errors.BackendTimeoutError`
``APIConnectionError`` (refused, dropped)       :class:`~bdpl.errors.BackendConnectionError`
undecodable JSON, ``APIResponseValidationError`` :class:`~bdpl.errors.MalformedResponseError`
==============================================  =============================================

Every retryable status (429, 408, 5xx) carries ``retry_after`` when the server said how long to
wait (``retry-after-ms``, or ``Retry-After`` in seconds or as an HTTP date; see
:func:`parse_retry_after`), so the retry layer honours it on all of them.

``outcome_unknown`` (see :class:`~bdpl.errors.BackendError`) is set on a timeout or a lost
connection once the request may have been sent (not when the connection or the pool could not
be had), and on a 200 reply that could not be read: the provider may have billed those.

Programming errors (``TypeError``, ``AttributeError``, ...) pass through untouched, and bdpl's
own errors raised inside the block are not wrapped again.

No credential reaches a message: the SDK's message (which echoes the server's error text) is
redacted with the backend's actual keys and the credential patterns of :mod:`bdpl.redaction`
before it is used, and the chained SDK exception is redacted too, so a traceback cannot leak
one either.
"""

from __future__ import annotations

import email.utils
import json
import math
import time
from collections.abc import Iterable, Iterator, Mapping
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
from bdpl.redaction import redact, redact_exception

# The longest wait a server's Retry-After may ask for; a longer (or absurd) value is cut to it.
# The retry policy's ``max_time`` still bounds the whole, so such a wait usually ends retrying.
MAX_RETRY_AFTER_S = 600.0
# Transport failures (by class name, the same in httpx and httpx2) that happen before the
# request is sent: nothing can have been billed.
_NOT_SENT = frozenset({"ConnectError", "ConnectTimeout", "PoolTimeout", "UnsupportedProtocol"})
# Phrases OpenAI and OpenAI-compatible servers use for a model that is gone or unknown.
_RETIRED_PHRASES = ("has been deprecated", "has been retired", "does not exist", "model_not_found")
_QUOTA_CODES = frozenset({"insufficient_quota", "billing_hard_limit_reached", "billing_not_active"})


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date).

    The one place a server's wait is read. ``retry-after-ms`` wins when both are readable; a
    date in the past means no wait; a wait above :data:`MAX_RETRY_AFTER_S` is cut to it.
    Returns ``None`` when the server did not say (or said something unreadable, negative or
    not finite).
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
            return min(value, MAX_RETRY_AFTER_S)
    raw = lowered.get("retry-after")
    if raw is not None:
        try:
            parsed = email.utils.parsedate_tz(raw)
            when = float(email.utils.mktime_tz(parsed)) if parsed is not None else None
        except (OverflowError, ValueError):  # a date beyond what the platform can represent
            when = math.inf
        if when is not None:
            return min(max(0.0, when - time.time()), MAX_RETRY_AFTER_S)
    return None


@contextmanager
def translate_openai_errors(
    *, secrets: Iterable[str | None] = (), what: str = "request"
) -> Iterator[None]:
    """Map ``openai`` SDK exceptions raised in the block to :mod:`bdpl.errors`.

    Args:
        secrets: the credentials in use (the client's API key), removed from every message
            along with anything shaped like a credential.
        what: a few words naming the call, put in front of messages (e.g. the endpoint and model).

    Raises:
        BackendError: the typed subclass for the failure (see the module docstring).
    """
    import openai

    secrets = tuple(secrets)
    try:
        yield
    except BackendError as exc:
        redact_exception(exc, secrets)
        raise
    except openai.APITimeoutError as exc:  # before APIConnectionError: it is a subclass
        redact_exception(exc, secrets)
        raise BackendTimeoutError(f"{what}: timed out", outcome_unknown=_maybe_sent(exc)) from exc
    except openai.APIConnectionError as exc:
        redact_exception(exc, secrets)
        cause = exc.__cause__
        detail = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
        raise BackendConnectionError(
            redact(f"{what}: connection failed{detail}", secrets), outcome_unknown=_maybe_sent(exc)
        ) from exc
    except openai.APIResponseValidationError as exc:
        redact_exception(exc, secrets)
        raise MalformedResponseError(
            f"{what}: HTTP {exc.status_code} answer does not have the expected shape",
            outcome_unknown=exc.status_code < 400,
        ) from exc
    except openai.APIStatusError as exc:
        redact_exception(exc, secrets)
        raise _status_error(exc, secrets, what) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        # Raised reading a 200 reply (error statuses are raised by the SDK before): the
        # provider answered, and may have billed, a reply bdpl cannot read.
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8"
        raise MalformedResponseError(
            f"{what}: answer is not valid JSON ({reason})", outcome_unknown=True
        ) from exc


def _maybe_sent(exc: BaseException) -> bool:
    """Whether a transport failure may have happened after the request reached the server."""
    cause = exc.__cause__
    if cause is None:
        return True
    return not any(k.__name__ in _NOT_SENT for k in type(cause).__mro__)


def _status_error(exc: Any, secrets: tuple[str | None, ...], what: str) -> BackendError:
    """The bdpl error for an HTTP error status (``exc`` is an ``openai.APIStatusError``)."""
    status = int(exc.status_code)
    code = str(exc.code or "")
    kind = str(getattr(exc, "type", None) or "")
    message = redact(str(getattr(exc, "message", "") or exc), secrets)
    text = redact(
        f"{what}: HTTP {status}" + (f" [{code}]" if code else "") + f": {message}", secrets
    )
    headers = dict(exc.response.headers.items()) if exc.response is not None else None
    if status == 429:
        if code in _QUOTA_CODES or kind in _QUOTA_CODES:
            return QuotaExceededError(text)
        return RateLimitError(text, retry_after=parse_retry_after(headers))
    if status in (401, 403):
        return AuthenticationError(text)
    lowered = message.lower()
    if status == 404 or code == "model_not_found" or any(p in lowered for p in _RETIRED_PHRASES):
        return ModelNotFoundError(text)
    if status >= 500:
        return ServerError(text, retry_after=parse_retry_after(headers))
    if status == 408:  # the server's own request timeout: a retry may succeed
        return BackendTimeoutError(text, retry_after=parse_retry_after(headers))
    return BadRequestError(text)
