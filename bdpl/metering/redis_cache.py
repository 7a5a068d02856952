"""A query cache on Redis (or Valkey), shared by workers on several hosts.

:class:`RedisQueryCache` is a drop-in :class:`~bdpl.metering.QueryCache` (a
:class:`~bdpl.metering.Meter` takes it as it takes the disk cache) with the same contract:

- the same keys (:func:`~bdpl.metering.cache_key`) and the same stored JSON text, digest
  included, so an answer read back is checked against the key it was stored under;
- errors and partial answers are never stored (the meter stores only validated answers, and
  every hit is validated again against its query);
- one payer per query: a meter leases each missed query with ``SET lease NX PX timeout``
  before paying for it; another meter that misses the same query waits for the answer. A
  lease whose holder died (a killed worker) expires after ``lease_timeout`` seconds, and the
  waiters then pay for it themselves. A holder stores its answer before releasing its lease,
  so a lease taken is followed by one more read of the answer before anything is paid.

Everything on the wire is redis-py's (``redis>=5``; ``pip install 'bdpl[sweep]'``).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from bdpl._validate import finite_number
from bdpl.errors import CacheError, ConfigError
from bdpl.metering.cache import (
    CacheStats,
    PolledAnswers,
    QueryCache,
    encode_value,
    poll_answers,
)
from bdpl.metering.leases import DEFAULT_LEASE_TIMEOUT
from bdpl.types import LabelScores, Query

if TYPE_CHECKING:
    from bdpl.metering.cache_repair import CacheReport, RepairReport

__all__ = ["REDIS_SCHEMES", "RedisQueryCache", "is_redis_url"]

log = logging.getLogger(__name__)

REDIS_SCHEMES = ("redis://", "rediss://", "unix://", "valkey://", "valkeys://")
_ANSWER = "bdpl:q:"  # + cache key: the stored answer
_LEASE = "bdpl:lease:"  # + cache key: the token of the meter paying for it
# Delete a lease only if this cache object still holds it (an expired lease may be another's).
_RELEASE = """
local n = 0
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then n = n + redis.call('DEL', key) end
end
return n
"""


def is_redis_url(value: object) -> bool:
    """Whether ``value`` names a Redis or Valkey server (``redis://host:6379/0`` and kin)."""
    return isinstance(value, str) and value.lower().startswith(REDIS_SCHEMES)


class RedisQueryCache(QueryCache):
    """Answers already paid for, on a Redis or Valkey server every worker can reach.

    Args:
        url: the server, ``redis://[:password@]host:port/db`` (``rediss://`` for TLS,
            ``valkey://`` is read as ``redis://``); ``?lease_timeout=S`` at its end sets
            ``lease_timeout`` (so a command line can set it).
        lease_timeout: seconds after which the lease on a query being paid expires if its
            holder neither stored an answer nor released it (a killed worker): the most a
            worker waits for a dead one's query before paying for it.
        client: an already built ``redis.Redis`` (``url`` is then only its name).

    Raises:
        ConfigError: ``redis`` is not installed, the URL is not a Redis URL, or
            ``lease_timeout`` is not positive.
        CacheError: the server cannot be reached.
    """

    def __init__(
        self,
        url: str,
        *,
        lease_timeout: float = DEFAULT_LEASE_TIMEOUT,
        client: Any = None,
    ) -> None:
        super().__init__("", enabled=False)
        if not is_redis_url(url):
            raise ConfigError(f"{url!r} is not a Redis URL (e.g. redis://127.0.0.1:6379/0)")
        url, given = _lease_option(url)
        self.url = url
        self.enabled = True
        self.lease_timeout = finite_number(
            "lease_timeout", lease_timeout if given is None else given, least=1e-3
        )
        self._token = uuid.uuid4().hex
        self._client = client if client is not None else _connect(url)
        try:
            self._client.ping()
        except Exception as exc:
            self._client.close()
            raise CacheError(
                f"cannot reach the Redis cache at {_safe(url)}: {type(exc).__name__}: {exc}; "
                "check that the server runs and the URL is right"
            ) from None
        self._release_script = self._client.register_script(_RELEASE)
        self._closed = False
        self._state = threading.Lock()

    def __repr__(self) -> str:
        return f"RedisQueryCache({_safe(self.url)!r})"

    # -- reads and writes -------------------------------------------------------------------

    def get_keyed(self, key: str, query: Query) -> LabelScores | None:
        """The stored, verified answer under ``key``, or ``None`` (a miss)."""
        found = self._verified(key, query, self._call("read", self._client.get, _ANSWER + key))
        self._count(miss=found is None)
        return found

    def put_keyed(self, answers: Sequence[tuple[str, LabelScores]]) -> None:
        """Store answers in one transaction; a failure is logged and counted, not raised."""
        if not answers:
            return
        try:
            self.store(answers)
        except CacheError as exc:
            with self._lock:
                self._write_errors += len(answers)
            log.warning("query cache %s: could not store %d answers (%s)", self, len(answers), exc)

    def store(self, answers: Sequence[tuple[str, LabelScores]]) -> None:
        """Store answers under their keys, all or none (``MULTI``/``EXEC``)."""
        items = {_ANSWER + key: encode_value(key, s) for key, s in answers}
        if items:
            self._call("write", self._client.mset, items)

    # -- leases -----------------------------------------------------------------------------

    def claim(
        self, keyed: Sequence[tuple[Query, str]]
    ) -> tuple[list[tuple[Query, str]], list[tuple[Query, str]], dict[Query, LabelScores]]:
        """Lease the queries no one else is paying for (see :meth:`QueryCache.claim`)."""
        if not keyed:
            return [], [], {}
        ttl = max(1, int(self.lease_timeout * 1000))

        def take() -> list[Any]:
            with self._client.pipeline(transaction=False) as pipe:
                for _, k in keyed:
                    pipe.set(_LEASE + k, self._token, nx=True, px=ttl)
                return list(pipe.execute())

        got = self._call("lease", take)
        mine = [qk for qk, ok in zip(keyed, got, strict=True) if ok]
        others = [qk for qk, ok in zip(keyed, got, strict=True) if not ok]
        # An answer stored between the miss and the lease is visible now: read once more.
        found: dict[Query, LabelScores] = {}
        if mine:
            try:
                raws = self._call("read", self._client.mget, [_ANSWER + k for _, k in mine])
            except BaseException:
                self.release(k for _, k in mine)
                raise
            for (q, k), raw in zip(mine, raws, strict=True):
                answer = self._verified(k, q, raw)
                if answer is not None:
                    found[q] = answer
        if found:
            self.release(k for q, k in mine if q in found)
            mine = [qk for qk in mine if qk[0] not in found]
        return mine, others, found

    def release(self, keys: Iterable[str]) -> None:
        """Give up this cache's leases on ``keys`` (one that expired meanwhile is left)."""
        names = [_LEASE + k for k in keys]
        if names:
            try:
                self._call("release", self._release_script, keys=names, args=[self._token])
            except CacheError as exc:  # the leases expire by themselves
                log.warning("query cache %s: leases not released (%s)", self, exc)

    def wait(self, keyed: Sequence[tuple[Query, str]]) -> dict[Query, LabelScores]:
        """Wait until each query has an answer or no live lease; returns the answers found."""

        def look(pending: list[tuple[Query, str]]) -> PolledAnswers:
            def read() -> list[Any]:
                with self._client.pipeline(transaction=False) as pipe:
                    for _, k in pending:
                        pipe.get(_ANSWER + k)
                        pipe.exists(_LEASE + k)
                    return list(pipe.execute())

            replies = self._call("read", read)
            found, still = {}, []
            for i, (q, k) in enumerate(pending):
                raw, held = replies[2 * i], replies[2 * i + 1]
                if raw is None and not held:
                    # The holder stores before releasing: read once more, then it failed.
                    raw = self._call("read", self._client.get, _ANSWER + k)
                answer = self._verified(k, q, raw)
                if answer is not None:
                    found[q] = answer
                elif held:
                    still.append((q, k))
            return found, still

        return poll_answers(keyed, look)

    # -- upkeep -----------------------------------------------------------------------------

    def stats(self) -> CacheStats:
        """Answers stored on the server, their bytes (unknown: 0), this process's counts."""
        entries = 0
        cursor = 0
        while True:
            cursor, keys = self._call(
                "scan", self._client.scan, cursor=cursor, match=_ANSWER + "*", count=1000
            )
            entries += len(keys)
            if cursor == 0:
                break
        with self._lock:
            return CacheStats(entries, 0, self._hits, self._misses, self._bad, self._write_errors)

    def clear(self) -> int:
        """Remove every bdpl answer and lease on the server; returns the answers removed."""
        removed = 0
        for pattern in (_ANSWER + "*", _LEASE + "*"):
            keys = list(self._client.scan_iter(match=pattern, count=1000))
            for i in range(0, len(keys), 500):
                n = int(self._client.delete(*keys[i : i + 500]))
                removed += n if pattern.startswith(_ANSWER) else 0
        return removed

    def check(self) -> CacheReport:
        """Not available on Redis (the server keeps its own integrity)."""
        raise ConfigError("cache check works on a cache directory, not on a Redis cache")

    def repair(self) -> RepairReport:
        """Not available on Redis (the server keeps its own integrity)."""
        raise ConfigError("cache repair works on a cache directory, not on a Redis cache")

    def close(self) -> None:
        """Close the connections (idempotent)."""
        with self._state:
            if self._closed:
                return
            self._closed = True
        self._client.close()

    # -- internals ----------------------------------------------------------------------------

    def _verified(self, key: str, query: Query, raw: object) -> LabelScores | None:
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        return super()._verified(key, query, text)

    def _report_bad(self, key: str, why: str) -> None:
        with self._lock:
            self._bad += 1
        log.warning("query cache %s: entry %s… ignored: %s", self, key[:12], why)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one Redis command; a failure is a :class:`CacheError` naming the server."""
        from redis.exceptions import RedisError

        try:
            return fn(*args, **kwargs)
        except RedisError as exc:
            raise CacheError(
                f"the Redis cache at {_safe(self.url)} failed a {what}: {type(exc).__name__}: {exc}"
            ) from exc


def _connect(url: str) -> Any:
    try:
        import redis
    except ImportError:
        raise ConfigError(
            "a Redis cache needs the redis package: pip install 'bdpl[sweep]'"
        ) from None
    if url.lower().startswith("valkey"):
        url = "redis" + url[len("valkey") :]
    return redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=10)


def _lease_option(url: str) -> tuple[str, float | None]:
    """``url`` without its ``lease_timeout`` query argument, and that argument's value."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    args = parse_qsl(parts.query, keep_blank_values=True)
    value = [v for k, v in args if k == "lease_timeout"]
    if not value:
        return url, None
    try:
        seconds = float(value[-1])
    except ValueError:
        raise ConfigError(f"lease_timeout={value[-1]!r} in the Redis URL is not a number") from None
    rest = urlencode([(k, v) for k, v in args if k != "lease_timeout"])
    return urlunsplit(parts._replace(query=rest)), seconds


def _safe(url: str) -> str:
    """The URL without its password (it is logged and shown in errors)."""
    scheme, sep, rest = url.partition("://")
    if "@" in rest:
        rest = "***@" + rest.split("@", 1)[1]
    return scheme + sep + rest
