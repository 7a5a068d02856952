"""Check and repair a query cache directory, also one too damaged to open.

Both take a directory, not an open :class:`~bdpl.metering.QueryCache` (which refuses to open a
damaged database), and return a plain report, so a command line can call them and print it.
They read the database row by row through ``sqlite3``, skipping rows in damaged pages, so one
bad page costs only the answers stored on it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bdpl.errors import CacheError
from bdpl.metering.cache import DB_NAME, MISMATCH, QueryCache, decode_value
from bdpl.types import LabelScores

__all__ = ["CacheReport", "RepairReport", "check_cache", "repair_cache"]

log = logging.getLogger(__name__)

_RAW = 1  # diskcache's MODE_RAW: a str stored inline, as this cache writes every value
_REPAIR_BATCH = 1000


@dataclass(frozen=True, slots=True)
class CacheReport:
    """What a cache directory holds and whether it can be trusted.

    Attributes:
        path: the cache directory.
        entries: rows that could be read.
        verified: answers whose digest binds them to their key.
        legacy: valid answers stored before digests were (served, unverified).
        unreadable: rows in damaged pages (lost).
        mismatched: answers that do not belong to their key (swapped, moved or altered).
        foreign: rows this cache did not write (pickles, other formats, garbage).
        integrity: SQLite's ``PRAGMA integrity_check`` lines; ``("ok",)`` when sound.
        problem: what keeps the database from being read at all (missing, 0 bytes, not a
            database), or ``None``.
    """

    path: Path
    entries: int = 0
    verified: int = 0
    legacy: int = 0
    unreadable: int = 0
    mismatched: int = 0
    foreign: int = 0
    integrity: tuple[str, ...] = ()
    problem: str | None = None

    @property
    def ok(self) -> bool:
        """Whether every answer can be trusted and the database is sound."""
        return (
            self.problem is None
            and self.integrity == ("ok",)
            and not (self.unreadable or self.mismatched or self.foreign)
        )

    def __str__(self) -> str:
        head = f"query cache {self.path}: " + ("ok" if self.ok else "DAMAGED")
        if self.problem is not None:
            return f"{head} ({self.problem})"
        issues = [x for x in self.integrity if x != "ok"]
        return (
            f"{head}; {self.entries} entries: {self.verified} verified, {self.legacy} legacy "
            f"(no digest), {self.unreadable} unreadable, {self.mismatched} mismatched, "
            f"{self.foreign} foreign; integrity_check: "
            + ("ok" if not issues else f"{len(issues)} problems, first: {issues[0]}")
        )


@dataclass(frozen=True, slots=True)
class RepairReport:
    """What :func:`repair_cache` did.

    Attributes:
        path: the cache directory, now a fresh cache with the kept answers.
        kept: answers copied (verified or legacy; legacy ones now carry their digest).
        dropped: rows not copied (unreadable, mismatched or foreign).
        moved_to: where the damaged directory was moved (kept for inspection).
    """

    path: Path
    kept: int
    dropped: int
    moved_to: Path

    def __str__(self) -> str:
        return (
            f"query cache {self.path}: repaired; kept {self.kept} answers, dropped "
            f"{self.dropped}; the damaged copy is at {self.moved_to}"
        )


def check_cache(directory: str | Path) -> CacheReport:
    """Read every row of the cache at ``directory`` and verify it; changes nothing.

    Stop processes that write to the cache first for an exact count (a check run alongside
    them is safe, but may count rows they are writing).
    """
    path = Path(directory).expanduser()
    counts = dict.fromkeys(("verified", "legacy", "unreadable", "mismatched", "foreign"), 0)
    with _connect(path) as (con, problem):
        if con is None:
            return CacheReport(path, problem=problem)
        for _, status, _ in _rows(con):
            counts[status] += 1
        integrity = _integrity(con)
    return CacheReport(
        path,
        entries=sum(counts.values()) - counts["unreadable"],
        verified=counts["verified"],
        legacy=counts["legacy"],
        unreadable=counts["unreadable"],
        mismatched=counts["mismatched"],
        foreign=counts["foreign"],
        integrity=integrity,
    )


def repair_cache(directory: str | Path) -> RepairReport:
    """Copy every readable, verified answer into a fresh cache and move the damaged one aside.

    The damaged directory is renamed ``<directory>.damaged-<UTC time>`` and kept (delete it
    when satisfied); ``directory`` becomes a fresh cache holding what could be read. Answers
    stored before digests were get theirs. No other process may use the cache meanwhile.

    Raises:
        CacheError: the directory does not exist or the fresh cache cannot be written.
    """
    path = Path(directory).expanduser()
    if not path.is_dir():
        raise CacheError(f"no query cache to repair at {path}")
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    fresh = path.with_name(f"{path.name}.repairing-{stamp}")
    aside = path.with_name(f"{path.name}.damaged-{stamp}")
    kept = dropped = 0
    with _connect(path) as (con, _), QueryCache(fresh) as target:
        batch: list[tuple[str, LabelScores]] = []
        for key, status, scores in _rows(con) if con is not None else ():
            if scores is None or status not in ("verified", "legacy"):
                dropped += 1
                continue
            batch.append((key, scores))
            if len(batch) == _REPAIR_BATCH:
                target.store(batch)
                kept, batch = kept + len(batch), []
        target.store(batch)
        kept += len(batch)
    os.replace(path, aside)
    os.replace(fresh, path)
    report = RepairReport(path, kept, dropped, aside)
    log.warning("%s", report)
    return report


@contextlib.contextmanager
def _connect(path: Path) -> Iterator[tuple[sqlite3.Connection | None, str | None]]:
    """A connection to the cache database, or ``None`` and why it cannot be read."""
    db = path / DB_NAME
    if not db.is_file():
        yield None, f"no {DB_NAME} in {path}"
        return
    if db.stat().st_size == 0:
        yield None, f"{DB_NAME} is empty (0 bytes)"
        return
    con = sqlite3.connect(str(db), timeout=60)
    try:
        con.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        con.close()
        yield None, f"{DB_NAME} cannot be read: {exc}"
        return
    try:
        yield con, None
    finally:
        con.close()


def _rows(con: sqlite3.Connection) -> Iterator[tuple[str, str, LabelScores | None]]:
    """``(key, status, answer)`` for each row; a row in a damaged page is ``unreadable``.

    Rows are read one rowid at a time: a scan would stop at the first damaged page.
    """
    for rowid in range(1, _last_rowid(con) + 1):
        try:
            row = con.execute(
                "SELECT key, raw, mode, value FROM Cache WHERE rowid = ?", (rowid,)
            ).fetchone()
        except sqlite3.DatabaseError:
            yield "", "unreadable", None
            continue
        if row is None:
            continue  # a deleted row
        key, raw, mode, value = row
        if not (isinstance(key, str) and raw == 1 and mode == _RAW):
            yield str(key), "foreign", None
            continue
        scores = decode_value(value, key)
        if isinstance(scores, LabelScores):
            yield key, ("legacy" if '"d":' not in value else "verified"), scores
        else:
            yield key, ("mismatched" if scores == MISMATCH else "foreign"), None


def _last_rowid(con: sqlite3.Connection) -> int:
    try:
        return int(con.execute("SELECT max(rowid) FROM Cache").fetchone()[0] or 0)
    except sqlite3.DatabaseError:
        pass
    # The table's last page is damaged: diskcache's own count bounds the rowids in use, give
    # or take deletions, so probe well past it.
    try:
        row = con.execute("SELECT value FROM Settings WHERE key = 'count'").fetchone()
        return 2 * int(row[0]) + 10_000
    except (sqlite3.DatabaseError, TypeError, ValueError):
        return 1_000_000


def _integrity(con: sqlite3.Connection) -> tuple[str, ...]:
    try:
        return tuple(str(r[0]) for r in con.execute("PRAGMA integrity_check(100)").fetchall())
    except sqlite3.DatabaseError as exc:
        return (f"integrity_check failed: {exc}",)
