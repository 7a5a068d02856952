"""Accounting edge cases: partial billing, unreported usage, concurrent reservations, identity."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from bdpl.backends.base import Capabilities
from bdpl.errors import BadRequestError, BudgetExceededError, ConfigError
from bdpl.metering import Budget, Ledger, Meter, Price, Spend
from bdpl.types import LabelScores, Query, Usage
from tests.metering.helpers import FAST_RETRY

PRICE = Price(input_per_1m=1000.0, output_per_1m=2000.0)


def queries(n: int, tag: str = "q") -> list[Query]:
    return [Query(f"{tag} {i} It was", ".", (" bad", " good")) for i in range(n)]


class Overestimating:
    """A backend whose upper-bound estimate is 10x what it uses, answering slowly, 4 at once."""

    identity = "over"
    capabilities = Capabilities(is_local=True, max_batch_size=1, max_concurrency=4)

    def estimate(self, qs: Sequence[Query]) -> Usage:
        return Usage(10 * len(qs), 0, len(qs))

    def score(self, qs: Sequence[Query]) -> list[LabelScores]:
        time.sleep(0.05)
        return [LabelScores((-1.0, -2.0), Usage(1, 0, 1)) for _ in qs]


def test_concurrent_calls_wait_for_room_instead_of_stopping_early() -> None:
    # Sequentially all four calls fit (4 tokens of 25); concurrently the reservations of
    # calls in flight (10 each) must not make the budget refuse the others.
    budget = Budget(max_tokens=25)
    with Meter(Overestimating(), cache=False, budget=budget, max_concurrency=4) as meter:
        assert len(meter.score(queries(4))) == 4
    assert budget.spent.tokens == 4 and budget.reserved.tokens == 0


class FailsAfterBilling:
    """A paid backend whose call fails after a first, billed request (a failed fallback)."""

    identity = "half"
    capabilities = Capabilities(is_local=False, model="m", max_batch_size=8)

    def __init__(self) -> None:
        self.calls = 0

    def estimate(self, qs: Sequence[Query]) -> Usage:
        return Usage(100 * len(qs), len(qs), 2)

    def score(self, qs: Sequence[Query]) -> list[LabelScores]:
        self.calls += 1
        exc = BadRequestError("the fallback request was refused")
        exc.usage = Usage(40, 2, 1)
        raise exc


def test_a_failed_call_is_charged_what_it_was_already_billed(tmp_path: Path) -> None:
    budget = Budget(max_dollars=10.0)
    backend = FailsAfterBilling()
    ledger = tmp_path / "ledger.jsonl"
    with (
        Meter(backend, cache=False, budget=budget, price=PRICE, ledger=ledger) as meter,
        pytest.raises(BadRequestError),
    ):
        meter.score(queries(2))
    assert backend.calls == 1  # a bad request is not retried
    assert budget.spent.tokens == 42 and budget.spent.requests == 1
    assert budget.spent.queries == 0  # nothing was answered
    assert budget.spent.dollars == pytest.approx(PRICE.cost(Usage(40, 2, 1)))
    (record,) = Ledger.read(ledger)
    assert (record.prompt_tokens, record.completion_tokens, record.ok) == (40, 2, False)
    assert record.dollars == pytest.approx(budget.spent.dollars)


class SilentAboutUsage:
    """A paid backend (like some OpenAI-compatible proxies) that reports no token usage."""

    identity = "silent"
    capabilities = Capabilities(is_local=False, model="m", max_batch_size=4)

    def estimate(self, qs: Sequence[Query]) -> Usage:
        return Usage(50 * len(qs), len(qs), 1)

    def score(self, qs: Sequence[Query]) -> list[LabelScores]:
        return [LabelScores((-1.0, -2.0), Usage(0, 0, 1 if i == 0 else 0)) for i in range(len(qs))]


def test_a_paid_backend_reporting_no_usage_is_charged_its_estimate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    budget = Budget(max_tokens=1000)
    with (
        caplog.at_level(logging.WARNING, logger="bdpl.metering.meter"),
        Meter(SilentAboutUsage(), cache=False, budget=budget, price=PRICE) as meter,
    ):
        meter.score(queries(4, "a"))
        assert budget.spent.tokens == 4 * 51
        assert meter.stats.prompt_tokens == 200
        meter.score(queries(4, "b"))
    assert budget.spent.tokens == 8 * 51
    assert sum("reported no token usage" in r.getMessage() for r in caplog.records) == 1


def test_changing_a_backend_setting_under_its_meter_is_refused() -> None:
    backend = Overestimating()
    with Meter(backend, cache=False, retry=FAST_RETRY) as meter:
        meter.score(queries(1))
        backend.identity = "over:another-model"  # type: ignore[misc]
        with pytest.raises(ConfigError, match="identity changed"):
            meter.score(queries(1))


def test_a_single_thread_reserving_past_the_budget_is_refused_not_blocked() -> None:
    budget = Budget(max_queries=3)
    held = budget.reserve(Spend(queries=2))
    with pytest.raises(BudgetExceededError):
        budget.reserve(Spend(queries=2))  # would wait forever on itself if it waited
    budget.settle(held, Spend(queries=1))
    assert budget.reserve(Spend(queries=2)).estimate.queries == 2


class OneBadAnswerFirst:
    """Answers every query, but the first call's answer to query 1 is NaN (malformed)."""

    identity = "one-bad"
    capabilities = Capabilities(is_local=True, max_batch_size=8)

    def __init__(self) -> None:
        self.asked: list[list[str]] = []

    def score(self, qs: Sequence[Query]) -> list[LabelScores]:
        self.asked.append([q.before for q in qs])
        first = len(self.asked) == 1
        return [
            LabelScores(
                (float("nan") if first and i == 1 else -1.0, -2.0), Usage(3, 1, int(i == 0))
            )
            for i in range(len(qs))
        ]


def test_a_partly_malformed_reply_retries_only_the_bad_answers(tmp_path: Path) -> None:
    backend = OneBadAnswerFirst()
    qs = queries(4)
    with Meter(backend, cache=tmp_path / "c", retry=FAST_RETRY) as meter:
        got = meter.score(qs)
        assert [len(a) for a in backend.asked] == [4, 1]  # only the bad one is asked again
        assert backend.asked[1] == [qs[1].before]
        assert all(s.logprobs == (-1.0, -2.0) for s in got)
        assert meter.stats.paid_queries == 5 and meter.stats.attempts == 2
        meter.score(qs)  # every answer, the retried one included, is cached
    assert len(backend.asked) == 2
