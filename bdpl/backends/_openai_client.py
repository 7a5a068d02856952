"""What the OpenAI-style backends share about the SDK: client set-up and reading answers.

Answers are read from the raw JSON rather than the SDK's models so that fields some servers add
(vLLM's ``prompt_logprobs``) and shapes some servers use (llama.cpp's chat-style ``content``
logprobs on ``/v1/completions``) are seen, and so that every missing field becomes a
:class:`~bdpl.errors.MalformedResponseError` here instead of an ``AttributeError`` later.

Nothing in a reply is trusted blindly: the reply's size is capped (:func:`limit_reply_size`),
choices are matched to prompts only by their ``index`` (:func:`read_choices`), the provider's
token counts are checked (:func:`usage_problem`; a call with an unusable count reports no
tokens, so that the metering layer charges its estimate), and every message built from a
reply is redacted with the backend's actual key (:meth:`ClientBackend._calling`). A base URL
that carries credentials is refused (:func:`refuse_url_credentials`).
"""

from __future__ import annotations

import functools
import logging
import math
import os
import sys
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from bdpl._validate import positive_int
from bdpl.backends._lifecycle import Closing
from bdpl.backends._openai_errors import translate_openai_errors
from bdpl.backends._toplogprobs import token_counter
from bdpl.backends.base import Capabilities
from bdpl.errors import BackendError, ConfigError, MalformedResponseError, ReplyTooLargeError
from bdpl.redaction import redacting
from bdpl.types import LabelScores, Usage

if TYPE_CHECKING:
    import openai

log = logging.getLogger(__name__)

OPENAI_HOST = "api.openai.com"
# Below this, OpenAI's chat API writes "very unlikely" instead of a log-prob.
_CHAT_FLOOR = -9999.0
#: The largest reply a backend reads by default: a scoring reply is a few kilobytes (a batch of
#: 20 prompts with 20 top log-probs each, or an echo of long prompts, stays far below 1 MiB).
DEFAULT_MAX_REPLY_BYTES = 8 * 1024 * 1024
# More tokens than any model's context for one request: a count above it is not a real count.
_MAX_TOKENS_PER_REQUEST = 100_000_000
# Query parameters that carry credentials (compared lower-cased, "-" read as "_").
_CREDENTIAL_PARAMS = frozenset(
    {"key", "api_key", "apikey", "token", "access_token", "auth", "auth_token", "password"}
)


def build_client(
    client: openai.OpenAI | None,
    *,
    api_key: str | None,
    base_url: str | None,
    timeout: float,
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
) -> openai.OpenAI:
    """The client a backend uses: the injected one or a new one, always with SDK retries off.

    The metering layer owns retries (one policy, honouring ``Retry-After``), so the SDK's own
    are switched off also on an injected client (``with_options`` returns a copy). A client
    built here reads at most ``max_reply_bytes`` of a reply (see :func:`limit_reply_size`);
    an injected client is used as given, so its replies are capped only if its HTTP client
    carries that hook.

    Raises:
        ConfigError: both a client and ``api_key``/``base_url`` were given, no API key is
            available for OpenAI itself, a bad ``max_reply_bytes``, or a base URL that carries
            credentials (see :func:`refuse_url_credentials`).
    """
    max_reply_bytes = positive_int("max_reply_bytes", max_reply_bytes)
    if client is not None:
        if api_key is not None or base_url is not None:
            raise ConfigError("pass either client= or api_key=/base_url=, not both")
        refuse_url_credentials(str(client.base_url))
        return client.with_options(max_retries=0, timeout=timeout)
    import openai

    if base_url is not None:
        refuse_url_credentials(base_url)
    key = api_key or os.environ.get("OPENAI_API_KEY")
    if not key:
        if base_url is None:
            raise ConfigError("no OpenAI API key: pass api_key= or set OPENAI_API_KEY")
        # Self-hosted servers (vLLM, llama.cpp) usually take no key, but the SDK needs a string.
        key = "no-key"
    http_client = _owned_http_client_type()(
        event_hooks={"response": [limit_reply_size(max_reply_bytes)]}
    )
    built = openai.OpenAI(
        api_key=key, base_url=base_url, max_retries=0, timeout=timeout, http_client=http_client
    )
    refuse_url_credentials(str(built.base_url))  # also one taken from $OPENAI_BASE_URL
    return built


@functools.lru_cache(maxsize=1)
def _owned_http_client_type() -> type[Any]:
    """The SDK's default HTTP client, closed when dropped (as the SDK's own is), so that a
    backend nobody closed leaves no open socket behind."""
    import openai

    class OwnedHttpClient(openai.DefaultHttpxClient):
        def __del__(self) -> None:
            if not self.is_closed:
                with suppress(Exception):  # interpreter shutdown: nothing left to tidy
                    self.close()

    return OwnedHttpClient


def refuse_url_credentials(url: str) -> None:
    """Refuse a base URL that carries credentials: HTTP libraries log full URLs.

    Credentials belong in ``api_key`` (sent as a header, redacted everywhere), never in
    ``http://user:password@host/v1`` or a ``?key=``/``?api_key=``/``?token=`` query parameter.

    Raises:
        ConfigError: the URL has user info or a credential query parameter (the message does
            not repeat the credential).
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]  # without user info
    where = f"{parts.scheme}://{host}{parts.path}"
    if parts.username is not None or parts.password is not None:
        raise ConfigError(
            f"the base URL {where} carries a user name or password (user:password@host): "
            "HTTP libraries log full URLs, so credentials there would leak; pass the key as "
            "api_key= (sent as an Authorization header) instead"
        )
    for name, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True):
        if name.lower().replace("-", "_") in _CREDENTIAL_PARAMS:
            raise ConfigError(
                f"the base URL {where} carries a credential in its query ({name}=...): HTTP "
                "libraries log full URLs, so it would leak; pass the key as api_key= instead"
            )


def limit_reply_size(max_bytes: int) -> Callable[[Any], None]:
    """An HTTP response hook that stops reading a reply after ``max_bytes``.

    For ``httpx``/``httpx2`` clients (``event_hooks={"response": [limit_reply_size(n)]}``):
    a reply whose ``Content-Length`` says more is refused before its body is read; one without
    is counted as it streams in (bytes as received). Either way the request raises
    :class:`~bdpl.errors.ReplyTooLargeError`.
    """
    max_bytes = positive_int("max_bytes", max_bytes)

    def hook(response: Any) -> None:
        declared = response.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            raise _too_large(response.request.url.path, max_bytes)
        path = response.request.url.path  # not the response: no reference cycle through it
        capped = _capped_stream_type(type(response).__module__)
        response.stream = capped(path, response.stream, max_bytes)

    return hook


def _too_large(path: str, max_bytes: int) -> ReplyTooLargeError:
    return ReplyTooLargeError(
        f"the reply to {path} is larger than max_reply_bytes="
        f"{max_bytes}; raise max_reply_bytes if such replies are expected"
    )


@functools.lru_cache(maxsize=4)
def _capped_stream_type(module: str) -> type[Any]:
    """A byte stream that counts what passes, built on the HTTP library's own stream class."""
    package = sys.modules[module.split(".")[0]]
    base: type[Any] = getattr(package, "SyncByteStream", object)

    class CappedStream(base):  # type: ignore[misc]
        def __init__(self, path: str, inner: Any, max_bytes: int) -> None:
            self._path, self._inner, self._max = path, inner, max_bytes

        def __iter__(self) -> Iterator[bytes]:
            seen = 0
            for chunk in self._inner:
                seen += len(chunk)
                if seen > self._max:
                    raise _too_large(self._path, self._max)
                yield chunk

        def close(self) -> None:
            self._inner.close()

    return CappedStream


def endpoint_id(client: openai.OpenAI) -> str:
    """The endpoint for identities: host, port (when given) and path, e.g. ``127.0.0.1:8000/v1``.

    Two servers on one host (``:8000`` and ``:8001``, or ``/a/v1`` and ``/b/v1`` behind one
    proxy) may serve different models, and llama.cpp's server ignores the request's model
    name, so the port and path are part of the identity: a server restarted on the same port
    keeps its cache, one on another port does not. The scheme is left out (it does not change
    the answers), and so are credentials and query strings, which must never reach a cache key;
    a trailing slash is dropped so that ``.../v1`` and ``.../v1/`` agree.
    """
    url = client.base_url
    # ``netloc`` is host[:port] without user info; IPv6 hosts keep their brackets.
    netloc = bytes(url.netloc).decode("ascii") or "unknown-host"
    return netloc + str(url.path).rstrip("/")


class ClientBackend(Closing):
    """What the OpenAI-style backends share: the SDK client, its endpoint, the model's name.

    Subclasses check their own settings, then call this ``__init__``. Every setting is fixed
    at construction (read-only properties over private fields), so :attr:`identity`, which
    names them, cannot drift under a cache or a meter.

    A backend is a context manager; :meth:`close` closes the client's connection pool when
    the backend built the client itself. An injected ``client`` belongs to the caller and is
    left open (the backend uses a copy of it that shares its connection pool).

    Args:
        model: the model name as the endpoint knows it (also used to look up prices).
        client: a ready client, or ``None`` for a new one (see :func:`build_client`).
        api_key: the API key; exclusive with ``client``.
        base_url: an OpenAI-compatible endpoint; exclusive with ``client``.
        timeout: seconds per HTTP request.
        max_reply_bytes: the largest reply read (see :func:`build_client`).

    Raises:
        ConfigError: a timeout that is not positive, or as :func:`build_client`.
    """

    _max_batch_size: int = 1
    _max_concurrency: int = 1

    def __init__(
        self,
        model: str,
        client: openai.OpenAI | None,
        *,
        api_key: str | None,
        base_url: str | None,
        timeout: float,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
    ) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ConfigError(f"timeout must be positive, got {timeout!r}")
        self._client = build_client(
            client,
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_reply_bytes=max_reply_bytes,
        )
        self._owns_client = client is None
        # Identities name the endpoint, never the key (see :func:`endpoint_id`).
        self._endpoint = endpoint_id(self._client)
        self._model = model
        self._timeout = float(timeout)
        self._count_tokens = token_counter(model)
        self._warned_usage = False

    @property
    def model(self) -> str:
        """The model name as the endpoint knows it (also used to look up prices)."""
        return self._model

    @property
    def timeout(self) -> float:
        """Seconds per HTTP request."""
        return self._timeout

    def close(self) -> None:
        """Release the backend: close the client's connection pool if the backend built it.

        An injected client is left open (it belongs to the caller). Idempotent; :meth:`score`
        on a closed backend raises :class:`~bdpl.errors.ConfigError`.
        """
        super().close()

    def _release(self) -> None:
        if self._owns_client:
            self._client.close()

    @property
    def capabilities(self) -> Capabilities:
        """Paid, priced by ``model``; batch and concurrency limits as constructed."""
        return Capabilities(
            model=self.model,
            max_batch_size=self._max_batch_size,
            max_concurrency=self._max_concurrency,
            pair_separator="\n",
            is_local=False,
        )

    def secrets(self) -> tuple[str, ...]:
        """The client's API key, so that it is redacted from every message bdpl writes."""
        key = getattr(self._client, "api_key", None)
        return (key,) if isinstance(key, str) and key else ()

    @contextmanager
    def _calling(self, billing: Billing) -> Iterator[None]:
        """Around one ``score`` call: errors carry what was billed, and no key in any message.

        Messages built from a reply (a malformed field quoted back) pass through
        :func:`bdpl.redaction.redact` with this backend's key, whatever the key looks like.
        """
        with redacting(self.secrets()), billing.charge_failures():
            yield

    def _settle(self, billing: Billing, scores: list[LabelScores]) -> list[LabelScores]:
        """The call's answers, with token counts zeroed if any request's usage was unusable.

        A provider's count that is missing, negative, not a finite integer or absurdly large
        is not trusted for any part of the call: the answers then report the requests but no
        tokens, and the metering layer charges its estimate instead (warned once here).
        """
        if billing.untrusted is None:
            return scores
        if not self._warned_usage:
            self._warned_usage = True
            log.warning(
                "%s reported unusable token usage (%s); its calls are reported with no "
                "token counts, so that the metering layer charges its estimate",
                self.identity,  # type: ignore[attr-defined]
                billing.untrusted,
            )
        return [replace(s, usage=Usage(0, 0, s.usage.requests)) for s in scores]

    @property
    def max_batch_size(self) -> int:
        """Most queries per ``score`` call."""
        return self._max_batch_size

    @property
    def max_concurrency(self) -> int:
        """How many ``score`` calls the metering layer may run at once."""
        return self._max_concurrency

    @property
    def is_local(self) -> bool:
        """Always False: a paid API."""
        return False

    @property
    def pair_separator(self) -> str:
        """A newline: text APIs need a textual separator."""
        return "\n"


class Billing:
    """What the requests of one backend call were billed so far, to charge if the call fails.

    A call that makes several requests (a next-token request, then a fallback; or one chat
    request per query) and fails part-way has still been billed for the requests that got an
    answer; :meth:`charge_failures` puts that on the error's ``usage`` for the metering layer.
    Once one request's usage is unusable (see :func:`usage_problem`), :attr:`untrusted` says
    why and :attr:`total` counts requests only (no tokens), for the whole call.
    """

    def __init__(self) -> None:
        self._total = Usage()
        self.untrusted: str | None = None

    @property
    def total(self) -> Usage:
        """The answered requests' usage; tokens zero once any report was unusable."""
        if self.untrusted is not None:
            return Usage(0, 0, self._total.requests)
        return self._total

    def add(self, data: Mapping[str, Any]) -> None:
        """Count one answered request from its decoded reply."""
        problem = usage_problem(data)
        if problem is not None and self.untrusted is None:
            self.untrusted = problem
        self._total += read_usage(data)

    @contextmanager
    def charge_failures(self) -> Iterator[None]:
        """Set a :class:`~bdpl.errors.BackendError` raised in the block to carry :attr:`total`.

        Only when some request was answered: an error from a call that was billed nothing keeps
        ``usage=None``.
        """
        try:
            yield
        except BackendError as exc:
            if self.total.requests:
                exc.usage = self.total
            raise


@contextmanager
def sdk_call(client: openai.OpenAI, what: str) -> Iterator[None]:
    """Run an SDK call with its errors translated and the client's API key kept out of them."""
    with translate_openai_errors(secrets=(getattr(client, "api_key", None),), what=what):
        yield


def post_json(
    client: openai.OpenAI, what: str, call: Callable[[], Any], billing: Billing
) -> dict[str, Any]:
    """Make one SDK call through ``with_raw_response`` and return its decoded JSON object.

    Args:
        client: the client (its key is redacted from errors).
        what: names the call in error messages.
        call: makes the request, e.g. ``lambda: client.completions.with_raw_response.create(...)``.
        billing: the call's running total; the answer's usage is added as soon as it is
            decoded, before anything can find fault with its content (it was billed anyway).

    Raises:
        BackendError: the translated failure; :class:`MalformedResponseError` when the body is
            not a JSON object.
    """
    with sdk_call(client, what):
        raw = call()
        data = raw.http_response.json()
    if not isinstance(data, dict):
        raise MalformedResponseError(f"{what}: answer is {type(data).__name__}, not a JSON object")
    billing.add(data)
    return data


def read_choices(data: Mapping[str, Any], n: int, what: str) -> list[dict[str, Any]]:
    """The ``n`` choices of an answer, in prompt order (servers may send them in any order).

    Choices are put in order by their ``index``. A reply to several prompts whose choices carry
    no index cannot be matched to its prompts (its order is not promised), so it is refused
    rather than read in the order it came; one choice for one prompt needs no index.

    Raises:
        MalformedResponseError: missing, extra or duplicate choices, or several choices
            without an index (not retryable: the server always answers so).
    """
    choices = data.get("choices")
    if not isinstance(choices, list) or len(choices) != n:
        got = len(choices) if isinstance(choices, list) else "no"
        raise MalformedResponseError(f"{what}: expected {n} choices, got {got}")
    if n > 1 and all(isinstance(c, dict) and "index" not in c for c in choices):
        raise MalformedResponseError(
            f"{what}: the {n} choices carry no index, so they cannot be matched to their "
            "prompts; with this server use max_batch_size=1",
            retryable=False,
        )
    by_index: dict[int, dict[str, Any]] = {}
    for pos, choice in enumerate(choices):
        if not isinstance(choice, dict):
            raise MalformedResponseError(f"{what}: choice {pos} is not an object")
        index = choice.get("index", 0 if n == 1 else None)
        if (
            isinstance(index, bool)
            or not isinstance(index, int)
            or not 0 <= index < n
            or index in by_index
        ):
            raise MalformedResponseError(f"{what}: bad or duplicate choice index {index!r}")
        by_index[index] = choice
    return [by_index[i] for i in range(n)]


def usage_problem(data: Mapping[str, Any]) -> str | None:
    """Why a reply's ``usage`` cannot be trusted, or ``None`` when it can.

    Usable means: an object whose ``prompt_tokens`` and ``completion_tokens`` are integers
    (not booleans, not floats, not strings) from 0 to 10^8 (more than any context).
    """
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return "no usage object" if usage is None else f"usage is {type(usage).__name__}"
    for name in ("prompt_tokens", "completion_tokens"):
        value = usage.get(name)
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{name} is {_describe(value)}, not an integer"
        if not 0 <= value <= _MAX_TOKENS_PER_REQUEST:
            return f"{name} is {value}, out of range"
    return None


def read_usage(data: Mapping[str, Any], requests: int = 1) -> Usage:
    """The provider's token counts for one request; no tokens when they are unusable.

    Never negative and never raises: a report :func:`usage_problem` finds fault with counts
    ``requests`` and zero tokens (a call holding such a request reports no tokens at all, see
    :class:`Billing`).
    """
    if usage_problem(data) is not None:
        return Usage(0, 0, requests)
    usage = data["usage"]
    return Usage(usage["prompt_tokens"], usage["completion_tokens"], requests)


def _describe(value: Any) -> str:
    """A short, bounded description of a JSON value for a log line (never a long echo)."""
    if value is None:
        return "missing"
    if isinstance(value, float):
        return repr(value)
    return type(value).__name__


def no_logprobs(what: str) -> MalformedResponseError:
    """The error for an answer without logprobs: asking again will not help."""
    return MalformedResponseError(
        f"{what}: the answer has no logprobs; the model or server does not return them "
        "(or the request was changed on the way)",
        retryable=False,
    )


def top_from_entries(entries: Any, what: str) -> dict[str, float]:
    """``{token: logprob}`` from a list of ``{"token", "logprob"}`` objects (chat-style).

    Entries at OpenAI's "very unlikely" floor (-9999) carry no log-prob and are dropped.
    """
    if not isinstance(entries, list):
        raise no_logprobs(what)
    top: dict[str, float] = {}
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
            raise MalformedResponseError(f"{what}: a top logprob entry has no token")
        value = _logprob(entry.get("logprob"), what)
        if value > _CHAT_FLOOR:
            top.setdefault(entry["token"], value)
    return top


def chat_first_top(logprobs: Any, what: str) -> dict[str, float] | None:
    """The first token's top log-probs in the chat layout (``content[0].top_logprobs``).

    ``logprobs`` is a choice's ``logprobs`` field; ``None`` when it is not in that layout.
    """
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return top_from_entries(content[0].get("top_logprobs"), what)
    return None


def top_from_mapping(mapping: Any, what: str) -> dict[str, float]:
    """``{token: logprob}`` from a legacy completions ``top_logprobs`` entry."""
    if not isinstance(mapping, dict) or not mapping:
        raise no_logprobs(what)
    return {str(tok): _logprob(value, what) for tok, value in mapping.items()}


def _logprob(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedResponseError(f"{what}: a log-prob is {value!r}, not a number")
    result = float(value)
    if math.isnan(result) or result > 1e-6:
        raise MalformedResponseError(f"{what}: {result} is not a log-probability")
    return min(result, 0.0)
