"""Shared test doubles and a deterministic workload for the metering tests.

Also a small command-line driver (``python -m tests.metering.helpers ...``) that the
subprocess tests run: it scores a fixed, optimizer-like sequence of batches through a
:class:`Meter` backed by a :class:`FakeBackend`, so that a run can be killed and restarted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bdpl.backends.base import Capabilities
from bdpl.errors import AuthenticationError
from bdpl.metering import Meter, QueryCache, RetryPolicy
from bdpl.optimizer import Optimizer
from bdpl.tasks import Dataset, Example, get_task
from bdpl.testing import FakeBackend, Planted
from bdpl.types import LabelScores, Query, Usage

ROOT = Path(__file__).resolve().parents[2]
LABELS = (" bad", " good")
WORDS = ("alpha", "beta", "gamma", "delta", "eps", "zeta")
TEXTS = tuple(f"review {i} says something about the film" for i in range(24))

# Tiny waits so retry tests take milliseconds.
FAST_RETRY = RetryPolicy(max_attempts=4, initial_wait=0.001, max_wait=0.005, jitter=0.001)


FIT_WORDS = [f"w{i}" for i in range(12)]


def fit_data() -> tuple[Dataset, Dataset]:
    """A small SST-2-like train and dev set."""
    task = get_task("sst2")
    ex = [Example(f"review {i} of a film", label=str(i % 2)) for i in range(24)]
    return Dataset(task, tuple(ex[:16])), Dataset(task, tuple(ex[16:]))


def fit_backend(**kwargs: object) -> FakeBackend:
    """A planted fake that knows every example of :func:`fit_data`."""
    plant = Planted.for_dataset(fit_data(), FIT_WORDS, prompt_length=2, seed=0)
    return FakeBackend(planted=plant, **kwargs)  # type: ignore[arg-type]


def fit_optimizer(backend: FakeBackend, **metering: Any) -> Optimizer:
    """The reference-like optimizer settings the fit tests use (small, a few seconds).

    ``metering``: ``budget``, ``ledger`` and ``cache`` for the optimizer's meter.
    """
    return Optimizer(
        backend,
        candidates=FIT_WORDS,
        prompt_length=2,
        sample_size=8,
        batch_size=8,
        epochs=3,
        seed=0,
        **metering,
    )


def make_queries(n: int, tag: str = "q") -> list[Query]:
    """``n`` distinct queries."""
    return [Query(f"{tag} {i} It was", ".", LABELS) for i in range(n)]


def workload(
    seed: int = 0, rounds: int = 12, prompts: int = 4, batch: int = 8
) -> list[list[Query]]:
    """Batches like an optimizer's: sampled two-word prompts on minibatches (with repeats)."""
    rng = random.Random(seed)
    out = []
    for _ in range(rounds):
        examples = rng.sample(TEXTS, batch)
        batch_queries = []
        for _ in range(prompts):
            prompt = " ".join(rng.choice(WORDS) for _ in range(2))
            batch_queries += [Query(f"{prompt} {t} It was", ".", LABELS) for t in examples]
        out.append(batch_queries)
    return out


def logged_queries(call_log: Path) -> list[str]:
    """Every query in a FakeBackend call log, as canonical JSON, in call order."""
    out = []
    for line in call_log.read_text().splitlines():
        for q in json.loads(line)["queries"]:
            out.append(json.dumps(q, sort_keys=True))
    return out


class KeyedStub:
    """A paid-looking backend holding an API key, that fails with the key in its message.

    Calls listed in ``fail_at`` raise :class:`AuthenticationError` (not retryable) with the
    key echoed, as a careless provider or SDK might; the rest answer.
    """

    capabilities = Capabilities(model="gpt-4o-mini", max_batch_size=4)

    def __init__(self, api_key: str, fail_at: Sequence[int] = ()) -> None:
        self.api_key = api_key
        self.fail_at = set(fail_at)
        self.n = 0

    def secrets(self) -> tuple[str, ...]:
        return (self.api_key,)

    @property
    def identity(self) -> str:
        return "stub:gpt-4o-mini"

    def __repr__(self) -> str:  # careless on purpose: a meter must never print its backend
        return f"KeyedStub(api_key={self.api_key!r})"

    def score(self, queries: Sequence[Query]) -> list[LabelScores]:
        self.n += 1
        if self.n - 1 in self.fail_at:
            raise AuthenticationError(
                f"Incorrect API key provided: {self.api_key}. Headers: "
                f"{{'Authorization': 'Bearer {self.api_key}'}}"
            )
        return [LabelScores((-0.5, -0.9), Usage(7, 1, int(i == 0))) for i, _ in enumerate(queries)]


def run_driver(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run this module as a script in a fresh interpreter, from the repository root."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "tests.metering.helpers", *args],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--cache", required=True)
    p.add_argument("--call-log", required=True)
    p.add_argument("--ledger")
    p.add_argument("--die-at-call", type=int)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--latency", type=float, default=0.0)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--fit", action="store_true", help="run an Optimizer fit, not batches")
    p.add_argument("--queries", type=int, help="ask make_queries(N) in one batch instead")
    p.add_argument("--lease-timeout", type=float, default=300.0)
    p.add_argument("--start-at", type=float, help="sleep until this time.time() first")
    a = p.parse_args()
    if a.start_at is not None:
        time.sleep(max(0.0, a.start_at - time.time()))
    if a.fit:
        fake = fit_backend(call_log=a.call_log, die_at_call=a.die_at_call, max_concurrency=1)
        opt = fit_optimizer(fake, cache=QueryCache(a.cache), ledger=a.ledger)
        result = opt.fit(*fit_data())
        s = opt.meter.stats
        print(json.dumps({"prompt": result.prompt, "paid": s.paid_queries, "hits": s.hits}))
        return
    fake = FakeBackend(
        call_log=a.call_log, die_at_call=a.die_at_call, max_batch_size=5, latency=a.latency
    )
    cache = QueryCache(a.cache, lease_timeout=a.lease_timeout)
    batches = [make_queries(a.queries)] if a.queries else workload(a.seed, a.rounds)
    with Meter(fake, cache=cache, ledger=a.ledger, max_concurrency=a.concurrency) as meter:
        for batch in batches:
            meter.score(batch)
        s = meter.stats
    cache.close()
    print(json.dumps({"paid": s.paid_queries, "hits": s.hits, "calls": s.calls}))


if __name__ == "__main__":
    _main()
