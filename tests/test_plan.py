"""FitPlan: the plan fit walks is the plan estimate_cost prices, and both match what is sent."""

from __future__ import annotations

import ast
import itertools
from collections.abc import Sequence
from pathlib import Path

import pytest

import bdpl
from bdpl.errors import ConfigError
from bdpl.metering import Meter
from bdpl.optimizer import Optimizer
from bdpl.plan import FitPlan, estimate_fit_cost
from bdpl.tasks import Dataset, Example, get_task
from bdpl.testing import FakeBackend, FaultyBackend
from bdpl.types import LabelScores, Query, Usage
from tests.metering.helpers import fit_backend, fit_data, fit_optimizer

WORDS = [f"word{i}" for i in range(40)]


def sst2(n: int, offset: int = 0) -> Dataset:
    examples = tuple(Example(f"review {i} of a film", label=str(i % 2)) for i in range(n))
    return Dataset(get_task("sst2"), examples[offset:])


@pytest.mark.parametrize(
    ("n_train", "n_dev", "batch_size", "sample_size", "epochs"),
    [(16, 0, 8, 2, 1), (17, 5, 8, 3, 2), (3, 4, 128, 20, 3), (0, 0, 4, 2, 1), (9, 1, 1, 2, 2)],
)
def test_plan_counts(
    n_train: int, n_dev: int, batch_size: int, sample_size: int, epochs: int
) -> None:
    plan = FitPlan.for_fit(
        n_train=n_train, n_dev=n_dev, batch_size=batch_size, sample_size=sample_size, epochs=epochs
    )
    assert sum(plan.batches) == n_train and all(0 < b <= batch_size for b in plan.batches)
    assert plan.steps == epochs * -(-n_train // batch_size)
    assert plan.max_queries == epochs * (sample_size * n_train + n_dev) == sum(plan.calls)
    assert len(plan.calls) == epochs * (plan.steps_per_epoch + (n_dev > 0))
    bounds = plan.batch_bounds
    assert [hi - lo for lo, hi in bounds] == list(plan.batches)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))


@pytest.mark.parametrize("bad", [{"n_train": -1}, {"n_dev": 1.5}, {"batch_size": 0}])
def test_plan_rejects_bad_counts(bad: dict[str, object]) -> None:
    kwargs: dict[str, object] = {
        "n_train": 4,
        "n_dev": 0,
        "batch_size": 2,
        "sample_size": 2,
        "epochs": 1,
        **bad,
    }
    with pytest.raises(ConfigError, match=next(iter(bad))):
        FitPlan.for_fit(**kwargs)  # type: ignore[arg-type]


class CallSizes(Meter):
    """A meter that records the size of every metered call the optimizer makes."""

    def __init__(self, backend: FakeBackend) -> None:
        super().__init__(backend, cache=False)
        self.sizes: list[int] = []

    def score(self, queries: Sequence[Query]) -> list[LabelScores]:
        self.sizes.append(len(queries))
        return super().score(queries)


@pytest.mark.parametrize(("n_train", "n_dev", "batch_size"), [(16, 0, 8), (21, 6, 8), (5, 3, 16)])
def test_fit_sends_exactly_its_plan(n_train: int, n_dev: int, batch_size: int) -> None:
    """Near-uniform sampling over many candidates draws no duplicate prompt, so the worst case
    is what is sent: one backend call per metered call (the fake takes them whole)."""
    fake = FakeBackend(max_batch_size=1000)
    meter = CallSizes(fake)
    train = sst2(n_train)
    dev = sst2(n_train + n_dev, offset=n_train) if n_dev else None
    opt = Optimizer(
        meter=meter,
        candidates=WORDS,
        prompt_length=4,
        sample_size=3,
        batch_size=batch_size,
        epochs=2,
        learning_rate=1e-6,
    )
    plan = opt.plan(len(train), n_dev)
    result = opt.fit(train, dev)
    assert meter.sizes == list(plan.calls)
    assert [len(c) for c in fake.calls] == list(plan.calls)
    assert result.queries == plan.max_queries == opt.max_queries(n_train, n_dev)
    assert result.steps == plan.steps


def test_estimate_bounds_a_fit(tmp_path: Path) -> None:
    fake = fit_backend(is_local=False, model="gpt-4o-mini")
    opt = fit_optimizer(fake, cache=False)
    train, dev = fit_data()
    est = estimate_fit_cost(opt, train, dev)
    assert bdpl.estimate_fit_cost is estimate_fit_cost
    assert opt.estimate_cost(train, dev) == est
    assert fake.call_count == 0
    assert est.queries == opt.max_queries(len(train), len(dev))
    opt.fit(train, dev)
    s = opt.meter.stats
    assert 0 < s.paid_queries <= est.queries
    assert s.prompt_tokens <= est.prompt_tokens and s.requests <= est.requests
    assert 0 < s.dollars <= est.dollars


def test_estimate_needs_candidates() -> None:
    opt = Optimizer(FakeBackend(), cache=False)
    with pytest.raises(ConfigError, match="candidates"):
        estimate_fit_cost(opt, sst2(4))
    assert opt.estimate_cost(sst2(40)).queries == opt.max_queries(40)  # builds them


def emoji_costly(queries: Sequence[Query]) -> Usage:
    """An estimate whose tokenizer makes a short candidate (an emoji) the most expensive."""
    tokens = sum(len(q.before) + 50 * q.before.count("\N{GRINNING FACE}") for q in queries)
    return Usage(tokens, len(queries), 1)


def test_fit_estimate_bounds_by_token_count_not_by_length() -> None:
    train = Dataset(get_task("sst2"), (Example("a film", label="0"), Example("b", label="1")))
    words = ["extraordinarily", "\N{GRINNING FACE}"]
    backend = FaultyBackend(FakeBackend(max_batch_size=8), estimate=emoji_costly)
    with Optimizer(backend, candidates=words, prompt_length=2, epochs=1, cache=False) as opt:
        bound = opt.estimate_cost(train)
    assert backend.attempts == 0  # an estimate must not call the model
    emoji_prompt = [train.task.render(["\N{GRINNING FACE}"] * 2, e) for e in train]
    per_query = emoji_costly(emoji_prompt).prompt_tokens / len(emoji_prompt)
    assert bound.prompt_tokens >= per_query * bound.queries * 0.99


def test_the_metering_layer_knows_nothing_of_the_optimizer() -> None:
    """The fit's estimate lives beside the optimizer, so metering imports neither."""
    root = Path(bdpl.__file__).parent / "metering"
    for path in root.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not {"bdpl.optimizer", "bdpl.plan"} & names, path.name


def test_doctests() -> None:
    import doctest

    import bdpl.plan

    result = doctest.testmod(bdpl.plan)
    assert result.attempted > 0 and result.failed == 0
