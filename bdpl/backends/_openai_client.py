"""What the OpenAI-style backends share about the SDK: client set-up and reading answers.

Answers are read from the raw JSON rather than the SDK's models so that fields some servers add
(vLLM's ``prompt_logprobs``) and shapes some servers use (llama.cpp's chat-style ``content``
logprobs on ``/v1/completions``) are seen, and so that every missing field becomes a
:class:`~bdpl.errors.MalformedResponseError` here instead of an ``AttributeError`` later.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from bdpl.backends._lifecycle import Closing
from bdpl.backends._openai_errors import translate_openai_errors
from bdpl.backends._toplogprobs import token_counter
from bdpl.backends.base import Capabilities
from bdpl.errors import BackendError, ConfigError, MalformedResponseError
from bdpl.types import Usage

if TYPE_CHECKING:
    import openai

OPENAI_HOST = "api.openai.com"
# Below this, OpenAI's chat API writes "very unlikely" instead of a log-prob.
_CHAT_FLOOR = -9999.0


def build_client(
    client: openai.OpenAI | None,
    *,
    api_key: str | None,
    base_url: str | None,
    timeout: float,
) -> openai.OpenAI:
    """The client a backend uses: the injected one or a new one, always with SDK retries off.

    The metering layer owns retries (one policy, honouring ``Retry-After``), so the SDK's own
    are switched off also on an injected client (``with_options`` returns a copy).

    Raises:
        ConfigError: both a client and ``api_key``/``base_url`` were given, or no API key is
            available for OpenAI itself.
    """
    if client is not None:
        if api_key is not None or base_url is not None:
            raise ConfigError("pass either client= or api_key=/base_url=, not both")
        return client.with_options(max_retries=0, timeout=timeout)
    import openai

    key = api_key or os.environ.get("OPENAI_API_KEY")
    if not key:
        if base_url is None:
            raise ConfigError("no OpenAI API key: pass api_key= or set OPENAI_API_KEY")
        # Self-hosted servers (vLLM, llama.cpp) usually take no key, but the SDK needs a string.
        key = "no-key"
    return openai.OpenAI(api_key=key, base_url=base_url, max_retries=0, timeout=timeout)


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
    ) -> None:
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ConfigError(f"timeout must be positive, got {timeout!r}")
        self._client = build_client(client, api_key=api_key, base_url=base_url, timeout=timeout)
        self._owns_client = client is None
        # Identities name the endpoint, never the key (see :func:`endpoint_id`).
        self._endpoint = endpoint_id(self._client)
        self._model = model
        self._timeout = float(timeout)
        self._count_tokens = token_counter(model)

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
    """

    def __init__(self) -> None:
        self.total = Usage()

    def add(self, usage: Usage) -> None:
        """Count one answered request."""
        self.total += usage

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
    with translate_openai_errors(secret=getattr(client, "api_key", None), what=what):
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
    billing.add(read_usage(data))
    return data


def read_choices(data: Mapping[str, Any], n: int, what: str) -> list[dict[str, Any]]:
    """The ``n`` choices of an answer, in prompt order (servers may send them in any order).

    Raises:
        MalformedResponseError: missing, extra or duplicate choices.
    """
    choices = data.get("choices")
    if not isinstance(choices, list) or len(choices) != n:
        got = len(choices) if isinstance(choices, list) else "no"
        raise MalformedResponseError(f"{what}: expected {n} choices, got {got}")
    by_index: dict[int, dict[str, Any]] = {}
    for pos, choice in enumerate(choices):
        if not isinstance(choice, dict):
            raise MalformedResponseError(f"{what}: choice {pos} is not an object")
        index = choice.get("index", pos)
        if not isinstance(index, int) or not 0 <= index < n or index in by_index:
            raise MalformedResponseError(f"{what}: bad or duplicate choice index {index!r}")
        by_index[index] = choice
    return [by_index[i] for i in range(n)]


def read_usage(data: Mapping[str, Any], requests: int = 1) -> Usage:
    """The provider's token counts for one request (zeros when the server sent none)."""
    usage = data.get("usage")
    if not isinstance(usage, dict):
        return Usage(0, 0, requests)

    def count(name: str) -> int:
        value = usage.get(name)
        return int(value) if isinstance(value, (int, float)) else 0

    return Usage(count("prompt_tokens"), count("completion_tokens"), requests)


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
