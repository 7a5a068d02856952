"""OpenAIChatBackend against a mocked HTTP transport."""

from __future__ import annotations

from typing import Any

import pytest

from bdpl.backends.openai_chat import OpenAIChatBackend
from bdpl.errors import (
    BadRequestError,
    ConfigError,
    MalformedResponseError,
    ServerError,
    UnsupportedQueryError,
)
from bdpl.types import Query, Usage
from tests.backends.openai_fakes import CANARY_KEY, FakeLM, Recorder, httpx, mock_client

LM = FakeLM()


def chat(rec: Recorder, **kwargs: Any) -> OpenAIChatBackend:
    return OpenAIChatBackend("fake-chat", client=mock_client(rec), **kwargs)


def reply_top(messages: list[dict[str, str]], k: int) -> dict[str, float]:
    context = "\n".join(f"<{m['role']}>{m['content']}" for m in messages) + "<reply>"
    return {t.lstrip(" "): v for t, v in LM.top(context, k).items()}


def test_one_request_per_query_with_the_chat_scoring_settings() -> None:
    rec = Recorder()
    qs = [Query("Was it good?", "", (" good", " bad")), Query("And this?", ".", (" good", " bad"))]
    got = chat(rec, top_logprobs=7).score(qs)
    assert len(rec.requests) == 2
    for q, req, body in zip(qs, rec.requests, rec.bodies, strict=True):
        assert req.url.path == "/v1/chat/completions"
        assert body["messages"] == [{"role": "user", "content": q.before}]
        assert (body["logprobs"], body["top_logprobs"], body["max_tokens"]) == (True, 7, 1)
        assert body["temperature"] == 0
    assert [s.usage.requests for s in got] == [1, 1]
    assert all(s.usage.completion_tokens == 1 and s.usage.prompt_tokens > 0 for s in got)


def test_labels_are_matched_as_the_first_token_of_a_reply() -> None:
    rec = Recorder()
    system = "Answer with one word."
    before = "Review: a fine film. Verdict?"
    messages = [{"role": "system", "content": system}, {"role": "user", "content": before}]
    top, top5 = reply_top(messages, 18), reply_top(messages, 5)
    inside = next(t for t in top5 if t.isalpha() and t.islower())
    outside = next(t for t in top if t.isalpha() and t.islower() and t not in top5)
    [scores] = chat(rec, top_logprobs=5, system=system).score(
        [Query(before, "", (" " + inside, " " + outside))]
    )
    assert rec.bodies[0]["messages"] == messages
    assert scores.logprobs[0] == pytest.approx(top[inside])
    assert not scores.exact
    assert top[outside] <= scores.logprobs[1] <= min(top5.values()) + 1e-12


def test_every_label_in_the_top_k_is_exact_and_case_matters() -> None:
    rec = Recorder()
    before = "Verdict?"
    top = reply_top([{"role": "user", "content": before}], 20)
    words = [t for t in top if t.isalpha() and t.islower()][:2]
    [scores] = chat(rec).score([Query(before, "", tuple(" " + w for w in words))])
    assert scores.exact
    assert scores.logprobs == pytest.approx([top[w] for w in words])
    [upper] = chat(rec).score([Query(before, "", tuple(" " + w.upper() for w in words))])
    assert not upper.exact  # "GOOD" is not the model's "good"


def test_the_very_unlikely_placeholder_is_not_a_logprob() -> None:
    def floor(body: dict[str, Any], request: Any) -> Any:
        data = FakeLM().chat(body)
        entries = data["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        entries.append({"token": "zebra", "logprob": -9999.0, "bytes": None})
        return httpx.Response(200, json=data)

    [scores] = chat(Recorder(respond=floor), top_logprobs=3).score(
        [Query("Verdict?", "", (" zebra", " good"))]
    )
    assert not scores.exact
    assert -9999.0 < scores.logprobs[0] < 0


def test_a_reply_without_logprobs_is_a_clear_error() -> None:
    def bare(body: dict[str, Any], request: Any) -> Any:
        data = FakeLM().chat(body)
        data["choices"][0]["logprobs"] = None
        return httpx.Response(200, json=data)

    with pytest.raises(MalformedResponseError, match="no logprobs") as info:
        chat(Recorder(respond=bare)).score([Query("Verdict?", "", (" good", " bad"))])
    assert not info.value.retryable


def test_chat_refuses_what_it_cannot_score_and_bad_settings() -> None:
    with pytest.raises(UnsupportedQueryError, match="no echo"):
        chat(Recorder()).score([Query("Verdict?", " because it was long", (" good", " bad"))])
    with pytest.raises(ConfigError):
        chat(Recorder(), top_logprobs=21)
    with pytest.raises(ConfigError):
        chat(Recorder(), top_logprobs=0)


def test_identity_estimate_and_key_handling() -> None:
    b = OpenAIChatBackend("gpt-4o-mini", api_key=CANARY_KEY, top_logprobs=20)
    assert b.identity == "openai-chat:api.openai.com/v1:gpt-4o-mini:top20"
    local = OpenAIChatBackend("m", base_url="http://127.0.0.1:8001/v1/")
    assert local.identity == "openai-chat:127.0.0.1:8001/v1:m:top20"
    assert OpenAIChatBackend("m", base_url="http://127.0.0.1:8000/v1").identity != local.identity
    with_system = OpenAIChatBackend("gpt-4o-mini", api_key=CANARY_KEY, system="One word.")
    assert with_system.identity.startswith(b.identity + ":system-")
    assert CANARY_KEY not in b.identity + repr(b)
    assert (b.capabilities.max_batch_size, b.capabilities.is_local, b.model) == (
        1,
        False,
        "gpt-4o-mini",
    )
    rec = Recorder()
    backend = chat(rec, system="Answer in one word.")
    qs = [Query("Was the film any good, in one word?", "", (" good", " bad"))] * 3
    used = sum((s.usage for s in backend.score(qs)), Usage())
    bound = backend.estimate(qs)
    assert used.requests == bound.requests == 3
    assert used.prompt_tokens <= bound.prompt_tokens
    assert used.completion_tokens <= bound.completion_tokens


def test_a_call_failing_on_a_later_query_carries_the_usage_already_billed() -> None:
    def second_fails(body: dict[str, Any], request: Any) -> Any:
        if body["messages"][-1]["content"] == "Second?":
            return httpx.Response(500, json={"error": {"message": "boom"}})
        return None

    rec = Recorder(respond=second_fails)
    qs = [Query(text, "", (" good", " bad")) for text in ("First?", "Second?", "Third?")]
    with pytest.raises(ServerError) as info:
        chat(rec).score(qs)
    assert len(rec.requests) == 2
    first = FakeLM().chat(rec.bodies[0])["usage"]
    assert info.value.usage == Usage(first["prompt_tokens"], first["completion_tokens"], 1)
    with pytest.raises(ServerError) as alone:
        chat(Recorder(respond=second_fails)).score(qs[1:])
    assert alone.value.usage is None  # nothing was answered, so nothing was billed


def test_newer_models_get_max_completion_tokens_instead_of_max_tokens() -> None:
    def old_param_refused(body: dict[str, Any], request: Any) -> Any:
        if "max_tokens" in body:  # what newer OpenAI chat models answer
            message = "Unsupported parameter: 'max_tokens'. Use 'max_completion_tokens' instead."
            return httpx.Response(400, json={"error": {"message": message}})
        return None

    q = Query("Was it good?", "", (" good", " bad"))
    rec = Recorder(respond=old_param_refused)
    backend = chat(rec, max_tokens_param="max_completion_tokens")
    [got] = backend.score([q])
    assert rec.bodies[0]["max_completion_tokens"] == 1 and "max_tokens" not in rec.bodies[0]
    [default] = chat(Recorder()).score([q])
    assert got.logprobs == pytest.approx(default.logprobs)
    assert backend.identity == chat(Recorder()).identity  # the answers do not depend on it
    with pytest.raises(BadRequestError, match="max_completion_tokens"):
        chat(Recorder(respond=old_param_refused)).score([q])
    with pytest.raises(ConfigError):
        chat(Recorder(), max_tokens_param="max_output_tokens")
