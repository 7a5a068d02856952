"""A run killed with SIGKILL and restarted with the same arguments pays for nothing twice.

The run is the deterministic driver in :mod:`tests.metering.helpers` (an optimizer-like
sequence of batches through a Meter); the backend's own call log, fsync'ed per answered call,
is the ground truth for what was paid.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from bdpl.metering import Ledger
from tests.metering.helpers import logged_queries, run_driver, workload


@pytest.mark.parametrize("die_at", [0, 3, 11])
def test_sigkill_then_restart_repeats_no_paid_query(tmp_path: Path, die_at: int) -> None:
    args = ["--cache", str(tmp_path / "cache"), "--ledger", str(tmp_path / "ledger.jsonl")]
    first_log, second_log = tmp_path / "calls1.jsonl", tmp_path / "calls2.jsonl"

    killed = run_driver(*args, "--call-log", str(first_log), "--die-at-call", str(die_at))
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    first = logged_queries(first_log) if first_log.exists() else []
    calls_before_kill = len(first_log.read_text().splitlines()) if first_log.exists() else 0
    assert calls_before_kill == die_at

    done = run_driver(*args, "--call-log", str(second_log))
    assert done.returncode == 0, done.stderr
    second = logged_queries(second_log)

    assert not set(first) & set(second)  # zero repeated paid queries
    assert len(set(second)) == len(second)
    # Together they paid for each distinct query of the workload exactly once.
    distinct = {json.dumps(q.to_json(), sort_keys=True) for b in workload() for q in b}
    assert set(first) | set(second) == distinct
    stats = json.loads(done.stdout)
    assert stats["paid"] == len(second)
    # The ledger records every call the backend answered, and the call in flight at the kill
    # as an intent nothing settled, charged at its estimate (at most one chunk of 5).
    records = Ledger.read(tmp_path / "ledger.jsonl")
    calls = [r for r in records if r.kind == "call"]
    assert sum(r.billed_queries for r in calls) == len(first) + len(second)
    [in_flight] = [r for r in records if r.kind == "intent"]
    assert in_flight.unconfirmed and 0 < in_flight.billed_queries <= 5


def test_concurrent_run_killed_repeats_at_most_the_calls_in_flight(tmp_path: Path) -> None:
    """With 4 calls in flight, a kill can lose answers not yet cached: at most those 4 calls."""
    args = ["--cache", str(tmp_path / "cache"), "--concurrency", "4", "--latency", "0.002"]
    first_log, second_log = tmp_path / "calls1.jsonl", tmp_path / "calls2.jsonl"
    killed = run_driver(*args, "--call-log", str(first_log), "--die-at-call", "9")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    done = run_driver(*args, "--call-log", str(second_log))
    assert done.returncode == 0, done.stderr
    repeated = set(logged_queries(first_log)) & set(logged_queries(second_log))
    assert len(repeated) <= 4 * 5  # 4 calls of max_batch_size 5
