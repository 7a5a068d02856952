"""The OpenAI backends behind the metering layer, against the fault-injecting server.

Each fault is retried or raised as the right typed error; nothing wrong is cached; the ledger
agrees with what the server billed; the budget is never overshot.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bdpl.backends.openai_chat import OpenAIChatBackend
from bdpl.backends.openai_completion import OpenAIBackend
from bdpl.errors import (
    BudgetExceededError,
    MalformedResponseError,
    QuotaExceededError,
    UnknownPriceError,
)
from bdpl.metering import Budget, Ledger, Meter, Price, QueryCache, RetryPolicy
from bdpl.types import Query, Usage
from tests.backends.openai_fakes import CANARY_KEY, FakeLM, Fault, FaultServer, Waits

LM = FakeLM()
PRICE = Price(input_per_1m=2.0, output_per_1m=2.0)  # davinci-002's, so dollars are exercised


def queries(n: int, tag: str = "Review") -> list[Query]:
    return [Query(f"{tag} {i}: fine. It was", ".", (" great", " terrible")) for i in range(n)]


expected = LM.label_logprobs


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as s:
        yield s


def metered(
    server: FaultServer, tmp_path: Path, *, waits: Waits | None = None, **options: Any
) -> tuple[Meter, OpenAIBackend]:
    backend = OpenAIBackend(
        "davinci-002",
        api_key=CANARY_KEY,
        base_url=server.base_url,
        top_logprobs=18,
        timeout=1.0,
        max_batch_size=options.pop("max_batch_size", 20),
        max_concurrency=options.pop("max_concurrency", 4),
        fallback=options.pop("fallback", "echo"),
    )
    retry = RetryPolicy(max_attempts=8, initial_wait=0.0, jitter=0.0, sleep=waits or Waits())
    meter = Meter(
        backend,
        cache=QueryCache(tmp_path / "cache"),
        ledger=tmp_path / "ledger.jsonl",
        retry=retry,
        price=PRICE,
        **options,
    )
    return meter, backend


def billed_total(server: FaultServer) -> tuple[int, int]:
    return (
        sum(u["prompt_tokens"] for u in server.billed),
        sum(u["completion_tokens"] for u in server.billed),
    )


def test_retryable_faults_are_retried_until_an_answer_and_it_is_cached(
    server: FaultServer, tmp_path: Path
) -> None:
    waits = Waits()
    meter, backend = metered(server, tmp_path, waits=waits)
    server.script.extend(
        [
            Fault(
                429,
                {"error": {"message": "slow down", "code": "rate_limit_exceeded"}},
                {"retry-after-ms": "1500"},
            ),
            Fault(500, {"error": {"message": "boom"}}),
            Fault(503, "unavailable"),
            Fault(delay=1.5),  # longer than the client's 1 s timeout
            Fault(drop=True),
            Fault(200, '{"choices": [{"index": 0,'),
        ]
    )
    qs = queries(3)
    got = meter.score(qs)
    assert [s.logprobs for s in got] == [pytest.approx(expected(q)) for q in qs]
    assert len(server.seen) == 7
    assert waits.waits[0] == 1.5  # the server's retry-after-ms, honoured
    [record] = Ledger.read(tmp_path / "ledger.jsonl")
    assert (record.kind, record.ok, record.attempts, record.queries) == ("call", True, 7, 3)
    # The answer that came back whole is charged as billed; the timeout, the dropped
    # connection and the unreadable reply may have been billed too: each is charged its
    # estimate (an upper bound), marked unconfirmed. The refusals (429, 500, 503) cost nothing.
    last = server.billed[-1]
    bound = backend.estimate(qs)
    assert (record.prompt_tokens, record.completion_tokens, record.requests) == (
        last["prompt_tokens"] + 3 * bound.prompt_tokens,
        last["completion_tokens"] + 3 * bound.completion_tokens,
        1 + 3 * bound.requests,
    )
    answered = PRICE.cost(sum((s.usage for s in got), Usage()))
    assert record.unconfirmed and record.unconfirmed_dollars == pytest.approx(3 * PRICE.cost(bound))
    assert record.dollars == pytest.approx(answered + record.unconfirmed_dollars)
    assert record.billed_queries == 4 * 3
    # ... and asking again is free: every query comes from the cache.
    again = meter.score(qs)
    assert [s.logprobs for s in again] == [s.logprobs for s in got]
    assert len(server.seen) == 7
    assert meter.stats.hits == 3
    meter.close()


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        (
            Fault(
                429,
                {
                    "error": {
                        "message": "quota",
                        "code": "insufficient_quota",
                        "type": "insufficient_quota",
                    }
                },
            ),
            QuotaExceededError,
        ),
        (Fault(strip_logprobs=True), MalformedResponseError),
    ],
)
def test_non_retryable_faults_are_raised_once_and_nothing_is_cached(
    server: FaultServer, tmp_path: Path, fault: Fault, error: type[Exception]
) -> None:
    meter, _ = metered(server, tmp_path)
    server.script.append(fault)
    qs = queries(2)
    with pytest.raises(error) as info:
        meter.score(qs)
    assert CANARY_KEY not in str(info.value)
    assert len(server.seen) == 1
    [record] = Ledger.read(tmp_path / "ledger.jsonl")
    assert (record.ok, record.error, record.attempts, record.billed_queries) == (
        False,
        error.__name__,
        1,
        0,
    )
    # Nothing was cached: the next call goes to the (now healthy) server and is right.
    got = meter.score(qs)
    assert len(server.seen) == 2
    assert [s.logprobs for s in got] == [pytest.approx(expected(q)) for q in qs]
    assert meter.stats.hits == 0
    meter.close()


def test_the_ledger_matches_what_the_server_billed_including_fallback_requests(
    server: FaultServer, tmp_path: Path
) -> None:
    meter, backend = metered(server, tmp_path, max_batch_size=4, max_concurrency=3)
    qs = [
        Query(q.before, ".", (" great", " terrible", " so-so"))  # " so-so": never one token
        for q in queries(10, "Batch")
    ]
    got = meter.score(qs + qs[:3])  # duplicates are paid once
    assert all(s.exact for s in got)
    for q, s in zip(qs, got, strict=False):
        assert s.logprobs[2] == pytest.approx(LM.text_logprob(q.before, " so-so"))
    records = Ledger.read(tmp_path / "ledger.jsonl")
    assert len(records) == 3 and all(r.ok for r in records)  # 10 queries in chunks of 4
    prompt, completion = billed_total(server)
    assert sum(r.prompt_tokens for r in records) == prompt
    assert sum(r.completion_tokens for r in records) == completion
    # Each chunk took its next-token request and one fallback request.
    assert sum(r.requests for r in records) == len(server.seen) == 6
    assert sum(r.dollars for r in records) == pytest.approx(
        PRICE.cost(sum((s.usage for s in got[:10]), Usage()))
    )
    assert meter.stats.requests == 6 and meter.stats.paid_queries == 10
    # The estimate the budget reserved bounded every call.
    for k in range(0, 10, 4):
        bound = backend.estimate(qs[k : k + 4])
        assert bound.requests >= 2
    meter.close()


@pytest.mark.parametrize("limit", ["max_requests", "max_tokens", "max_dollars"])
def test_the_budget_is_never_overshot(server: FaultServer, tmp_path: Path, limit: str) -> None:
    # About a third to a half of what the 30 queries use unlimited (540 tokens, 20 requests).
    values = {"max_requests": 7, "max_tokens": 300, "max_dollars": 0.0006}
    meter, _ = metered(
        server,
        tmp_path,
        max_batch_size=3,
        max_concurrency=4,
        budget=Budget(**{limit: values[limit]}),
    )
    qs = [Query(q.before, ".", (" great", " so-so")) for q in queries(30, "Budget")]
    with pytest.raises(BudgetExceededError):
        meter.score(qs)
    stats = meter.stats
    prompt, completion = billed_total(server)
    spent = {
        "max_requests": len(server.seen),
        "max_tokens": prompt + completion,
        "max_dollars": PRICE.cost(Usage(prompt, completion, 0)),
    }
    assert spent[limit] <= values[limit]
    assert stats.requests == len(server.seen)
    assert stats.prompt_tokens + stats.completion_tokens == prompt + completion
    assert stats.paid_queries > 0  # it did spend up to the limit, cached what it paid for
    meter.close()


def test_paid_models_need_a_price_and_chat_goes_through_the_meter_too(
    server: FaultServer, tmp_path: Path
) -> None:
    unknown = OpenAIBackend("my-finetune", api_key=CANARY_KEY, base_url=server.base_url)
    with pytest.raises(UnknownPriceError):
        Meter(unknown, cache=False)
    chat = OpenAIChatBackend("gpt-4o-mini", api_key=CANARY_KEY, base_url=server.base_url)
    server.script.append(Fault(503, "busy"))
    with Meter(
        chat,
        cache=QueryCache(tmp_path / "c"),
        ledger=tmp_path / "l.jsonl",
        retry=RetryPolicy(initial_wait=0, jitter=0, sleep=Waits()),
    ) as meter:
        got = meter.score(
            [Query("Verdict?", "", (" good", " bad"))] * 2
            + [Query("Again?", "", (" good", " bad"))]
        )
    assert len(got) == 3 and len(server.seen) == 3  # 1 failed + 2 distinct conversations
    records = Ledger.read(tmp_path / "l.jsonl")
    assert sum(r.requests for r in records) == 2
    assert sum(r.dollars for r in records) > 0
