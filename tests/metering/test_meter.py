"""Meter: dedup, cache hits, chunking, retries of injected faults, typed errors, accounting."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest

from bdpl.backends.base import Capabilities
from bdpl.errors import (
    BackendTimeoutError,
    BudgetExceededError,
    ConfigError,
    MalformedResponseError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
    UnknownPriceError,
)
from bdpl.metering import Budget, Ledger, Meter, Price, QueryCache, RetryPolicy
from bdpl.testing import FakeBackend
from bdpl.types import LabelScores, Query, Usage, split_usage
from tests.metering.helpers import FAST_RETRY, LABELS, make_queries


def meter_for(fake: FakeBackend, tmp_path: Path, **kw: object) -> Meter:
    return Meter(
        fake,
        cache=QueryCache(tmp_path / "cache"),
        ledger=tmp_path / "ledger.jsonl",
        retry=FAST_RETRY,
        **kw,  # type: ignore[arg-type]
    )


def backend_reported(call_log: Path) -> Usage:
    """What the fake reported over all its answered calls, from its own log."""
    fake = FakeBackend()
    total = Usage()
    for line in call_log.read_text().splitlines():
        entry = json.loads(line)
        qs = [Query(q["before"], q["after"], tuple(q["labels"])) for q in entry["queries"]]
        if entry.get("malformed"):
            qs = qs[:-1]  # the fake drops the last answer, and its usage with it
        total += fake.estimate(qs)
    return total


def assert_consistent(meter: Meter, call_log: Path) -> None:
    """Ledger totals == meter stats == the backend's own reports."""
    assert meter.ledger is not None
    [summary] = meter.ledger.summary().values()
    s = meter.stats
    reported = backend_reported(call_log)
    assert (summary.prompt_tokens, summary.completion_tokens, summary.requests) == (
        reported.prompt_tokens,
        reported.completion_tokens,
        reported.requests,
    )
    assert (s.prompt_tokens, s.completion_tokens, s.requests) == (
        summary.prompt_tokens,
        summary.completion_tokens,
        summary.requests,
    )
    assert (
        s.paid_queries
        == summary.billed_queries
        == len(
            [q for line in call_log.read_text().splitlines() for q in json.loads(line)["queries"]]
        )
    )
    assert s.calls == summary.calls and s.failed_calls == summary.failed_calls
    assert s.hits == summary.hit_queries
    assert math.isclose(s.dollars, summary.dollars, abs_tol=1e-12)
    assert math.isclose(s.saved_dollars, summary.saved_dollars, abs_tol=1e-12)
    assert meter.budget.spent.queries == s.paid_queries
    assert meter.budget.reserved.queries == 0


def test_answers_match_the_backend_in_order_with_duplicates(tmp_path: Path) -> None:
    fake = FakeBackend(max_batch_size=3)
    qs = make_queries(7)
    asked = [qs[3], qs[0], qs[3], *qs, qs[6]]
    with meter_for(fake, tmp_path) as meter:
        got = meter.score(asked)
    assert [s.logprobs for s in got] == [s.logprobs for s in FakeBackend().score(asked[:3])] + [
        s.logprobs for s in FakeBackend().score(qs)
    ] + [FakeBackend().score([qs[6]])[0].logprobs]
    assert sum(len(c) for c in fake.calls) == 7  # each distinct query paid once
    assert max(len(c) for c in fake.calls) <= 3  # chunks of the backend's max_batch_size
    s = meter.stats
    assert (s.queries, s.duplicates, s.misses, s.hits, s.paid_queries) == (11, 4, 7, 0, 7)


def test_cache_hits_are_free_and_recorded(tmp_path: Path) -> None:
    fake = FakeBackend(call_log=tmp_path / "calls.jsonl", is_local=False)
    price = Price(1.0, 2.0)
    qs = make_queries(10)
    with meter_for(fake, tmp_path, price=price) as meter:
        first = meter.score(qs)
        again = meter.score(qs[:6])
        assert again == first[:6]
        s = meter.stats
        assert (s.hits, s.paid_queries, fake.call_count) == (6, 10, 1)
        expected_saved = price.cost(sum((a.usage for a in first[:6]), Usage()))
        assert math.isclose(s.saved_dollars, expected_saved)
        assert_consistent(meter, tmp_path / "calls.jsonl")
        hits = [r for r in meter.ledger.records() if r.kind == "hit"]  # type: ignore[union-attr]
        assert len(hits) == 1 and hits[0].queries == 6 and hits[0].dollars == 0
    # A new meter (a new run) on the same cache pays nothing.
    fake2 = FakeBackend(is_local=False)
    with meter_for(fake2, tmp_path, price=price) as meter2:
        assert meter2.score(qs) == first
    assert fake2.call_count == 0


def test_cache_false_pays_every_batch(tmp_path: Path) -> None:
    fake = FakeBackend()
    with Meter(fake, cache=False, retry=FAST_RETRY) as meter:
        meter.score(make_queries(3))
        meter.score(make_queries(3))
    assert fake.call_count == 2
    assert not any((tmp_path / "bdpl-cache").glob("**/*"))


def test_default_cache_lives_under_bdpl_cache_dir(tmp_path: Path) -> None:
    with Meter(FakeBackend()) as meter:
        meter.score(make_queries(2))
        assert meter.cache.directory == tmp_path / "bdpl-cache" / "queries"
        assert meter.cache.stats().entries == 2
    with Meter(FakeBackend(), cache=str(tmp_path / "mine")) as meter:
        assert meter.cache.directory == tmp_path / "mine"
    with pytest.raises(ConfigError, match="cache must be"):
        Meter(FakeBackend(), cache=3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "fault",
    [
        BackendTimeoutError("timed out"),
        RateLimitError("slow down", retry_after=0.01),
        ServerError("500 internal error"),
        "malformed",
    ],
    ids=["timeout", "429", "500", "malformed"],
)
def test_retryable_faults_are_retried_and_nothing_wrong_is_cached(
    tmp_path: Path, fault: BaseException | str
) -> None:
    log = tmp_path / "calls.jsonl"
    fake = FakeBackend(faults={1: fault, 2: fault}, call_log=log, max_batch_size=4)
    qs = make_queries(10)
    with meter_for(fake, tmp_path) as meter:
        got = meter.score(qs)
        assert [s.logprobs for s in got] == [s.logprobs for s in FakeBackend().score(qs)]
        s = meter.stats
        assert (s.calls, s.attempts, s.retries, s.failed_calls) == (3, 5, 2, 0)
        assert_consistent(meter, log)
        # Every cached entry is the right answer.
        for q, want in zip(qs, got, strict=True):
            assert meter.cache.get(fake.identity, q) == want


def test_retry_after_is_honoured(tmp_path: Path) -> None:
    waits: list[float] = []
    policy = RetryPolicy(initial_wait=0.001, max_wait=0.002, jitter=0.0, sleep=waits.append)
    fake = FakeBackend(faults={0: RateLimitError("429", retry_after=7.5)})
    with Meter(fake, cache=False, retry=policy) as meter:
        meter.score(make_queries(2))
    assert waits == [7.5]


def test_exhausted_retries_raise_the_typed_error_and_cache_nothing(tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    fake = FakeBackend(faults=dict.fromkeys(range(4), "malformed"), call_log=log)
    qs = make_queries(5)
    with meter_for(fake, tmp_path) as meter:
        with pytest.raises(MalformedResponseError, match="4 answers for 5 queries"):
            meter.score(qs)
        assert meter.cache.stats().entries == 0
        s = meter.stats
        assert (s.attempts, s.calls, s.failed_calls, s.paid_queries) == (4, 1, 1, 20)
        assert_consistent(meter, log)
        [record] = meter.ledger.records()  # type: ignore[union-attr]
        assert (record.ok, record.error, record.attempts) == (False, "MalformedResponseError", 4)
        # Asking again is a fresh (now healthy) call: the failure was not cached.
        assert len(meter.score(qs)) == 5


@pytest.mark.parametrize("error", [QuotaExceededError("billing"), ConfigError("bug")])
def test_non_retryable_errors_are_raised_at_once(tmp_path: Path, error: Exception) -> None:
    fake = FakeBackend(faults={0: error})
    with meter_for(fake, tmp_path) as meter:
        with pytest.raises(type(error)):
            meter.score(make_queries(3))
        assert meter.stats.attempts == 1 and meter.cache.stats().entries == 0


def test_a_retryable_flag_cannot_make_quota_errors_retried(tmp_path: Path) -> None:
    fake = FakeBackend(faults={0: QuotaExceededError("quota", retryable=True)})
    with meter_for(fake, tmp_path) as meter, pytest.raises(QuotaExceededError):
        meter.score(make_queries(3))
    assert fake.attempts == 1


def test_failure_in_one_concurrent_chunk_keeps_the_others_paid_answers(tmp_path: Path) -> None:
    fake = FakeBackend(faults={3: QuotaExceededError("quota")}, max_batch_size=2, latency=0.01)
    qs = make_queries(16)
    with meter_for(fake, tmp_path, max_concurrency=4) as meter:
        with pytest.raises(QuotaExceededError):
            meter.score(qs)
        answered = [q for call in fake.calls for q in call]
        before = fake.call_count
        meter.score(qs)  # answered chunks are hits now; only the rest is paid
    again = [q for call in fake.calls[before:] for q in call]
    assert not set(answered) & set(again)
    assert sorted(map(str, answered + again)) == sorted(map(str, qs))


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        (LabelScores((-0.1,)), "1 log-probs for 2 labels"),
        (LabelScores((-0.1, math.nan)), "not finite"),
        (LabelScores((-0.1, -math.inf)), "not finite"),
        (LabelScores((-0.1, 0.5)), "positive"),
        ("text", "not LabelScores"),
    ],
)
def test_invalid_answers_are_malformed(tmp_path: Path, answer: object, why: str) -> None:
    class Bad:
        identity = "bad"
        capabilities = Capabilities(is_local=True)

        def score(self, queries: list[Query]) -> list[object]:
            return [answer for _ in queries]

    with Meter(Bad(), cache=QueryCache(tmp_path / "c"), retry=FAST_RETRY) as meter:  # type: ignore[arg-type]
        with pytest.raises(MalformedResponseError, match=why):
            meter.score([Query("x", ".", LABELS)])
        assert meter.cache.stats().entries == 0
        assert meter.stats.attempts == FAST_RETRY.max_attempts


def test_paid_backend_without_price_is_refused() -> None:
    fake = FakeBackend(is_local=False, model="my-private-model")
    with pytest.raises(UnknownPriceError, match=r"my-private-model.*price=Price"):
        Meter(fake, cache=False)
    with Meter(fake, cache=False, price=Price(1, 1)) as meter:
        meter.score(make_queries(1))
        assert meter.stats.dollars > 0


def test_table_price_is_charged_from_reported_usage(tmp_path: Path) -> None:
    fake = FakeBackend(is_local=False, model="gpt-4.1-mini")
    with Meter(fake, cache=False) as meter:
        got = meter.score(make_queries(4))
        usage = sum((s.usage for s in got), Usage())
        assert math.isclose(
            meter.stats.dollars, (usage.prompt_tokens * 0.4 + usage.completion_tokens * 1.6) / 1e6
        )


def test_concurrency_is_capped_by_the_backend(tmp_path: Path) -> None:
    fake = FakeBackend(max_concurrency=3, max_batch_size=1, latency=0.01)
    with meter_for(fake, tmp_path, max_concurrency=16) as meter:
        assert meter.max_concurrency == 3
        meter.score(make_queries(12))
    assert fake.peak_concurrency == 3
    with pytest.raises(ConfigError):
        Meter(fake, cache=False, max_concurrency=0)


def test_failures_are_logged_with_logging_not_warnings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = FakeBackend(faults={0: QuotaExceededError("over quota")})
    with (
        caplog.at_level(logging.INFO, logger="bdpl"),
        meter_for(fake, tmp_path) as meter,
        pytest.raises(QuotaExceededError),
    ):
        meter.score(make_queries(2))
    assert "QuotaExceededError" in caplog.text


def test_ledger_file_survives_reopening(tmp_path: Path) -> None:
    fake = FakeBackend()
    with meter_for(fake, tmp_path) as meter:
        meter.score(make_queries(3))
    with meter_for(FakeBackend(), tmp_path) as meter:
        meter.score(make_queries(3))  # all hits
    records = Ledger.read(tmp_path / "ledger.jsonl")
    assert [r.kind for r in records] == ["call", "hit"]


class BadSecondAnswerFirst:
    """A free backend whose token use is the length of each query's text; the first call's
    answer to its second query is NaN (malformed), every other answer is valid."""

    identity = "bad-second-first"
    capabilities = Capabilities(is_local=True, max_batch_size=8)

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    def estimate(self, qs: list[Query]) -> Usage:
        return Usage(sum(len(q.before) for q in qs), 0, 1)

    def score(self, qs: list[Query]) -> list[LabelScores]:
        first = not self.asked
        self.asked.append([q.before for q in qs])
        return [
            LabelScores((math.nan if first and i == 1 else -1.0, -2.0), usage)
            for i, usage in enumerate(split_usage(self.estimate(qs), len(qs)))
        ]


def test_a_refused_retry_never_splits_the_chunk_and_re_asks_cached_answers(
    tmp_path: Path,
) -> None:
    # Tokens: 10 + 100 + 10 + 10 = 130 for the first try; the retry of the bad (long) query
    # alone needs 100 of the 20 left. Splitting the chunk then would re-ask (and pay) the
    # short valid query 0, which fits in 20 tokens although its answer is already cached.
    qs = [Query(text, ".", LABELS) for text in ("a" * 10, "b" * 100, "c" * 10, "d" * 10)]
    backend = BadSecondAnswerFirst()
    cache = QueryCache(tmp_path / "cache")
    meter = Meter(backend, cache=cache, budget=Budget(max_tokens=150), retry=FAST_RETRY)
    with meter, pytest.raises(BudgetExceededError):
        meter.score(qs)
    assert backend.asked == [[q.before for q in qs]]  # the refused retry asked nothing
    assert meter.stats.paid_queries == 4 and meter.stats.attempts == 1
    assert meter.budget.spent.tokens == 130 and meter.budget.reserved.tokens == 0
    # The three valid answers of the first try are cached: asking them again is free.
    with Meter(backend, cache=cache, budget=Budget(max_tokens=0), retry=FAST_RETRY) as again:
        assert [s.logprobs for s in again.score([qs[0], qs[2], qs[3]])] == [(-1.0, -2.0)] * 3
        assert again.stats.paid_queries == 0 and again.stats.hits == 3
    assert len(backend.asked) == 1
