"""A real Redis server and a real Dask cluster (worker processes), both on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

INSTALL = "apt-get install -y redis-server  (or: make setup, which runs scripts/setup.sh)"

SWEEP = """
[base]
backend = "{backend}"
epochs = 1
sample_size = 4
batch_size = 8
vocab_size = 20
test_rows = 16
[grid]
task = ["sst2", "rte"]
seed = [0, 1]
estimator = ["loo", "reference"]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh redis-server on 127.0.0.1 and a free port; fails (never skips) without one."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail(f"redis-server is not installed; install it with: {INSTALL}", pytrace=False)
    port = free_port()
    folder = tmp_path_factory.mktemp("redis")
    log = (folder / "log").open("w")
    proc = subprocess.Popen(
        [
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
            "--protected-mode",
            "yes",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"redis-server did not start: {(folder / 'log').read_text()}")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


@pytest.fixture()
def redis_db(redis_url: str) -> Iterator[str]:
    """The session's server, emptied for this test."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    yield redis_url


@pytest.fixture(scope="module")
def dask_address() -> Iterator[str]:
    """A LocalCluster of 2 worker processes (1 thread each) on 127.0.0.1."""
    import warnings

    from distributed import LocalCluster

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dask's own start-up notices are not bdpl's concern
        cluster = LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=40,
        )
    try:
        yield str(cluster.scheduler_address)
    finally:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cluster.close(timeout=30)


def write_sweep(folder: Path, backend: str = "fake", budget: str = "") -> Path:
    path = folder / "sweep.toml"
    path.write_text(SWEEP.format(backend=backend) + budget, encoding="utf-8")
    return path


def logged_queries(call_log: Path) -> list[str]:
    """Every query the fake answered, in order, as canonical JSON."""
    out: list[str] = []
    if not call_log.exists():
        return out
    for line in call_log.read_text(encoding="utf-8").splitlines():
        try:
            record: dict[str, Any] = json.loads(line)
        except ValueError:
            continue  # a line torn by a kill
        out.extend(json.dumps(q, sort_keys=True) for q in record["queries"])
    return out


def paid_twice(queries: list[str]) -> list[str]:
    return [q for q, n in Counter(queries).items() if n > 1]


def prompts(folder: Path) -> dict[str, list[str]]:
    """Each cell's learned prompt, from its metrics.json."""
    return {
        run.name: json.loads((run / "metrics.json").read_text(encoding="utf-8"))["prompt"]
        for run in sorted((folder / "cells").iterdir())
    }
