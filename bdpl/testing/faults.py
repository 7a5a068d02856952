"""Fault injection around any backend: :class:`FaultyBackend` and its fault types.

:class:`FaultyBackend` wraps a backend and makes it misbehave on a schedule, the way real
providers do: slow calls, errors (a call that fails after it was billed included), answers
that are malformed or report no usage, or the whole process killed at a chosen call. It keeps
a call log, in memory and, when asked, as a durable JSONL file, so a test can check exactly
which queries were answered, also after a crash.

A schedule is plain data: a mapping from call index (0-based, counting every call started,
in the order calls start) to a fault or a list of faults, plus faults for every call.

Faults at the start of a call (the wrapped backend is not asked):

- :class:`Raise`: raise an exception; with ``billed=Usage(...)`` a :class:`BackendError`
  says that much was billed before it failed (the metering layer charges it).
- :class:`Kill`: SIGKILL this process (a crash, for restart tests).

Faults on the answers (the wrapped backend answers; the call is billed and logged):

- :class:`BadLogprob`: one log-prob of one answer replaced (NaN by default).
- :class:`MissingAnswer` / :class:`ExtraAnswer`: one answer too few / too many.
- :class:`WrongLabelCount`: one answer with one log-prob too few.
- :class:`NoUsage`: every answer reports zero tokens (requests kept), like a proxy that
  omits ``usage``.

>>> from bdpl.errors import ServerError
>>> from bdpl.testing import FakeBackend
>>> from bdpl.types import Query
>>> faulty = FaultyBackend(
...     FakeBackend(),
...     faults={0: Raise(ServerError("503", retryable=True)), 1: [BadLogprob(answer=1)]},
...     every_call=[NoUsage()],
... )
>>> qs = [Query(text, ".", (" bad", " good")) for text in ("A fine film It was", "Dull")]
>>> faulty.score(qs)
Traceback (most recent call last):
...
bdpl.errors.ServerError: 503
>>> [s.logprobs[0] for s in faulty.score(qs)][1]
nan
>>> faulty.score(qs)[0].usage
Usage(prompt_tokens=0, completion_tokens=0, requests=1)
>>> faulty.attempts, len(faulty.calls)
(3, 2)
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from bdpl import _jsonl
from bdpl._validate import finite_number
from bdpl.backends.base import Backend, Capabilities, UsageBounded, capabilities_of, secrets_of
from bdpl.errors import BackendError, ConfigError
from bdpl.types import LabelScores, Query, Usage

__all__ = [
    "BadLogprob",
    "EstimateOverride",
    "ExtraAnswer",
    "Fault",
    "FaultSchedule",
    "FaultyBackend",
    "Kill",
    "MissingAnswer",
    "NoUsage",
    "Raise",
    "WrongLabelCount",
]


@dataclass(frozen=True, slots=True)
class Raise:
    """Raise ``error`` when the call starts; the wrapped backend is not asked.

    Attributes:
        error: the exception (a :class:`~bdpl.errors.RateLimitError` with ``retry_after``,
            a ``TimeoutError``, anything).
        billed: what the call was billed before it failed ("billed, then failed": a first
            request answered, a fallback request refused). Set as the error's ``usage``, so
            ``error`` must then be a :class:`~bdpl.errors.BackendError`.
    """

    error: BaseException
    billed: Usage | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.error, BaseException):
            raise ConfigError(f"Raise: error must be an exception, got {self.error!r}")
        if self.billed is not None and not isinstance(self.error, BackendError):
            raise ConfigError(
                "Raise: billed usage needs a BackendError (its .usage carries it), got "
                f"{type(self.error).__name__}"
            )


@dataclass(frozen=True, slots=True)
class Kill:
    """SIGKILL this process when the call starts: no answer, no log line, no clean-up."""


@dataclass(frozen=True, slots=True)
class BadLogprob:
    """Answer ``answer``'s log-prob of label ``label`` is ``value`` (NaN by default).

    ``-inf`` or a positive value are other malformed log-probs. An index past the call's
    answers leaves them alone.
    """

    answer: int = 0
    label: int = 0
    value: float = math.nan


@dataclass(frozen=True, slots=True)
class MissingAnswer:
    """One answer too few (the last one dropped); a call of no queries gets one extra."""


@dataclass(frozen=True, slots=True)
class ExtraAnswer:
    """One answer too many (the last answer repeated; a made-up one for no queries)."""


@dataclass(frozen=True, slots=True)
class WrongLabelCount:
    """Answer ``answer`` has one log-prob too few (one too many for a single label)."""

    answer: int = 0


@dataclass(frozen=True, slots=True)
class NoUsage:
    """Every answer reports zero tokens; the request count is kept (the backend knows it)."""


Fault = Raise | Kill | BadLogprob | MissingAnswer | ExtraAnswer | WrongLabelCount | NoUsage
"""Any one fault."""

FaultSchedule = Mapping[int, Fault | Sequence[Fault]]
"""Call index (0-based, every call started) -> the fault, or faults, injected at that call."""

_MALFORMING = (BadLogprob, MissingAnswer, ExtraAnswer, WrongLabelCount)
_FAULT_TYPES = (Raise, Kill, NoUsage, *_MALFORMING)

EstimateOverride = Literal["inner"] | float | Callable[[Sequence[Query]], Usage] | None
"""How :class:`FaultyBackend` estimates: see its ``estimate`` argument."""


def as_faults(where: str, value: object) -> tuple[Fault, ...]:
    """``value`` (a fault or a sequence of faults) as a tuple of faults.

    Raises:
        ConfigError: anything else, naming ``where`` it was given.
    """
    faults = (value,) if isinstance(value, _FAULT_TYPES) else value
    if not isinstance(faults, Sequence) or not all(isinstance(f, _FAULT_TYPES) for f in faults):
        raise ConfigError(
            f"FaultyBackend: {where} must be a fault or a list of faults (Raise, Kill, "
            f"BadLogprob, MissingAnswer, ExtraAnswer, WrongLabelCount, NoUsage), got {value!r}"
        )
    return tuple(faults)


class FaultyBackend:
    """Wraps any backend and injects latency and faults on a schedule; logs answered calls.

    Everything else is the wrapped backend's: its ``identity`` (injected faults never change
    a valid answer, so cached answers stay valid), ``capabilities``, ``estimate`` (present
    only when the wrapped backend has one, or one is given), ``secrets`` and ``close``.
    Thread-safe when the wrapped backend is.

    Args:
        backend: the backend to wrap.
        faults: call index -> fault(s) at that call (see :data:`FaultSchedule`).
        every_call: faults injected at every call, after those of ``faults``.
        latency: seconds each call sleeps before asking the wrapped backend (outside any
            lock, so concurrent calls overlap).
        call_log: a JSONL file; each answered call appends one line ``{"call": i,
            "queries": [...]}`` (with ``"faults"`` naming injected answer faults, and
            ``"malformed": true`` when they made the reply malformed), written with one
            ``O_APPEND`` write and fsync'ed before ``score`` returns, so threads and
            processes may share the file and a kill loses no answered call.
        capabilities: replaces the wrapped backend's capabilities (a paid model, a smaller
            batch, more concurrency).
        estimate: ``"inner"`` forwards the wrapped backend's estimate (if any); a number
            scales its tokens (``2.0`` over-estimates, ``0.5`` under-estimates; requests are
            kept); a function is used as the estimate; ``None`` hides it (the metering layer
            then uses its conservative rule).

    Attributes:
        backend: the wrapped backend.
        calls: queries of every answered call, in the order they finished (a raised fault or
            a kill is no answer; a malformed reply is one, as a provider would bill it).
        attempts: calls started, answered or not.
        peak_concurrency: most calls that were in flight at once.

    Raises:
        ConfigError: a bad schedule, latency or estimate.
    """

    estimate: Callable[[Sequence[Query]], Usage]
    """Present only when there is an estimate (see ``estimate`` above)."""

    def __init__(
        self,
        backend: Backend,
        *,
        faults: FaultSchedule | None = None,
        every_call: Fault | Sequence[Fault] = (),
        latency: float = 0.0,
        call_log: str | Path | None = None,
        capabilities: Capabilities | None = None,
        estimate: EstimateOverride = "inner",
    ) -> None:
        if not isinstance(faults or {}, Mapping):
            raise ConfigError(f"FaultyBackend: faults must be a mapping, got {faults!r}")
        schedule: dict[int, tuple[Fault, ...]] = {}
        for call, fault in (faults or {}).items():
            if isinstance(call, bool) or not isinstance(call, int) or call < 0:
                raise ConfigError(f"FaultyBackend: call index must be an int >= 0, got {call!r}")
            schedule[call] = as_faults(f"the fault at call {call}", fault)
        if capabilities is not None and not isinstance(capabilities, Capabilities):
            raise ConfigError(
                f"FaultyBackend: capabilities must be a Capabilities, got {capabilities!r}"
            )
        self.backend = backend
        self.faults = schedule
        self.every_call = as_faults("every_call", every_call)
        self.latency = finite_number("FaultyBackend latency", latency)
        self.call_log = Path(call_log) if call_log is not None else None
        self._capabilities = capabilities
        self.calls: list[tuple[Query, ...]] = []
        self.attempts = 0
        self.peak_concurrency = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._set_estimate(estimate)

    def _set_estimate(self, how: EstimateOverride) -> None:
        inner = self.backend.estimate if isinstance(self.backend, UsageBounded) else None
        if how == "inner":
            if inner is not None:
                self.estimate = inner
        elif how is None:
            pass
        elif callable(how):
            self.estimate = how
        elif isinstance(how, (int, float)) and not isinstance(how, bool):
            factor = finite_number("FaultyBackend estimate factor", how)
            if inner is None:
                raise ConfigError(
                    "FaultyBackend: an estimate factor scales the wrapped backend's estimate, "
                    f"and {type(self.backend).__name__} has none; give a function instead"
                )
            self.estimate = _scaled(inner, factor)
        else:
            raise ConfigError(
                "FaultyBackend: estimate must be 'inner', a factor, a function or None, got "
                f"{how!r}"
            )

    @property
    def identity(self) -> str:
        """The wrapped backend's identity."""
        return str(self.backend.identity)

    @property
    def capabilities(self) -> Capabilities:
        """The given capabilities, else the wrapped backend's."""
        return self._capabilities or capabilities_of(self.backend)

    @property
    def call_count(self) -> int:
        """Number of answered calls."""
        with self._lock:
            return len(self.calls)

    def secrets(self) -> tuple[str, ...]:
        """The wrapped backend's credentials (redacted by the metering layer)."""
        return secrets_of(self.backend)

    def close(self) -> None:
        """Close the wrapped backend, when it can be closed."""
        close = getattr(self.backend, "close", None)
        if callable(close):
            close()

    def faults_at(self, call: int) -> tuple[Fault, ...]:
        """The faults injected at call index ``call``."""
        return self.faults.get(call, ()) + self.every_call

    def score(self, queries: Sequence[Query]) -> list[LabelScores]:
        """The wrapped backend's answers, with this call's faults injected.

        Raises:
            BaseException: what a :class:`Raise` fault injects, or the wrapped backend raises.
        """
        queries = tuple(queries)
        with self._lock:
            call = self.attempts
            self.attempts += 1
            self._in_flight += 1
            self.peak_concurrency = max(self.peak_concurrency, self._in_flight)
        try:
            faults = self.faults_at(call)
            if faults:
                _start(faults)
            if self.latency:
                time.sleep(self.latency)
            answers = self.backend.score(queries)
            applied = [f for f in faults if not isinstance(f, (Raise, Kill))]
            for fault in applied:
                answers = _apply(fault, queries, answers)
            self._record(call, queries, applied)
            return answers
        finally:
            with self._lock:
                self._in_flight -= 1

    def _record(self, call: int, queries: tuple[Query, ...], applied: Sequence[Fault]) -> None:
        line = b""
        if self.call_log is not None:
            entry: dict[str, object] = {"call": call, "queries": [q.to_json() for q in queries]}
            if applied:
                entry["faults"] = [type(f).__name__ for f in applied]
            if any(isinstance(f, _MALFORMING) for f in applied):
                entry["malformed"] = True
            line = _jsonl.dumps_line(entry)
        with self._lock:
            self.calls.append(queries)
            if self.call_log is not None:
                fd = _jsonl.open_append(self.call_log)
                try:
                    _jsonl.write_line(fd, line, name=self.call_log)
                finally:
                    os.close(fd)


def _start(faults: Sequence[Fault]) -> None:
    """Inject the faults that strike before the wrapped backend is asked."""
    if any(isinstance(f, Kill) for f in faults):
        os.kill(os.getpid(), signal.SIGKILL)
    for fault in faults:
        if isinstance(fault, Raise):
            if fault.billed is not None:
                fault.error.usage = fault.billed  # type: ignore[attr-defined]
            raise fault.error


def _apply(fault: Fault, queries: Sequence[Query], answers: list[LabelScores]) -> list[LabelScores]:
    """One answer fault applied to a reply (a new list; the answers are immutable)."""
    if isinstance(fault, NoUsage):
        return [replace(a, usage=Usage(0, 0, a.usage.requests)) for a in answers]
    if isinstance(fault, MissingAnswer):
        return answers[:-1] if answers else [LabelScores((0.0,), Usage())]
    if isinstance(fault, ExtraAnswer):
        return [*answers, answers[-1] if answers else LabelScores((0.0,), Usage())]
    out = list(answers)
    if isinstance(fault, BadLogprob) and fault.answer < len(out):
        a = out[fault.answer]
        if fault.label < len(a.logprobs):
            lp = list(a.logprobs)
            lp[fault.label] = fault.value
            out[fault.answer] = replace(a, logprobs=tuple(lp))
    elif isinstance(fault, WrongLabelCount) and fault.answer < len(out):
        a = out[fault.answer]
        cut = a.logprobs[:-1] if len(a.logprobs) > 1 else (*a.logprobs, -1.0)
        out[fault.answer] = replace(a, logprobs=cut)
    return out


def _scaled(
    estimate: Callable[[Sequence[Query]], Usage], factor: float
) -> Callable[[Sequence[Query]], Usage]:
    def scaled(queries: Sequence[Query]) -> Usage:
        u = estimate(queries)
        return Usage(
            math.ceil(u.prompt_tokens * factor), math.ceil(u.completion_tokens * factor), u.requests
        )

    return scaled
