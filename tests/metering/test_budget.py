"""Budgets: validated limits, and never overshot, also with 16 concurrent workers."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from bdpl.backends.base import Capabilities
from bdpl.errors import BudgetExceededError, ConfigError
from bdpl.metering import Budget, Meter, Price, QueryCache, Spend
from bdpl.testing import FakeBackend, FaultyBackend
from tests.metering.helpers import FAST_RETRY, make_queries

PRICE = Price(input_per_1m=3.0, output_per_1m=5.0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_queries": -1},
        {"max_queries": 1.5},
        {"max_requests": True},
        {"max_tokens": "10"},
        {"max_dollars": -0.01},
        {"max_dollars": float("nan")},
    ],
)
def test_invalid_limits_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        Budget(**kwargs)  # type: ignore[arg-type]


def test_reserve_and_settle() -> None:
    budget = Budget(max_queries=10, max_dollars=1.0)
    r1 = budget.reserve(Spend(queries=6, dollars=0.5))
    with pytest.raises(BudgetExceededError) as info:
        budget.reserve(Spend(queries=6))
    assert info.value.limit == "queries"
    budget.settle(r1, Spend(queries=6, dollars=0.2))
    assert budget.spent == Spend(queries=6, dollars=0.2)
    r2 = budget.reserve(Spend(queries=4, dollars=0.8))  # exactly up to both limits
    with pytest.raises(ValueError):
        budget.settle(r1, Spend())  # settled twice
    budget.settle(r2, Spend())  # a failed, unbilled call frees its reservation
    assert budget.remaining() == {"queries": 4, "requests": None, "tokens": None, "dollars": 0.8}
    with pytest.raises(BudgetExceededError) as info:
        budget.reserve(Spend(queries=1, dollars=0.9))
    assert info.value.limit == "dollars"


def run_workers(meter: Meter, workers: int = 16, per_worker: int = 40) -> int:
    """16 threads, each asking its own queries; returns how many hit the budget."""
    stopped = []
    barrier = threading.Barrier(workers)

    def work(w: int) -> None:
        barrier.wait()
        try:
            meter.score(make_queries(per_worker, tag=f"w{w}"))
        except BudgetExceededError:
            stopped.append(w)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(stopped)


@pytest.mark.parametrize("n", [0, 1, 7, 50, 64, 333])
def test_sixteen_workers_never_pass_max_queries(tmp_path: Path, n: int) -> None:
    fake = FakeBackend(max_batch_size=4, latency=0.002)
    budget = Budget(max_queries=n)
    with Meter(
        fake, cache=QueryCache(tmp_path / "c"), budget=budget, retry=FAST_RETRY, max_concurrency=16
    ) as meter:
        stopped = run_workers(meter)
        paid = sum(len(c) for c in fake.calls)
        assert paid <= n
        assert paid == meter.stats.paid_queries == budget.spent.queries
        assert stopped > 0  # 640 queries were asked: the budget did stop them
        # Tight, not just safe: less than one chunk of the budget is left unused.
        assert n - paid < 4


@pytest.mark.parametrize(
    ("limit", "value"),
    [("requests", 5), ("requests", 37), ("tokens", 300), ("tokens", 4321), ("dollars", 0.004)],
)
def test_sixteen_workers_never_pass_other_limits(tmp_path: Path, limit: str, value: float) -> None:
    fake = FakeBackend(max_batch_size=3, latency=0.002, is_local=False)
    budget = Budget(**{f"max_{limit}": value})  # type: ignore[arg-type]
    with Meter(
        fake,
        cache=QueryCache(tmp_path / "c"),
        budget=budget,
        retry=FAST_RETRY,
        price=PRICE,
        max_concurrency=16,
    ) as meter:
        run_workers(meter)
        reported = [fake.estimate(c) for c in fake.calls]  # the fake's reports, exactly
        spent = {
            "requests": sum(u.requests for u in reported),
            "tokens": sum(u.total_tokens for u in reported),
            "dollars": sum(PRICE.cost(u) for u in reported),
        }
        assert spent[limit] <= value + 1e-12
        assert spent[limit] == pytest.approx(getattr(budget.spent, limit))
        assert fake.call_count > 0 or value < 5


def test_budget_stop_is_clean_and_resumable(tmp_path: Path) -> None:
    """Reaching the budget raises; what was paid is cached; a bigger budget carries on."""
    fake = FakeBackend(max_batch_size=5)
    qs = make_queries(20)
    cache = QueryCache(tmp_path / "c")
    with Meter(fake, cache=cache, budget=Budget(max_queries=12)) as meter:
        with pytest.raises(BudgetExceededError, match="max_queries=12"):
            meter.score(qs)
        assert meter.stats.paid_queries == 12  # two chunks of 5, then the third halved to fit
    with Meter(fake, cache=cache, budget=Budget(max_queries=8)) as meter:
        assert len(meter.score(qs)) == 20
        assert meter.stats.paid_queries == 8 and meter.stats.hits == 12
    assert sum(len(c) for c in fake.calls) == 20


def no_estimate() -> FaultyBackend:
    """A paid backend without ``estimate``: budgets use the conservative token rule."""
    return FaultyBackend(
        FakeBackend(latency=0.002),
        capabilities=Capabilities(is_local=False, model="m", max_batch_size=3, max_concurrency=16),
        estimate=None,
    )


@pytest.mark.parametrize(("limit", "value"), [("tokens", 2000), ("dollars", 0.002)])
def test_conservative_rule_also_never_overshoots(tmp_path: Path, limit: str, value: float) -> None:
    backend = no_estimate()
    fake = backend.backend
    assert isinstance(fake, FakeBackend)
    budget = Budget(**{f"max_{limit}": value})  # type: ignore[arg-type]
    with Meter(backend, cache=False, budget=budget, price=PRICE, retry=FAST_RETRY) as meter:
        run_workers(meter)
        reported = [fake.estimate(c) for c in fake.calls]
        spent = {
            "tokens": sum(u.total_tokens for u in reported),
            "dollars": sum(PRICE.cost(u) for u in reported),
        }
        assert 0 < spent[limit] <= value


def test_an_underestimating_backend_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    liar = FaultyBackend(FakeBackend(), estimate=0.5)
    with Meter(liar, cache=False) as meter:
        meter.score(make_queries(3))
        meter.score(make_queries(3, "again"))
    assert caplog.text.count("used more than its estimate") == 1


def test_a_budget_smaller_than_a_chunk_is_used_to_the_last_query(tmp_path: Path) -> None:
    fake = FakeBackend(max_batch_size=64)
    budget = Budget(max_queries=10)
    with Meter(fake, cache=QueryCache(tmp_path / "c"), budget=budget, retry=FAST_RETRY) as meter:
        queries = make_queries(30, tag="tight")
        with pytest.raises(BudgetExceededError):
            meter.score(queries)
        assert sum(len(c) for c in fake.calls) == budget.spent.queries == 10
        # The ten paid answers are cached: asking for them again is free.
        assert len(meter.score(queries[:10])) == 10
        assert sum(len(c) for c in fake.calls) == 10


def test_budget_from_ledger_spans_restarts(tmp_path: Path) -> None:
    """A restarted job charged from its ledger cannot spend the whole budget again."""
    ledger = tmp_path / "run.jsonl"
    fake = FakeBackend(max_batch_size=4)
    qs = make_queries(40, tag="restart")
    with (
        Meter(fake, cache=False, ledger=ledger, budget=Budget(max_queries=10)) as meter,
        pytest.raises(BudgetExceededError),
    ):
        meter.score(qs)
    budget = Budget.from_ledger(ledger, max_queries=10)
    assert budget.spent.queries == 10
    with (
        Meter(fake, cache=False, ledger=ledger, budget=budget) as meter,
        pytest.raises(BudgetExceededError),
    ):
        meter.score(qs[:1])
    assert sum(len(c) for c in fake.calls) == 10
    assert Budget.from_ledger(tmp_path / "absent.jsonl", max_queries=1).spent.queries == 0
