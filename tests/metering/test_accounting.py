"""Accounting edge cases: partial billing, unreported usage, concurrent reservations, identity."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bdpl.errors import BadRequestError, BudgetExceededError, ConfigError
from bdpl.metering import Budget, Ledger, Meter, Price, Spend
from bdpl.testing import BadLogprob, FakeBackend, FaultyBackend, NoUsage, Raise
from bdpl.types import Query, Usage
from tests.metering.helpers import FAST_RETRY

PRICE = Price(input_per_1m=1000.0, output_per_1m=2000.0)


def queries(n: int, tag: str = "q") -> list[Query]:
    return [Query(f"{tag} {i} It was", ".", (" bad", " good")) for i in range(n)]


def overestimating() -> FaultyBackend:
    """A backend whose upper-bound estimate is 4x what it uses, answering slowly, 4 at once."""
    fake = FakeBackend(max_batch_size=1, max_concurrency=4, latency=0.05)
    return FaultyBackend(fake, estimate=4.0)


def test_concurrent_calls_wait_for_room_instead_of_stopping_early() -> None:
    # Sequentially all four calls fit (4 x 6 tokens of 48); concurrently the reservations of
    # calls in flight (24 each) must not make the budget refuse the others.
    budget = Budget(max_tokens=48)
    with Meter(overestimating(), cache=False, budget=budget, max_concurrency=4) as meter:
        assert len(meter.score(queries(4))) == 4
    assert budget.spent.tokens == 4 * 6 and budget.reserved.tokens == 0


def fails_after_billing() -> FaultyBackend:
    """A paid backend whose call fails after a first, billed request (a failed fallback)."""
    refused = BadRequestError("the fallback request was refused")
    return FaultyBackend(
        FakeBackend(is_local=False, model="m", max_batch_size=8),
        every_call=Raise(refused, billed=Usage(40, 2, 1)),
        estimate=lambda qs: Usage(100 * len(qs), len(qs), 2),
    )


def test_a_failed_call_is_charged_what_it_was_already_billed(tmp_path: Path) -> None:
    budget = Budget(max_dollars=10.0)
    backend = fails_after_billing()
    ledger = tmp_path / "ledger.jsonl"
    with (
        Meter(backend, cache=False, budget=budget, price=PRICE, ledger=ledger) as meter,
        pytest.raises(BadRequestError),
    ):
        meter.score(queries(2))
    assert backend.attempts == 1  # a bad request is not retried
    assert budget.spent.tokens == 42 and budget.spent.requests == 1
    assert budget.spent.queries == 0  # nothing was answered
    assert budget.spent.dollars == pytest.approx(PRICE.cost(Usage(40, 2, 1)))
    (record,) = Ledger.read(ledger)
    assert (record.prompt_tokens, record.completion_tokens, record.ok) == (40, 2, False)
    assert record.dollars == pytest.approx(budget.spent.dollars)


def silent_about_usage() -> FaultyBackend:
    """A paid backend (like some OpenAI-compatible proxies) that reports no token usage."""
    return FaultyBackend(
        FakeBackend(is_local=False, model="m", max_batch_size=4),
        every_call=NoUsage(),
        estimate=lambda qs: Usage(50 * len(qs), len(qs), 1),
    )


def test_a_paid_backend_reporting_no_usage_is_charged_its_estimate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    budget = Budget(max_tokens=1000)
    with (
        caplog.at_level(logging.WARNING, logger="bdpl.metering.meter"),
        Meter(silent_about_usage(), cache=False, budget=budget, price=PRICE) as meter,
    ):
        meter.score(queries(4, "a"))
        assert budget.spent.tokens == 4 * 51
        assert meter.stats.prompt_tokens == 200
        meter.score(queries(4, "b"))
    assert budget.spent.tokens == 8 * 51
    assert sum("reported no token usage" in r.getMessage() for r in caplog.records) == 1


def test_changing_a_backend_setting_under_its_meter_is_refused() -> None:
    backend = overestimating()
    with Meter(backend, cache=False, retry=FAST_RETRY) as meter:
        meter.score(queries(1))
        backend.backend = FakeBackend(model="another-model")
        with pytest.raises(ConfigError, match="identity changed"):
            meter.score(queries(1))


def test_a_single_thread_reserving_past_the_budget_is_refused_not_blocked() -> None:
    budget = Budget(max_queries=3)
    held = budget.reserve(Spend(queries=2))
    with pytest.raises(BudgetExceededError):
        budget.reserve(Spend(queries=2))  # would wait forever on itself if it waited
    budget.settle(held, Spend(queries=1))
    assert budget.reserve(Spend(queries=2)).estimate.queries == 2


def test_a_partly_malformed_reply_retries_only_the_bad_answers(tmp_path: Path) -> None:
    # Answers every query, but the first call's answer to query 1 is NaN (malformed).
    backend = FaultyBackend(FakeBackend(max_batch_size=8), faults={0: BadLogprob(answer=1)})
    qs = queries(4)
    with Meter(backend, cache=tmp_path / "c", retry=FAST_RETRY) as meter:
        got = meter.score(qs)
        assert [len(a) for a in backend.calls] == [4, 1]  # only the bad one is asked again
        assert backend.calls[1] == (qs[1],)
        assert [s.logprobs for s in got] == [s.logprobs for s in FakeBackend().score(qs)]
        assert meter.stats.paid_queries == 5 and meter.stats.attempts == 2
        meter.score(qs)  # every answer, the retried one included, is cached
    assert len(backend.calls) == 2
