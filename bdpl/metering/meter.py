"""The metering layer: every query the optimizer asks goes through one :class:`Meter`.

For each batch of queries the meter drops duplicates, answers what the cache holds (free,
recorded as hits), and sends the rest to the backend in chunks of the backend's
``max_batch_size``, up to ``max_concurrency`` chunks at a time. Before each try of each chunk it
reserves an upper bound of the chunk's spend in the budget, so the budget cannot be overshot,
also under concurrency; retryable errors are retried (when only some answers of a reply are
malformed, only those queries are asked again); valid answers are cached as soon as they arrive
(a killed run loses at most the calls in flight) and every call that reached the backend is
written to the ledger.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from bdpl.backends.base import Backend, LabelChecking, capabilities_of, secrets_of
from bdpl.errors import BudgetExceededError, ConfigError, MalformedResponseError
from bdpl.metering.budget import Budget, Spend
from bdpl.metering.cache import QueryCache, cache_key
from bdpl.metering.ledger import Ledger, LedgerRecord
from bdpl.metering.prices import Price, price_for
from bdpl.metering.redaction import redact, redact_exception
from bdpl.metering.retry import RetryPolicy
from bdpl.metering.tokens import estimate_usage
from bdpl.metering.validation import check_answers, problem_with
from bdpl.paths import cache_root
from bdpl.types import LabelScores, Query, Usage

__all__ = ["Meter", "MeterStats", "default_cache"]

log = logging.getLogger(__name__)


def default_cache() -> QueryCache:
    """The default query cache: ``<cache root>/queries`` (see :func:`bdpl.paths.cache_root`)."""
    return QueryCache(cache_root() / "queries")


@dataclass(frozen=True, slots=True)
class MeterStats:
    """What a meter has done since it was made.

    Attributes:
        queries: queries asked, duplicates included.
        duplicates: queries dropped because the same batch asked them already.
        hits: distinct queries the cache answered.
        misses: distinct queries sent (or tried) to the backend.
        paid_queries: queries the backend answered and billed, over all tries.
        calls: calls that reached the backend (a call is a chunk with all its tries).
        failed_calls: of those, calls that ended in an error.
        attempts: tries made, retries included.
        requests: requests the backend reported.
        prompt_tokens: prompt tokens the backend reported.
        completion_tokens: completion tokens the backend reported.
        dollars: billed, at the meter's price.
        saved_dollars: what the cache hits cost when they were first paid for.
    """

    queries: int = 0
    duplicates: int = 0
    hits: int = 0
    misses: int = 0
    paid_queries: int = 0
    calls: int = 0
    failed_calls: int = 0
    attempts: int = 0
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    dollars: float = 0.0
    saved_dollars: float = 0.0

    @property
    def tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    @property
    def retries(self) -> int:
        """Tries beyond the first of each call."""
        return self.attempts - self.calls


@dataclass
class _CallState:
    """What one call (a chunk and all its tries) has used and answered so far."""

    pending: list[tuple[Query, str]]
    answers: dict[Query, LabelScores] = field(default_factory=dict)
    attempts: int = 0
    billed_queries: int = 0
    usage: Usage = field(default_factory=Usage)
    started: float = field(default_factory=time.monotonic)


class Meter:
    """Wraps a backend with dedup, a query cache, a budget, retries, a ledger and concurrency.

    A meter has the backend's ``identity`` and a ``score`` method, so it can stand wherever a
    :class:`~bdpl.backends.base.Backend` is expected. Thread-safe: several threads may call
    :meth:`score` at once (they share the budget). A query being paid is leased in the cache,
    so threads, meters and processes sharing a cache directory wait for its answer rather
    than pay for it again (see :meth:`QueryCache.claim`).

    Args:
        backend: any backend. Its capabilities (``max_batch_size``, ``max_concurrency``,
            ``model``, ``is_local``) and its optional ``estimate`` are used (see
            :mod:`bdpl.backends.base`).
        cache: a :class:`QueryCache` or a directory for one; ``None`` or ``True`` for the
            default disk cache at ``<cache root>/queries`` (``$BDPL_CACHE_DIR``, else the XDG
            user cache directory); ``False`` for none (every query is paid).
        ledger: a :class:`Ledger` or a path for one; ``None`` keeps no ledger file (the
            in-memory :attr:`stats` are kept either way).
        budget: spending limits; ``None`` for none.
        retry: how failed calls are retried; ``None`` for :class:`RetryPolicy`'s defaults.
        price: USD per 1M tokens; overrides the price table (needed for a paid model the table
            does not list).
        max_concurrency: chunks in flight at once; defaults to, and is capped at, the backend's
            ``max_concurrency`` (1 when it declares none: not known to be thread-safe).

    Ownership: :meth:`close` closes the cache and ledger the meter opened from paths (or the
    default cache), never the backend, nor a :class:`QueryCache` or :class:`Ledger` passed in:
    what the caller passed in, the caller closes.

    Raises:
        UnknownPriceError: a paid backend whose model has no price and none was given.
        CacheError: the cache directory cannot be used.

    >>> import tempfile
    >>> from bdpl.backends.base import Capabilities
    >>> from bdpl.types import LabelScores, Query, Usage
    >>> class Echo:
    ...     identity = 'echo'
    ...     capabilities = Capabilities(is_local=True)
    ...     def score(self, queries):
    ...         return [LabelScores((-0.1,) * len(q.labels), Usage(5, 0, 1)) for q in queries]
    >>> meter = Meter(Echo(), cache=QueryCache(tempfile.mkdtemp()), budget=Budget(max_queries=3))
    >>> q = Query("It was", ".", (" bad", " good"))
    >>> len(meter.score([q, q]))      # one paid query, one duplicate
    2
    >>> _ = meter.score([q])          # a cache hit: free
    >>> meter.stats.paid_queries, meter.stats.hits, meter.stats.duplicates
    (1, 1, 1)
    >>> meter.close()
    """

    def __init__(
        self,
        backend: Backend,
        *,
        cache: QueryCache | str | Path | bool | None = None,
        ledger: Ledger | str | Path | None = None,
        budget: Budget | None = None,
        retry: RetryPolicy | None = None,
        price: Price | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        self.backend = backend
        self.identity = str(backend.identity)
        caps = capabilities_of(backend)
        self.model = caps.model or self.identity
        self.price = price_for(backend, price)
        if max_concurrency is not None and max_concurrency < 1:  # before opening any file
            raise ConfigError(f"max_concurrency must be >= 1, got {max_concurrency}")
        if isinstance(cache, QueryCache):
            self.cache, self._owns_cache = cache, False
        elif isinstance(cache, (str, Path)):
            self.cache, self._owns_cache = QueryCache(cache), True
        elif cache is False:
            self.cache, self._owns_cache = QueryCache("", enabled=False), True
        elif cache is None or cache is True:
            self.cache, self._owns_cache = default_cache(), True
        else:
            raise ConfigError(f"cache must be a QueryCache, a directory or a bool, got {cache!r}")
        if ledger is None or isinstance(ledger, Ledger):
            self.ledger, self._owns_ledger = ledger, False
        else:
            self.ledger, self._owns_ledger = Ledger(ledger), True
        self.budget = budget if budget is not None else Budget()
        self.retry = retry if retry is not None else RetryPolicy()
        self.max_batch_size = caps.max_batch_size
        allowed = caps.max_concurrency
        self.max_concurrency = allowed if max_concurrency is None else min(allowed, max_concurrency)
        self._secrets: tuple[str, ...] = secrets_of(backend)
        self._lock = threading.Lock()
        self._stats = MeterStats()
        self._pool: ThreadPoolExecutor | None = None
        self._warned_estimate = False
        self._warned_usage = False
        self._is_local = caps.is_local
        self._checked_labels: set[tuple[str, ...]] = set()

    def __repr__(self) -> str:
        return f"Meter({self.identity!r}, budget={self.budget!r})"

    def __enter__(self) -> Meter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def stats(self) -> MeterStats:
        """A snapshot of what this meter has done."""
        with self._lock:
            return self._stats

    def score(self, queries: Sequence[Query]) -> list[LabelScores]:
        """Scores for ``queries``, in order; each distinct query is paid for at most once.

        Raises:
            BudgetExceededError: a chunk could not be sent without risking passing the budget.
                Chunks that completed before are cached, so asking again costs nothing for them.
            BackendError: a call failed for good (after retries, when retryable).
            CacheDamagedError: the cache's database is damaged; the message names the fix.
        """
        if str(self.backend.identity) != self.identity:
            # bdpl's own backends fix their settings at construction, so this guards
            # third-party backends whose identity can change: cached answers and prices belong
            # to the identity the meter was built with. One string comparison per call.
            raise ConfigError(
                f"the backend's identity changed from {self.identity!r} to "
                f"{self.backend.identity!r} after its Meter was built (a setting such as the "
                "model was changed); build a new backend and Meter instead"
            )
        queries = list(queries)
        unique = list(dict.fromkeys(queries))
        answers: dict[Query, LabelScores] = {}
        misses: list[tuple[Query, str]] = []
        for q in unique:
            key = cache_key(self.identity, q) if self.cache.enabled else ""
            hit = self.cache.get_keyed(key, q)
            if hit is None:
                misses.append((q, key))
            else:
                answers[q] = hit
        self._add(
            queries=len(queries),
            duplicates=len(queries) - len(unique),
            hits=len(answers),
            misses=len(misses),
        )
        if answers:
            self._record_hits(list(answers.values()))
        if misses and isinstance(self.backend, LabelChecking):
            for labels in {q.labels for q, _ in misses} - self._checked_labels:
                self.backend.check_labels(labels)  # before paying: labels it cannot tell apart
                self._checked_labels.add(labels)
        while misses:
            # Pay what this meter leases; wait for what another process or meter is paying.
            mine, others, found = self.cache.claim(misses)
            self._found(found, answers)
            try:
                self._pay(mine, answers)
            finally:
                self.cache.release(k for _, k in mine)
            found = self.cache.wait(others) if others else {}
            self._found(found, answers)
            misses = [qk for qk in others if qk[0] not in found]  # their payer failed
        return [answers[q] for q in queries]

    def close(self) -> None:
        """Stop the worker threads and close what the meter opened itself.

        The backend is left open, and so are a cache or ledger object passed in: they belong
        to the caller (close a backend with its own ``close()`` or a ``with`` block).
        """
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._owns_cache:
            self.cache.close()
        if self._owns_ledger and self.ledger is not None:
            self.ledger.close()

    # -- paying -------------------------------------------------------------------------------

    def _found(self, found: dict[Query, LabelScores], answers: dict[Query, LabelScores]) -> None:
        """Answers another payer stored after our miss: free, so hits after all."""
        if found:
            answers.update(found)
            self._add(hits=len(found), misses=-len(found))
            self._record_hits(list(found.values()))

    def _pay(self, misses: list[tuple[Query, str]], answers: dict[Query, LabelScores]) -> None:
        if not misses:
            return
        size = self.max_batch_size
        chunks = [misses[i : i + size] for i in range(0, len(misses), size)]
        if self.max_concurrency == 1 or len(chunks) == 1:
            for chunk in chunks:
                answers.update(zip((q for q, _ in chunk), self._call(chunk), strict=True))
            return
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.max_concurrency, "bdpl-meter")
            pool = self._pool
        futures: list[Future[list[LabelScores]]] = [pool.submit(self._call, c) for c in chunks]
        _, pending = wait(futures, return_when=FIRST_EXCEPTION)
        if pending:  # something failed: start nothing new, let calls in flight finish
            for f in pending:
                f.cancel()
            wait(futures)
        errors: list[BaseException] = []
        for chunk, f in zip(chunks, futures, strict=True):
            if f.cancelled():
                continue
            exc = f.exception()
            if exc is None:
                answers.update(zip((q for q, _ in chunk), f.result(), strict=True))
            else:
                errors.append(exc)
        if errors:
            # A real failure says more than the budget stops it caused elsewhere.
            raise next((e for e in errors if not isinstance(e, BudgetExceededError)), errors[0])

    def _call(self, keyed: list[tuple[Query, str]]) -> list[LabelScores]:
        """One chunk; halved while the budget has room for less than the whole chunk.

        So a budget is used up to the last query it allows rather than refusing a chunk whole
        (with ``max_queries=10`` and chunks of 64, ten queries are paid, then the fit stops).
        """
        state = _CallState(pending=keyed)
        try:
            return self._call_chunk(keyed, state)
        except BudgetExceededError:
            # Split only a chunk that was never tried: a refused retry may follow a try whose
            # valid answers are already cached, and those must not be asked (and paid) again.
            if len(keyed) == 1 or state.attempts:
                raise
            half = len(keyed) // 2
            return self._call(keyed[:half]) + self._call(keyed[half:])

    def _call_chunk(self, keyed: list[tuple[Query, str]], state: _CallState) -> list[LabelScores]:
        """One call: reserve, score, validate, settle, cache; retried; then recorded.

        Valid answers are cached as soon as they arrive; when only some answers of a try are
        malformed, the retry asks for those queries alone, so valid answers are paid once.
        """
        chunk = [q for q, _ in keyed]

        def attempt() -> None:
            asked = state.pending
            queries = [q for q, _ in asked]
            estimated = estimate_usage(self.backend, queries)
            estimate = self._spend(len(queries), estimated)
            reservation = self.budget.reserve(estimate)
            state.attempts += 1
            answered = False
            usage = Usage()
            try:
                got = self.backend.score(queries)
                answered = True
                usage = self._billed_usage(_usage_of(got), estimated)
                try:
                    check_answers(self.identity, queries, got)
                except MalformedResponseError:
                    self._keep_valid(asked, got, state)
                    raise
                self._keep(list(zip(asked, got, strict=True)), state)
            except Exception as exc:
                redact_exception(exc, self._secrets)
                # A call that failed after paid requests (a fallback request failing after the
                # first one succeeded) says what it was billed; charge it.
                if not answered and isinstance(getattr(exc, "usage", None), Usage):
                    usage = self._billed_usage(exc.usage, estimated)  # type: ignore[attr-defined]
                raise
            finally:
                billed = len(queries) if answered else 0
                actual = self._spend(billed, usage)
                self.budget.settle(reservation, actual)
                if _exceeds(actual, estimate):
                    self._warn_estimate(actual, estimate)
                state.billed_queries += billed
                state.usage += usage
                self._add(
                    attempts=1,
                    paid_queries=billed,
                    requests=usage.requests,
                    prompt_tokens=usage.prompt_tokens,
                    completion_tokens=usage.completion_tokens,
                    dollars=actual.dollars,
                )

        try:
            self.retry.call(attempt, on_retry=self._on_retry)
        except Exception as exc:
            if state.attempts:
                self._record_call(chunk, state, exc)
                log.warning(
                    "call to %s (%d queries) failed after %d tries: %s: %s",
                    self.identity,
                    len(chunk),
                    state.attempts,
                    type(exc).__name__,
                    redact(str(exc), self._secrets),
                )
            raise
        self._record_call(chunk, state, None)
        return [state.answers[q] for q in chunk]

    def _keep(
        self, answered: list[tuple[tuple[Query, str], LabelScores]], state: _CallState
    ) -> None:
        """Cache valid answers and take their queries off the call's pending list."""
        self.cache.put_keyed([(k, a) for (_, k), a in answered])
        state.answers.update((q, a) for (q, _), a in answered)
        done = {q for (q, _), _ in answered}
        state.pending = [kq for kq in state.pending if kq[0] not in done]

    def _keep_valid(self, asked: list[tuple[Query, str]], got: object, state: _CallState) -> None:
        """Keep the valid answers of a partly malformed reply (one answer per query only)."""
        if not isinstance(got, list) or len(got) != len(asked):
            return  # answers cannot be matched to queries: nothing is trusted
        valid = [
            (kq, a) for kq, a in zip(asked, got, strict=True) if problem_with(kq[0], a) is None
        ]
        if valid:
            self._keep(valid, state)

    def _spend(self, queries: int, usage: Usage) -> Spend:
        return Spend(queries, usage.requests, usage.total_tokens, self.price.cost(usage))

    def _billed_usage(self, reported: Usage, estimated: Usage) -> Usage:
        """What to charge for a call: the reported usage, or the estimate where a paid backend
        reported none (some OpenAI-compatible proxies omit ``usage``), so that token and dollar
        budgets still hold."""
        if reported.total_tokens or self._is_local or not (reported.requests or estimated.requests):
            return reported
        with self._lock:
            warn, self._warned_usage = not self._warned_usage, True
        if warn:
            log.warning(
                "backend %s reported no token usage for a paid call; charging its estimate "
                "(%d tokens) to the budget and ledger instead",
                self.identity,
                estimated.total_tokens,
            )
        return Usage(
            estimated.prompt_tokens,
            estimated.completion_tokens,
            reported.requests or estimated.requests,
        )

    def _warn_estimate(self, actual: Spend, estimate: Spend) -> None:
        with self._lock:
            if self._warned_estimate:
                return
            self._warned_estimate = True
        log.warning(
            "backend %s used more than its estimate (%s > %s): budgets checked with such "
            "estimates may be passed; its estimate() should be an upper bound",
            self.identity,
            actual,
            estimate,
        )

    def _on_retry(self, attempt: int, wait_s: float, error: BaseException | None) -> None:
        log.info(
            "call to %s: try %d failed (%s); retrying in %.2fs",
            self.identity,
            attempt,
            type(error).__name__,
            wait_s,
        )

    # -- accounting ---------------------------------------------------------------------------

    def _add(self, **counts: float) -> None:
        with self._lock:
            s = self._stats
            self._stats = MeterStats(
                **{k: getattr(s, k) + counts.get(k, 0) for k in MeterStats.__dataclass_fields__}
            )

    def _record_call(
        self, chunk: list[Query], state: _CallState, error: BaseException | None
    ) -> None:
        self._add(calls=1, failed_calls=int(error is not None))
        if self.ledger is None:
            return
        u = state.usage
        self.ledger.append(
            LedgerRecord(
                kind="call",
                time=_now(),
                backend=self.identity,
                model=self.model,
                queries=len(chunk),
                billed_queries=state.billed_queries,
                prompt_tokens=u.prompt_tokens,
                completion_tokens=u.completion_tokens,
                requests=u.requests,
                dollars=self.price.cost(u),
                latency_s=round(time.monotonic() - state.started, 6),
                attempts=state.attempts,
                ok=error is None,
                error=None if error is None else type(error).__name__,
            )
        )

    def _record_hits(self, hits: list[LabelScores]) -> None:
        would_have = self.price.cost(_usage_of(hits))
        self._add(saved_dollars=would_have)
        if self.ledger is not None:
            self.ledger.append(
                LedgerRecord(
                    kind="hit",
                    time=_now(),
                    backend=self.identity,
                    model=self.model,
                    queries=len(hits),
                    saved_dollars=would_have,
                )
            )


def _usage_of(answers: object) -> Usage:
    """Total usage reported in ``answers`` (whatever of it is well-formed)."""
    total = Usage()
    if isinstance(answers, list):
        for a in answers:
            if isinstance(a, LabelScores) and isinstance(a.usage, Usage):
                total += a.usage
    return total


def _exceeds(actual: Spend, estimate: Spend) -> bool:
    return (
        actual.requests > estimate.requests
        or actual.tokens > estimate.tokens
        or actual.dollars > estimate.dollars + 1e-12
    )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
