"""Cost of the query cache's integrity digests and in-flight leases, and what leases save.

Run from the repository root: ``python benchmarks/bench_cache.py`` (under a minute; writes only
to a temporary directory). Results are recorded in ``benchmarks/results/metering.md``.

1. Hit cost, before and after per-value digests, in the same run: the same queries stored
   once without a digest (the format written before digests, which is read exactly as before:
   parse, no digest to check) and once with one; ``QueryCache.get_keyed`` and ``Meter.score``
   on all-hit batches; best of 5, interleaved.
2. Lease overhead per miss: ``Meter.score`` on fresh misses with a zero-latency fake, with
   leases (one claim and one release transaction per batch, plus the re-read of the claimed
   keys) and with leasing switched off (the path before leases); batches of 64 and 640.
3. Two processes asking the same queries at the same moment, sharing one cache, a fake that
   takes 50 ms per call: queries paid twice, with and without leases.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import diskcache

from bdpl.metering import Meter, QueryCache, cache_key
from bdpl.metering.cache import decode_value, encode_value
from bdpl.testing import FakeBackend
from bdpl.types import Query

LABELS = (" bad", " good")


def queries(n: int, tag: str) -> list[Query]:
    return [
        Query(f"{tag} {i}: a fairly typical sentence about a film. It was", ".", LABELS)
        for i in range(n)
    ]


def best_of(n: int, fn: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(n):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def no_leases(cache: QueryCache) -> None:
    """Switch leasing off on ``cache``: every miss is paid at once, as before leases."""
    cache.claim = lambda keyed: (list(keyed), [], {})  # type: ignore[method-assign]
    cache.release = lambda keys: None  # type: ignore[method-assign]


def bench_hits(tmp: Path, n: int = 5000) -> None:
    qs = queries(n, "hit")
    fake = FakeBackend()
    new_dir, old_dir = tmp / "digest", tmp / "legacy"
    with Meter(fake, cache=QueryCache(new_dir)) as meter:
        answers = meter.score(qs)
    with diskcache.Cache(str(old_dir)) as raw:  # the same answers, as stored before digests
        for q, a in zip(qs, answers, strict=True):
            doc = {"v": 1, "scores": a.to_json()}
            raw.set(cache_key(fake.identity, q), json.dumps(doc, separators=(",", ":")))
    keyed = [(q, cache_key(fake.identity, q)) for q in qs]
    best = {"legacy get": 1e9, "digest get": 1e9, "legacy score": 1e9, "digest score": 1e9}
    with QueryCache(old_dir) as old, QueryCache(new_dir) as new:
        m_old, m_new = Meter(fake, cache=old), Meter(fake, cache=new)
        for _ in range(5):  # interleaved, so that load from elsewhere hits both alike
            for name, cache, meter in (("legacy", old, m_old), ("digest", new, m_new)):
                t = best_of(1, lambda c=cache: [c.get_keyed(k, q) for q, k in keyed] and None)
                best[f"{name} get"] = min(best[f"{name} get"], t)
                t = best_of(
                    1, lambda m=meter: [m.score(qs[i : i + 640]) for i in range(0, n, 640)] and None
                )
                best[f"{name} score"] = min(best[f"{name} score"], t)
        assert new.stats().bad_entries == 0 and old.stats().bad_entries == 0
        m_old.close()
        m_new.close()
    one = answers[0]
    key = cache_key(fake.identity, qs[0])
    stored = {"legacy": json.dumps({"v": 1, "scores": one.to_json()}, separators=(",", ":"))}
    stored["digest"] = encode_value(key, one)
    for _ in range(5):
        for name, text in stored.items():
            t = best_of(1, lambda t=text: [decode_value(t, key) for _ in range(n)] and None)
            best[f"{name} decode"] = min(best.get(f"{name} decode", 1e9), t)
    us = {k: 1e6 * v / n for k, v in best.items()}
    print("## Cache hit cost with per-value digests (before / after, same run)\n")
    print(f"- {n:,} distinct queries, all hits, best of 5 interleaved rounds\n")
    print("| path | before (no digest) | after (digest checked) | ratio |")
    print("|---|---|---|---|")
    for path, key in (
        ("decoding and checking one stored answer", "decode"),
        ("`QueryCache.get_keyed`", "get"),
        ("`Meter.score`, batches of 640", "score"),
    ):
        b, a = us[f"legacy {key}"], us[f"digest {key}"]
        print(f"| {path} | {b:.1f} µs | {a:.1f} µs | {a / b:.2f}x |")
    print()


def bench_leases(tmp: Path, n: int = 6400) -> None:
    print("## Lease overhead per miss\n")
    print(f"- {n:,} fresh misses per run, zero-latency fake, best of 3 interleaved rounds\n")
    print("| batch | without leases | with leases | added per miss |")
    print("|---|---|---|---|")
    counter = iter(range(10_000))
    for batch in (64, 640):
        best = [float("inf"), float("inf")]
        for _ in range(3):
            for leased in (False, True):
                k = next(counter)
                qs = queries(n, f"miss{k}")
                cache = QueryCache(tmp / f"lease-{k}")
                if not leased:
                    no_leases(cache)
                with Meter(FakeBackend(max_batch_size=64, max_concurrency=1), cache=cache) as m:
                    t = best_of(
                        1,
                        lambda m=m, qs=qs, batch=batch: (
                            [m.score(qs[i : i + batch]) for i in range(0, n, batch)] and None
                        ),
                    )
                cache.close()
                best[leased] = min(best[leased], t)
        off, on = (1e6 * t / n for t in best)
        print(f"| {batch} | {off:.1f} µs | {on:.1f} µs | {on - off:+.1f} µs |")
    print()


def _racer(cache_dir: str, log: str, leased: bool, start_at: float) -> None:
    cache = QueryCache(cache_dir)
    if not leased:
        no_leases(cache)
    fake = FakeBackend(latency=0.05, max_batch_size=8, call_log=log)
    qs = queries(400, "race")
    with Meter(fake, cache=cache, max_concurrency=4) as meter:
        time.sleep(max(0.0, start_at - time.time()))
        for i in range(0, len(qs), 40):
            meter.score(qs[i : i + 40])
    cache.close()


def bench_race(tmp: Path, reps: int = 3) -> None:
    print("## Two processes asking the same 400 queries at the same moment (one cache)\n")
    print("- fake: 50 ms per call of 8 queries, 4 calls in flight per process, batches of 40\n")
    print("| leases | queries paid twice (of 400), per repetition |")
    print("|---|---|")
    ctx = mp.get_context("spawn")
    for leased in (False, True):
        twice = []
        for r in range(reps):
            d = tmp / f"race-{leased}-{r}"
            logs = [str(d) + f"-{i}.jsonl" for i in range(2)]
            start = time.time() + 2.0
            procs = [ctx.Process(target=_racer, args=(str(d), log, leased, start)) for log in logs]
            for p in procs:
                p.start()
            for p in procs:
                p.join(120)
            paid: list[str] = []
            for log in logs:
                if Path(log).exists():
                    for line in Path(log).read_text().splitlines():
                        paid += [json.dumps(q, sort_keys=True) for q in json.loads(line)["queries"]]
            twice.append(len(paid) - len(set(paid)))
        print(f"| {'on' if leased else 'off'} | {', '.join(map(str, twice))} |")
    print()


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        bench_hits(tmp)
        bench_leases(tmp)
        bench_race(tmp)


if __name__ == "__main__":
    main()
