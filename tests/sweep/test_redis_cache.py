"""RedisQueryCache against a real redis-server: same values, digests, leases and expiry."""

from __future__ import annotations

import threading
import time

import pytest

from bdpl.errors import CacheError
from bdpl.metering import Meter, QueryCache, cache_key
from bdpl.metering.cache import encode_value
from bdpl.metering.redis_cache import RedisQueryCache
from bdpl.testing import FakeBackend
from bdpl.types import LabelScores, Query
from tests.sweep.conftest import free_port, logged_queries, paid_twice

Q1 = Query("The film was", ".", (" bad", " good"))
Q2 = Query("The plot was", ".", (" bad", " good"))
A1 = LabelScores((-2.0, -0.2))


def test_stores_the_disk_caches_exact_value_and_reads_it_back(redis_db: str, tmp_path) -> None:
    import redis

    key = cache_key("fake", Q1)
    with RedisQueryCache(redis_db) as cache, QueryCache(tmp_path) as disk:
        cache.put_many("fake", [(Q1, A1)])
        disk.put_many("fake", [(Q1, A1)])
        assert cache.get("fake", Q1) == A1
        assert cache.get("fake", Q2) is None
        client = redis.Redis.from_url(redis_db)
        raw = client.get("bdpl:q:" + key)
        client.close()
        assert raw is not None and raw.decode() == encode_value(key, A1)
        assert disk.get("fake", Q1) == cache.get("fake", Q1)
        stats = cache.stats()
        assert (stats.entries, stats.hits, stats.misses) == (1, 2, 1)


def test_an_answer_moved_to_another_key_is_a_miss(redis_db: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_db)
    k1, k2 = cache_key("fake", Q1), cache_key("fake", Q2)
    client.set("bdpl:q:" + k2, encode_value(k1, A1))  # Q1's answer under Q2's key
    client.set("bdpl:q:" + k1, "not json")
    client.close()
    with RedisQueryCache(redis_db) as cache:
        assert cache.get("fake", Q2) is None
        assert cache.get("fake", Q1) is None
        assert cache.stats().bad_entries == 2


def test_one_payer_and_the_other_waits_for_its_answer(redis_db: str) -> None:
    key = cache_key("fake", Q1)
    with RedisQueryCache(redis_db) as a, RedisQueryCache(redis_db) as b:
        mine, others, found = a.claim([(Q1, key)])
        assert (mine, others, found) == ([(Q1, key)], [], {})
        mine, others, found = b.claim([(Q1, key)])
        assert (mine, others, found) == ([], [(Q1, key)], {})
        got: dict[Query, LabelScores] = {}
        waiter = threading.Thread(target=lambda: got.update(b.wait([(Q1, key)])))
        waiter.start()
        time.sleep(0.2)
        assert waiter.is_alive()  # it waits while a holds the lease
        a.put_keyed([(key, A1)])
        a.release([key])
        waiter.join(timeout=10)
        assert got == {Q1: A1}
        # Claimed after the answer was stored: found, nothing to pay.
        assert b.claim([(Q1, key)]) == ([], [], {Q1: A1})


def test_a_dead_holders_lease_expires(redis_db: str) -> None:
    key = cache_key("fake", Q1)
    with RedisQueryCache(redis_db, lease_timeout=0.3) as a, RedisQueryCache(redis_db) as b:
        assert a.claim([(Q1, key)])[0] == [(Q1, key)]  # a "dies" holding it
        start = time.monotonic()
        assert b.wait([(Q1, key)]) == {}  # no answer: the caller pays
        assert 0.1 < time.monotonic() - start < 5
        assert b.claim([(Q1, key)])[0] == [(Q1, key)]
        a.release([key])  # the expired lease is b's now: a must not free it
        with RedisQueryCache(redis_db) as c:
            assert c.claim([(Q1, key)])[1] == [(Q1, key)]


def test_meters_in_threads_pay_each_query_once(redis_db: str, tmp_path) -> None:
    log = tmp_path / "calls.jsonl"
    queries = [Query(f"text {i} was", ".", (" bad", " good")) for i in range(40)]
    errors: list[BaseException] = []

    def score() -> None:
        try:
            with RedisQueryCache(redis_db) as cache:
                backend = FakeBackend(latency=0.02, call_log=log, max_batch_size=8)
                with Meter(backend, cache=cache) as meter:
                    meter.score(queries)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=score) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    paid = logged_queries(log)
    assert len(paid) == 40 and not paid_twice(paid)


def test_an_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(CacheError, match=r"cannot reach the Redis cache at redis://127\.0\.0\.1"):
        RedisQueryCache(f"redis://127.0.0.1:{free_port()}/0")


def test_a_fit_on_the_redis_cache_pays_nothing_the_second_time(redis_db: str, tmp_path) -> None:
    from bdpl.cli.config import RunConfig
    from bdpl.cli.runs import fit_run

    config = RunConfig(
        task="sst2", epochs=1, sample_size=4, batch_size=8, vocab_size=20, test_rows=8
    )
    log = tmp_path / "calls.jsonl"
    first = fit_run(config, tmp_path / "a", cache=redis_db, call_log=str(log))
    paid = logged_queries(log)
    second = fit_run(config, tmp_path / "b", cache=redis_db, call_log=str(log))
    assert paid and logged_queries(log) == paid and not paid_twice(paid)
    assert second["queries"]["paid"] == 0 and second["prompt"] == first["prompt"]
