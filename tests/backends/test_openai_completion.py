"""OpenAIBackend against a mocked HTTP transport: request shapes, label matching, fallbacks."""

from __future__ import annotations

import math
from typing import Any

import pytest

from bdpl.backends.openai_completion import OpenAIBackend
from bdpl.errors import (
    BackendError,
    BadRequestError,
    ConfigError,
    MalformedResponseError,
    RateLimitError,
    ServerError,
    UnsupportedQueryError,
)
from bdpl.tasks import Example, get_task
from bdpl.types import Query, Usage
from tests.backends.openai_fakes import CANARY_KEY, FakeLM, Recorder, httpx, mock_client, tokenize

LM = FakeLM()


def backend(recorder: Recorder, **kwargs: Any) -> OpenAIBackend:
    return OpenAIBackend("fake-model", client=mock_client(recorder), **kwargs)


def in_and_out(before: str, k: int) -> tuple[str, str]:
    """A word token inside the top-k after ``before`` and one outside it."""
    ranked = list(LM.top(before, 18))
    words = [t for t in ranked if t.strip().isalpha()]
    inside = next(t for t in words if ranked.index(t) < k)
    outside = next(t for t in words if ranked.index(t) >= k)
    return inside, outside


def test_one_request_carries_all_prompts_with_the_scoring_settings() -> None:
    rec = Recorder()
    qs = [Query(f"Text number {i} was", ".", (" great", " terrible")) for i in range(3)]
    backend(rec, top_logprobs=18, fallback="none").score(qs)
    assert len(rec.requests) == 1
    req, body = rec.requests[0], rec.bodies[0]
    assert req.url.path == "/v1/completions"
    assert req.headers["authorization"] == f"Bearer {CANARY_KEY}"
    assert body["prompt"] == [q.before for q in qs]
    assert body["max_tokens"] == 1
    assert body["temperature"] == 0
    assert body["logprobs"] == 18
    assert body["model"] == "fake-model"
    assert "echo" not in body


def test_labels_in_the_top_k_get_the_models_logprobs_from_one_request() -> None:
    rec = Recorder()
    before = "A fine film It was"
    inside, _ = in_and_out(before, 5)
    second = list(LM.top(before, 5))[1]
    q = Query(before, ".", (inside, second))
    [got] = backend(rec, top_logprobs=5).score([q])
    assert got.exact
    assert got.logprobs == pytest.approx((LM.logprob(before, inside), LM.logprob(before, second)))
    assert len(rec.requests) == 1
    assert got.usage == Usage(len(tokenize(before)), 1, 1)


def test_matching_is_exact_about_leading_space_and_case() -> None:
    rec = Recorder()
    before = "A fine film It was"
    inside, _ = in_and_out(before, 5)
    upper, bare = inside.upper(), inside.strip()  # not tokens the model would produce there
    got = backend(rec, top_logprobs=5).score(
        [Query(before, ".", (inside, upper)), Query(before, "!", (inside, bare))]
    )
    # Only the exact form is read from the top-k; the others go to the exact fallback.
    assert len(rec.requests) == 2
    assert rec.bodies[1]["prompt"] == [before + upper, before + bare]
    assert got[0].logprobs == pytest.approx(
        (LM.logprob(before, inside), LM.text_logprob(before, upper))
    )
    assert got[0].exact
    # Without its space the label merges with "was" into one token: no longer exact.
    assert got[1].logprobs[0] == pytest.approx(LM.logprob(before, inside))
    assert not got[1].exact


@pytest.mark.parametrize("fallback", ["echo", "prompt_logprobs"])
def test_a_label_outside_the_top_k_is_scored_exactly_by_one_extra_request(fallback: str) -> None:
    rec = Recorder()
    befores = ["A fine film It was", "Dull and long It was", "Nothing new It was"]
    qs = []
    for b in befores:
        inside, outside = in_and_out(b, 3)
        qs.append(Query(b, ".", (inside, outside)))
    got = backend(rec, top_logprobs=3, fallback=fallback).score(qs)  # type: ignore[arg-type]
    assert len(rec.requests) == 2
    extra = rec.bodies[1]
    assert extra["prompt"] == [q.before + q.labels[1] for q in qs]
    if fallback == "echo":
        assert (extra["echo"], extra["max_tokens"]) == (True, 0)
    else:
        assert extra["prompt_logprobs"] == 0 and "echo" not in extra
    for q, scores in zip(qs, got, strict=True):
        assert scores.exact
        assert scores.logprobs == pytest.approx([LM.logprob(q.before, lab) for lab in q.labels])
    total = sum((s.usage for s in got), Usage())
    assert total.requests == 2
    # The usage shares add up to what the two answers reported.
    assert total.prompt_tokens == sum(len(tokenize(q.before)) for q in qs) + sum(
        len(tokenize(q.before + q.labels[1])) for q in qs
    )


def test_a_multi_token_label_is_the_sum_of_its_tokens() -> None:
    rec = Recorder()
    before = "A fine film It was"
    q = Query(before, ".", (" so-so", " good"))
    [got] = backend(rec, top_logprobs=18).score([q])
    assert got.exact
    assert got.logprobs[0] == pytest.approx(LM.text_logprob(before, " so-so"))
    assert got.logprobs[1] == pytest.approx(LM.logprob(before, " good"))


def test_without_a_fallback_a_missing_label_gets_an_upper_bound_and_exact_false() -> None:
    rec = Recorder()
    qs = []
    for b in ["A fine film It was", "Dull and long It was", "Nothing new It was"]:
        inside, outside = in_and_out(b, 3)
        qs.append(Query(b, ".", (inside, outside, " so-so")))
    got = backend(rec, top_logprobs=3, fallback="none").score(qs)
    assert len(rec.requests) == 1
    for q, scores in zip(qs, got, strict=True):
        assert not scores.exact
        top = LM.top(q.before, 3)
        assert scores.logprobs[0] == pytest.approx(LM.logprob(q.before, q.labels[0]))
        true_outside = LM.logprob(q.before, q.labels[1])
        assert true_outside <= scores.logprobs[1] <= min(top.values()) + 1e-12
        # " so-so" starts with " so": bounded by p(" so") when that is in the top-k, else as above.
        assert LM.text_logprob(q.before, " so-so") <= scores.logprobs[2] <= 0.0


def test_a_continuation_after_the_label_is_scored_as_a_whole() -> None:
    rec = Recorder()
    q = Query("The film", " indeed, and more", (" was", " not"))
    [got] = backend(rec, top_logprobs=5).score([q])
    assert len(rec.requests) == 1  # no next-token request: straight to the exact route
    assert rec.bodies[0]["prompt"] == [q.before + lab + q.after for lab in q.labels]
    for value, label in zip(got.logprobs, q.labels, strict=True):
        assert value == pytest.approx(LM.text_logprob(q.before, label + q.after))
    with pytest.raises(UnsupportedQueryError, match="continues after the label"):
        backend(Recorder(), fallback="none").score([q])


def test_queries_are_split_into_requests_of_max_batch_size() -> None:
    rec = Recorder()
    qs = [Query(f"Review {i} It was", ".", (" great", " bad")) for i in range(7)]
    got = backend(rec, top_logprobs=18, max_batch_size=3).score(qs)
    assert [b["prompt"] for b in rec.bodies] == [
        [q.before for q in qs[0:3]],
        [q.before for q in qs[3:6]],
        qs[6].before,  # a lone prompt goes as a plain string
    ]
    assert sum(s.usage.requests for s in got) == 3


def test_a_lone_prompt_is_sent_as_a_string_for_servers_that_take_no_list() -> None:
    rec = Recorder()
    backend(rec, top_logprobs=18, max_batch_size=1).score(
        [Query("One It was", ".", (" great", " bad")), Query("Two It was", ".", (" great", " bad"))]
    )
    assert [b["prompt"] for b in rec.bodies] == ["One It was", "Two It was"]


def test_choices_are_matched_to_prompts_by_index() -> None:
    def shuffle(body: dict[str, Any], request: Any) -> Any:
        data = FakeLM().completions(body)
        data["choices"].reverse()
        return httpx.Response(200, json=data)

    qs = [Query(f"Item {i} It was", ".", (" great", " bad")) for i in range(4)]
    got = backend(Recorder(respond=shuffle), top_logprobs=18).score(qs)
    for q, s in zip(qs, got, strict=True):
        assert s.logprobs[0] == pytest.approx(LM.logprob(q.before, " great"))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["choices"].pop(), "expected 2 choices"),
        (lambda d: [c.update(logprobs=None) for c in d["choices"]], "no logprobs"),
        (lambda d: d["choices"][0]["logprobs"].update(top_logprobs=[]), "no logprobs"),
        (lambda d: d["choices"][1].update(index=0), "duplicate choice index"),
        (lambda d: d["choices"][0]["logprobs"]["top_logprobs"][0].update(x="high"), "not a number"),
    ],
)
def test_answers_missing_what_scoring_needs_are_malformed(mutate: Any, message: str) -> None:
    def broken(body: dict[str, Any], request: Any) -> Any:
        data = FakeLM().completions(body)
        mutate(data)
        return httpx.Response(200, json=data)

    qs = [Query("A It was", ".", (" great", " bad")), Query("B It was", ".", (" great", " bad"))]
    with pytest.raises(MalformedResponseError, match=message) as info:
        backend(Recorder(respond=broken), top_logprobs=18).score(qs)
    assert info.value.retryable is (message not in ("no logprobs",))


def test_llama_cpp_style_logprobs_are_read_too() -> None:
    def chat_layout(body: dict[str, Any], request: Any) -> Any:
        data = FakeLM().completions(body)
        for c in data["choices"]:
            top = c["logprobs"]["top_logprobs"][0]
            c["logprobs"] = {
                "content": [
                    {
                        "token": next(iter(top)),
                        "logprob": next(iter(top.values())),
                        "top_logprobs": [{"token": t, "logprob": v} for t, v in top.items()],
                    }
                ]
            }
        return httpx.Response(200, json=data)

    q = Query("A fine film It was", ".", (" great", " bad"))
    [got] = backend(Recorder(respond=chat_layout), top_logprobs=18, fallback="none").score([q])
    assert got.logprobs == pytest.approx([LM.logprob(q.before, lab) for lab in q.labels])


def test_estimate_bounds_the_usage_of_a_call() -> None:
    task = get_task("sst2")
    qs = [
        task.render(["wonderful"], Example(text))
        for text in ("a gripping and well acted story", "dull", "I wanted my money back")
    ]
    for fallback in ("echo", "none"):
        rec = Recorder()
        b = backend(rec, top_logprobs=3, fallback=fallback, max_batch_size=2)  # type: ignore[arg-type]
        used = sum((s.usage for s in b.score(qs)), Usage())
        bound = b.estimate(qs)
        assert used.requests <= bound.requests
        assert used.prompt_tokens <= bound.prompt_tokens
        assert used.completion_tokens <= bound.completion_tokens
    assert backend(Recorder(), fallback="none", max_batch_size=2).estimate(qs).requests == 2


def test_identity_names_provider_endpoint_model_and_settings_but_never_the_key() -> None:
    b = OpenAIBackend("davinci-002", api_key=CANARY_KEY, top_logprobs=4, fallback="none")
    assert b.identity == "openai-completions:api.openai.com/v1:davinci-002:top4:none"
    local = OpenAIBackend("smollm2", base_url="http://127.0.0.1:8000/v1", top_logprobs=20)
    assert local.identity == "openai-completions:127.0.0.1:8000/v1:smollm2:top20:echo"
    for obj in (b, local):
        assert CANARY_KEY not in obj.identity + repr(obj) + repr(vars(obj).keys())
        assert not any(v == CANARY_KEY for v in vars(obj).values())
    caps = b.capabilities
    assert (caps.model, caps.is_local, caps.pair_separator, caps.max_batch_size) == (
        "davinci-002",
        False,
        "\n",
        20,
    )


def test_two_servers_on_one_host_never_share_an_identity() -> None:
    def identity(base_url: str) -> str:
        return OpenAIBackend("smollm2", base_url=base_url, top_logprobs=20).identity

    # Another port or path may be another server with another model (llama.cpp ignores the
    # request's model name), so its answers must not come from this one's cache.
    urls = [
        "http://127.0.0.1:8000/v1",
        "http://127.0.0.1:8001/v1",
        "http://127.0.0.1:8000/a/v1",
        "http://127.0.0.1:8000/b/v1",
        "http://127.0.0.1/v1",
        "http://[::1]:8000/v1",
    ]
    assert len({identity(u) for u in urls}) == len(urls)
    assert identity("http://[::1]:8000/v1") == "openai-completions:[::1]:8000/v1:smollm2:top20:echo"
    # The same server, however its URL is written, keeps one identity (and so its cache).
    same = ["http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1/", "https://127.0.0.1:8000/v1"]
    assert len({identity(u) for u in same}) == 1
    # A URL with credentials is refused (HTTP libraries log full URLs): no identity, no leak.
    for url in (
        f"http://user:{CANARY_KEY}@127.0.0.1:8000/v1",
        f"http://{CANARY_KEY}@127.0.0.1:8000/v1",
        f"http://127.0.0.1:8000/v1?key={CANARY_KEY}",
        f"http://127.0.0.1:8000/v1?x=1&api_key={CANARY_KEY}",
        f"http://127.0.0.1:8000/v1?Access-Token={CANARY_KEY}",
    ):
        with pytest.raises(ConfigError, match="api_key=") as info:
            identity(url)
        assert CANARY_KEY not in str(info.value) and "127.0.0.1:8000/v1" in str(info.value)


def test_the_key_comes_from_the_environment_and_sdk_retries_are_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", CANARY_KEY)
    b = OpenAIBackend("davinci-002")
    assert b._client.api_key == CANARY_KEY
    assert b._client.max_retries == 0
    injected = OpenAIBackend("m", client=mock_client(Recorder()))
    assert injected._client.max_retries == 0
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAIBackend("davinci-002")
    OpenAIBackend("smollm2", base_url="http://127.0.0.1:1/v1")  # local servers need no key


@pytest.mark.parametrize(
    "kwargs",
    [
        {"top_logprobs": 6},  # OpenAI's completions cap
        {"top_logprobs": 0},
        {"fallback": "guess"},
        {"max_batch_size": 0},
        {"timeout": 0},
        {"client": object(), "api_key": "x"},
    ],
)
def test_bad_settings_are_config_errors(kwargs: dict[str, Any]) -> None:
    kwargs.setdefault("api_key", CANARY_KEY)
    with pytest.raises(ConfigError):
        OpenAIBackend("davinci-002", **kwargs)


def test_bad_queries_are_refused() -> None:
    b = backend(Recorder())
    with pytest.raises(UnsupportedQueryError):
        b.score([Query("", ".", (" a", " b"))])
    with pytest.raises(UnsupportedQueryError):
        b.score([Query("x", ".", (" a", ""))])
    assert math.isfinite(b.score([Query("x", ".", (" a", " b"))])[0].logprobs[0])


def test_a_refused_fallback_says_which_setting_to_use() -> None:
    def no_echo(body: dict[str, Any], request: Any) -> Any:
        if body.get("echo"):
            message = (
                "Setting 'echo' and 'logprobs' at the same time is not supported for this model."
            )
            return httpx.Response(400, json={"error": {"message": message, "code": None}})
        return None

    q = Query("A fine film It was", ".", (" great", " unheard-of"))
    with pytest.raises(BadRequestError, match="use fallback='none'"):
        backend(Recorder(respond=no_echo), top_logprobs=5).score([q])
    [bounded] = backend(Recorder(respond=no_echo), top_logprobs=5, fallback="none").score([q])
    assert not bounded.exact


def fail_the_fallback(status: int, message: str) -> Recorder:
    """A transport that answers the next-token request and fails the fallback with ``status``."""

    def respond(body: dict[str, Any], request: Any) -> Any:
        if body.get("echo") or "prompt_logprobs" in body:
            return httpx.Response(status, json={"error": {"message": message, "code": None}})
        return None

    return Recorder(respond=respond)


REFUSALS = [
    (500, "The server had an error while processing your request.", ServerError),
    (400, "Setting 'echo' and 'logprobs' at the same time is not supported.", BadRequestError),
]


@pytest.mark.parametrize(("status", "message", "error"), REFUSALS)
@pytest.mark.parametrize("fallback", ["echo", "prompt_logprobs"])
def test_a_failed_fallback_request_carries_the_usage_already_billed(
    status: int, message: str, error: type[BackendError], fallback: str
) -> None:
    rec = fail_the_fallback(status, message)
    befores = ["A fine film It was", "Dull and long It was"]
    qs = [Query(b, ".", in_and_out(b, 3)) for b in befores]
    with pytest.raises(error) as info:
        backend(rec, top_logprobs=3, fallback=fallback).score(qs)
    assert len(rec.requests) == 2  # the next-token request was answered, the fallback failed
    first = FakeLM().completions(rec.bodies[0])["usage"]
    assert first["prompt_tokens"] == sum(len(tokenize(b)) for b in befores)
    assert info.value.usage == Usage(first["prompt_tokens"], first["completion_tokens"], 1)


def test_every_answered_request_of_a_failed_call_is_charged() -> None:
    calls: list[int] = []

    def third_fails(body: dict[str, Any], request: Any) -> Any:
        calls.append(1)
        if len(calls) == 3:
            return httpx.Response(503, json={"error": {"message": "overloaded"}})
        return None

    rec = Recorder(respond=third_fails)
    qs = [Query(f"Item {i} It was", ".", (" great", " unheard-of")) for i in range(4)]
    with pytest.raises(ServerError) as info:
        backend(rec, top_logprobs=3, max_batch_size=2).score(qs)
    answered = [FakeLM().completions(body)["usage"] for body in rec.bodies[:2]]
    assert info.value.usage == Usage(
        sum(u["prompt_tokens"] for u in answered), sum(u["completion_tokens"] for u in answered), 2
    )


def test_an_answer_that_cannot_be_used_was_still_billed_but_a_refusal_was_not() -> None:
    def bare(body: dict[str, Any], request: Any) -> Any:
        data = FakeLM().completions(body)
        for choice in data["choices"]:
            choice["logprobs"] = None
        return httpx.Response(200, json=data)

    q = Query("A fine film It was", ".", (" great", " bad"))
    with pytest.raises(MalformedResponseError) as info:
        backend(Recorder(respond=bare), top_logprobs=5).score([q])
    assert info.value.usage == Usage(len(tokenize(q.before)), 1, 1)

    def refuse(body: dict[str, Any], request: Any) -> Any:
        return httpx.Response(429, json={"error": {"message": "slow down"}})

    with pytest.raises(RateLimitError) as refused:
        backend(Recorder(respond=refuse), top_logprobs=5).score([q])
    assert refused.value.usage is None
