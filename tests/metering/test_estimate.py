"""estimate_cost: a worst-case bound on a run's spend, computed without calling the model."""

from __future__ import annotations

import pytest

from bdpl.backends.base import Capabilities
from bdpl.errors import ConfigError, UnknownPriceError
from bdpl.metering import Meter, Price, estimate_cost
from bdpl.testing import FakeBackend
from bdpl.types import LabelScores, Query
from tests.metering.helpers import make_queries, workload

PRICE = Price(1.5, 2.0)


class CountingNoEstimate:
    """A backend without ``estimate``: the meter's conservative rule applies."""

    identity = "plain"
    capabilities = Capabilities(is_local=False, max_batch_size=8)

    def __init__(self) -> None:
        self.fake = FakeBackend()
        self.scored = 0

    def score(self, queries: list[Query]) -> list[LabelScores]:
        self.scored += 1
        return self.fake.score(queries)


@pytest.mark.parametrize("backend_kind", ["fake", "no-estimate"])
def test_estimate_bounds_what_a_run_spends(backend_kind: str) -> None:
    backend = FakeBackend(max_batch_size=7) if backend_kind == "fake" else CountingNoEstimate()
    queries = [q for batch in workload(rounds=3) for q in batch]
    est = estimate_cost(backend, queries, len(queries), price=PRICE)
    assert isinstance(backend, FakeBackend) or backend.scored == 0  # no model call
    with Meter(backend, cache=False, price=PRICE) as meter:  # type: ignore[arg-type]
        for batch in workload(rounds=3):
            meter.score(batch)  # no cache: every batch paid
        s = meter.stats
    assert s.queries <= est.queries
    assert s.requests <= est.requests
    assert s.prompt_tokens <= est.prompt_tokens
    assert s.completion_tokens <= est.completion_tokens
    assert s.dollars <= est.dollars
    if backend_kind == "fake":  # an exact backend estimate keeps the bound close
        assert est.prompt_tokens <= 1.5 * s.prompt_tokens


def test_extrapolates_from_the_longest_sample() -> None:
    fake = FakeBackend(max_batch_size=10)
    short, long = Query("a", ".", (" x", " y")), Query("a" * 400, ".", (" x", " y"))
    est = estimate_cost(fake, [short, long], 95)
    per_query = fake.estimate([long])
    assert est.queries == 95 and est.requests == 10  # ten calls, the last one partial
    assert est.prompt_tokens == 95 * per_query.prompt_tokens
    split = estimate_cost(fake, [short, long], 95, batch_sizes=[45, 50])
    assert split.requests == 10 and split.prompt_tokens == est.prompt_tokens
    assert estimate_cost(fake, [short, long], 95, batch_sizes=[5] * 19).requests == 19
    with pytest.raises(ConfigError, match="add up"):
        estimate_cost(fake, [short], 95, batch_sizes=[90])
    assert "at most 95 queries" in str(est)


def test_edge_cases() -> None:
    assert estimate_cost(FakeBackend(), [], 0).dollars == 0
    with pytest.raises(ConfigError):
        estimate_cost(FakeBackend(), [], 5)
    with pytest.raises(ConfigError):
        estimate_cost(FakeBackend(), make_queries(1), -1)
    with pytest.raises(UnknownPriceError):
        estimate_cost(FakeBackend(is_local=False, model="mystery"), make_queries(1), 5)
    paid = estimate_cost(FakeBackend(is_local=False, model="gpt-4o-mini"), make_queries(3), 1000)
    assert paid.dollars == pytest.approx(
        (paid.prompt_tokens * 0.15 + paid.completion_tokens * 0.6) / 1e6
    )
