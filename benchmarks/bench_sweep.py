"""Wall time of a fixed sweep at 1, 2, 4 and 8 local workers, and the Redis cache's hit cost.

Run from the repository root: ``python benchmarks/bench_sweep.py [--latency S] [--out FILE]``
(a few minutes; needs ``redis-server`` on PATH, writes only to a temporary directory and to
``--out``, by default ``benchmarks/results/sweep.md``).

1. A fixed sweep of fake-backend fits (2 tasks x 2 seeds x 2 estimators, 1 epoch, 16 test
   rows) with an injected per-call latency, each worker count on a fresh disk cache (so every
   run pays the same queries), in local worker processes.
2. The hit cost of the Redis cache beside the disk cache's: ``get_keyed`` per stored answer
   and ``Meter.score`` on an all-hit batch of 640, best of 5, against a redis-server started
   on 127.0.0.1 for the purpose.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from bdpl.metering import Meter, QueryCache, cache_key
from bdpl.metering.redis_cache import RedisQueryCache
from bdpl.sweep import Sweep, run_sweep
from bdpl.testing import FakeBackend
from bdpl.types import Query
from benchmarks.bench_cache import best_of

BASE = {"epochs": 1, "sample_size": 4, "batch_size": 8, "vocab_size": 20, "test_rows": 16}
GRID = {"task": ["sst2", "rte"], "seed": [0, 1], "estimator": ["loo", "reference"]}


def sweep_times(latency: float, counts: list[int]) -> dict[int, float]:
    sweep = Sweep.build({**BASE, "backend": f"fake:latency={latency}"}, GRID)
    out: dict[int, float] = {}
    for workers in counts:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            report = run_sweep(sweep, Path(tmp) / "sweep", workers=workers,
                               cache=str(Path(tmp) / "cache"))  # fmt: skip
            out[workers] = time.perf_counter() - start
            assert not report.failed, report.failed
        print(f"workers {workers}: {out[workers]:.1f} s", flush=True)
    return out


def hit_costs(cache: QueryCache) -> tuple[float, float]:
    """Seconds per hit: get_keyed, and Meter.score on an all-hit batch of 640."""
    backend = FakeBackend()
    qs = [Query(f"q{i}: a fairly typical sentence about a film. It was", ".", (" bad", " good"))
          for i in range(640)]  # fmt: skip
    keyed = [(q, cache_key(backend.identity, q)) for q in qs]
    with Meter(backend, cache=cache) as meter:
        meter.score(qs)  # pay once: every later lookup is a hit

        def lookups() -> None:
            for q, k in keyed:
                assert cache.get_keyed(k, q) is not None

        per_get = best_of(5, lookups) / len(qs)
        per_score = best_of(5, lambda: meter.score(qs)) / len(qs)
    return per_get, per_score


def redis_server(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed: apt-get install -y redis-server")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                             "--appendonly", "no", "--dir", str(folder)],
                            stdout=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                sys.exit("redis-server did not start")
            time.sleep(0.05)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "an unknown CPU"


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per fake call")
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--out", default="benchmarks/results/sweep.md")
    args = parser.parse_args(argv)
    counts = [int(w) for w in args.workers.split(",")]
    times = sweep_times(args.latency, counts)
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = redis_server(Path(tmp))
        try:
            with QueryCache(Path(tmp) / "disk") as disk:
                disk_get, disk_score = hit_costs(disk)
            with RedisQueryCache(url) as shared:
                redis_get, redis_score = hit_costs(shared)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    cells = len(Sweep.build(BASE, GRID).cells)
    lines = [
        "# bdpl sweep: wall time by workers, and the Redis cache's hit cost",
        "",
        f"Measured {datetime.date.today().isoformat()} on {cpu_name()} "
        f"({os.cpu_count()} cores), Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}, by `python benchmarks/bench_sweep.py`.",
        "",
        f"## A fixed sweep: {cells} fake-backend fits, {args.latency * 1000:.0f} ms per call",
        "",
        "| workers (local processes) | wall time (s) | speed-up |",
        "|---:|---:|---:|",
        *(f"| {w} | {t:.1f} | {times[counts[0]] / t:.2f}x |" for w, t in times.items()),
        "",
        "## Hit cost (one process, server on 127.0.0.1)",
        "",
        "| cache | get_keyed per hit (µs) | Meter.score, all-hit batch of 640, per query (µs) |",
        "|---|---:|---:|",
        f"| disk (SQLite) | {disk_get * 1e6:.0f} | {disk_score * 1e6:.0f} |",
        f"| Redis | {redis_get * 1e6:.0f} | {redis_score * 1e6:.0f} |",
        "",
        "Reading: the sweep is bound by the calls' latency, so workers help until the cells",
        "wait on each other: cells of one task and seed ask many of the same queries, and a",
        "query another worker is paying for is waited for, not paid again. Each worker process",
        "also starts Python and imports bdpl (about a second here). A Redis hit is one round",
        "trip per query (the meter looks answers up one by one); on a network, add its",
        "round-trip time per hit.",
        "",
    ]
    text = "\n".join(lines)
    Path(args.out).write_text(text, encoding="utf-8")
    print(text)
    return text


if __name__ == "__main__":
    main()
