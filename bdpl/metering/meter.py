"""The metering layer: every query the optimizer asks goes through one :class:`Meter`.

For each batch of queries the meter drops duplicates, answers what the cache holds (free,
recorded as hits), and sends the rest to the backend in chunks of the backend's
``max_batch_size``, up to ``max_concurrency`` chunks at a time. Before each try of each chunk it
reserves an upper bound of the chunk's spend in the budget, so the budget cannot be overshot,
also under concurrency; retryable errors are retried (when only some answers of a reply are
malformed, only those queries are asked again); valid answers are cached as soon as they arrive
(a killed run loses at most the calls in flight) and every call that reached the backend is
written to the ledger: an intent with the try's estimate before each try, the call with what
it was billed after.

What a call is charged (budget, ledger and stats alike):

- an answer: the usage the backend reported; the estimate instead when a paid backend reported
  none, or when the report is unusable (not a :class:`~bdpl.types.Usage` of non-negative
  integers): a report can never credit the budget;
- a failure known to be unbilled (a refusal: authentication, bad request, quota, rate limit,
  5xx): what the error's ``usage`` says the call's answered requests were billed, else nothing;
- a failure whose outcome is unknown (``BackendError.outcome_unknown``: a timeout, a connection
  dropped mid-reply; a malformed reply whose usage could not be read; and any exception that is
  not a :class:`~bdpl.errors.BackendError`, such as a bug or ``KeyboardInterrupt``): the
  estimate (an upper bound), queries included, marked unconfirmed, since the provider may well
  have computed and billed it. Local backends bill nobody and are charged what they reported.

What a kill (SIGKILL, power loss) can cost: with ``max_concurrency`` c and chunks of at most b
queries (the backend's ``max_batch_size``), at most c calls are in flight, so a run restarted
with the same cache pays again for at most ``c * b`` queries per kill: those whose answers had not
reached the cache. Each of those calls was written to the ledger with its estimate before it was
made, so :meth:`Budget.from_ledger <bdpl.metering.Budget.from_ledger>` counts it, and the
provider's bill over all runs stays within the budget as long as estimates are upper bounds.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bdpl.backends.base import Backend, LabelChecking, capabilities_of, secrets_of
from bdpl.errors import BackendError, BudgetExceededError, ConfigError, MalformedResponseError
from bdpl.metering.budget import Budget, Spend
from bdpl.metering.cache import QueryCache, cache_key
from bdpl.metering.ledger import Ledger, LedgerRecord
from bdpl.metering.prices import Price, price_for
from bdpl.metering.redaction import redact, redact_exception
from bdpl.metering.retry import RetryPolicy
from bdpl.metering.tokens import estimate_usage
from bdpl.metering.validation import check_answers, problem_with, usage_problem
from bdpl.paths import cache_root
from bdpl.types import LabelScores, Query, Usage, split_usage

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
        paid_queries: queries billed, over all tries: those the backend answered, and those of
            tries whose outcome is unknown (see the module docstring).
        calls: calls that reached the backend (a call is a chunk with all its tries).
        failed_calls: of those, calls that ended in an error.
        attempts: tries made, retries included.
        requests: requests the backend reported.
        prompt_tokens: prompt tokens the backend reported.
        completion_tokens: completion tokens the backend reported.
        dollars: billed, at the meter's price.
        saved_dollars: what the cache hits cost when they were first paid for.
        unconfirmed_dollars: the part of ``dollars`` charged at estimates because the outcome
            of a try was unknown (see the module docstring); counts and tokens of those tries
            are in the totals above at their estimates too.
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
    unconfirmed_dollars: float = 0.0

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
    intents: list[str] = field(default_factory=list)  # ledger ids, one per try
    unconfirmed: bool = False
    unconfirmed_dollars: float = 0.0


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
        self._warned_bad_usage = False
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
            try:
                self._write_intent(state, estimate, estimated)
            except BaseException:
                self.budget.settle(reservation, Spend())  # not asked: nothing can be billed
                raise
            state.attempts += 1
            charge: _Charge | None = None
            try:
                got = self.backend.score(queries)
                reported = _usage_of(got)
                charge = _Charge(len(queries), self._billed_usage(reported, estimated))
                if reported is None:  # the answers may be fine; their usage reports are not
                    got = _with_usage(got, charge.usage)
                try:
                    check_answers(self.identity, queries, got)
                except MalformedResponseError:
                    self._keep_valid(asked, got, state)
                    raise
                self._keep(list(zip(asked, got, strict=True)), state)
            except BaseException as exc:
                redact_exception(exc, self._secrets)
                if charge is None:  # no answer came back: what may the try have cost?
                    charge = self._failure_charge(exc, len(queries), estimated)
                raise
            finally:
                assert charge is not None
                actual = self._spend(charge.queries, charge.usage)
                self.budget.settle(reservation, actual)
                if _exceeds(actual, estimate):
                    self._warn_estimate(actual, estimate)
                unconfirmed = actual.dollars if charge.unconfirmed else 0.0
                state.billed_queries += charge.queries
                state.usage += charge.usage
                state.unconfirmed |= charge.unconfirmed
                state.unconfirmed_dollars += unconfirmed
                self._add(
                    attempts=1,
                    paid_queries=charge.queries,
                    requests=charge.usage.requests,
                    prompt_tokens=charge.usage.prompt_tokens,
                    completion_tokens=charge.usage.completion_tokens,
                    dollars=actual.dollars,
                    unconfirmed_dollars=unconfirmed,
                )

        try:
            self.retry.call(attempt, on_retry=self._on_retry)
        except BaseException as exc:  # KeyboardInterrupt too: its tries were charged
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

    def _billed_usage(self, reported: Usage | None, estimated: Usage) -> Usage:
        """What to charge for an answered call: the reported usage, or the estimate where a paid
        backend reported none (some OpenAI-compatible proxies omit ``usage``), so that token and
        dollar budgets still hold, or where the report is unusable (``None``: negative, not an
        integer, not a Usage), so that no report can credit the budget. A report above the
        estimate is charged as reported (and :meth:`_warn_estimate` says so)."""
        if reported is None:
            with self._lock:
                warn, self._warned_bad_usage = not self._warned_bad_usage, True
            if warn:
                log.warning(
                    "backend %s reported a usage that is not non-negative integer token and "
                    "request counts; charging its estimate (%d tokens) to the budget and ledger "
                    "instead",
                    self.identity,
                    estimated.total_tokens,
                )
            return estimated
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

    def _failure_charge(self, exc: BaseException, queries: int, estimated: Usage) -> _Charge:
        """What a try that raised ``exc`` instead of answering is charged.

        A refusal the provider does not bill (a :class:`BackendError` whose outcome is known)
        costs what its ``usage`` says earlier requests of the call were billed. Anything else
        may have been computed and billed: a timeout or a dropped connection
        (``outcome_unknown``), a malformed reply whose usage could not be read, an exception that
        is not a BackendError at all (a bug, ``KeyboardInterrupt``), or a usage report that is
        unusable. It is charged its estimate, or what it reported where that is more.
        """
        reported = exc.usage if isinstance(exc, BackendError) else None
        known = _checked_usage(reported) if reported is not None else Usage()
        unknown = (
            not isinstance(exc, BackendError)
            or exc.outcome_unknown
            or (isinstance(exc, MalformedResponseError) and reported is None)
            or known is None
        )
        if not unknown or self._is_local:  # nobody bills a local call
            return _Charge(0, known or Usage())
        known = known or Usage()
        return _Charge(
            queries,
            Usage(
                max(estimated.prompt_tokens, known.prompt_tokens),
                max(estimated.completion_tokens, known.completion_tokens),
                max(estimated.requests, known.requests),
            ),
            unconfirmed=True,
        )

    def _write_intent(self, state: _CallState, estimate: Spend, estimated: Usage) -> None:
        """Make a try's estimate durable in the ledger before the try is made (write-ahead).

        If the process dies before the call's record settles it, a budget rebuilt from the
        ledger counts the try at this estimate.
        """
        if self.ledger is None:
            return
        intent = uuid.uuid4().hex
        self._append(
            "intent",
            queries=estimate.queries,
            billed_queries=estimate.queries,
            prompt_tokens=estimated.prompt_tokens,
            completion_tokens=estimated.completion_tokens,
            requests=estimated.requests,
            dollars=estimate.dollars,
            attempts=1,
            ok=False,
            id=intent,
            unconfirmed=True,
            unconfirmed_dollars=estimate.dollars,
        )
        state.intents.append(intent)

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
        self._append(
            "call",
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
            settles=tuple(state.intents),
            unconfirmed=state.unconfirmed,
            unconfirmed_dollars=state.unconfirmed_dollars,
        )

    def _append(self, kind: str, **fields: Any) -> None:
        """Write one ledger record of this meter's backend and model, stamped now."""
        assert self.ledger is not None
        self.ledger.append(LedgerRecord(kind, _now(), self.identity, self.model, **fields))

    def _record_hits(self, hits: list[LabelScores]) -> None:
        would_have = self.price.cost(_usage_of(hits) or Usage())
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


@dataclass(frozen=True, slots=True)
class _Charge:
    """What one try is charged: queries, usage, and whether that is an estimate."""

    queries: int
    usage: Usage
    unconfirmed: bool = False


def _checked_usage(usage: object) -> Usage | None:
    """``usage`` if it is a usable report (see :func:`usage_problem`), else ``None``."""
    return usage if isinstance(usage, Usage) and usage_problem(usage) is None else None


def _with_usage(answers: list[LabelScores], usage: Usage) -> list[LabelScores]:
    """``answers`` with their usage reports replaced by shares of ``usage`` (what was charged),
    so that valid answers whose reports were unusable are kept and cached with a sane usage."""
    if not isinstance(answers, list):  # a broken backend: check_answers will say so
        return answers
    shares = split_usage(usage, len(answers))
    return [
        replace(a, usage=u) if isinstance(a, LabelScores) else a
        for a, u in zip(answers, shares, strict=True)
    ]


def _usage_of(answers: object) -> Usage | None:
    """Total usage reported in ``answers``; ``None`` when any answer's report is unusable."""
    if not isinstance(answers, list):
        return None
    total = Usage()
    for a in answers:
        usage = _checked_usage(a.usage) if isinstance(a, LabelScores) else None
        if usage is None:
            return None
        total += usage
    return total


def _exceeds(actual: Spend, estimate: Spend) -> bool:
    return (
        actual.requests > estimate.requests
        or actual.tokens > estimate.tokens
        or actual.dollars > estimate.dollars + 1e-12
    )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
