"""Where a sweep's cells run: in this process, in local worker processes, or on Dask.

Every cell is one ``bdpl fit`` run folder, ``<sweep>/cells/<name>``. A cell whose folder holds
``metrics.json`` is finished and not run again; one whose folder holds ``config.toml`` was
started and is resumed from its checkpoint; the query cache answers every query it already
paid for. So a worker that dies loses only its cell's progress since the last checkpoint
(and the calls in flight at that moment), never an answer already paid for: its cell is run
again, by another worker (Dask reschedules it; a local pool is restarted) or by the next run
of the sweep.

The engine is not bdpl's: cells go to any :class:`concurrent.futures.Executor`, a
``dask.distributed`` cluster by its scheduler address (``tcp://host:8786``) included. Workers
write their cells' run folders themselves, so on several hosts the sweep folder must be at
the same path on every host (a shared file system), and the cache should be a Redis URL (a
cache directory is shared only by the processes of one host).
"""

from __future__ import annotations

import contextlib
import json
import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bdpl.cli.config import read_config
from bdpl.errors import ConfigError
from bdpl.metering.redis_cache import RedisQueryCache, is_redis_url
from bdpl.sweep.grid import Cell, Sweep
from bdpl.sweep.results import ResultsTable

__all__ = ["SweepReport", "run_cell", "run_sweep"]

log = logging.getLogger(__name__)

Workers = int | str | Executor | None
# Rounds of resubmitting cells whose worker died (a local pool that broke, a Dask task that
# killed too many workers); a cell that keeps killing its workers is reported as failed.
MAX_ROUNDS = 3


@dataclass(frozen=True)
class SweepReport:
    """What a run of a sweep did: cells run now, skipped (finished before), and failed."""

    ran: tuple[str, ...]
    skipped: tuple[str, ...]
    failed: dict[str, str]
    table: ResultsTable


def run_cell(cell: Cell, folder: str, cache: str | None, call_log: str | None) -> tuple[bool, Any]:
    """Run (or resume, or just read) one cell, on the worker.

    Returns:
        ``(True, metrics)``, or ``(False, "ErrorType: message")`` when the fit failed: an
        error travels back as text, as not every exception survives pickling (and one that
        does not would look like a dead worker).
    """
    from bdpl.cli.runs import fit_run

    run = Path(folder)
    done = run / "metrics.json"
    if done.is_file():
        return True, json.loads(done.read_text(encoding="utf-8"))
    resume = (run / "config.toml").is_file()
    if not resume and run.exists():
        for leftover in run.iterdir():  # killed before its config was written: nothing paid
            leftover.unlink()
    try:
        metrics = fit_run(cell.config, run, resume=resume, cache=cache, call_log=call_log,
                          method=cell.method, demonstrations=cell.demonstrations)  # fmt: skip
        return True, metrics
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"


def run_sweep(
    sweep: Sweep,
    folder: str | Path,
    *,
    workers: Workers = None,
    cache: str | None = None,
    call_log: str | None = None,
    on_cell: Callable[[str, str], None] | None = None,
) -> SweepReport:
    """Run every unfinished cell of ``sweep`` under ``folder``; write the results table.

    Args:
        sweep: the cells (:func:`~bdpl.sweep.read_sweep`).
        folder: the sweep's folder (cells in ``folder/cells``, tables beside them).
        workers: ``0`` runs the cells one by one in this process; ``n`` in ``n`` local
            worker processes; ``None`` in one per core; a string is a Dask scheduler's
            address (``tcp://host:8786``); an :class:`~concurrent.futures.Executor` is used
            as given (and not shut down).
        cache: a cache directory, a Redis URL (``redis://host:6379/0``: the cache of
            workers on several hosts), ``"off"``, or ``None`` for the user cache.
        call_log: the fake backend's call log (tests).
        on_cell: called with ``(cell name, "done"|"skipped"|"failed: ...")`` as cells end.

    Raises:
        CacheError: ``cache`` is a Redis URL whose server cannot be reached.
        ConfigError: a finished cell's folder holds other settings than the sweep's (the
            sweep file changed: use a new folder), or ``workers`` is negative.
        Exception: what the engine raises for itself (a Dask cluster that went away); a
            cell's own failure is reported in the table, not raised.
    """
    if is_redis_url(cache):  # fail once, here, rather than in every cell
        RedisQueryCache(str(cache)).close()
    root = Path(folder)
    cells_dir = root / "cells"
    cells_dir.mkdir(parents=True, exist_ok=True)
    table = ResultsTable(root, sweep.cells)
    skipped, pending = [], []
    for cell in sweep.cells:
        run = cells_dir / cell.name
        _check_same(cell, run)
        if (run / "metrics.json").is_file():
            table.add(cell, json.loads((run / "metrics.json").read_text(encoding="utf-8")))
            skipped.append(cell.name)
            if on_cell is not None:
                on_cell(cell.name, "skipped")
        else:
            pending.append(cell)
    table.write()
    ran: list[str] = []
    failed: dict[str, str] = {}
    if cache is None and not isinstance(workers, int | type(None)):
        log.warning("sweep: no --cache given; workers on other hosts will not share answers")
    for _ in range(MAX_ROUNDS):
        if not pending:
            break
        with _executor(workers) as executor:
            pending = _round(executor, pending, cells_dir, cache, call_log, table, ran, failed,
                             on_cell)  # fmt: skip
    for cell in pending:
        failed[cell.name] = "its worker died in every try"
        table.fail(cell, failed[cell.name])
    table.write()
    return SweepReport(tuple(ran), tuple(skipped), failed, table)


def _round(
    executor: Executor,
    cells: list[Cell],
    cells_dir: Path,
    cache: str | None,
    call_log: str | None,
    table: ResultsTable,
    ran: list[str],
    failed: dict[str, str],
    on_cell: Callable[[str, str], None] | None,
) -> list[Cell]:
    """Submit ``cells``; record each as it ends; return those whose worker died."""
    futures: dict[Future[Any], Cell] = {
        executor.submit(run_cell, c, str(cells_dir / c.name), cache, call_log): c for c in cells
    }
    lost: list[Cell] = []
    for future in as_completed(futures):
        cell = futures[future]
        try:
            ok, metrics = future.result()
        except Exception as exc:
            if not _worker_died(exc):
                raise  # the engine failed, not the cell (e.g. the cluster went away)
            log.warning("sweep: the worker of cell %s died; it will run again", cell.name)
            lost.append(cell)
            continue
        if not ok:
            failed[cell.name] = str(metrics)
            table.fail(cell, failed[cell.name])
            status = f"failed: {failed[cell.name]}"
        else:
            table.add(cell, metrics)
            ran.append(cell.name)
            status = "done"
        table.write()
        if on_cell is not None:
            on_cell(cell.name, status)
    return [c for c in cells if c in lost]


def _worker_died(exc: BaseException) -> bool:
    if isinstance(exc, BrokenProcessPool):
        return True
    return type(exc).__name__ == "KilledWorker"  # distributed's, without importing it


@contextlib.contextmanager
def _executor(workers: Workers) -> Iterator[Executor]:
    if isinstance(workers, Executor):
        yield workers
        return
    if isinstance(workers, str):
        if is_redis_url(workers):
            raise ConfigError(f"workers {workers!r} is a Redis URL; give it as the cache")
        yield from _dask(workers)
        return
    if workers is not None and (isinstance(workers, bool) or workers < 0):
        raise ConfigError(f"workers must be >= 0, got {workers!r}")
    if workers == 0:
        yield _InProcess()
        return
    n = workers or os.cpu_count() or 1
    # spawn: a forked child of a process with threads may deadlock.
    pool = ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"))
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _dask(address: str) -> Iterator[Executor]:
    try:
        from distributed import Client
    except ImportError:
        raise ConfigError(
            "a Dask cluster needs dask.distributed: pip install 'bdpl[sweep]'"
        ) from None
    with Client(address, timeout=30) as client:  # type: ignore[no-untyped-call,unused-ignore]
        executor = client.get_executor(pure=False)
        yield executor


class _InProcess(Executor):
    """Runs each submitted call at once, in this process."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        return future


def _check_same(cell: Cell, run: Path) -> None:
    saved = run / "config.toml"
    if saved.is_file() and read_config(saved) != cell.config:
        raise ConfigError(
            f"{run} was run with other settings than the sweep's cell {cell.name} (the sweep "
            "file changed); use a new sweep folder"
        )
