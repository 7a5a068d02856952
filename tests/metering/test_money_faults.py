"""Money under faults, against a provider that bills every request it receives.

The provider's own bill (:class:`~tests.metering.billing_server.BillingServer`) is the ground
truth: whatever times out, drops or is killed, it must stay within the budget, and the ledger
must never say less than it.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from bdpl.backends.openai_completion import OpenAIBackend
from bdpl.errors import BackendError, BudgetExceededError
from bdpl.metering import Budget, Ledger, Meter, RetryPolicy
from bdpl.types import Query
from tests.metering.billing_driver import PRICE, completion_backend
from tests.metering.billing_server import FAULTS, BillingServer
from tests.metering.helpers import LABELS, ROOT, workload

NO_WAIT = RetryPolicy(max_attempts=3, initial_wait=0.0, jitter=0.0)


def worker_queries(worker: int, n: int) -> list[Query]:
    return [Query(f"worker {worker} review {i} was fine. It was", ".", LABELS) for i in range(n)]


def _work(backend: OpenAIBackend, worker: int, ledger: Path, budget: Budget) -> None:
    """One worker: its own Meter on the shared budget and ledger, until the budget stops it."""
    qs = worker_queries(worker, 80)
    with Meter(
        backend, cache=False, ledger=ledger, budget=budget, price=PRICE, retry=NO_WAIT
    ) as meter:
        for k in range(0, len(qs), 4):
            try:
                meter.score(qs[k : k + 4])
            except BudgetExceededError:
                return
            except BackendError:  # three late replies in a row: go on with the next batch
                continue


@pytest.mark.parametrize("fault", FAULTS)
def test_a_try_whose_outcome_is_unknown_is_charged_its_estimate(tmp_path: Path, fault: str) -> None:
    """Each fault once, every request billed by the provider: the ledger is never below it."""
    with BillingServer(fault_rate=1.0, faults=(fault,), late_s=0.4) as server:
        backend = completion_backend(server.base_url, batch=4, concurrency=1, timeout=0.2)
        qs = worker_queries(0, 4)
        with Meter(
            backend,
            cache=False,
            ledger=tmp_path / "l.jsonl",
            price=PRICE,
            retry=RetryPolicy(max_attempts=1),
        ) as meter:
            with pytest.raises(BackendError) as info:
                meter.score(qs)
            assert info.value.retryable
            budget = meter.budget.spent
        [record] = Ledger.read(tmp_path / "l.jsonl")
        bound = backend.estimate(qs)
        assert [b.fault for b in server.bills] == [fault]  # billed by the provider
        assert server.billed().total_tokens <= bound.total_tokens
        assert (record.ok, record.unconfirmed, record.billed_queries) == (False, True, 4)
        assert (record.prompt_tokens, record.requests) == (bound.prompt_tokens, bound.requests)
        assert record.dollars == record.unconfirmed_dollars == pytest.approx(PRICE.cost(bound))
        assert budget.dollars == pytest.approx(record.dollars) and budget.queries == 4
        assert server.dollars(PRICE) <= record.dollars


def test_sixteen_workers_with_ten_percent_late_replies_never_pass_the_budget(
    tmp_path: Path,
) -> None:
    """16 concurrent workers, 10% of requests billed and then answered after the client's
    timeout, 20 randomized runs: the provider's bill never passes the budget, and the ledger and
    the budget charge at least what the provider billed."""
    late_requests = 0
    limits: list[float] = []
    # A request the client gave up on may reach the server only after the next run began
    # (on a loaded machine): each bill goes to the run its prompts name (worker // 16).
    with BillingServer(fault_rate=0.1, faults=("late",), late_s=0.25, session_of=_run_of) as server:
        backends = [
            completion_backend(server.base_url, batch=4, concurrency=1, timeout=0.2)
            for _ in range(16)
        ]
        for run in range(20):
            server.session = run
            limit = random.Random(run).uniform(0.0015, 0.003)  # 100-200 paid queries
            limits.append(limit)
            budget = Budget(max_dollars=limit)
            ledger = tmp_path / f"run{run}.jsonl"
            threads = [
                threading.Thread(target=_work, args=(backends[w], w + 16 * run, ledger, budget))
                for w in range(16)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
            assert not any(t.is_alive() for t in threads)
            bills = server.session_bills(run)
            bill = server.dollars(PRICE, run)
            late_requests += sum(b.fault == "late" for b in bills)
            assert bill <= limit + 1e-12, f"run {run}: provider billed ${bill:.6f} > ${limit:.6f}"
            [summary] = Ledger(ledger).summary().values()
            assert bill <= summary.dollars + 1e-12 and summary.dollars <= limit + 1e-12
            billed = server.billed(run)
            assert billed.total_tokens <= summary.prompt_tokens + summary.completion_tokens
            assert summary.dollars == pytest.approx(budget.spent.dollars)
            assert budget.reserved.dollars == pytest.approx(0, abs=1e-12)
            # Every request the provider billed was charged, its queries included.
            assert summary.billed_queries >= sum(len(b.prompts) for b in bills)
        requests = len(server.bills)
    # The server has stopped: every request that reached it is billed. Each run again, with
    # the requests that arrived after its checks.
    for run, limit in enumerate(limits):
        [summary] = Ledger(tmp_path / f"run{run}.jsonl").summary().values()
        assert server.dollars(PRICE, run) <= min(limit, summary.dollars) + 1e-12, f"run {run}"
    # The fault was really injected, at about its rate (the k-th request's draw is fixed).
    assert requests >= 100 and 0.05 <= late_requests / requests <= 0.2


def _run_of(prompts: tuple[str, ...]) -> int:
    """The run of a request: its prompts read ``worker {w} review ...``, ``w = worker + 16 run``."""
    return int(prompts[0].split()[1]) // 16


def _run_driver(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.metering.billing_driver", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_ten_sigkills_with_concurrency_4_stay_within_budget_and_repay_only_calls_in_flight(
    tmp_path: Path,
) -> None:
    """Ten SIGKILLs at random moments of a run with 4 calls in flight, each followed by a
    restart with Budget.from_ledger: the provider's total bill stays within the budget, and
    each kill repays at most the queries of the calls in flight (4 calls of 2 queries)."""
    concurrency, batch = 4, 2
    limit = 0.045  # about 390 of the workload's 1,100 distinct queries: the budget stops it
    args = ["--cache", str(tmp_path / "cache"), "--ledger", str(tmp_path / "l.jsonl")]
    args += ["--max-dollars", str(limit), "--concurrency", str(concurrency)]
    args += ["--batch", str(batch), "--rounds", "40"]
    rng = random.Random(7)
    kills = 0
    with BillingServer(latency_s=0.05) as server:
        args += ["--base-url", server.base_url]
        for attempt in range(20):
            if kills == 10:
                break
            server.session = attempt
            seen = len(server.bills)
            proc = _run_driver(args)
            deadline = time.monotonic() + 30
            while len(server.bills) == seen and proc.poll() is None:
                assert time.monotonic() < deadline, "the run never reached the provider"
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.15))
            proc.send_signal(signal.SIGKILL)
            out, err = proc.communicate(timeout=30)
            if proc.returncode == -signal.SIGKILL:
                kills += 1
            else:
                assert proc.returncode == 0, err
        assert kills == 10, f"only {kills} runs were killed mid-way"
        server.session = 99
        final = _run_driver(args)
        out, err = final.communicate(timeout=60)
        assert final.returncode == 0, err

    bill = server.dollars(PRICE)
    records = Ledger.read(tmp_path / "l.jsonl")
    charged = sum(r.dollars for r in records)
    assert bill <= charged <= limit + 1e-12
    # Queries paid twice: billed in a killed run and again in a later one. A query answered
    # before the kill is cached, so only those in flight at the kill can be billed again.
    runs: dict[int, set[str]] = {}
    for b in server.bills:
        runs.setdefault(b.session, set()).update(b.prompts)
    repaid = {
        i: len(prompts & set().union(*(p for j, p in runs.items() if j > i)))
        for i, prompts in runs.items()
    }
    times = Counter(p for b in server.bills for p in b.prompts)
    assert max(repaid.values()) <= concurrency * batch
    assert sum(n - 1 for n in times.values()) == sum(repaid.values()) <= kills * concurrency * batch
    dangling = [r for r in records if r.kind == "intent"]
    assert dangling and all(r.unconfirmed for r in dangling)
    stats = json.loads(out)
    assert stats["stop"] == "dollars"  # the budget was reached: the bound above is tight
    print(f"repaid per kill {dict(repaid)}; bill ${bill:.6f} of ${limit}; stats {stats}")
    assert {q.before for b in workload(0, 40) for q in b} >= set(times)
