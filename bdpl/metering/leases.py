"""Leases on queries being paid, shared by every process and thread using one cache directory.

A meter that misses a key first leases it; another meter that misses the same key while the
lease is live waits for the answer instead of paying for it again. Leases are rows of a small
SQLite database beside the cache (``<cache>/leases.db``), read and written inside one
``BEGIN IMMEDIATE`` transaction per batch: atomic across processes on one host, with no lock
files to clean up. Each lease expires ``timeout`` seconds after it was taken, so a process
stopped while paying blocks the others for at most that long; on the same host, a lease whose
holder process is gone is taken over at once (a run killed and restarted does not wait for
its own dead leases). A released lease stays a while as a "done" row, so that a meter that
missed the key just before it was released knows to read the cache again before paying.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

__all__ = ["DEFAULT_LEASE_TIMEOUT", "Leases"]

# Longer than a paid call with its retries normally takes, short enough that a stopped process
# does not stall the others for long.
DEFAULT_LEASE_TIMEOUT = 300.0
_DONE = ""  # holder of a released lease
_CHUNK = 500  # keys per statement (SQLite's limit on parameters is 999 in old builds)

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS Lease ("
    " key TEXT PRIMARY KEY, holder TEXT NOT NULL, until REAL NOT NULL) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS Lease_until ON Lease (until)",
)


class Leases:
    """Claims on cache keys, each held by one owner until released or expired.

    Args:
        path: the lease database file (created if needed).
        timeout: seconds after which a lease that was not released expires.
    """

    def __init__(self, path: Path, timeout: float) -> None:
        self.timeout = timeout
        # One owner per Leases object; threads sharing it are told apart by the live row
        # itself (a held key cannot be claimed again), so the token only guards release.
        self._token = f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex}"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            str(path), timeout=60, isolation_level=None, check_same_thread=False
        )
        deadline = time.monotonic() + 60
        while True:
            # Switching to WAL ignores the busy timeout: another process creating the file at
            # the same moment makes it fail with "database is locked"; try again.
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        self._db.execute("PRAGMA synchronous=NORMAL")  # a lost lease is only a lost wait
        for statement in _SCHEMA:
            self._db.execute(statement)

    def claim(self, keys: Sequence[str]) -> tuple[set[str], set[str]]:
        """Lease every key no one holds (or whose holder expired or died).

        Returns:
            ``(leased, recheck)``: the keys now leased to this owner, and those of them whose
            previous lease was released recently (its holder may have stored an answer after
            the caller's miss: read the cache again before paying).
        """
        with self._lock, self._transaction():
            now = time.time()
            self._db.execute("DELETE FROM Lease WHERE until < ?", (now - self.timeout,))
            rows = []
            for i in range(0, len(keys), _CHUNK):
                part = keys[i : i + _CHUNK]
                marks = ",".join("?" * len(part))
                rows += self._db.execute(
                    f"SELECT key, holder, until FROM Lease WHERE key IN ({marks})", part
                ).fetchall()
            busy = {k for k, h, u in rows if h != _DONE and u > now and not _dead(h)}
            leased = {k for k in keys if k not in busy}
            self._db.executemany(
                "INSERT OR REPLACE INTO Lease VALUES (?, ?, ?)",
                [(k, self._token, now + self.timeout) for k in leased],
            )
        return leased, {k for k, h, _ in rows if h == _DONE}

    def release(self, keys: Iterable[str]) -> None:
        """Give up this owner's leases on ``keys`` (a lease that expired and was taken over by
        another owner is left to that owner)."""
        now = time.time()
        with self._lock, self._transaction():
            self._db.executemany(
                "UPDATE Lease SET holder = ?, until = ? WHERE key = ? AND holder = ?",
                [(_DONE, now, k, self._token) for k in keys],
            )

    def held(self, key: str) -> bool:
        """Whether someone holds a live lease on ``key``."""
        with self._lock:
            row = self._db.execute(
                "SELECT holder, until FROM Lease WHERE key = ?", (key,)
            ).fetchone()
        return row is not None and row[0] != _DONE and row[1] > time.time() and not _dead(row[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write transaction (the connection is in autocommit mode otherwise)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")


_HOST = socket.gethostname()


def _dead(holder: object) -> bool:
    """Whether a lease's holder was a process on this host that no longer runs."""
    if not isinstance(holder, str):
        return False
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != _HOST or not pid.isdigit():
        return False  # another host's (or container's) process: only its timeout ends it
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists, owned by someone else
        return False
    return False
