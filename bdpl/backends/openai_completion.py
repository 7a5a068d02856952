"""GPT-3-style completion APIs (``/v1/completions`` with ``logprobs``): OpenAI, vLLM, llama.cpp."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from bdpl._validate import positive_int
from bdpl.backends._openai_client import (
    DEFAULT_MAX_REPLY_BYTES,
    OPENAI_HOST,
    Billing,
    ClientBackend,
    chat_first_top,
    no_logprobs,
    post_json,
    read_choices,
    read_usage,
    top_from_mapping,
)
from bdpl.backends._toplogprobs import (
    is_trailing_punctuation,
    match_labels,
    offsets_from_end,
    same_first_token,
    span_logprob,
    topk_bound,
)
from bdpl.errors import (
    BadRequestError,
    ConfigError,
    MalformedResponseError,
    UnsupportedQueryError,
)
from bdpl.types import LabelScores, Query, Usage, split_usage

if TYPE_CHECKING:
    import openai

Fallback = Literal["echo", "prompt_logprobs", "none"]
_FALLBACKS: tuple[str, ...] = ("echo", "prompt_logprobs", "none")
T = TypeVar("T")


class OpenAICompletionBackend(ClientBackend):
    """Label log-probs from an OpenAI-style ``/v1/completions`` endpoint.

    Each :meth:`score` call sends its queries as one list of prompts (``max_tokens=1``,
    ``temperature=0``, ``logprobs=top_logprobs``) and reads every label whose text is one of
    the next token's top-k tokens (see :mod:`bdpl.backends._toplogprobs` for the matching
    rule). A label outside the top-k (or longer than one token) is scored exactly by the
    ``fallback``: one more request per call, holding ``before + label`` for every missing label,
    whose prompt log-probs give ``log p(label | before)``. Queries whose ``after`` is more than
    trailing punctuation always take that route, with ``label + after`` scored.

    Capability settings per server:

    ============================  =================  ====================  ==============
    server / model                ``top_logprobs``   ``fallback``          batch
    ============================  =================  ====================  ==============
    OpenAI ``davinci-002``,       at most 5          ``"echo"``            20 (default)
    ``babbage-002``
    OpenAI                        at most 5          ``"none"`` (refuses   20
    ``gpt-3.5-turbo-instruct``                       echo with logprobs)
    vLLM                          up to the server's ``"echo"`` or         20 or more
                                  ``--max-logprobs`` ``"prompt_logprobs"``
                                  (default 20)
    llama-cpp-python server       any                ``"none"`` (echo      ``max_batch_size=1``
                                                     logprobs come back    (rejects a list
                                                     shifted by one)       of prompts)
    ============================  =================  ====================  ==============

    With ``fallback="none"`` a missing label gets :func:`~bdpl.backends._toplogprobs.topk_bound`
    (an upper bound) and its answer has ``exact=False``; a query with a non-punctuation ``after``
    is refused with :class:`~bdpl.errors.UnsupportedQueryError`.

    The API key (``api_key`` or ``OPENAI_API_KEY``) is handed to the SDK client only: it is not
    kept on the backend, not in :attr:`identity`, and removed from every error message. The
    SDK's retries are off (``max_retries=0``): the metering layer retries. The backend holds no
    mutable state (its settings are read-only) and the SDK client is thread-safe, so up to
    ``max_concurrency`` calls may run at once.

    Use it in a ``with`` block, or call :meth:`close`, to close the connection pool of a client
    it built; an injected ``client`` belongs to the caller and stays open.

    ``OpenAIBackend`` is another name for this class.

    Args:
        model: the model name as the endpoint knows it (also used to look up prices).
        client: a ready ``openai.OpenAI`` client (e.g. with a custom HTTP transport); a copy
            with retries off and ``timeout`` is used. Exclusive with ``api_key``/``base_url``.
        api_key: the API key; defaults to ``OPENAI_API_KEY``. Not needed with a ``base_url``
            whose server takes none.
        base_url: an OpenAI-compatible endpoint, e.g. ``"http://127.0.0.1:8000/v1"``.
        top_logprobs: how many next-token log-probs to ask for.
        fallback: how labels outside the top-k are scored (table above).
        max_batch_size: most prompts per request.
        timeout: seconds per HTTP request.
        max_concurrency: how many ``score`` calls the metering layer may run at once.
        max_reply_bytes: the largest reply read, 8 MiB by default; a larger one raises
            :class:`~bdpl.errors.ReplyTooLargeError`. It applies to the client built here; an
            injected ``client`` is capped only if its HTTP client has the hook
            (``http_client=openai.DefaultHttpxClient(event_hooks={"response":
            [limit_reply_size(n)]})``, from :mod:`bdpl.backends._openai_client`).

    Raises:
        ConfigError: bad settings (also more than 5 top logprobs from OpenAI itself), or no
            API key for OpenAI.

    >>> with OpenAICompletionBackend("davinci-002", api_key="sk-test") as backend:
    ...     backend.identity
    'openai-completions:api.openai.com/v1:davinci-002:top5:echo'
    """

    def __init__(
        self,
        model: str,
        *,
        client: openai.OpenAI | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        top_logprobs: int = 5,
        fallback: Fallback = "echo",
        max_batch_size: int = 20,
        timeout: float = 30.0,
        max_concurrency: int = 4,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
    ) -> None:
        if not model:
            raise ConfigError("model must be a non-empty model name")
        if fallback not in _FALLBACKS:
            raise ConfigError(f"fallback must be one of {_FALLBACKS}, got {fallback!r}")
        top_logprobs = positive_int("top_logprobs", top_logprobs)
        max_batch_size = positive_int("max_batch_size", max_batch_size)
        max_concurrency = positive_int("max_concurrency", max_concurrency)
        super().__init__(
            model,
            client,
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_reply_bytes=max_reply_bytes,
        )
        self._top_logprobs = top_logprobs
        self._max_concurrency = max_concurrency
        if self._client.base_url.host == OPENAI_HOST and top_logprobs > 5:
            self.close()
            raise ConfigError(
                f"OpenAI's completions return at most 5 top logprobs, not {top_logprobs}"
            )
        self._fallback: Fallback = fallback
        self._max_batch_size = max_batch_size

    @property
    def top_logprobs(self) -> int:
        """How many next-token log-probs each request asks for."""
        return self._top_logprobs

    @property
    def fallback(self) -> Fallback:
        """How labels outside the top-k are scored (see the class docstring)."""
        return self._fallback

    @property
    def identity(self) -> str:
        """``openai-completions:<endpoint>:<model>:top<k>:<fallback>`` (never the key).

        ``<endpoint>`` is the base URL's host, port and path (see
        :func:`~bdpl.backends._openai_client.endpoint_id`).
        """
        return (
            f"openai-completions:{self._endpoint}:{self.model}"
            f":top{self.top_logprobs}:{self.fallback}"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.identity!r})"

    def score(self, queries: Sequence[Query]) -> list[LabelScores]:
        """Label log-probs for each query (see the class docstring).

        Raises:
            UnsupportedQueryError: an empty ``before`` or label, or a non-punctuation ``after``
                with ``fallback="none"``.
            BackendError: the request failed (typed, see :mod:`bdpl.backends._openai_errors`),
                or the answer lacks logprobs (:class:`~bdpl.errors.MalformedResponseError`).
                When an earlier request of the call was answered (and so billed), the error's
                ``usage`` holds what those requests reported.
        """
        self._check_open()
        queries = list(queries)
        for q in queries:
            _check_query(q)
        values: list[list[float | None]] = [[None] * len(q.labels) for q in queries]
        exact = [True] * len(queries)
        usage = [Usage() for _ in queries]
        next_token = [i for i, q in enumerate(queries) if is_trailing_punctuation(q.after)]
        continuation = [i for i, q in enumerate(queries) if not is_trailing_punctuation(q.after)]
        if continuation and self.fallback == "none":
            raise UnsupportedQueryError(
                f"{self.identity}: a query continues after the label"
                f" ({queries[continuation[0]].after!r}); scoring the continuation needs"
                " fallback='echo' or 'prompt_logprobs'"
            )

        billing = Billing()
        with self._calling(billing):  # the error carries what was billed, and no key
            pending: list[tuple[int, int]] = []  # (query, label) pairs to score exactly
            for chunk in _chunks(next_token, self.max_batch_size):
                tops, used = self._next_token_tops([queries[i].before for i in chunk], billing)
                for i, top, share in zip(chunk, tops, split_usage(used, len(chunk)), strict=True):
                    usage[i] += share
                    for j, value in enumerate(match_labels(queries[i].labels, top)):
                        if value is not None:
                            values[i][j] = value
                        elif self.fallback == "none":
                            values[i][j] = topk_bound(queries[i].labels[j], top)
                            exact[i] = False
                        else:
                            pending.append((i, j))
            pending += [(i, j) for i in continuation for j in range(len(queries[i].labels))]

            for pairs in _chunks(pending, self.max_batch_size):
                starts = [len(queries[i].before) for i, _ in pairs]
                prompts = [_full_text(queries[i], j) for i, j in pairs]
                spans, used = self._label_spans(prompts, starts, billing)
                shares = split_usage(used, len(pairs))
                for (i, j), (value, clean), share in zip(pairs, spans, shares, strict=True):
                    values[i][j] = value
                    exact[i] = exact[i] and clean
                    usage[i] += share

        scores = [
            LabelScores(tuple(_known(v) for v in values[i]), usage[i], exact[i])
            for i in range(len(queries))
        ]
        return self._settle(billing, scores)

    def check_labels(self, labels: Sequence[str]) -> None:
        """With ``fallback="none"``, refuse labels that start with the same token.

        Such labels are scored from the top-k of one token only (a bound for the longer one),
        so they would get the same score for every query. With an exact fallback every label
        is scored exactly and nothing is refused. The first token is found as for the chat
        backend (:func:`~bdpl.backends._toplogprobs.first_token`), leading space included.

        Raises:
            UnsupportedQueryError: two labels collide (named, with what to change).
        """
        if self.fallback != "none":
            return
        clash = same_first_token(labels, self.model)
        if clash is not None:
            a, b, token = clash
            raise UnsupportedQueryError(
                f"{self.identity}: labels {a!r} and {b!r} both start with the token {token!r}; "
                "with fallback='none' only the next token's top-k is read, so they would get "
                "the same score for every query and a fit could not tell them apart. Use "
                "label words that differ in their first token, or fallback='echo' or "
                "'prompt_logprobs' where the server supports it"
            )

    def estimate(self, queries: Sequence[Query]) -> Usage:
        """An upper bound on the usage of :meth:`score` (every label needing the fallback).

        Prompt tokens come from an upper-bound count (see
        :func:`~bdpl.backends._toplogprobs.token_counter`); each prompt is billed at most one
        completion token (vLLM bills one even for ``max_tokens=0``).
        """
        count = self._count_tokens
        next_token = [q for q in queries if is_trailing_punctuation(q.after)]
        prompt = sum(count(q.before) for q in next_token)
        completion = len(next_token)
        requests = math.ceil(len(next_token) / self.max_batch_size)
        if self.fallback != "none":
            texts = [_full_text(q, j) for q in queries for j in range(len(q.labels))]
            prompt += sum(count(t) for t in texts)
            completion += len(texts)
            requests += math.ceil(len(texts) / self.max_batch_size)
        return Usage(prompt, completion, requests)

    # -- requests -------------------------------------------------------------------------------

    def _create(self, prompts: list[str], **params: Any) -> Callable[[], Any]:
        """The SDK call for ``prompts`` (one plain string when alone: some servers take no list)."""
        prompt: str | list[str] = prompts[0] if len(prompts) == 1 else prompts

        def call() -> Any:
            return self._client.completions.with_raw_response.create(
                model=self.model, prompt=prompt, temperature=0, **params
            )

        return call

    def _next_token_tops(
        self, prompts: list[str], billing: Billing
    ) -> tuple[list[dict[str, float]], Usage]:
        """The top-k next-token log-probs after each prompt, and the request's usage."""
        what = f"{self.identity} completions"
        data = post_json(
            self._client,
            what,
            self._create(prompts, max_tokens=1, logprobs=self.top_logprobs),
            billing,
        )
        tops = [_first_top(choice, what) for choice in read_choices(data, len(prompts), what)]
        return tops, read_usage(data)

    def _label_spans(
        self, prompts: list[str], starts: list[int], billing: Billing
    ) -> tuple[list[tuple[float, bool]], Usage]:
        """Exact ``log p(prompt[start:] | prompt[:start])`` for each prompt, via the fallback."""
        what = f"{self.identity} {self.fallback} fallback"
        if self.fallback == "echo":
            # max_tokens=0: only the prompt is scored (OpenAI and vLLM both accept it).
            call = self._create(prompts, max_tokens=0, echo=True, logprobs=1)
            read = _echo_tokens
        else:
            call = self._create(prompts, max_tokens=1, extra_body={"prompt_logprobs": 0})
            read = _prompt_logprob_tokens
        try:
            data = post_json(self._client, what, call, billing)
        except BadRequestError as exc:
            # e.g. gpt-3.5-turbo-instruct: "echo is not supported with logprobs".
            raise BadRequestError(
                f"{exc} (the exact fallback was refused: if this model or server cannot do "
                f"fallback={self.fallback!r}, use fallback='none' for bounds instead)"
            ) from exc
        spans: list[tuple[float, bool]] = []
        choices = read_choices(data, len(prompts), what)
        for choice, prompt, start in zip(choices, prompts, starts, strict=True):
            offsets, logprobs = read(choice, prompt, what)
            try:
                spans.append(span_logprob(offsets, logprobs, start, len(prompt)))
            except ValueError as exc:
                raise MalformedResponseError(f"{what}: {exc}") from exc
        return spans, read_usage(data)


# -- reading answers -------------------------------------------------------------------------------


def _first_top(choice: dict[str, Any], what: str) -> dict[str, float]:
    """The first generated token's top log-probs, in the legacy or the chat-style layout."""
    logprobs = choice.get("logprobs")
    if not isinstance(logprobs, dict):
        raise no_logprobs(what)
    top = logprobs.get("top_logprobs")
    if isinstance(top, list) and top:
        return top_from_mapping(top[0], what)
    chat = chat_first_top(logprobs, what)  # llama.cpp's server answers in the chat layout
    if chat is None:
        raise no_logprobs(what)
    return chat


def _echo_tokens(
    choice: dict[str, Any], prompt: str, what: str
) -> tuple[list[int], list[float | None]]:
    """Offsets and log-probs of the prompt's tokens from an ``echo`` answer."""
    logprobs = choice.get("logprobs")
    if not isinstance(logprobs, dict):
        raise no_logprobs(what)
    offsets = logprobs.get("text_offset")
    values = logprobs.get("token_logprobs")
    if not isinstance(offsets, list) or not isinstance(values, list) or len(offsets) != len(values):
        raise no_logprobs(what)
    keep = [k for k, off in enumerate(offsets) if isinstance(off, int) and off < len(prompt)]
    return [offsets[k] for k in keep], [_optional_float(values[k], what) for k in keep]


def _prompt_logprob_tokens(
    choice: dict[str, Any], prompt: str, what: str
) -> tuple[list[int], list[float | None]]:
    """Offsets and log-probs of the prompt's tokens from vLLM's ``prompt_logprobs``."""
    entries = choice.get("prompt_logprobs")
    if not isinstance(entries, list) or not entries:
        raise no_logprobs(what)
    tokens: list[str] = []
    values: list[float | None] = []
    for entry in entries:
        if entry is None:  # the first prompt token has no context
            tokens.append("")
            values.append(None)
            continue
        if not isinstance(entry, dict) or not entry:
            raise MalformedResponseError(f"{what}: bad prompt_logprobs entry {entry!r}")
        # With prompt_logprobs=0 each position holds only the prompt's own token.
        info = next(iter(entry.values()))
        if not isinstance(info, dict) or not isinstance(info.get("decoded_token"), str):
            raise MalformedResponseError(f"{what}: bad prompt_logprobs entry {entry!r}")
        tokens.append(info["decoded_token"])
        values.append(_optional_float(info.get("logprob"), what))
    return offsets_from_end(tokens, len(prompt)), values


def _optional_float(value: Any, what: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise MalformedResponseError(f"{what}: a log-prob is {value!r}, not a number")
    return float(value)


# -- small helpers -------------------------------------------------------------------------------


def _check_query(q: Query) -> None:
    if not q.before:
        raise UnsupportedQueryError("a completion backend needs text before the label slot")
    if not q.labels or any(not label for label in q.labels):
        raise UnsupportedQueryError(f"a query has an empty label list or label: {q.labels!r}")


def _full_text(q: Query, j: int) -> str:
    """The prompt whose tail the fallback scores: the label, and ``after`` when it matters."""
    tail = "" if is_trailing_punctuation(q.after) else q.after
    return q.before + q.labels[j] + tail


def _chunks(items: list[T], size: int) -> list[list[T]]:
    return [items[k : k + size] for k in range(0, len(items), size)]


def _known(value: float | None) -> float:
    if value is None:  # every label is scored above; this guards the invariant
        raise AssertionError("a label was left unscored")
    return value


OpenAIBackend = OpenAICompletionBackend
"""The former name of :class:`OpenAICompletionBackend`, kept for existing code."""
