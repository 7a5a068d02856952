"""The metering layer under a real Optimizer fit: kill and restart, budget stop."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from bdpl.metering import Budget, Ledger, QueryCache
from tests.metering.helpers import fit_backend, fit_data, fit_optimizer, logged_queries, run_driver


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[str], list[str]]:
    """The prompt and paid queries of the same fit, never killed (in this process)."""
    tmp = tmp_path_factory.mktemp("whole")
    fake = fit_backend(call_log=tmp / "calls.jsonl", max_concurrency=1)
    result = fit_optimizer(fake, cache=QueryCache(tmp / "cache")).fit(*fit_data())
    return result.prompt, logged_queries(tmp / "calls.jsonl")


@pytest.mark.parametrize("die_at", [1, 6])
def test_fit_killed_and_restarted_pays_for_nothing_twice(
    tmp_path: Path, die_at: int, uninterrupted: tuple[list[str], list[str]]
) -> None:
    args = ["--fit", "--cache", str(tmp_path / "cache"), "--ledger", str(tmp_path / "l.jsonl")]
    logs = tmp_path / "calls1.jsonl", tmp_path / "calls2.jsonl"
    killed = run_driver(*args, "--call-log", str(logs[0]), "--die-at-call", str(die_at))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(logs[0].read_text().splitlines()) == die_at
    done = run_driver(*args, "--call-log", str(logs[1]))
    assert done.returncode == 0, done.stderr

    first, second = logged_queries(logs[0]), logged_queries(logs[1])
    assert first and second
    assert not set(first) & set(second)  # zero repeated paid queries
    # The restarted fit replays the same run (cached answers equal fresh ones) and ends with
    # the prompt of an uninterrupted fit, having paid for exactly the same queries in all.
    prompt, whole = uninterrupted
    assert json.loads(done.stdout)["prompt"] == prompt
    assert sorted(first + second) == sorted(whole)
    records = Ledger.read(tmp_path / "l.jsonl")
    assert sum(r.billed_queries for r in records if r.kind == "call") == len(whole)
    # The call the kill interrupted stays in the ledger as an intent no call settled, charged
    # at its estimate (the fake's estimate is exact), so a budget from the ledger counts it.
    [in_flight] = [r for r in records if r.kind == "intent"]
    assert in_flight.unconfirmed and 0 < in_flight.billed_queries <= 64
    assert in_flight.prompt_tokens > 0 and in_flight.requests == 1


@pytest.mark.parametrize("limit", [100, 333])
def test_budget_stops_fit_cleanly_with_the_best_prompt_so_far(tmp_path: Path, limit: int) -> None:
    fake = fit_backend(call_log=tmp_path / "calls.jsonl")
    opt = fit_optimizer(fake, cache=QueryCache(tmp_path / "c"), budget=Budget(max_queries=limit))
    result = opt.fit(*fit_data())
    assert result.stop_reason == "budget: queries"
    paid = len(logged_queries(tmp_path / "calls.jsonl"))
    assert paid <= limit and paid == opt.meter.stats.paid_queries
    assert len(result.prompt) == 2
