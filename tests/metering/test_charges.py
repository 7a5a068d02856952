"""What a try is charged when its outcome is unknown or its usage report cannot be trusted, and
the write-ahead ledger that lets a restarted budget count calls in flight at a kill."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import pytest

from bdpl.backends.base import Capabilities
from bdpl.errors import (
    AuthenticationError,
    BackendConnectionError,
    BackendError,
    BackendTimeoutError,
    BadRequestError,
    ConfigError,
    MalformedResponseError,
    QuotaExceededError,
    RateLimitError,
    ServerError,
)
from bdpl.metering import Budget, Ledger, LedgerRecord, Meter, Price, QueryCache, RetryPolicy
from bdpl.testing import FakeBackend
from bdpl.types import LabelScores, Query, Usage
from tests.metering.helpers import make_queries

PRICE = Price(input_per_1m=2.0, output_per_1m=8.0)
ONCE = RetryPolicy(max_attempts=1)


class Paid:
    """A paid backend with an exact estimate whose answers report ``usage`` (first answer) or
    whose calls raise ``error``."""

    identity = "paid-stub"

    def __init__(
        self,
        usage: object = None,
        error: BaseException | None = None,
        *,
        is_local: bool = False,
    ) -> None:
        self.capabilities = Capabilities(model="m", max_batch_size=8, is_local=is_local)
        self.usage = usage
        self.error = error
        self.calls = 0

    def estimate(self, qs: Sequence[Query]) -> Usage:
        return Usage(50 * len(qs), len(qs), 1)

    def score(self, qs: Sequence[Query]) -> list[LabelScores]:
        self.calls += 1
        if self.error is not None:
            raise self.error
        first = self.usage if self.usage is not None else Usage(10, 1, 1)
        return [
            LabelScores((-0.5, -1.0), first if i == 0 else Usage(10, 1, 0))  # type: ignore[arg-type]
            for i in range(len(qs))
        ]


def with_usage(error: BackendError, usage: Usage) -> BackendError:
    """``error`` saying that the call's answered requests were billed ``usage``."""
    error.usage = usage
    return error


@pytest.mark.parametrize(
    "usage",
    [
        Usage(-1000, 0, 1),
        Usage(10, -5, 1),
        Usage(10, 1, -1),
        Usage(float("nan"), 1, 1),  # type: ignore[arg-type]
        Usage(float("inf"), 1, 1),  # type: ignore[arg-type]
        Usage(12.5, 1, 1),  # type: ignore[arg-type]
        Usage(True, 1, 1),
        Usage(2**60, 1, 1),
        {"prompt_tokens": 10},
        "12 tokens",
    ],
    ids=[
        "negative",
        "negative-completion",
        "negative-requests",
        "nan",
        "inf",
        "float",
        "bool",
        "huge",
        "dict",
        "str",
    ],
)
@pytest.mark.parametrize("is_local", [False, True], ids=["paid", "local"])
def test_an_unusable_usage_report_is_charged_the_estimate_and_never_credits(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, usage: object, is_local: bool
) -> None:
    backend = Paid(usage, is_local=is_local)
    budget = Budget(max_tokens=10_000)
    price = None if is_local else PRICE
    cache = QueryCache(tmp_path / "c")
    with (
        caplog.at_level(logging.WARNING, logger="bdpl.metering.meter"),
        Meter(backend, cache=cache, ledger=tmp_path / "l.jsonl", budget=budget, price=price) as m,
    ):
        got = m.score(make_queries(4, "a"))
        m.score(make_queries(4, "b"))
        # The answers were fine: kept and cached (with the usage charged), not asked again.
        assert [a.logprobs for a in m.score(make_queries(4, "a"))] == [a.logprobs for a in got]
        assert backend.calls == 2 and m.stats.hits == 4
        stats = m.stats
    estimate = backend.estimate(make_queries(4))
    assert budget.spent.tokens == 2 * estimate.total_tokens  # never less: nothing credited
    assert budget.spent.requests == 2 and budget.spent.queries == 8
    assert (stats.prompt_tokens, stats.completion_tokens) == (400, 8)
    records = [r for r in Ledger.read(tmp_path / "l.jsonl") if r.kind == "call"]
    assert [r.prompt_tokens for r in records] == [200, 200]
    assert [r.dollars for r in records] == [pytest.approx(m.price.cost(estimate))] * 2
    assert sum("not non-negative integer" in r.getMessage() for r in caplog.records) == 1


def test_a_usage_above_the_estimate_is_charged_as_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backend = Paid(Usage(5000, 1, 1))
    budget = Budget(max_tokens=100_000)
    with (
        caplog.at_level(logging.WARNING, logger="bdpl.metering.meter"),
        Meter(backend, cache=False, budget=budget, price=PRICE) as meter,
    ):
        meter.score(make_queries(4))
    assert budget.spent.tokens == 5000 + 1 + 3 * 11  # the larger of report and estimate
    assert "more than its estimate" in caplog.text


UNKNOWN = [
    BackendTimeoutError("timed out"),
    BackendConnectionError("connection reset mid-reply"),
    MalformedResponseError("answer is not valid JSON"),
    RuntimeError("a bug in the backend, after the request went out"),
    KeyboardInterrupt(),
    with_usage(BadRequestError("refused"), Usage(-40, 2, 1)),
]
UNBILLED = [
    AuthenticationError("bad key"),
    BadRequestError("bad request"),
    QuotaExceededError("quota"),
    RateLimitError("429"),
    ServerError("503"),
]


@pytest.mark.parametrize("ledger", [True, False], ids=["ledger", "no-ledger"])
@pytest.mark.parametrize("error", UNKNOWN, ids=lambda e: type(e).__name__)
def test_a_try_whose_outcome_is_unknown_is_charged_its_estimate(
    tmp_path: Path, error: BaseException, ledger: bool
) -> None:
    backend = Paid(error=error)
    budget = Budget(max_dollars=1.0)
    path = tmp_path / "l.jsonl" if ledger else None
    qs = make_queries(3)
    with Meter(backend, cache=False, ledger=path, budget=budget, price=PRICE, retry=ONCE) as m:
        with pytest.raises(type(error)):
            m.score(qs)
        stats = m.stats
    estimate = backend.estimate(qs)
    dollars = PRICE.cost(estimate)
    assert budget.spent.tokens == estimate.total_tokens and budget.spent.queries == 3
    assert budget.spent.dollars == pytest.approx(dollars)
    assert budget.reserved.dollars == 0
    assert stats.unconfirmed_dollars == pytest.approx(dollars) == stats.dollars
    if path is not None:
        [record] = Ledger.read(path)
        assert (record.kind, record.ok, record.error) == ("call", False, type(error).__name__)
        assert record.unconfirmed and record.unconfirmed_dollars == pytest.approx(dollars)
        assert record.dollars == pytest.approx(dollars) and record.billed_queries == 3
        assert Budget.from_ledger(path).spent == budget.spent


def test_an_unknown_outcome_with_a_larger_report_is_charged_the_report() -> None:
    error = with_usage(BackendTimeoutError("fallback timed out"), Usage(900, 1, 2))
    budget = Budget()
    with (
        Meter(Paid(error=error), cache=False, budget=budget, price=PRICE, retry=ONCE) as m,
        pytest.raises(BackendTimeoutError),
    ):
        m.score(make_queries(2))
    assert (budget.spent.tokens, budget.spent.requests) == (900 + 2, 2)  # max per count


@pytest.mark.parametrize("error", UNBILLED, ids=lambda e: type(e).__name__)
def test_a_refusal_is_charged_nothing(tmp_path: Path, error: BackendError) -> None:
    budget = Budget(max_dollars=1.0)
    backend = Paid(error=error)
    with (
        Meter(
            backend,
            cache=False,
            ledger=tmp_path / "l.jsonl",
            budget=budget,
            price=PRICE,
            retry=ONCE,
        ) as meter,
        pytest.raises(type(error)),
    ):
        meter.score(make_queries(3))
    assert budget.spent.tokens == 0 and budget.spent.queries == 0
    [record] = Ledger.read(tmp_path / "l.jsonl")
    assert (record.dollars, record.unconfirmed) == (0.0, False)


def test_a_malformed_reply_whose_usage_was_read_is_charged_that_usage() -> None:
    error = with_usage(MalformedResponseError("no logprobs"), Usage(70, 3, 1))
    budget = Budget()
    with Meter(Paid(error=error), cache=False, budget=budget, price=PRICE, retry=ONCE) as m:
        with pytest.raises(MalformedResponseError):
            m.score(make_queries(3))
        assert m.stats.unconfirmed_dollars == 0
    assert (budget.spent.tokens, budget.spent.queries) == (73, 0)


def test_a_local_backend_that_times_out_is_charged_nothing(tmp_path: Path) -> None:
    fake = FakeBackend(faults={0: BackendTimeoutError("slow GPU")})
    budget = Budget()
    with (
        Meter(fake, cache=False, budget=budget, retry=ONCE) as meter,
        pytest.raises(BackendTimeoutError),
    ):
        meter.score(make_queries(3))
    assert budget.spent.tokens == 0  # nobody bills a local forward pass


class Snooping(Paid):
    """Reads the ledger file from inside ``score``: the intent must already be on disk."""

    def __init__(self, ledger: Path) -> None:
        super().__init__()
        self.ledger = ledger
        self.seen: list[list[LedgerRecord]] = []

    def score(self, qs: Sequence[Query]) -> list[LabelScores]:
        self.seen.append(Ledger.read(self.ledger, raw=True))
        return super().score(qs)


def test_each_try_is_written_ahead_with_its_estimate_and_settled_after(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    backend = Snooping(path)
    with Meter(backend, cache=False, ledger=path, price=PRICE) as meter:
        meter.score(make_queries(3))
    [[intent]] = backend.seen
    estimate = backend.estimate(make_queries(3))
    assert (intent.kind, intent.unconfirmed, intent.billed_queries) == ("intent", True, 3)
    assert (intent.prompt_tokens, intent.completion_tokens) == (150, 3)
    assert intent.dollars == pytest.approx(PRICE.cost(estimate))
    raw = Ledger.read(path, raw=True)
    assert [r.kind for r in raw] == ["intent", "call"]
    assert raw[1].settles == (intent.id,) and not raw[1].unconfirmed
    [call] = Ledger.read(path)  # a settled intent is not spend
    assert call.prompt_tokens == 10 + 2 * 10


def test_a_call_that_cannot_be_written_ahead_is_not_made(tmp_path: Path) -> None:
    backend = Paid()
    ledger = Ledger(tmp_path / "l.jsonl")
    ledger.close()  # every append fails now
    budget = Budget(max_queries=10)
    with (
        Meter(backend, cache=False, ledger=ledger, budget=budget, price=PRICE) as meter,
        pytest.raises(ValueError, match="closed"),
    ):
        meter.score(make_queries(3))
    assert backend.calls == 0
    assert budget.spent.queries == 0 and budget.reserved.queries == 0


def _line(**kw: object) -> str:
    base: dict[str, object] = {"time": "2026-01-01T00:00:00Z", "backend": "b", "model": "m"}
    return json.dumps({**base, **kw}) + "\n"


def test_budget_from_ledger_counts_intents_nothing_settled(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    path.write_text(
        _line(kind="intent", id="a", queries=4, billed_queries=4, prompt_tokens=400, requests=1,
              dollars=0.4, unconfirmed=True, unconfirmed_dollars=0.4, ok=False)
        + _line(kind="call", queries=4, billed_queries=4, prompt_tokens=100, requests=1,
                dollars=0.1, settles=["a"])
        + _line(kind="intent", id="b", queries=2, billed_queries=2, prompt_tokens=200,
                requests=1, dollars=0.2, unconfirmed=True, unconfirmed_dollars=0.2, ok=False)
    )  # fmt: skip
    budget = Budget.from_ledger(path, max_dollars=1.0)
    assert budget.spent.queries == 6 and budget.spent.tokens == 300
    assert budget.spent.dollars == pytest.approx(0.3)
    assert len(Ledger.read(path, raw=True)) == 3
    [s] = Ledger(path).summary().values()
    assert (s.calls, s.failed_calls, s.billed_queries) == (2, 1, 6)
    assert (s.dollars, s.unconfirmed_dollars) == (pytest.approx(0.3), pytest.approx(0.2))
    head, _, total = Ledger(path).report().splitlines()
    assert head.endswith("of which unconfirmed") and total.endswith("$0.2000")


OLD_LEDGER = (
    '{"kind":"call","time":"2026-01-01T00:00:00Z","backend":"fake","model":"m","queries":8,'
    '"billed_queries":8,"prompt_tokens":80,"completion_tokens":8,"requests":1,"dollars":0.01,'
    '"saved_dollars":0.0,"latency_s":0.5,"attempts":1,"ok":true,"error":null}\n'
    '{"kind":"hit","time":"2026-01-01T00:00:01Z","backend":"fake","model":"m","queries":4,'
    '"billed_queries":0,"prompt_tokens":0,"completion_tokens":0,"requests":0,"dollars":0.0,'
    '"saved_dollars":0.005,"latency_s":0.0,"attempts":0,"ok":true,"error":null}\n'
)


def test_a_ledger_written_before_intents_reads_the_same(tmp_path: Path) -> None:
    path = tmp_path / "old.jsonl"
    path.write_text(OLD_LEDGER)
    records = Ledger.read(path)
    assert [r.kind for r in records] == ["call", "hit"]
    assert not any(r.unconfirmed or r.settles or r.id for r in records)
    assert Ledger(path).report() == (
        "backend  model  calls  failed  paid queries  cache hits  tokens  dollars    saved\n"
        "fake     m          1       0             8           4      88  $0.0100  $0.0050\n"
        "total               1       0             8           4      88  $0.0100  $0.0050"
    )
    spent = Budget.from_ledger(path).spent
    assert (spent.queries, spent.tokens, spent.requests, spent.dollars) == (8, 88, 1, 0.01)
    # A call record written now has exactly the keys an old one has.
    [old, _] = [json.loads(line) for line in OLD_LEDGER.splitlines()]
    assert LedgerRecord.from_json(old).to_json() == old


def test_a_record_with_unreadable_settles_is_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "l.jsonl"
    path.write_text(_line(kind="call", queries=1, settles="a"))
    with caplog.at_level(logging.WARNING):
        assert Ledger.read(path) == []
    assert "line 1 skipped" in caplog.text


def test_an_empty_cache_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="empty"):
        QueryCache("")
    with pytest.raises(ConfigError, match="empty"):
        Meter(FakeBackend(), cache="")
    assert not QueryCache("", enabled=False).enabled  # cache=False still needs no directory


class BadEstimate(Paid):
    def estimate(self, qs: Sequence[Query]) -> Usage:
        return Usage(-50 * len(qs), 0, 1)


def test_a_negative_estimate_is_refused_before_anything_is_paid() -> None:
    backend = BadEstimate()
    budget = Budget(max_tokens=100)
    with (
        Meter(backend, cache=False, budget=budget, price=PRICE) as meter,
        pytest.raises(TypeError, match="non-negative integer"),
    ):
        meter.score(make_queries(2))
    assert backend.calls == 0 and budget.spent.tokens == 0 and budget.reserved.tokens == 0
