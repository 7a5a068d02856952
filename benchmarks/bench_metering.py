"""Cost of the metering layer: cache hits, overhead on a fake-backend fit, queries saved.

Run from the repository root: ``python benchmarks/bench_metering.py`` (about a minute; writes
only to a temporary directory). Results are recorded in ``benchmarks/results/metering.md``.

1. Cache hit cost: microseconds per query for ``Meter.score`` on batches that are all hits
   (key hashing, SQLite read, JSON decode, validation, one ledger line per batch).
2. Overhead: the first 20 metered batches of a reference-setting fit are replayed (a) into
   the backend in chunks of 64, every query answered, and (b) through a fresh ``Meter`` with
   disk cache, ledger and budget checks, in the same process; for a zero-latency fake (the
   worst case for the ratio) and one that takes 5 ms per call (a fast local model).
3. Queries saved: fits on a planted fake with the reference settings (``prompt_length=10``,
   ``sample_size=20``, 200 candidates, ``batch_size=128``, 30 epochs; 32 training and 32 dev
   examples as in 16-shot SST-2) and with a small search space (4 positions, 20 candidates,
   batch 8, 40 epochs): the worst case without cache or dedup (``Optimizer.max_queries``),
   the queries the optimizer asks the meter (it drops repeated prompts within a step), and
   the queries the meter pays for (dedup + cache); then a rerun of the same fit.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from bdpl.metering import Ledger, Meter, QueryCache
from bdpl.optimizer import Optimizer
from bdpl.tasks import Dataset, Example, get_task
from bdpl.testing import FakeBackend, Planted
from bdpl.types import LabelScores, Query

CANDIDATES = [f"tok{i}" for i in range(200)]
SETTINGS: dict[str, dict[str, int]] = {
    # The reference's run.sh: 10 positions, 20 samples, 200 candidates, batch 128, 30 epochs.
    "reference": {"prompt_length": 10, "sample_size": 20, "batch_size": 128, "epochs": 30},
    # A small search space, as in the optimizer's planted-recovery test: prompts repeat.
    "small": {"prompt_length": 4, "sample_size": 20, "batch_size": 8, "epochs": 40},
}
N_CANDIDATES = {"reference": 200, "small": 20}


def data() -> tuple[Dataset, Dataset]:
    task = get_task("sst2")
    ex = [
        Example(f"review {i}: a fairly typical sentence about a film", label=str(i % 2))
        for i in range(64)
    ]
    return Dataset(task, tuple(ex[:32])), Dataset(task, tuple(ex[32:]))


def planted_fake(setting: str = "reference", **kwargs: object) -> FakeBackend:
    plant = Planted.for_dataset(
        data(),
        CANDIDATES[: N_CANDIDATES[setting]],
        prompt_length=SETTINGS[setting]["prompt_length"],
        seed=1,
    )
    return FakeBackend(planted=plant, **kwargs)  # type: ignore[arg-type]


class RecordingMeter(Meter):
    """A meter that also keeps every batch it was asked (for the replay in section 2)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.batches: list[list[Query]] = []

    def score(self, queries: Sequence[Query]) -> list[LabelScores]:
        self.batches.append(list(queries))
        return super().score(queries)


def best_of(n: int, fn: Callable[[], None]) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def fit(tmp: Path, setting: str, estimator: str, cache: str) -> tuple[RecordingMeter, int, float]:
    """One fit; returns its meter, its worst-case queries and its wall time."""
    fake = planted_fake(setting)
    meter = RecordingMeter(fake, cache=QueryCache(tmp / cache))
    opt = Optimizer(
        fake,
        candidates=CANDIDATES[: N_CANDIDATES[setting]],
        estimator=estimator,
        seed=0,
        meter=meter,
        **SETTINGS[setting],  # type: ignore[arg-type]
    )
    train, dev = data()
    start = time.perf_counter()
    opt.fit(train, dev)
    return meter, opt.max_queries(len(train), len(dev)), time.perf_counter() - start


def bench_hits(tmp: Path, batches: list[list[Query]]) -> None:
    unique = list(dict.fromkeys(q for b in batches for q in b))
    fake = planted_fake()
    with Meter(fake, cache=QueryCache(tmp / "hits"), ledger=tmp / "hits.jsonl") as meter:
        meter.score(unique)  # pay once
        chunks = [unique[i : i + 640] for i in range(0, len(unique), 640)]

        def all_hits() -> None:
            for c in chunks:
                meter.score(c)

        t = best_of(5, all_hits)
        cache = meter.cache
        raw = best_of(5, lambda: [cache.get(fake.identity, q) for q in unique] and None)
    print("## 1. Cache hit cost\n")
    print(f"- {len(unique):,} distinct queries of a reference-setting fit, all hits, batches of")
    print("  640 (best of 5)")
    print(f"- `Meter.score`: **{1e6 * t / len(unique):.1f} µs per query**")
    print(f"- `QueryCache.get` alone: {1e6 * raw / len(unique):.1f} µs per query\n")


def bench_overhead(tmp: Path, batches: list[list[Query]], rounds: int = 5) -> None:
    n = sum(len(b) for b in batches)
    n_unique = len({q for b in batches for q in b})
    print("## 2. Metering overhead on a fake-backend fit\n")
    print(f"- replay of the first {len(batches)} metered batches of a reference-setting fit:")
    print(f"  {n:,} queries asked, {n_unique:,} distinct; chunks of 64, one call at a time")
    print("- bare: `FakeBackend.score` on every query asked; metered: a fresh `Meter` (disk cache,")
    print("  ledger, budget checks) that pays each distinct query once")
    print(f"- the three variants run in turn, {rounds} rounds; best time of each\n")
    print("| fake latency per call | bare backend | Meter | ratio | added per query |", end="")
    print(" Meter, ledger without fsync | ratio |")
    print("|---|---|---|---|---|---|---|")
    counter = iter(range(1000))

    for latency in (0.0, 0.005):
        fake = planted_fake(latency=latency, max_concurrency=1)

        def bare(fake: FakeBackend = fake) -> None:
            for b in batches:
                for i in range(0, len(b), 64):
                    fake.score(b[i : i + 64])

        def metered(fake: FakeBackend = fake, fsync: bool = True) -> None:
            k = next(counter)
            ledger = Ledger(tmp / f"ledger-{k}.jsonl", fsync=fsync)
            with Meter(fake, cache=QueryCache(tmp / f"overhead-{k}"), ledger=ledger) as meter:
                for b in batches:
                    meter.score(b)
            ledger.close()

        best = [float("inf")] * 3
        for _ in range(rounds):  # interleaved, so that load from elsewhere hits all alike
            for i, fn in enumerate((bare, metered, lambda f=fake: metered(f, fsync=False))):
                best[i] = min(best[i], best_of(1, fn))  # type: ignore[arg-type]
        t_bare, t_meter, t_nosync = best
        added = 1e6 * (t_meter - t_bare) / n
        print(
            f"| {1000 * latency:.0f} ms | {t_bare:.3f} s | {t_meter:.3f} s | "
            f"{t_meter / t_bare:.2f}x | {added:+.1f} µs | {t_nosync:.3f} s | "
            f"{t_nosync / t_bare:.2f}x |"
        )
    print()


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        rows = [
            ("reference", "loo", fit(tmp, "reference", "loo", "ref-loo")),
            ("reference", "reference", fit(tmp, "reference", "reference", "ref-ref")),
            ("small", "loo", fit(tmp, "small", "loo", "small-loo")),
            ("small", "reference", fit(tmp, "small", "reference", "small-ref")),
            ("reference, rerun", "loo", fit(tmp, "reference", "loo", "ref-loo")),
        ]
        bench_hits(tmp, rows[0][2][0].batches)
        bench_overhead(tmp, rows[0][2][0].batches[:20])
        print("## 3. Paid queries of a fit, with and without cache + dedup\n")
        print(
            "| settings | estimator | worst case, no cache/dedup | asked the meter | paid |", end=""
        )
        print(" cache hits | worst case / paid | fit time |")
        print("|---|---|---|---|---|---|---|---|")
        for setting, est, (meter, worst, seconds) in rows:
            s = meter.stats
            ratio = f"{worst / s.paid_queries:.2f}x" if s.paid_queries else "all hits"
            print(
                f"| {setting} | {est} | {worst:,} | {s.queries:,} | {s.paid_queries:,} |"
                f" {s.hits:,} | {ratio} | {seconds:.1f} s |"
            )
        print()


if __name__ == "__main__":
    main()
