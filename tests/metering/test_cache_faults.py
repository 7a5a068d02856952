"""The query cache under faults: damaged files, misplaced answers, processes racing on a miss.

Every test counts payments from the FakeBackend call log: a damaged cache must say so, once,
and must not pay the same queries again run after run; two processes that miss the same query
at the same moment must pay for it once.
"""

from __future__ import annotations

import json
import logging
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import diskcache
import pytest

from bdpl import FakeBackend
from bdpl.errors import AuthenticationError, CacheDamagedError
from bdpl.metering import Meter, QueryCache, cache_key, check_cache, repair_cache
from bdpl.types import LabelScores, Query
from tests.metering.helpers import LABELS, ROOT, logged_queries, make_queries, workload

FAKE_ID = FakeBackend().identity


def long_queries(n: int) -> list[Query]:
    """Queries long enough that a few hundred fill many database pages."""
    return [Query(f"q{i} " + "a fairly long review of a film " * 8, ".", LABELS) for i in range(n)]


def run_meter(cache_dir: Path, queries: Sequence[Query], log: Path) -> None:
    with QueryCache(cache_dir) as cache, Meter(FakeBackend(call_log=log), cache=cache) as meter:
        meter.score(queries)


def fill(cache_dir: Path, queries: Sequence[Query], log: Path) -> None:
    """Pay ``queries`` into the cache and leave it as every process exiting would: the
    write-ahead log checkpointed into ``cache.db`` (the file the faults below damage)."""
    run_meter(cache_dir, queries, log)
    con = sqlite3.connect(cache_dir / "cache.db")
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def paid(log: Path) -> int:
    return len(logged_queries(log)) if log.exists() else 0


def test_a_cache_truncated_to_zero_bytes_is_a_loud_error_and_pays_nothing(tmp_path: Path) -> None:
    cache_dir, qs = tmp_path / "c", make_queries(40)
    fill(cache_dir, qs, tmp_path / "fill.jsonl")
    (cache_dir / "cache.db").write_bytes(b"")
    log = tmp_path / "after.jsonl"
    for _ in range(2):  # every run says so; none pays
        with pytest.raises(CacheDamagedError) as info:
            run_meter(cache_dir, qs, log)
        assert info.value.path == str(cache_dir)
        assert "empty (0 bytes)" in str(info.value) and "repair_cache" in str(info.value)
        assert paid(log) == 0
    assert check_cache(cache_dir).problem == "cache.db is empty (0 bytes)"
    report = repair_cache(cache_dir)
    assert (report.kept, report.dropped) == (0, 0)
    assert report.moved_to.name.startswith("c.damaged-") and report.moved_to.is_dir()
    run_meter(cache_dir, qs, log)
    run_meter(cache_dir, qs, log)
    assert paid(log) == 40  # lost answers paid again once, then hits


def test_a_deleted_or_emptied_database_is_damage_not_a_fresh_cache(tmp_path: Path) -> None:
    cache_dir = tmp_path / "c"
    fill(cache_dir, make_queries(5), tmp_path / "fill.jsonl")
    (cache_dir / "cache.db").unlink()
    with pytest.raises(CacheDamagedError, match=r"cache\.db is missing"):
        QueryCache(cache_dir)
    (cache_dir / "cache.db").write_bytes(b"")
    with pytest.raises(CacheDamagedError, match="0 bytes"):
        QueryCache(cache_dir)
    # A database replaced by an empty one (it held 5 answers when last closed).
    for f in cache_dir.glob("cache.db*"):
        f.unlink()
    with diskcache.Cache(str(tmp_path / "empty")):
        pass
    (tmp_path / "empty" / "cache.db").rename(cache_dir / "cache.db")
    with pytest.raises(CacheDamagedError, match="holds no answers, but held 5"):
        QueryCache(cache_dir)


def test_random_bytes_in_the_middle_are_reported_repaired_and_paid_once(tmp_path: Path) -> None:
    cache_dir, qs = tmp_path / "c", long_queries(400)
    fill(cache_dir, qs, tmp_path / "fill.jsonl")
    db = cache_dir / "cache.db"
    data = db.read_bytes()
    # Random bytes over two pages in the middle: one that holds answers (so some are lost)
    # and the next one, whatever it holds.
    page = data.index(b'"scores"', len(data) // 2) // 4096 * 4096
    with db.open("r+b") as f:
        f.seek(page)
        f.write(random.Random(0).randbytes(2 * 4096))
    log = tmp_path / "after.jsonl"
    for _ in range(2):  # found at open or at the first lookup of a damaged page
        with pytest.raises(CacheDamagedError, match="malformed"):
            run_meter(cache_dir, qs, log)
    assert paid(log) == 0  # refused before paying anything
    report = check_cache(cache_dir)
    assert not report.ok and report.unreadable > 0 and report.integrity != ("ok",)
    assert report.entries + report.unreadable == 400 and report.verified == report.entries
    assert "DAMAGED" in str(report)
    fixed = repair_cache(cache_dir)
    assert (fixed.kept, fixed.dropped) == (report.entries, report.unreadable)
    assert check_cache(cache_dir).ok
    for _ in range(3):  # the lost answers are paid once, not run after run
        run_meter(cache_dir, qs, log)
        assert paid(log) == report.unreadable
    assert len(set(logged_queries(log))) == report.unreadable


@pytest.mark.parametrize("method", ["get", "set"])
def test_damage_found_by_a_read_or_write_is_logged_once_and_raised_at_every_lookup(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    q, s = make_queries(1)[0], LabelScores((-1.0, -2.0))
    with QueryCache(tmp_path) as cache:

        def damaged(*args: object, **kwargs: object) -> None:
            raise sqlite3.DatabaseError("database disk image is malformed")

        monkeypatch.setattr(cache._cache, method, damaged)
        with caplog.at_level(logging.ERROR):
            for _ in range(2):
                cache.put_many("b", [(q, s)])  # paid answers: a write is reported, not raised
                with pytest.raises(CacheDamagedError, match=r"failed: DatabaseError.*malformed"):
                    cache.get("b", q)
        assert caplog.text.count("is damaged") == 1
        # Nothing more is written into a damaged database.
        assert cache.stats().write_errors == (2 if method == "set" else 1)


def test_a_value_moved_to_another_key_is_not_served_and_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    q1, q2 = make_queries(2)
    s1, s2 = LabelScores((-1.0, -2.0)), LabelScores((-2.0, -1.0))
    with QueryCache(tmp_path) as cache:
        cache.put_many(FAKE_ID, [(q1, s1), (q2, s2)])
    k1, k2 = cache_key(FAKE_ID, q1), cache_key(FAKE_ID, q2)
    with diskcache.Cache(str(tmp_path)) as raw:  # swap the two stored answers
        v1, v2 = raw.get(k1), raw.get(k2)
        raw.set(k1, v2)
        raw.set(k2, v1)
    report = check_cache(tmp_path)
    assert (report.mismatched, report.verified, report.ok) == (2, 0, False)
    log = tmp_path / "calls.jsonl"
    with caplog.at_level(logging.WARNING), QueryCache(tmp_path) as cache:
        assert cache.get(FAKE_ID, q1) is None and cache.get(FAKE_ID, q2) is None
        assert cache.stats().bad_entries == 2
        assert "does not belong to its key" in caplog.text
        with Meter(FakeBackend(call_log=log), cache=cache) as meter:
            meter.score([q1, q2])  # paid again, once: the fresh answers replace the bad ones
            meter.score([q1, q2])
    assert paid(log) == 2 and check_cache(tmp_path).ok


def test_answers_stored_before_digests_are_still_served(tmp_path: Path) -> None:
    q, s = make_queries(1)[0], LabelScores((-1.0, -2.0))
    old = json.dumps({"v": 1, "scores": s.to_json()}, separators=(",", ":"))
    with diskcache.Cache(str(tmp_path)) as raw:
        raw.set(cache_key("b", q), old)
    with QueryCache(tmp_path) as cache:
        assert cache.get("b", q) == s
    assert (check_cache(tmp_path).legacy, check_cache(tmp_path).ok) == (1, True)
    assert repair_cache(tmp_path).kept == 1
    report = check_cache(tmp_path)
    assert (report.verified, report.legacy) == (1, 0)  # repair added the digest


# -- one payer per query across meters, threads and processes --------------------------------


def test_two_meters_in_two_threads_pay_each_query_once(tmp_path: Path) -> None:
    qs = make_queries(30)
    fake = FakeBackend(latency=0.05, max_batch_size=5)
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with Meter(fake, cache=QueryCache(tmp_path)) as meter:
                start.wait()
                assert len(meter.score(qs)) == 30
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    asked = [q for call in fake.calls for q in call]
    assert sorted(asked, key=str) == sorted(qs, key=str)  # each query paid exactly once


def driver(cache_dir: Path, log: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "tests.metering.helpers"),
            *("--cache", str(cache_dir), "--call-log", str(log), *args),
        ],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(p: subprocess.Popen[str]) -> dict[str, int]:
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    assert "Traceback" not in err and "WARNING" not in err
    return json.loads(out)  # type: ignore[no-any-return]


@pytest.mark.parametrize("rep", range(3))
def test_two_processes_missing_the_same_queries_at_once_pay_each_once(
    tmp_path: Path, rep: int
) -> None:
    cache_dir, logs = tmp_path / "shared", [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    start = f"{time.time() + 1.5:.3f}"  # both interpreters are up by then
    args = ("--seed", "0", "--latency", "0.05", "--concurrency", "4", "--start-at", start)
    procs = [driver(cache_dir, log, *args) for log in logs]
    results = [finish(p) for p in procs]
    both = [q for log in logs if log.exists() for q in logged_queries(log)]
    assert len(both) == len(set(both))  # no query paid twice, by either or by both
    distinct = {q for batch in workload(0) for q in batch}
    assert results[0]["paid"] + results[1]["paid"] == len(both) == len(distinct)


def live_leases(cache_dir: Path) -> int:
    if not (cache_dir / "leases.db").exists():
        return 0
    con = sqlite3.connect(cache_dir / "leases.db", timeout=30)
    try:
        return int(con.execute("SELECT count(*) FROM Lease WHERE holder != ''").fetchone()[0])
    except sqlite3.OperationalError:  # the table is being created
        return 0
    finally:
        con.close()


def wait_for_lease(cache_dir: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if live_leases(cache_dir):
            return
        time.sleep(0.05)
    raise AssertionError("the first process never leased its queries")


def test_the_leases_of_a_killed_process_are_taken_over_and_paid_once(tmp_path: Path) -> None:
    cache_dir = tmp_path / "c"
    holder = driver(cache_dir, tmp_path / "a.jsonl", "--queries", "10", "--latency", "60")
    wait_for_lease(cache_dir)
    holder.send_signal(signal.SIGKILL)
    holder.communicate(timeout=10)
    t0 = time.monotonic()
    result = finish(driver(cache_dir, tmp_path / "b.jsonl", "--queries", "10"))
    # Its holder is gone (same host), so no wait for the 300 s lease timeout.
    assert result["paid"] == 10 and time.monotonic() - t0 < 60
    assert not (tmp_path / "a.jsonl").exists() and paid(tmp_path / "b.jsonl") == 10


def test_the_lease_of_a_stuck_process_expires_then_another_pays(tmp_path: Path) -> None:
    cache_dir = tmp_path / "c"
    holder = driver(
        cache_dir, tmp_path / "a.jsonl", "--queries", "10", "--latency", "60",
        "--lease-timeout", "2",
    )  # fmt: skip
    try:
        wait_for_lease(cache_dir)
        holder.send_signal(signal.SIGSTOP)  # alive, but not paying: only the timeout helps
        t0 = time.monotonic()
        result = finish(driver(cache_dir, tmp_path / "b.jsonl", "--queries", "10"))
        waited = time.monotonic() - t0
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.communicate(timeout=10)
    assert result["paid"] == 10 and paid(tmp_path / "b.jsonl") == 10
    assert 1.0 <= waited < 60  # waited for the lease (2 s from when it was taken), not 60 s


class FailingFake(FakeBackend):
    """A fake whose every call fails after ``latency`` (same identity, so same cache keys)."""

    def score(self, queries: Sequence[Query]) -> list[LabelScores]:
        time.sleep(self.latency)
        raise AuthenticationError("no")


def test_a_query_whose_payer_failed_is_paid_by_the_one_waiting_for_it(tmp_path: Path) -> None:
    qs = make_queries(4)
    cache = QueryCache(tmp_path)
    failed: list[BaseException] = []

    def fail() -> None:
        with Meter(FailingFake(latency=0.5), cache=cache) as m:
            try:
                m.score(qs)
            except AuthenticationError as exc:
                failed.append(exc)

    t = threading.Thread(target=fail)
    t.start()
    wait_for_lease(tmp_path)
    fake = FakeBackend()
    with Meter(fake, cache=cache) as meter:
        got = meter.score(qs)
        assert meter.stats.paid_queries == 4
    t.join(30)
    assert len(failed) == 1 and len(got) == 4
    assert [q for call in fake.calls for q in call] == qs
    assert live_leases(tmp_path) == 0  # every lease released, the failed ones included
    cache.close()


def test_a_broken_lease_database_warns_once_and_pays_without_leases(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "leases.db").mkdir()  # not a file SQLite can open
    fake = FakeBackend()
    with caplog.at_level(logging.WARNING), Meter(fake, cache=QueryCache(tmp_path)) as meter:
        meter.score(make_queries(3))
        meter.score(make_queries(6))
        assert meter.stats.paid_queries == 6 and meter.stats.hits == 3
    assert caplog.text.count("the lease database failed") == 1


def test_an_answer_altered_in_place_is_not_served(tmp_path: Path) -> None:
    q = make_queries(1)[0]
    with QueryCache(tmp_path) as cache:
        cache.put_many("b", [(q, LabelScores((-1.25, -2.5)))])
    with diskcache.Cache(str(tmp_path)) as raw:  # still valid JSON and a valid answer
        k = cache_key("b", q)
        raw.set(k, raw.get(k).replace("-1.25", "-1.75"))
    with QueryCache(tmp_path) as cache:
        assert cache.get("b", q) is None and cache.stats().bad_entries == 1
    assert check_cache(tmp_path).mismatched == 1


def test_an_open_cache_checks_and_repairs_its_own_directory(tmp_path: Path) -> None:
    q, s = make_queries(1)[0], LabelScores((-1.0, -2.0))
    with QueryCache(tmp_path / "c") as cache:
        cache.put_many("b", [(q, s)])
        assert cache.check().ok and cache.check().verified == 1
        report = cache.repair()
        assert (report.kept, report.dropped) == (1, 0) and "repaired" in str(report)
        assert cache.get("b", q) == s  # reopened on the fresh copy
        cache.put_many("b", [(make_queries(2)[1], s)])
        assert cache.stats().entries == 2
