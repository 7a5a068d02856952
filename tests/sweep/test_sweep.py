"""bdpl sweep on a real Dask cluster and a real Redis: same prompts, nothing paid twice,
one budget, and kills (a worker, the whole sweep) that lose no paid answer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bdpl.cli.runs import fit_run
from bdpl.errors import ConfigError
from bdpl.metering import Ledger
from bdpl.sweep import Sweep, read_sweep, run_sweep
from tests.sweep.conftest import logged_queries, paid_twice, prompts, write_sweep

ROOT = Path(__file__).resolve().parents[2]
# A call answered this long before a kill has had its answer stored: it is never paid again.
# Calls answered later are the documented in-flight bound (answered, not yet stored).
SETTLE = 0.5


@pytest.fixture(scope="module")
def alone(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """Every cell's prompt, each cell run alone in this process with no cache."""
    folder = tmp_path_factory.mktemp("alone")
    sweep = read_sweep(write_sweep(folder))
    out = {}
    for cell in sweep.cells:
        metrics = fit_run(cell.config, folder / cell.name, cache="off")
        out[cell.name] = metrics["prompt"]
    assert len(out) == 8
    return out


def test_the_grid_is_every_combination_and_the_budget_is_split(tmp_path: Path) -> None:
    sweep = read_sweep(write_sweep(tmp_path, budget="[budget]\nmax_queries = 803\n"))
    assert len(sweep.cells) == 8
    assert sweep.cells[0].name == "task=sst2,seed=0,estimator=loo"
    assert sweep.cells[0].group == "task=sst2,estimator=loo"
    assert {c.config.max_queries for c in sweep.cells} == {100}  # 803 // 8
    assert sum(c.config.max_queries or 0 for c in sweep.cells) <= 803
    dollars = Sweep.build({"max_dollars": 0.01}, {"seed": [0, 1, 2]}, {"max_dollars": 1.0})
    assert [c.config.max_dollars for c in dollars.cells] == [0.01, 0.01, 0.01]
    thirds = Sweep.build({}, {"seed": [0, 1, 2]}, {"max_dollars": 1.0})
    assert sum(c.config.max_dollars or 0 for c in thirds.cells) <= 1.0
    for grid, match in (
        ({"seed": 3}, "grid.seed: give a non-empty list"),
        ({"seeds": [1]}, "seeds"),
        ({"seed": [1, 1]}, "same name"),
    ):
        with pytest.raises(ConfigError, match=match):
            Sweep.build({}, grid)
    with pytest.raises(ConfigError, match=r"budget\.max_queries"):
        Sweep.build({}, {"seed": [0]}, {"max_queries": -1})
    with pytest.raises(ConfigError, match="unknown sections"):
        bad = tmp_path / "bad.toml"
        bad.write_text("[grids]\nseed = [0]\n", encoding="utf-8")
        read_sweep(bad)


def test_when_sections_give_the_cells_of_one_grid_value_their_own_settings(
    tmp_path: Path,
) -> None:
    file = tmp_path / "when.toml"
    file.write_text(
        '[base]\nepochs = 2\n[grid]\ntask = ["sst2", "rte"]\nseed = [0, 1]\n'
        "[when.task.rte]\nepochs = 1\nmax_input_tokens = 200\n[when.seed.1]\nvocab_size = 50\n",
        encoding="utf-8",
    )
    got = {c.name: c.config for c in read_sweep(file).cells}
    assert {n: (c.epochs, c.max_input_tokens, c.vocab_size) for n, c in got.items()} == {
        "task=sst2,seed=0": (2, None, 200),
        "task=sst2,seed=1": (2, None, 50),
        "task=rte,seed=0": (1, 200, 200),
        "task=rte,seed=1": (1, 200, 50),
    }
    grid = {"task": ["sst2", "rte"]}
    for when, match in (
        ({"seed": {"0": {"epochs": 1}}}, "'seed' is not a grid key"),
        ({"task": {"rtee": {"epochs": 1}}}, r"'rtee' is not one of grid.task's values"),
        ({"task": {"rte": {"task": "sst2"}}}, r"\['task'\] are grid keys"),
        ({"task": {"rte": {"epoch": 1}}}, "sweep cell task=rte: epoch"),
    ):
        with pytest.raises(ConfigError, match=match):
            Sweep.build({}, grid, when=when)
    both = {"task": {"rte": {"epochs": 1}}, "seed": {"1": {"epochs": 5}}}
    with pytest.raises(ConfigError, match=r"task=rte,seed=1: epochs is set by both "
                       r"when\.task\.rte and when\.seed\.1"):  # fmt: skip
        Sweep.build({}, {"task": ["sst2", "rte"], "seed": [0, 1]}, when=both)


@pytest.mark.timeout(300)
def test_a_sweep_on_dask_with_redis_equals_its_cells_run_alone(
    tmp_path: Path, dask_address: str, redis_db: str, alone: dict[str, list[str]]
) -> None:
    log = tmp_path / "calls.jsonl"
    sweep = read_sweep(write_sweep(tmp_path))
    report = run_sweep(
        sweep, tmp_path / "out", workers=dask_address, cache=redis_db, call_log=str(log)
    )
    assert len(report.ran) == 8 and not report.failed
    assert prompts(tmp_path / "out") == alone
    paid = logged_queries(log)
    assert paid and not paid_twice(paid)
    table = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    assert len(table["cells"]) == 8 and len(table["groups"]) == 4
    assert all(g["cells"] == 2 and "dev_learned_std" in g for g in table["groups"])
    assert (tmp_path / "out" / "results.csv").read_text().count("\n") == 9
    again = run_sweep(
        sweep, tmp_path / "out", workers=dask_address, cache=redis_db, call_log=str(log)
    )
    assert len(again.skipped) == 8 and not again.ran
    assert logged_queries(log) == paid


@pytest.mark.timeout(300)
def test_the_sweep_budget_holds_under_8_workers_with_latency(tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    limit = 8 * 100  # each cell needs up to 384 queries: the budget must stop cells
    file = write_sweep(tmp_path, "fake:latency=0.01", f"[budget]\nmax_queries = {limit}\n")
    report = run_sweep(
        read_sweep(file),
        tmp_path / "out",
        workers=8,
        cache=str(tmp_path / "cache"),
        call_log=str(log),
    )
    paid = logged_queries(log)
    assert 0 < len(paid) <= limit and not paid_twice(paid)
    # A cell that reaches its share stops with the budget error, reported in the table.
    assert report.failed
    assert all("BudgetExceededError" in why for why in report.failed.values())
    rows = json.loads((tmp_path / "out" / "results.json").read_text())["cells"]
    assert sorted(r["cell"] for r in rows if r["status"] == "failed") == sorted(report.failed)
    ledgers = [Ledger.read(p) for p in (tmp_path / "out").glob("cells/*/ledger.jsonl")]
    assert sum(r.billed_queries for records in ledgers for r in records) == len(paid)


def _wait_for(condition: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _settled(log: Path) -> set[str]:
    """The queries answered at least SETTLE seconds ago (their answers are stored)."""
    before = set(logged_queries(log))
    time.sleep(SETTLE)
    return before


@pytest.mark.timeout(300)
def test_a_killed_worker_loses_no_paid_answer(
    tmp_path: Path, dask_address: str, redis_db: str, alone: dict[str, list[str]]
) -> None:
    from distributed import Client

    log = tmp_path / "calls.jsonl"
    sweep = read_sweep(write_sweep(tmp_path, "fake:latency=0.05"))
    result: dict[str, object] = {}
    cache = redis_db + "?lease_timeout=3"
    runner = threading.Thread(
        target=lambda: result.update(
            report=run_sweep(
                sweep, tmp_path / "out", workers=dask_address, cache=cache, call_log=str(log)
            )
        )
    )
    runner.start()
    _wait_for(lambda: len(logged_queries(log)) >= 40, 120)
    paid_before = _settled(log)
    with Client(dask_address, timeout=30) as client:
        pids = client.run(os.getpid)
    victim = sorted(pids.values())[0]
    os.kill(victim, signal.SIGKILL)
    runner.join(timeout=240)
    assert not runner.is_alive()
    report = result["report"]
    assert not report.failed and len(report.ran) == 8  # type: ignore[attr-defined]
    paid = logged_queries(log)
    assert len(paid) > len(paid_before) + 20, "the sweep had finished before the kill"
    assert not paid_before & set(paid[len(paid_before) :]), "paid again after the kill"
    # The prompts are those of an uninterrupted run (latency changes no answer).
    assert prompts(tmp_path / "out") == alone


@pytest.mark.timeout(300)
def test_a_sigkilled_sweep_reruns_only_what_it_had_not_finished(
    tmp_path: Path, alone: dict[str, list[str]]
) -> None:
    log = tmp_path / "calls.jsonl"
    file = write_sweep(tmp_path, "fake:latency=0.03")
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "bdpl",
        "sweep",
        str(file),
        "--out",
        str(out),
        "--workers",
        "2",
        "--cache",
        str(tmp_path / "cache"),
        "--call-log",
        str(log),
    ]
    sweep = subprocess.Popen(
        command,
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: any((out / "cells").glob("*/metrics.json")), 120)
        first = len(logged_queries(log))
        _wait_for(lambda: len(logged_queries(log)) > first + 20, 60)
        paid_before = _settled(log)
        finished = {p.parent.name: p.stat().st_mtime_ns for p in out.glob("cells/*/metrics.json")}
    finally:
        os.killpg(sweep.pid, signal.SIGKILL)
        sweep.wait(timeout=30)
    assert 0 < len(finished) < 8
    rerun = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert rerun.returncode == 0, rerun.stderr
    for name, mtime in finished.items():
        assert f"{name}: skipped" in rerun.stderr
        assert (out / "cells" / name / "metrics.json").stat().st_mtime_ns == mtime
    paid = logged_queries(log)
    assert not paid_before & set(paid[len(paid_before) :]), "paid again after the kill"
    assert prompts(out) == alone


def test_in_process_sweep_refuses_a_changed_sweep_file(tmp_path: Path) -> None:
    sweep = read_sweep(write_sweep(tmp_path))
    small = Sweep(sweep.cells[:2], {})
    report = run_sweep(small, tmp_path / "out", workers=0, cache=str(tmp_path / "cache"))
    assert sorted(report.ran) == sorted(c.name for c in small.cells)
    changed = read_sweep(write_sweep(tmp_path, "fake:seed=3"))
    with pytest.raises(ConfigError, match="other settings than the sweep's cell"):
        run_sweep(changed, tmp_path / "out", workers=0)
    with pytest.raises(ConfigError, match="workers must be >= 0"):
        run_sweep(small, tmp_path / "other", workers=-1)


METHODS_SWEEP = """
[base]
backend = "fake"
task = "sst2"
epochs = 1
sample_size = 4
batch_size = 8
vocab_size = 20
test_rows = 16
demonstrations = 2
[grid]
seed = [0]
method = ["bdpl", "random", "manual", "in-context"]
"""


def test_every_method_runs_as_alone_and_a_killed_baseline_reruns_on_the_cache(
    tmp_path: Path,
) -> None:
    file = tmp_path / "methods.toml"
    file.write_text(METHODS_SWEEP, encoding="utf-8")
    sweep = read_sweep(file)
    log = tmp_path / "calls.jsonl"
    out = tmp_path / "out"
    report = run_sweep(sweep, out, workers=0, cache=str(tmp_path / "cache"), call_log=str(log))
    assert not report.failed and len(report.ran) == 4
    for cell in sweep.cells:
        alone = fit_run(
            cell.config,
            tmp_path / "alone" / cell.name,
            cache="off",
            method=cell.method,
            demonstrations=cell.demonstrations,
        )
        swept = json.loads((out / "cells" / cell.name / "metrics.json").read_text())
        assert swept["method"] == cell.method
        assert (swept["prompt"], swept["dev"]) == (alone["prompt"], alone["dev"])
    rows = {r["method"]: r for r in json.loads((out / "results.json").read_text())["cells"]}
    assert rows["in-context"]["dev_learned"] != rows["manual"]["dev_learned"]
    # A random search killed before it finished: rerun from the start, every answer cached.
    random = out / "cells" / "seed=0,method=random"
    before = json.loads((random / "metrics.json").read_text())
    (random / "metrics.json").unlink()
    paid = logged_queries(log)
    again = run_sweep(sweep, out, workers=0, cache=str(tmp_path / "cache"), call_log=str(log))
    assert again.ran == ("seed=0,method=random",) and len(again.skipped) == 3
    assert logged_queries(log) == paid
    assert json.loads((random / "metrics.json").read_text())["prompt"] == before["prompt"]
