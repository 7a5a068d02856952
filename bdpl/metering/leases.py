"""Leases on queries being paid, shared by every process and thread using one cache directory.

A meter that misses a key first leases it; another meter that misses the same key while the
lease is live waits for the answer instead of paying for it again. A lease is a row in a small
SQLite database (``<cache>/leases``, through ``diskcache``) written with ``add``, which inserts
only when no live row exists, inside one ``BEGIN IMMEDIATE`` transaction: atomic across
processes on one host without lock files to clean up. Each lease expires ``timeout`` seconds
after it was taken, so a process killed while paying blocks the others for at most that long;
on the same host, a lease whose holder process is gone is taken over at once (a run killed and
restarted does not wait for its own dead leases).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterable
from pathlib import Path

from diskcache import Cache

__all__ = ["DEFAULT_LEASE_TIMEOUT", "Leases"]

# Longer than a paid call with its retries normally takes, short enough that a killed process
# does not stall the others for long.
DEFAULT_LEASE_TIMEOUT = 300.0


class Leases:
    """Claims on cache keys, each held by one owner until released or expired.

    Args:
        directory: where the lease database lives (created if needed).
        timeout: seconds after which a lease that was not released expires.
    """

    def __init__(self, directory: Path, timeout: float) -> None:
        self.timeout = timeout
        # One owner per Leases object: threads sharing it are told apart by the live row
        # itself (``add`` fails for any holder), so the token only guards release.
        self._token = f"{_HOST}:{os.getpid()}:{uuid.uuid4().hex}"
        self._db = Cache(str(directory), eviction_policy="none")

    def claim(self, keys: Iterable[str]) -> set[str]:
        """Lease every key that no one holds (or whose lease expired); returns those leased."""
        got = set()
        with self._db.transact(retry=True):
            for k in keys:
                if self._db.add(k, self._token, expire=self.timeout):
                    got.add(k)
                elif _dead(self._db.get(k)):
                    self._db.set(k, self._token, expire=self.timeout)
                    got.add(k)
        return got

    def release(self, keys: Iterable[str]) -> None:
        """Give up this owner's leases on ``keys`` (a lease that expired and was taken over by
        another owner is left to that owner)."""
        with self._db.transact(retry=True):
            for k in keys:
                if self._db.get(k) == self._token:
                    self._db.delete(k)

    def held(self, key: str) -> bool:
        """Whether someone holds a live lease on ``key``."""
        holder = self._db.get(key)
        return holder is not None and not _dead(holder)

    def close(self) -> None:
        self._db.close()


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
