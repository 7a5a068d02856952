"""QueryCache: stable keys, JSON values only, bad entries are misses, safe across processes."""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import subprocess
import sys
from pathlib import Path

import diskcache
import pytest

from bdpl.errors import CacheDamagedError
from bdpl.metering import CACHE_FORMAT_VERSION, QueryCache, cache_key
from bdpl.types import LabelScores, Query, Usage
from tests.metering.helpers import LABELS, ROOT, logged_queries, make_queries, run_driver

Q = Query("The film was", ".", LABELS, ((0, 8),))
S = LabelScores((-1.5, -0.25), Usage(9, 1, 1), exact=False)


def test_round_trip_and_stats(tmp_path: Path) -> None:
    with QueryCache(tmp_path) as cache:
        assert cache.get("b", Q) is None
        cache.put_many("b", [(Q, S)])
        assert cache.get("b", Q) == S
        assert cache.get("other-backend", Q) is None
        assert cache.get("b", Q, {"temperature": 0}) is None  # extra params are in the key
        st = cache.stats()
        assert (st.entries, st.hits, st.misses, st.bad_entries) == (1, 1, 3, 0)
        assert st.size_bytes > 0
        assert cache.clear() == 1
        assert cache.stats().entries == 0


def test_key_is_sha256_of_canonical_json() -> None:
    doc = {"v": CACHE_FORMAT_VERSION, "backend": "b", "query": Q.to_json()}
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert cache_key("b", Q) == hashlib.sha256(text.encode()).hexdigest()
    assert cache_key("b", Query("é", "", LABELS)) != cache_key("b", Query("e", "", LABELS))
    assert cache_key("b", Q) != cache_key("b", Query(Q.before, Q.after, Q.labels))  # spans count


def test_keys_equal_across_processes_with_different_hash_seeds() -> None:
    code = (
        "import json; from bdpl.metering import cache_key; from tests.metering.helpers import "
        "make_queries; print(json.dumps([cache_key('fake', q, {'k': [1, 'ü']}) "
        "for q in make_queries(20)]))"
    )
    keys = []
    for seed in ("1", "2", "random"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env={"PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            check=True,
        )
        keys.append(json.loads(out.stdout))
    here = [cache_key("fake", q, {"k": [1, "ü"]}) for q in make_queries(20)]
    assert keys[0] == keys[1] == keys[2] == here


def test_values_are_json_text_not_pickles(tmp_path: Path) -> None:
    with QueryCache(tmp_path) as cache:
        cache.put_many("b", [(Q, S)])
    con = sqlite3.connect(tmp_path / "cache.db")
    rows = con.execute("SELECT key, raw, mode, value FROM Cache").fetchall()
    con.close()
    [(key, raw, mode, value)] = rows
    assert raw == 1 and mode == 1  # raw str key; raw (inline) value, never MODE_PICKLE (4)
    assert key == cache_key("b", Q)
    text = json.dumps(S.to_json(), separators=(",", ":"))
    digest = hashlib.sha256(f"{key}\n{text}".encode()).hexdigest()
    assert value == f'{{"v":1,"scores":{text},"d":"{digest}"}}'
    assert json.loads(value) == {"v": CACHE_FORMAT_VERSION, "scores": S.to_json(), "d": digest}


@pytest.mark.parametrize(
    "bad",
    [
        "not json{",
        json.dumps({"v": 999, "scores": S.to_json()}),
        json.dumps({"v": CACHE_FORMAT_VERSION, "scores": {"logprobs": [-1.0]}}),
        json.dumps({"v": CACHE_FORMAT_VERSION, "scores": LabelScores((-1.0,)).to_json()}),
        json.dumps({"v": CACHE_FORMAT_VERSION, "scores": LabelScores((0.0, 3.0)).to_json()}),
        b"\x00\x01binary",
        12345,
        {"a pickled": "dict"},
    ],
    ids=["garbage", "version", "fields", "labels", "positive", "bytes", "int", "pickle"],
)
def test_corrupted_or_foreign_entries_are_reported_misses(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, bad: object
) -> None:
    with diskcache.Cache(str(tmp_path)) as raw:  # another program writing into our directory
        raw.set(cache_key("b", Q), bad)
    with caplog.at_level(logging.WARNING), QueryCache(tmp_path) as cache:
        assert cache.get("b", Q) is None
        st = cache.stats()
        assert (st.bad_entries, st.misses, st.hits) == (1, 1, 0)
        assert "ignored" in caplog.text
        cache.put_many("b", [(Q, S)])  # a fresh answer replaces it
        assert cache.get("b", Q) == S


def test_pickled_values_are_never_unpickled(tmp_path: Path) -> None:
    class Boom:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (exec, ("raise SystemExit('unpickled!')",))

    with diskcache.Cache(str(tmp_path)) as raw:
        raw.set(cache_key("b", Q), Boom())
    with QueryCache(tmp_path) as cache:
        assert cache.get("b", Q) is None
        assert cache.stats().bad_entries == 1


def test_a_broken_database_file_is_a_cache_error(tmp_path: Path) -> None:
    (tmp_path / "cache.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CacheDamagedError, match=r"is damaged .*not a database.*repair_cache"):
        QueryCache(tmp_path)


def test_disabled_cache_stores_nothing(tmp_path: Path) -> None:
    cache = QueryCache(tmp_path / "off", enabled=False)
    cache.put_many("b", [(Q, S)])
    assert cache.get("b", Q) is None
    assert not (tmp_path / "off").exists()
    assert cache.stats().entries == 0


def test_two_processes_share_one_cache_at_the_same_time(tmp_path: Path) -> None:
    """Two runs overlap in time on one cache: no corruption, and each other's answers are hits."""
    cache_dir = tmp_path / "shared"
    logs = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    # Seeds 0 and 1 sample overlapping prompts; latency keeps both runs alive together.
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.metering.helpers",
                "--cache",
                str(cache_dir),
                "--call-log",
                str(log),
                "--seed",
                str(seed),
                "--latency",
                "0.01",
                "--concurrency",
                "4",
            ],
            cwd=ROOT,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed, log in ((0, logs[0]), (1, logs[1]))
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert "Traceback" not in err and "WARNING" not in err
        results.append(json.loads(out))
    paid = [logged_queries(log) for log in logs]
    assert all(len(set(p)) == len(p) for p in paid)  # neither paid twice for anything
    con = sqlite3.connect(cache_dir / "cache.db")
    assert con.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    con.close()
    with QueryCache(cache_dir) as cache:
        assert cache.stats().entries == len(set(paid[0]) | set(paid[1]))
    # Everything either run paid for is now a hit for a rerun of either, in a new process.
    for seed in (0, 1):
        again = tmp_path / f"again{seed}.jsonl"
        done = run_driver("--cache", str(cache_dir), "--call-log", str(again), "--seed", str(seed))
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["paid"] == 0 and not again.exists()


def test_a_failed_write_is_reported_not_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    with QueryCache(tmp_path) as cache:

        def full_disk(*args: object, **kwargs: object) -> None:
            raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(cache._cache, "set", full_disk)
        with caplog.at_level(logging.WARNING):
            cache.put_many("b", [(Q, S)])
        assert "could not store 1 answers" in caplog.text
        assert cache.stats().write_errors == 1
        assert cache.get("b", Q) is None
