"""Cost of the metering layer: cache hits, overhead on a fake-backend fit, queries saved.

Run from the repository root: ``python benchmarks/bench_metering.py`` (about a minute; writes
only to a temporary directory). Results are recorded in ``benchmarks/results/metering.md``.

1. Cache hit cost: microseconds per query for ``Meter.score`` on a batch that is all hits
   (key hashing, SQLite read, JSON decode, validation, one ledger line per batch).
2. Overhead: the query batches of a fake-backend run are replayed (a) straight into the
   backend in chunks and (b) through a fresh ``Meter`` with disk cache and ledger, in the same
   process; the ratio and the added microseconds per query are reported, for a zero-latency
   fake (worst case) and one that takes 5 ms per call (a fast local model).
3. Queries saved: with the optimizer's reference settings, queries a fit asks vs queries it
   pays for with cache + dedup (needs ``bdpl.optimizer``; skipped when absent).
"""

from __future__ import annotations

import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from bdpl.backends.fake import FakeBackend  # noqa: E402
from bdpl.metering import Meter, QueryCache  # noqa: E402
from bdpl.types import Query  # noqa: E402

LABELS = (" terrible", " great")


def batches(rounds: int = 60, prompts: int = 20, batch: int = 32, seed: int = 0) -> list[list[Query]]:
    """An optimizer-like workload: ``prompts`` sampled 5-token prompts on a minibatch, per round."""
    rng = random.Random(seed)
    vocab = [f"tok{i}" for i in range(40)]
    texts = [f"review number {i}, a fairly typical sentence about a film" for i in range(256)]
    out = []
    for _ in range(rounds):
        examples = rng.sample(texts, batch)
        qs = []
        for _ in range(prompts):
            prompt = " ".join(rng.choice(vocab) for _ in range(5))
            qs += [Query(f"{prompt} {t} It was", ".", LABELS) for t in examples]
        out.append(qs)
    return out


def best_of(n: int, fn: Callable[[], None]) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def bench_hits(tmp: Path) -> None:
    qs = [q for b in batches(rounds=10) for q in b]
    unique = list(dict.fromkeys(qs))
    fake = FakeBackend()
    with Meter(fake, cache=QueryCache(tmp / "hits"), ledger=tmp / "hits.jsonl") as meter:
        meter.score(unique)  # pay once
        chunks = [unique[i : i + 640] for i in range(0, len(unique), 640)]

        def all_hits() -> None:
            for c in chunks:
                meter.score(c)

        t = best_of(3, all_hits)
        cache = meter.cache
        raw = best_of(3, lambda: [cache.get(fake.identity, q) for q in unique] and None)
    print("## 1. Cache hit cost\n")
    print(f"- {len(unique):,} distinct queries, all hits, batches of 640 (best of 3)")
    print(f"- `Meter.score`: **{1e6 * t / len(unique):.1f} µs per query**")
    print(f"- `QueryCache.get` alone: {1e6 * raw / len(unique):.1f} µs per query\n")


def bench_overhead(tmp: Path) -> None:
    work = batches()
    n = sum(len(b) for b in work)
    print("## 2. Metering overhead on a fake-backend run\n")
    print(f"- workload: {len(work)} batches, {n:,} queries ({len({q for b in work for q in b}):,}"
          " distinct), chunks of 64; metered = fresh disk cache + ledger + budget checks")
    print("\n| fake latency per call | bare backend | through Meter | ratio | added µs/query |")
    print("|---|---|---|---|---|")
    for latency in (0.0, 0.005):
        fake = FakeBackend(latency=latency, max_concurrency=1)

        def bare(fake: FakeBackend = fake) -> None:
            for b in work:
                for i in range(0, len(b), 64):
                    fake.score(b[i : i + 64])

        runs = iter(range(100))

        def metered(fake: FakeBackend = fake) -> None:
            k = next(runs)
            with Meter(
                fake, cache=QueryCache(tmp / f"ovh{latency}-{k}"), ledger=tmp / f"l{latency}-{k}"
            ) as meter:
                for b in work:
                    meter.score(b)

        reps = 3 if latency == 0 else 1
        t_bare = best_of(reps, bare)
        t_meter = best_of(reps, metered)
        added = 1e6 * (t_meter - t_bare) / n
        print(f"| {1000 * latency:.0f} ms | {t_bare:.3f} s | {t_meter:.3f} s | "
              f"{t_meter / t_bare:.2f}x | {added:.1f} |")
    print("\n(metered runs pay each distinct query once; the bare backend answers every query,"
          " duplicates included)\n")


def bench_queries_saved(tmp: Path) -> None:
    print("## 3. Paid queries of a reference-setting fit, with and without cache + dedup\n")
    try:
        from bdpl import optimizer  # noqa: F401
    except ImportError:
        print("- skipped: `bdpl.optimizer` is not available in this checkout\n")
        return
    _fit_queries(tmp)


def _fit_queries(tmp: Path) -> None:  # filled in once the optimizer lands
    print("- not measured yet\n")


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        bench_hits(tmp)
        bench_overhead(tmp)
        bench_queries_saved(tmp)


if __name__ == "__main__":
    main()
