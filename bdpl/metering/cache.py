"""A persistent, process-safe cache of paid answers, on ``diskcache`` (SQLite).

Keys and values follow DESIGN.md's money rules:

- key: the sha256 of canonical JSON (sorted keys, no spaces, UTF-8) of the cache-format
  version, the backend identity, any extra parameters that change the answer, and the query.
  Never Python's ``hash()`` or a ``repr``, so keys are equal in every process;
- value: a JSON string, never a pickle, holding the answer and a digest that binds it to its
  key (sha256 of the key and the answer's canonical JSON), so an answer stored under another
  key, or altered, is detected. Entries the cache did not write itself, that fail their digest,
  or that do not parse as a valid answer to the query, are reported (``logging``) and treated
  as misses (the next payment replaces them);
- only complete, validated answers are stored; errors never are.

Entries are never evicted: dropping a paid answer would mean paying for it again. A damaged
database (truncated, overwritten, not SQLite) raises :class:`~bdpl.errors.CacheDamagedError`
rather than passing for an empty cache; :func:`~bdpl.metering.cache_repair.repair_cache`
keeps what can still be read. Queries being paid are leased (:mod:`bdpl.metering.leases`) so
that processes sharing the directory wait for each other's answers rather than pay twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from diskcache import Cache, Disk
from diskcache.core import MODE_PICKLE, UNKNOWN

from bdpl._validate import finite_number
from bdpl.errors import CacheDamagedError, CacheError, ConfigError
from bdpl.metering.leases import DEFAULT_LEASE_TIMEOUT, Leases
from bdpl.metering.validation import problem_with
from bdpl.types import LabelScores, Query

__all__ = ["CACHE_FORMAT_VERSION", "CacheStats", "QueryCache", "cache_key", "damage_message"]

if TYPE_CHECKING:
    from bdpl.metering.cache_repair import CacheReport, RepairReport

log = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1
DB_NAME = "cache.db"
# Written beside the database: its presence says the directory held a cache, so a missing or
# emptied database is damage, not a fresh start.
MARKER_NAME = "bdpl-cache.json"
LEASES_NAME = "leases.db"
_LEASES_FAILED = (
    "query cache %s: the lease database failed (%s: %s); queries are paid without leases "
    "from now on, so another process missing the same query at the same moment may pay it too"
)
# Polling for an answer another process is paying: first wait, growth, and longest wait.
_POLL_FIRST, _POLL_GROWTH, _POLL_MAX = 0.005, 1.5, 0.25


def cache_key(identity: str, query: Query, params: Mapping[str, object] | None = None) -> str:
    """The cache key of ``query`` asked of the backend ``identity``.

    >>> cache_key("fake", Query("a", ".", (" x", " y")))[:16]
    '2d39b8c5aa5fa628'
    """
    doc: dict[str, object] = {
        "v": CACHE_FORMAT_VERSION,
        "backend": identity,
        "query": query.to_json(),
    }
    if params:
        doc["params"] = dict(params)
    text = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def damage_message(directory: Path, why: str) -> str:
    """What a damaged cache says: where, what is wrong, and the fix."""
    return (
        f"the query cache at {directory} is damaged ({why}), so its answers cannot be trusted "
        "and it was not used (treating it as empty would pay for them again, run after run). "
        f"Fix: `bdpl cache check --dir {directory}` (or `bdpl.metering.check_cache(path)`) "
        f"reports what is readable and `bdpl cache repair --dir {directory}` (or "
        "`bdpl.metering.repair_cache(path)`) copies every readable, verified answer into a fresh "
        f"cache and moves the damaged one aside to {directory}.damaged-<time>; or move the "
        "directory aside yourself to start an empty cache. Stop other processes using it first."
    )


def is_damage(exc: BaseException) -> bool:
    """Whether a SQLite error means a damaged database file (not a busy, locked or full one)."""
    # SQLITE_CORRUPT and SQLITE_NOTADB are raised as the base DatabaseError; busy, locked, full
    # and I/O errors as its OperationalError subclass, which a retry or free space can fix.
    return type(exc) is sqlite3.DatabaseError


def value_digest(key: str, scores_text: str) -> str:
    """The digest binding an answer (the exact JSON text stored) to the key it is stored under."""
    return hashlib.sha256(f"{key}\n{scores_text}".encode()).hexdigest()


# Stored values are exactly ``{"v":1,"scores":<answer JSON>,"d":"<digest>"}``: the digest is
# checked against the stored text itself (no re-serializing on each hit), and the layout stays
# the one older versions read (they ignore ``"d"``).
_HEAD = f'{{"v":{CACHE_FORMAT_VERSION},"scores":'


def encode_value(key: str, scores: LabelScores) -> str:
    """The stored JSON text of ``scores`` under ``key``."""
    text = json.dumps(scores.to_json(), separators=(",", ":"), allow_nan=False)
    return f'{_HEAD}{text},"d":"{value_digest(key, text)}"}}'


def decode_value(raw: object, key: str) -> LabelScores | str:
    """The answer stored in ``raw`` under ``key``, or a string saying what is wrong with it.

    Entries written before digests were stored (no ``"d"``) are accepted as they are, so that
    existing caches stay valid; :func:`~bdpl.metering.cache_repair.repair_cache` adds theirs.
    """
    if not isinstance(raw, str):
        return f"foreign value of type {type(raw).__name__}"
    try:
        doc = json.loads(raw)
        if not isinstance(doc, dict) or doc.get("v") != CACHE_FORMAT_VERSION:
            return "foreign or older-format entry"
        scores = LabelScores.from_json(doc["scores"])
    except (ValueError, TypeError, KeyError) as exc:
        return f"corrupted entry ({type(exc).__name__})"
    digest = doc.get("d")
    if digest is not None:
        tail = f',"d":"{digest}"}}'
        if not (
            isinstance(digest, str)
            and raw.startswith(_HEAD)
            and raw.endswith(tail)
            and digest == value_digest(key, raw[len(_HEAD) : -len(tail)])
        ):
            return MISMATCH
    return scores


MISMATCH = "answer does not belong to its key (digest mismatch: moved, swapped or altered)"


PolledAnswers = tuple[dict[Query, LabelScores], list[tuple[Query, str]]]


def poll_answers(
    keyed: Sequence[tuple[Query, str]],
    look: Callable[[list[tuple[Query, str]]], PolledAnswers],
) -> dict[Query, LabelScores]:
    """Call ``look`` on the queries still pending, with a growing pause (5 ms up to 250 ms),
    until none is; ``look`` returns the answers it found and the queries still to wait for
    (a query in neither has no answer and no live lease: its holder failed)."""
    found: dict[Query, LabelScores] = {}
    pending, pause = list(keyed), _POLL_FIRST
    while pending:
        got, pending = look(pending)
        found.update(got)
        if pending:
            time.sleep(pause)
            pause = min(pause * _POLL_GROWTH, _POLL_MAX)
    return found


class _ForeignEntryError(ValueError):
    """An entry that this cache did not write (e.g. a pickle)."""


class _JsonOnlyDisk(Disk):  # type: ignore[misc]
    """A diskcache serializer that stores and returns ``str`` only, and never unpickles."""

    def put(self, key: Any) -> tuple[Any, bool]:
        if type(key) is not str:
            raise TypeError("QueryCache keys are str")
        return super().put(key)  # type: ignore[no-any-return]

    def get(self, key: Any, raw: bool) -> Any:
        if not raw:
            raise _ForeignEntryError("pickled key")
        return super().get(key, raw)

    def store(self, value: Any, read: bool, key: Any = UNKNOWN) -> Any:
        if read or type(value) is not str:
            raise TypeError("QueryCache values are JSON strings")
        return super().store(value, read, key=key)

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        # Unpickling a value from a shared directory could run arbitrary code.
        if mode == MODE_PICKLE:
            raise _ForeignEntryError("pickled value")
        return super().fetch(mode, filename, value, read)


@dataclass(frozen=True, slots=True)
class CacheStats:
    """What a :class:`QueryCache` holds and how it was used in this process.

    Attributes:
        entries: answers stored (all processes, all runs).
        size_bytes: bytes the cache directory takes on disk.
        hits: lookups answered this run.
        misses: lookups not answered this run (bad entries included).
        bad_entries: entries found corrupted or foreign this run (reported and ignored).
        write_errors: answers that could not be stored this run (reported, not raised).
    """

    entries: int
    size_bytes: int
    hits: int
    misses: int
    bad_entries: int
    write_errors: int


class QueryCache:
    """Answers already paid for, keyed by backend identity and query.

    Safe to share between threads and between processes on one host (SQLite in WAL mode); a
    directory may hold the answers of any number of backends. A :class:`~bdpl.metering.Meter`
    leases each query it is about to pay (:meth:`claim`), so processes sharing the directory
    wait for each other's answers instead of paying for the same query twice.

    Args:
        directory: where the cache lives; created if needed.
        enabled: ``False`` makes every lookup a miss and every store a no-op (nothing on disk).
        lease_timeout: seconds after which the lease on a query being paid expires if its
            holder neither stored an answer nor released it (a killed process): others wait at
            most this long for it, then pay themselves.

    Raises:
        CacheDamagedError: the directory held a cache whose database is now missing, empty,
            emptied or not a database; the message names the fix (:func:`repair_cache`).
        ConfigError: ``directory`` is empty (it would mean the current directory).
        CacheError: the directory cannot be created or opened as a cache.
        ConfigError: ``lease_timeout`` is not a positive number.

    >>> import tempfile
    >>> from bdpl.types import LabelScores, Query
    >>> q = Query("The film was", ".", (" bad", " good"))
    >>> with QueryCache(tempfile.mkdtemp()) as cache:
    ...     cache.put_many("fake", [(q, LabelScores((-2.0, -0.2)))])
    ...     cache.get("fake", q).logprobs
    (-2.0, -0.2)
    """

    def __init__(
        self,
        directory: str | Path,
        *,
        enabled: bool = True,
        lease_timeout: float = DEFAULT_LEASE_TIMEOUT,
    ) -> None:
        if enabled and not str(directory).strip():
            # Path("") is the current directory: a cache would be written wherever we run.
            raise ConfigError(
                "the cache directory is an empty string; pass a directory (e.g. "
                "'~/.cache/bdpl/queries'), True for the default one, or False for no cache"
            )
        self.directory = Path(directory).expanduser()
        self.enabled = enabled
        self.lease_timeout = finite_number("lease_timeout", lease_timeout, least=1e-3)
        self._lock = threading.Lock()
        self._hits = self._misses = self._bad = self._write_errors = 0
        self._cache: Cache | None = None
        self._leases: Leases | None = None
        self._damage: str | None = None  # why the database is damaged, once found
        self._marked = 0  # entries the marker file says the cache held
        self._leasing = True  # False once the lease database failed
        if enabled:
            self._cache = self._open()

    def _open(self) -> Cache:
        db, marker = self.directory / DB_NAME, self.directory / MARKER_NAME
        held = _read_marker(marker)
        # Without the marker, a 0-byte database is one another process is creating right now.
        if held is not None and not db.exists():
            raise self._damaged(f"{DB_NAME} is missing but {MARKER_NAME} says a cache was here")
        if held is not None and db.stat().st_size == 0:
            raise self._damaged(f"{DB_NAME} is empty (0 bytes)")
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            cache = Cache(
                str(self.directory),
                disk=_JsonOnlyDisk,
                eviction_policy="none",
                # Entries are small; keep them inside SQLite, not as separate files.
                disk_min_file_size=2**20,
            )
            entries = len(cache)
        except Exception as exc:
            if is_damage(exc):
                raise self._damaged(f"{type(exc).__name__}: {exc}") from exc
            raise CacheError(f"cannot open the query cache at {self.directory}: {exc}") from exc
        if held and entries == 0:
            cache.close()
            raise self._damaged(f"it holds no answers, but held {held} when last closed")
        if held is None:
            self._write_marker(entries)
        self._marked = held or entries
        return cache

    def __repr__(self) -> str:
        return f"QueryCache({str(self.directory)!r}, enabled={self.enabled})"

    def __enter__(self) -> QueryCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(
        self, identity: str, query: Query, params: Mapping[str, object] | None = None
    ) -> LabelScores | None:
        """The stored answer to ``query`` from backend ``identity``, or ``None`` (a miss).

        A corrupted, foreign or misplaced entry counts as a miss and is reported with a
        ``logging`` warning; it is never returned.

        Raises:
            CacheDamagedError: the database is damaged (a read failed, or an earlier write
                did); logged once as an error, with the fix.
        """
        if not self.enabled:
            return None
        return self.get_keyed(cache_key(identity, query, params), query)

    def get_keyed(self, key: str, query: Query) -> LabelScores | None:
        """As :meth:`get`, with the key already computed by :func:`cache_key`."""
        if self._cache is None:
            return None
        found = self._lookup(key, query)
        self._count(miss=found is None)
        return found

    def put_many(
        self,
        identity: str,
        answers: Iterable[tuple[Query, LabelScores]],
        params: Mapping[str, object] | None = None,
    ) -> None:
        """Store validated answers, all in one transaction (all or none are stored).

        A failure to write is reported with a ``logging`` warning and counted, not raised: the
        answers were paid for and the run can go on; only future runs lose them. A write that
        finds the database damaged is logged as an error, with the fix, and the next lookup
        raises :class:`~bdpl.errors.CacheDamagedError` (nothing more is paid into a cache that
        cannot keep it).
        """
        if self.enabled:
            self.put_keyed([(cache_key(identity, q, params), s) for q, s in answers])

    def put_keyed(self, answers: Sequence[tuple[str, LabelScores]]) -> None:
        """As :meth:`put_many`, with keys already computed by :func:`cache_key`."""
        if self._cache is None:
            return
        if self._damage is not None:  # writing into a damaged database can only spread it
            with self._lock:
                self._write_errors += len(answers)
            return
        try:
            self.store(answers)
            if not self._marked:  # the first answers: from now on, emptied means damaged
                self._write_marker(len(self._cache))
        except Exception as exc:
            with self._lock:
                self._write_errors += len(answers)
            if is_damage(exc):
                self._note_damage(f"a write failed: {type(exc).__name__}: {exc}")
                return
            log.warning(
                "query cache %s: could not store %d answers (%s: %s)",
                self.directory,
                len(answers),
                type(exc).__name__,
                exc,
            )

    def store(self, answers: Sequence[tuple[str, LabelScores]]) -> None:
        """Store answers under their keys in one transaction; errors are raised, not logged."""
        if self._cache is None:
            return
        items = [(key, encode_value(key, s)) for key, s in answers]
        with self._cache.transact():
            for key, value in items:
                self._cache.set(key, value)

    # -- leases: one payer per query across processes ----------------------------------------

    def claim(
        self, keyed: Sequence[tuple[Query, str]]
    ) -> tuple[list[tuple[Query, str]], list[tuple[Query, str]], dict[Query, LabelScores]]:
        """Lease the queries no one else is paying for.

        Args:
            keyed: missed queries with their keys.

        Returns:
            ``(mine, others, found)``: the queries now leased to this cache object (pay them,
            then :meth:`release` them), those another holder is paying for (:meth:`wait` for
            them), and answers stored since the miss (their leases are already released).
            With the cache disabled, every query is ``mine``.
        """
        leases = self._lease_db() if self._cache is not None and keyed else None
        if leases is None:
            return list(keyed), [], {}
        try:
            got, recheck = leases.claim([k for _, k in keyed])
        except sqlite3.Error as exc:
            self._leases_failed(exc)
            return list(keyed), [], {}
        mine = [qk for qk in keyed if qk[1] in got]
        others = [qk for qk in keyed if qk[1] not in got]
        # A holder stores its answer before releasing, so an answer that arrived between the
        # miss and this lease is visible now: re-read, or it would be paid twice.
        try:
            found = {
                q: a for q, k in mine if k in recheck and (a := self._lookup(k, q)) is not None
            }
        except BaseException:  # a damaged database: leave no lease behind
            self.release(k for _, k in mine)
            raise
        if found:
            self.release(k for q, k in mine if q in found)
            mine = [qk for qk in mine if qk[0] not in found]
        return mine, others, found

    def release(self, keys: Iterable[str]) -> None:
        """Give up the leases :meth:`claim` took on ``keys`` (answer stored or not)."""
        keys = list(keys)
        leases = self._lease_db() if self._cache is not None and keys else None
        if leases is not None:
            try:
                leases.release(keys)
            except sqlite3.Error as exc:  # the leases expire, or end with this process
                self._leases_failed(exc)

    def wait(self, keyed: Sequence[tuple[Query, str]]) -> dict[Query, LabelScores]:
        """Wait until each query has an answer or no live lease; returns the answers found.

        Polls with a growing pause (5 ms up to 250 ms); a lease whose holder died expires after
        the holder's ``lease_timeout``. Queries left without an answer (their holder failed)
        are for the caller to :meth:`claim` again.
        """
        leases = self._lease_db() if self._cache is not None else None
        if leases is None:
            return {}

        def look(pending: list[tuple[Query, str]]) -> PolledAnswers:
            found, still = {}, []
            for q, k in pending:
                answer = self._lookup(k, q)
                if answer is None and not self._held(leases, k):
                    # A holder stores its answer before releasing: read once more, and only
                    # then does "no answer" mean that its call failed (the caller claims it).
                    answer = self._lookup(k, q)
                    if answer is None:
                        continue
                if answer is None:
                    still.append((q, k))
                else:
                    found[q] = answer
            return found, still

        return poll_answers(keyed, look)

    # -- upkeep ---------------------------------------------------------------------------------

    def check(self) -> CacheReport:
        """What :func:`~bdpl.metering.check_cache` reports for this cache's directory."""
        from bdpl.metering.cache_repair import check_cache

        return check_cache(self.directory)

    def repair(self) -> RepairReport:
        """Close this cache, :func:`~bdpl.metering.repair_cache` its directory, and reopen it.

        No other process may use the directory meanwhile.
        """
        from bdpl.metering.cache_repair import repair_cache

        self.close()
        report = repair_cache(self.directory)
        self._damage, self._leases = None, None
        self._cache = self._open()
        return report

    def clear(self) -> int:
        """Remove every entry (of every backend); returns how many were removed."""
        if self._cache is None:
            return 0
        removed = int(self._cache.clear())
        self._write_marker(0)
        return removed

    def stats(self) -> CacheStats:
        """Entries and size on disk, and this process's hits and misses."""
        entries = size = 0
        if self._cache is not None:
            entries = len(self._cache)
            size = int(self._cache.volume())
        with self._lock:
            return CacheStats(
                entries, size, self._hits, self._misses, self._bad, self._write_errors
            )

    def close(self) -> None:
        """Close the SQLite connections (the cache can be reopened by making a new one)."""
        if self._cache is not None:
            if self._damage is None:
                try:
                    self._write_marker(len(self._cache))
                except Exception as exc:  # closing must not fail over a note for next time
                    log.debug("query cache %s: marker not written: %s", self.directory, exc)
            self._cache.close()
        if self._leases is not None:
            self._leases.close()

    # -- internals ------------------------------------------------------------------------------

    def _lookup(self, key: str, query: Query) -> LabelScores | None:
        """The verified answer stored under ``key``, or ``None``; bad entries are reported."""
        assert self._cache is not None
        if self._damage is not None:
            raise self._damaged(self._damage)
        try:
            raw = self._cache.get(key)
        except Exception as exc:
            if is_damage(exc):
                self._note_damage(f"a read failed: {type(exc).__name__}: {exc}")
                raise self._damaged(self._damage or "") from exc
            self._report_bad(key, f"unreadable ({type(exc).__name__}: {exc})")
            return None
        return self._verified(key, query, raw)

    def _verified(self, key: str, query: Query, raw: object) -> LabelScores | None:
        """The answer in the stored value ``raw``, if it is one to ``query`` stored under
        ``key``; ``None`` for no value, and a bad one is reported."""
        if raw is None:
            return None
        scores = decode_value(raw, key)
        if isinstance(scores, LabelScores):
            problem = problem_with(query, scores)
            scores = scores if problem is None else f"invalid answer ({problem})"
        if isinstance(scores, str):
            self._report_bad(key, scores)
            return None
        return scores

    def _lease_db(self) -> Leases | None:
        """The lease database; ``None`` once it failed (queries are then paid unleased)."""
        with self._lock:
            if self._leases is None and self._leasing:
                try:
                    self._leases = Leases(self.directory / LEASES_NAME, self.lease_timeout)
                except sqlite3.Error as exc:
                    self._leasing = False
                    log.warning(_LEASES_FAILED, self.directory, type(exc).__name__, exc)
            return self._leases if self._leasing else None

    def _held(self, leases: Leases, key: str) -> bool:
        try:
            return leases.held(key)
        except sqlite3.Error as exc:
            self._leases_failed(exc)
            return False

    def _leases_failed(self, exc: sqlite3.Error) -> None:
        """Leases are a saving, not a safeguard: without them, pay (and warn, once)."""
        with self._lock:
            first, self._leasing = self._leasing, False
        if first:
            log.warning(_LEASES_FAILED, self.directory, type(exc).__name__, exc)

    def _damaged(self, why: str) -> CacheDamagedError:
        return CacheDamagedError(damage_message(self.directory, why), path=str(self.directory))

    def _note_damage(self, why: str) -> None:
        """Remember that the database is damaged; say so loudly, once."""
        with self._lock:
            first, self._damage = self._damage is None, self._damage or why
        if first:
            log.error("%s", damage_message(self.directory, why))

    def _write_marker(self, entries: int) -> None:
        self._marked = entries
        doc = {"format": CACHE_FORMAT_VERSION, "entries": entries}
        tmp = self.directory / f".{MARKER_NAME}.{os.getpid()}.{threading.get_ident()}"
        tmp.write_text(json.dumps(doc) + "\n", encoding="utf-8")
        os.replace(tmp, self.directory / MARKER_NAME)  # atomic: readers see old or new

    def _count(self, *, miss: bool) -> None:
        with self._lock:
            if miss:
                self._misses += 1
            else:
                self._hits += 1

    def _report_bad(self, key: str, why: str) -> None:
        with self._lock:
            self._bad += 1
        log.warning("query cache %s: entry %s… ignored: %s", self.directory, key[:12], why)


def _read_marker(path: Path) -> int | None:
    """Entries the marker says the cache held when last closed; ``None`` without a marker."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return 0  # a marker we cannot read still says a cache was here
    entries = doc.get("entries") if isinstance(doc, dict) else None
    return entries if isinstance(entries, int) and entries >= 0 else 0
