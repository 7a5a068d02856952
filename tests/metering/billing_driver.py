"""A paid run that the SIGKILL tests kill and restart: ``python -m tests.metering.billing_driver``.

It scores the optimizer-like :func:`~tests.metering.helpers.workload` through a :class:`Meter`
over :class:`~bdpl.backends.openai_completion.OpenAIBackend` against a
:class:`~tests.metering.billing_server.BillingServer`, with a budget rebuilt from the ledger
(:meth:`Budget.from_ledger`) as a restarted job would, until the workload is done or the budget
stops it; then prints its stats as JSON.
"""

from __future__ import annotations

import argparse
import json

from bdpl.backends.openai_completion import OpenAIBackend
from bdpl.errors import BudgetExceededError
from bdpl.metering import Budget, Meter, Price, QueryCache, RetryPolicy
from tests.backends.openai_fakes import CANARY_KEY
from tests.metering.helpers import workload

PRICE = Price(input_per_1m=2.0, output_per_1m=2.0)


def completion_backend(
    base_url: str, *, batch: int, concurrency: int, timeout: float = 2.0
) -> OpenAIBackend:
    """The paid backend of the money tests: every label is in the fake model's top-k."""
    return OpenAIBackend(
        "davinci-002",
        api_key=CANARY_KEY,
        base_url=base_url,
        top_logprobs=18,
        timeout=timeout,
        max_batch_size=batch,
        max_concurrency=concurrency,
        fallback="none",
    )


def _main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--base-url", required=True)
    p.add_argument("--cache", required=True)
    p.add_argument("--ledger", required=True)
    p.add_argument("--max-dollars", type=float, required=True)
    p.add_argument("--concurrency", type=int, default=4)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--rounds", type=int, default=12)
    a = p.parse_args()
    backend = completion_backend(a.base_url, batch=a.batch, concurrency=a.concurrency)
    budget = Budget.from_ledger(a.ledger, max_dollars=a.max_dollars)
    stop = None
    with Meter(
        backend,
        cache=QueryCache(a.cache),
        ledger=a.ledger,
        budget=budget,
        price=PRICE,
        retry=RetryPolicy(max_attempts=2, initial_wait=0.0, jitter=0.0),
    ) as meter:
        try:
            for batch in workload(0, a.rounds):
                meter.score(batch)
        except BudgetExceededError as exc:
            stop = exc.limit
        s = meter.stats
    print(json.dumps({"paid": s.paid_queries, "hits": s.hits, "stop": stop}))


if __name__ == "__main__":
    _main()
