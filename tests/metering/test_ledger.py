"""Ledger: durable JSONL appends, no interleaving, torn lines tolerated, summaries."""

from __future__ import annotations

import logging
import multiprocessing
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from bdpl.metering import Ledger, LedgerRecord


def rec(i: int, kind: str = "call", backend: str = "b") -> LedgerRecord:
    return LedgerRecord(
        kind, "2026-01-01T00:00:00Z", backend, "m", 4, billed_queries=4 if kind == "call" else 0,
        prompt_tokens=10 * i, completion_tokens=i, requests=1, dollars=0.5 * i,
        saved_dollars=0.25 if kind == "hit" else 0.0, attempts=1,
    )  # fmt: skip


def test_append_read_summary(tmp_path: Path) -> None:
    with Ledger(tmp_path / "sub" / "l.jsonl") as ledger:
        for i in range(3):
            ledger.append(rec(i))
        ledger.append(rec(9, "hit"))
        ledger.append(rec(1, backend="other"))
        assert [r.prompt_tokens for r in ledger.records()] == [0, 10, 20, 90, 10]
        s = ledger.summary()
    assert set(s) == {("b", "m"), ("other", "m")}
    b = s[("b", "m")]
    assert (b.calls, b.billed_queries, b.hit_queries, b.prompt_tokens) == (3, 12, 4, 120)
    assert (b.dollars, b.saved_dollars) == (6.0, 0.25)
    with Ledger(tmp_path / "sub" / "l.jsonl") as ledger:
        table = ledger.report().splitlines()
    assert table[0].split()[:3] == ["backend", "model", "calls"]
    assert table[1].split()[:3] == ["b", "m", "3"] and table[2].split()[:3] == ["other", "m", "1"]
    assert table[3].split()[:2] == ["total", "4"] and table[3].split()[-2:] == [
        "$6.5000",
        "$0.2500",
    ]


def test_torn_last_line_is_skipped_and_not_glued_to_the_next(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "l.jsonl"
    with Ledger(path) as ledger:
        ledger.append(rec(1))
    with open(path, "ab") as f:
        f.write(b'{"kind": "call", "time": "2026')  # a crash mid-write
    with caplog.at_level(logging.WARNING):
        assert len(Ledger.read(path)) == 1
    assert "line 2 skipped" in caplog.text
    with Ledger(path) as ledger:  # a restarted run appends after the torn line
        ledger.append(rec(2))
        assert [r.prompt_tokens for r in ledger.records()] == [10, 20]


def _append_many(path: str, tag: str, n: int) -> None:
    with Ledger(path) as ledger:
        for i in range(n):
            ledger.append(rec(i, backend=tag))


def test_concurrent_writers_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "l.jsonl"
    threads = [
        threading.Thread(target=_append_many, args=(str(path), f"t{k}", 50)) for k in range(4)
    ]
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_append_many, args=(str(path), f"p{k}", 50)) for k in range(2)]
    for w in [*threads, *procs]:
        w.start()
    for w in [*threads, *procs]:
        w.join()
    assert all(p.exitcode == 0 for p in procs)
    lines = path.read_text().splitlines()
    assert len(lines) == 300
    records = Ledger.read(path)
    assert len(records) == 300
    assert {k: v.calls for k, v in Ledger(path).summary().items()} == {
        (t, "m"): 50 for t in ("t0", "t1", "t2", "t3", "p0", "p1")
    }


def test_closed_ledger_refuses_to_write(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.jsonl")
    ledger.close()
    with pytest.raises(ValueError, match="closed"):
        ledger.append(rec(1))


def test_a_short_write_on_a_full_disk_is_an_error_not_a_lost_record(tmp_path: Path) -> None:
    # A real short write: the file-size limit (RLIMIT_FSIZE) lets the record in only partly.
    path = tmp_path / "l.jsonl"
    script = f"""
import resource, signal
from bdpl.metering import Ledger, LedgerRecord
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (40, 40))
ledger = Ledger({str(path)!r})
try:
    ledger.append(LedgerRecord("call", "t", "b", "m", 1))
except OSError as exc:
    print("OSError", exc)
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=Path(__file__).resolve().parents[2],  # the checkout's bdpl
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.startswith("OSError ledger ") and "short write (40 of " in done.stdout
    assert Ledger.read(path) == []  # the torn line is skipped on reading, never half-counted


def test_a_record_with_a_lone_surrogate_is_written_not_lost(tmp_path: Path) -> None:
    with Ledger(tmp_path / "l.jsonl") as ledger:
        ledger.append(rec(1, backend="b\udcff"))
        [back] = ledger.records()
    assert back.backend.startswith("b") and back.prompt_tokens == 10
