"""A persistent, process-safe cache of paid answers, on ``diskcache`` (SQLite).

Keys and values follow DESIGN.md's money rules:

- key: the sha256 of canonical JSON (sorted keys, no spaces, UTF-8) of the cache-format
  version, the backend identity, any extra parameters that change the answer, and the query.
  Never Python's ``hash()`` or a ``repr``, so keys are equal in every process;
- value: a JSON string, never a pickle. Entries the cache did not write itself, or that do not
  parse as a valid answer to the query, are reported (``logging``) and treated as misses;
- only complete, validated answers are stored; errors never are.

Entries are never evicted: dropping a paid answer would mean paying for it again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diskcache import Cache, Disk
from diskcache.core import MODE_PICKLE, UNKNOWN

from bdpl.errors import CacheError, ConfigError
from bdpl.metering.validation import problem_with
from bdpl.types import LabelScores, Query

__all__ = ["CACHE_FORMAT_VERSION", "CacheStats", "QueryCache", "cache_key"]

log = logging.getLogger(__name__)

CACHE_FORMAT_VERSION = 1


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

    Safe to share between threads and between processes (SQLite in WAL mode); a directory may
    hold the answers of any number of backends.

    Args:
        directory: where the cache lives; created if needed.
        enabled: ``False`` makes every lookup a miss and every store a no-op (nothing on disk).

    Raises:
        ConfigError: ``directory`` is empty (it would mean the current directory).
        CacheError: the directory cannot be created or opened as a cache.

    >>> import tempfile
    >>> from bdpl.types import LabelScores, Query
    >>> q = Query("The film was", ".", (" bad", " good"))
    >>> with QueryCache(tempfile.mkdtemp()) as cache:
    ...     cache.put_many("fake", [(q, LabelScores((-2.0, -0.2)))])
    ...     cache.get("fake", q).logprobs
    (-2.0, -0.2)
    """

    def __init__(self, directory: str | Path, *, enabled: bool = True) -> None:
        if enabled and not str(directory).strip():
            # Path("") is the current directory: a cache would be written wherever we run.
            raise ConfigError(
                "the cache directory is an empty string; pass a directory (e.g. "
                "'~/.cache/bdpl/queries'), True for the default one, or False for no cache"
            )
        self.directory = Path(directory).expanduser()
        self.enabled = enabled
        self._lock = threading.Lock()
        self._hits = self._misses = self._bad = self._write_errors = 0
        self._cache: Cache | None = None
        if enabled:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                self._cache = Cache(
                    str(self.directory),
                    disk=_JsonOnlyDisk,
                    eviction_policy="none",
                    # Entries are small; keep them inside SQLite, not as separate files.
                    disk_min_file_size=2**20,
                )
            except Exception as exc:
                raise CacheError(f"cannot open the query cache at {self.directory}: {exc}") from exc

    def __repr__(self) -> str:
        return f"QueryCache({str(self.directory)!r}, enabled={self.enabled})"

    def __enter__(self) -> QueryCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    key = staticmethod(cache_key)

    def get(
        self, identity: str, query: Query, params: Mapping[str, object] | None = None
    ) -> LabelScores | None:
        """The stored answer to ``query`` from backend ``identity``, or ``None`` (a miss).

        A corrupted or foreign entry counts as a miss and is reported with a ``logging``
        warning; it is never returned and never raises.
        """
        if self._cache is None:
            return None
        return self.get_keyed(cache_key(identity, query, params), query)

    def get_keyed(self, key: str, query: Query) -> LabelScores | None:
        """As :meth:`get`, with the key already computed by :func:`cache_key`."""
        if self._cache is None:
            return None
        try:
            raw = self._cache.get(key)
        except Exception as exc:
            self._report_bad(key, f"unreadable ({type(exc).__name__}: {exc})")
            return None
        if raw is None:
            self._count(miss=True)
            return None
        scores = self._decode(raw, query)
        if isinstance(scores, str):
            self._report_bad(key, scores)
            return None
        self._count(miss=False)
        return scores

    def put_many(
        self,
        identity: str,
        answers: Iterable[tuple[Query, LabelScores]],
        params: Mapping[str, object] | None = None,
    ) -> None:
        """Store validated answers, all in one transaction (all or none are stored).

        A failure to write is reported with a ``logging`` warning and counted, not raised: the
        answers were paid for and the run can go on; only future runs lose them.
        """
        if self._cache is not None:
            self.put_keyed([(cache_key(identity, q, params), s) for q, s in answers])

    def put_keyed(self, answers: Sequence[tuple[str, LabelScores]]) -> None:
        """As :meth:`put_many`, with keys already computed by :func:`cache_key`."""
        if self._cache is None:
            return
        items = [(key, self._encode(s)) for key, s in answers]
        try:
            with self._cache.transact():
                for key, value in items:
                    self._cache.set(key, value)
        except Exception as exc:
            with self._lock:
                self._write_errors += len(items)
            log.warning(
                "query cache %s: could not store %d answers (%s: %s)",
                self.directory,
                len(items),
                type(exc).__name__,
                exc,
            )

    def clear(self) -> int:
        """Remove every entry (of every backend); returns how many were removed."""
        if self._cache is None:
            return 0
        return int(self._cache.clear())

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
            self._cache.close()

    @staticmethod
    def _encode(scores: LabelScores) -> str:
        doc = {"v": CACHE_FORMAT_VERSION, "scores": scores.to_json()}
        return json.dumps(doc, separators=(",", ":"), allow_nan=False)

    @staticmethod
    def _decode(raw: object, query: Query) -> LabelScores | str:
        """The answer stored in ``raw``, or a string saying what is wrong with it."""
        if not isinstance(raw, str):
            return f"foreign value of type {type(raw).__name__}"
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or doc.get("v") != CACHE_FORMAT_VERSION:
                return "foreign or older-format entry"
            scores = LabelScores.from_json(doc["scores"])
        except (ValueError, TypeError, KeyError) as exc:
            return f"corrupted entry ({type(exc).__name__})"
        problem = problem_with(query, scores)
        return scores if problem is None else f"invalid answer ({problem})"

    def _count(self, *, miss: bool) -> None:
        with self._lock:
            if miss:
                self._misses += 1
            else:
                self._hits += 1

    def _report_bad(self, key: str, why: str) -> None:
        with self._lock:
            self._bad += 1
            self._misses += 1
        log.warning("query cache %s: entry %s… ignored: %s", self.directory, key[:12], why)
