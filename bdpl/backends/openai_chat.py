"""Chat completion APIs with ``logprobs`` / ``top_logprobs`` (current OpenAI chat models, vLLM)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from bdpl._validate import positive_int
from bdpl.backends._openai_client import (
    DEFAULT_MAX_REPLY_BYTES,
    Billing,
    ClientBackend,
    chat_first_top,
    no_logprobs,
    post_json,
    read_choices,
    read_usage,
)
from bdpl.backends._toplogprobs import (
    is_trailing_punctuation,
    match_labels,
    reply_form,
    same_first_token,
    topk_bound,
)
from bdpl.errors import ConfigError, UnsupportedQueryError
from bdpl.types import LabelScores, Query, Usage

if TYPE_CHECKING:
    import openai

MAX_TOP_LOGPROBS = 20
MaxTokensParam = Literal["max_tokens", "max_completion_tokens"]
_MAX_TOKENS_PARAMS: tuple[str, ...] = ("max_tokens", "max_completion_tokens")
# Tokens a chat template adds around each message (role markers, separators, a default system
# prompt some templates insert): an upper estimate, used only for budget estimates.
_TEMPLATE_TOKENS = 40


class OpenAIChatBackend(ClientBackend):
    """Label log-probs from the first token of a chat completion's reply.

    Each query is one conversation: an optional system message, then ``query.before`` as the
    user message; the reply's first token is read with ``logprobs=True``, ``top_logprobs``
    (at most 20) and a one-token cap (``max_tokens=1``, or ``max_completion_tokens=1``, see
    ``max_tokens_param``). Chat endpoints take one conversation per request, so each query is
    one request (``max_batch_size`` is 1 and the metering layer runs up to
    ``max_concurrency`` of them at once).

    The reply starts a new message, so a label is matched without its leading space
    (``" great"`` is looked for as ``"great"``), case kept exactly. Chat endpoints offer no
    ``echo``: a label outside the top-k gets an upper bound
    (:func:`~bdpl.backends._toplogprobs.topk_bound`) and ``exact=False``, and a query whose
    ``after`` is more than trailing punctuation is refused. Choose label words the model is
    likely to answer with (and a ``system`` message that asks for one word) so that they land in
    the top-k.

    Key handling, retries, errors, read-only settings and :meth:`close` are as for
    :class:`~bdpl.backends.openai_completion.OpenAICompletionBackend`.

    Args:
        model: the chat model's name (also used to look up prices).
        client: a ready ``openai.OpenAI`` client; exclusive with ``api_key``/``base_url``.
        api_key: the API key; defaults to ``OPENAI_API_KEY``.
        base_url: an OpenAI-compatible endpoint (vLLM serves chat too).
        top_logprobs: reply-token log-probs to ask for, 1 to 20.
        system: an optional system message put before every query.
        max_tokens_param: the request field that caps the reply at one token. ``"max_tokens"``
            (the default) is what vLLM and older OpenAI chat models take; newer OpenAI models
            reject it and need ``"max_completion_tokens"`` (which vLLM accepts too). Either
            way the reply is one token and the answers are the same, so it is not part of
            :attr:`identity`.
        timeout: seconds per HTTP request.
        max_concurrency: how many requests the metering layer may run at once.
        max_reply_bytes: the largest reply read (as for
            :class:`~bdpl.backends.openai_completion.OpenAIBackend`).

    Raises:
        ConfigError: bad settings, or no API key for OpenAI.

    >>> OpenAIChatBackend("gpt-4o-mini", api_key="sk-test", top_logprobs=20).identity
    'openai-chat:api.openai.com/v1:gpt-4o-mini:top20'
    """

    def __init__(
        self,
        model: str,
        *,
        client: openai.OpenAI | None = None,
        api_key: str | None = None,
        base_url: str | None = None,
        top_logprobs: int = MAX_TOP_LOGPROBS,
        system: str | None = None,
        max_tokens_param: MaxTokensParam = "max_tokens",
        timeout: float = 30.0,
        max_concurrency: int = 4,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
    ) -> None:
        if not model:
            raise ConfigError("model must be a non-empty model name")
        top_logprobs = positive_int("top_logprobs", top_logprobs)
        if top_logprobs > MAX_TOP_LOGPROBS:
            raise ConfigError(
                f"top_logprobs must be 1..{MAX_TOP_LOGPROBS} for chat, got {top_logprobs!r}"
            )
        max_concurrency = positive_int("max_concurrency", max_concurrency)
        if max_tokens_param not in _MAX_TOKENS_PARAMS:
            raise ConfigError(
                f"max_tokens_param must be one of {_MAX_TOKENS_PARAMS}, got {max_tokens_param!r}"
            )
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
        self._system = system
        self._max_tokens_param: MaxTokensParam = max_tokens_param

    @property
    def top_logprobs(self) -> int:
        """Reply-token log-probs each request asks for."""
        return self._top_logprobs

    @property
    def system(self) -> str | None:
        """The system message put before every query, if any."""
        return self._system

    @property
    def max_tokens_param(self) -> MaxTokensParam:
        """The request field that caps the reply at one token."""
        return self._max_tokens_param

    @property
    def identity(self) -> str:
        """``openai-chat:<endpoint>:<model>:top<k>`` plus a digest of the system message if any.

        ``<endpoint>`` is the base URL's host, port and path (see
        :func:`~bdpl.backends._openai_client.endpoint_id`).
        """
        base = f"openai-chat:{self._endpoint}:{self.model}:top{self.top_logprobs}"
        if self.system is None:
            return base
        import hashlib

        return base + ":system-" + hashlib.sha256(self.system.encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.identity!r})"

    def score(self, queries: Sequence[Query]) -> list[LabelScores]:
        """Label log-probs for each query, one request each (see the class docstring).

        Raises:
            UnsupportedQueryError: an empty label, or an ``after`` that is more than trailing
                punctuation.
            BackendError: the request failed, or the answer lacks logprobs. When an earlier
                query's request was answered (and so billed), the error's ``usage`` holds what
                those requests reported.
        """
        self._check_open()
        queries = list(queries)
        for q in queries:
            if not q.labels or any(not label.strip() for label in q.labels):
                raise UnsupportedQueryError(
                    f"a query has an empty label list or label: {q.labels!r}"
                )
            if not is_trailing_punctuation(q.after):
                raise UnsupportedQueryError(
                    f"{self.identity}: chat replies cannot score a label followed by {q.after!r}"
                    " (no echo on chat endpoints); use OpenAICompletionBackend with a fallback"
                )
        billing = Billing()
        with self._calling(billing):  # the error carries what was billed, and no key
            scores = [self._score_one(q, billing) for q in queries]
        return self._settle(billing, scores)

    def check_labels(self, labels: Sequence[str]) -> None:
        """Refuse labels whose replies start with the same token (checked before paying).

        Only the reply's first token is read, so two labels that start with the same token
        (``" very bad"`` and ``" very good"``; or ``" great"`` and ``"great"``, the same reply)
        would get the same score for every query. The first token is found by
        :func:`~bdpl.backends._toplogprobs.first_token` (tiktoken when its encoding of the model
        is on disk, else the label's first word).

        Raises:
            UnsupportedQueryError: two labels collide (named, with what to change).
        """
        clash = same_first_token(labels, self.model, reply_form)
        if clash is not None:
            a, b, token = clash
            raise UnsupportedQueryError(
                f"{self.identity}: labels {a!r} and {b!r} both start with the token {token!r}; "
                "a chat backend reads only the reply's first token, so it would give them the "
                "same score for every query and a fit could not tell them apart. Use label "
                "words that differ in their first token (e.g. single words), or "
                "OpenAIBackend with an exact fallback"
            )

    def estimate(self, queries: Sequence[Query]) -> Usage:
        """An upper bound on the usage of :meth:`score`: one request per query."""
        system = self._count_tokens(self.system) + _TEMPLATE_TOKENS if self.system else 0
        prompt = sum(self._count_tokens(q.before) + _TEMPLATE_TOKENS + system for q in queries)
        return Usage(prompt, len(queries), len(queries))

    def _score_one(self, q: Query, billing: Billing) -> LabelScores:
        what = f"{self.identity} chat"
        messages: list[dict[str, str]] = []
        if self.system is not None:
            messages.append({"role": "system", "content": self.system})
        messages.append({"role": "user", "content": q.before})

        import openai

        # One of the two caps is sent, the other left out (see ``max_tokens_param``).
        old_cap = self.max_tokens_param == "max_tokens"

        def call() -> Any:
            return self._client.chat.completions.with_raw_response.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]
                max_tokens=1 if old_cap else openai.omit,
                max_completion_tokens=openai.omit if old_cap else 1,
                temperature=0,
                logprobs=True,
                top_logprobs=self.top_logprobs,
            )

        data = post_json(self._client, what, call, billing)
        top = _reply_top(read_choices(data, 1, what)[0], what)
        forms = [reply_form(label) for label in q.labels]
        values: list[float] = []
        exact = True
        for form, value in zip(forms, match_labels(forms, top), strict=True):
            if value is None:
                value = topk_bound(form, top)
                exact = False
            values.append(value)
        return LabelScores(tuple(values), read_usage(data), exact)


def _reply_top(choice: dict[str, Any], what: str) -> dict[str, float]:
    """Top log-probs of the reply's first token."""
    top = chat_first_top(choice.get("logprobs"), what)
    if not top:
        raise no_logprobs(what)
    return top
