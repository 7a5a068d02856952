"""An append-only JSONL record of every paid call and every batch of cache hits.

The ledger is write-ahead: before each try of a paid call an ``"intent"`` record with the
try's estimate (an upper bound on what it can cost) is made durable, and after the call its
``"call"`` record settles the intents of all its tries (``settles``) with what was actually
billed. A run killed while calls were in flight leaves intents that nothing settles;
:meth:`Ledger.read` counts each of them as spent at its estimate (marked ``unconfirmed``), so a
budget rebuilt from the ledger (:meth:`~bdpl.metering.Budget.from_ledger`) includes them.

Each record is written with a single ``os.write`` on a file opened with ``O_APPEND`` and then
``fsync``'ed, so concurrent writers (threads or processes) never interleave. :meth:`Ledger.read`
skips a torn last line. Files written before intents existed read as they always did.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from bdpl._jsonl import dumps_line, open_append, write_line

__all__ = ["Ledger", "LedgerRecord", "LedgerSummary", "format_summary", "summarize"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    """One ledger line.

    Attributes:
        kind: ``"call"`` (a call that reached the backend), ``"hit"`` (queries answered by
            the cache, billed nothing) or ``"intent"`` (a try about to be paid, written before
            it is made, with its estimate in the spend fields; see the module docstring).
        time: when it was recorded, ISO 8601 UTC.
        backend: the backend's identity (never a secret).
        model: the model name prices are looked up by.
        queries: distinct queries in the call (or cache hits in the batch).
        billed_queries: queries billed over all attempts: answered ones, and those of
            attempts whose outcome is unknown (0 for hits).
        prompt_tokens: prompt tokens the backend reported, over all attempts (0 for hits).
        completion_tokens: completion tokens the backend reported, over all attempts.
        requests: requests the backend reported, over all attempts.
        dollars: what was billed (0 for hits).
        saved_dollars: for hits, what the answers cost when they were first paid for.
        latency_s: wall time of the call, retries and waits included.
        attempts: tries made (1 when the first succeeded).
        ok: whether the call ended with valid answers.
        error: the error type that ended a failed call (no message: messages may hold data).
        id: an intent's unique id.
        settles: for a call, the ids of the intents (one per try) it settles.
        unconfirmed: some of the spend is an estimate, not a bill the provider confirmed: a
            try whose outcome is unknown (a timeout, a connection dropped mid-reply, an
            unreadable reply), or an intent nothing settled (a call in flight at a kill).
        unconfirmed_dollars: the part of ``dollars`` charged at estimates.
    """

    kind: str
    time: str
    backend: str
    model: str
    queries: int
    billed_queries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    dollars: float = 0.0
    saved_dollars: float = 0.0
    latency_s: float = 0.0
    attempts: int = 0
    ok: bool = True
    error: str | None = None
    id: str | None = None
    settles: tuple[str, ...] = ()
    unconfirmed: bool = False
    unconfirmed_dollars: float = 0.0

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        # Fields at their defaults are left out, so a plain call reads as it always did.
        for name, default in _OPTIONAL.items():
            if data[name] == default:
                del data[name]
        if "settles" in data:
            data["settles"] = list(self.settles)
        return data

    @classmethod
    def from_json(cls, data: dict[str, object]) -> LedgerRecord:
        """Inverse of :meth:`to_json`; unknown keys (from newer versions) are ignored."""
        names = {f.name for f in fields(cls)}
        kept = {k: v for k, v in data.items() if k in names}
        settles = kept.get("settles", ())
        if not isinstance(settles, (list, tuple)) or not all(isinstance(i, str) for i in settles):
            raise TypeError("settles is not a list of ids")
        kept["settles"] = tuple(settles)
        return cls(**kept)  # type: ignore[arg-type]


_OPTIONAL: dict[str, object] = {
    "id": None,
    "settles": (),
    "unconfirmed": False,
    "unconfirmed_dollars": 0.0,
}


@dataclass(frozen=True, slots=True)
class LedgerSummary:
    """Totals for one backend and model.

    Attributes:
        calls: calls that reached the backend (failed ones included).
        failed_calls: of those, calls that ended in an error.
        billed_queries: queries the backend answered (billed).
        hit_queries: queries the cache answered.
        prompt_tokens: prompt tokens billed.
        completion_tokens: completion tokens billed.
        requests: requests made.
        dollars: dollars billed, estimates of unconfirmed spend included.
        saved_dollars: dollars the cache saved.
        unconfirmed_dollars: the part of ``dollars`` charged at estimates (tries whose outcome
            is unknown, calls in flight at a kill).
    """

    calls: int = 0
    failed_calls: int = 0
    billed_queries: int = 0
    hit_queries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    dollars: float = 0.0
    saved_dollars: float = 0.0
    unconfirmed_dollars: float = 0.0

    def add(self, r: LedgerRecord) -> LedgerSummary:
        """This summary with record ``r`` counted (an unsettled intent as a failed call)."""
        is_call = r.kind in ("call", "intent")
        return LedgerSummary(
            self.calls + is_call,
            self.failed_calls + (is_call and not r.ok),
            self.billed_queries + r.billed_queries,
            self.hit_queries + (r.queries if r.kind == "hit" else 0),
            self.prompt_tokens + r.prompt_tokens,
            self.completion_tokens + r.completion_tokens,
            self.requests + r.requests,
            self.dollars + r.dollars,
            self.saved_dollars + r.saved_dollars,
            self.unconfirmed_dollars + r.unconfirmed_dollars,
        )


class Ledger:
    """An append-only cost ledger in a JSONL file; several processes may append to one file.

    Args:
        path: the file; created (with its parent directories) if needed.
        fsync: ``fsync`` after each record (the default), so that records survive a power
            loss too. Without it they still survive a killed process (the kernel holds them),
            and a call costs about a millisecond less on a slow disk.

    >>> import tempfile, os
    >>> ledger = Ledger(os.path.join(tempfile.mkdtemp(), "ledger.jsonl"))
    >>> ledger.append(LedgerRecord("call", "2026-01-01T00:00:00Z", "fake", "fake-model", 8,
    ...                            billed_queries=8, prompt_tokens=80, requests=1, dollars=0.01))
    >>> ledger.summary()[("fake", "fake-model")].billed_queries
    8
    >>> ledger.close()
    """

    def __init__(self, path: str | Path, *, fsync: bool = True) -> None:
        self.path = Path(path).expanduser()
        self.fsync = fsync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._fd: int | None = open_append(self.path)
        # A crash during a write (power loss) may leave a line without its newline; end it, so
        # that the next record does not get glued to it.
        with open(self.path, "rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":
                    os.write(self._fd, b"\n")

    def __repr__(self) -> str:
        return f"Ledger({str(self.path)!r})"

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def append(self, record: LedgerRecord) -> None:
        """Write one record durably (one ``write`` + ``fsync``)."""
        line = dumps_line(record.to_json())
        with self._lock:
            if self._fd is None:
                raise ValueError(f"ledger {self.path} is closed")
            write_line(self._fd, line, fsync=self.fsync, name=f"ledger {self.path}")

    def close(self) -> None:
        """Close the file (records already appended are on disk)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def records(self) -> list[LedgerRecord]:
        """Every record in the file (see :meth:`read`)."""
        return self.read(self.path)

    def summary(self) -> dict[tuple[str, str], LedgerSummary]:
        """Totals per ``(backend identity, model)``."""
        return summarize(self.records())

    def report(self) -> str:
        """:meth:`summary` as a text table (see :func:`format_summary`)."""
        return format_summary(self.summary())

    @staticmethod
    def read(path: str | Path, *, raw: bool = False) -> list[LedgerRecord]:
        """Parse a ledger file, skipping (and reporting) lines that are torn or not records.

        Args:
            path: the file.
            raw: every record as written. By default the intents that a call record settles
                are left out, so what remains is what was spent: calls, hits, and the intents
                nothing settled (calls in flight when a run was killed, or still in flight in
                another process), each spent at its estimate.
        """
        out: list[LedgerRecord] = []
        for lineno, line in _lines(Path(path)):
            try:
                data = json.loads(line)
                if not isinstance(data, dict):
                    raise TypeError("not an object")
                out.append(LedgerRecord.from_json(data))
            except (ValueError, TypeError) as exc:
                log.warning("ledger %s line %d skipped: %s", path, lineno, type(exc).__name__)
        if raw:
            return out
        settled = {i for r in out if r.kind == "call" for i in r.settles}
        return [r for r in out if not (r.kind == "intent" and r.id in settled)]


def summarize(records: list[LedgerRecord]) -> dict[tuple[str, str], LedgerSummary]:
    """Totals per ``(backend identity, model)`` of ``records``."""
    out: dict[tuple[str, str], LedgerSummary] = {}
    for r in records:
        key = (r.backend, r.model)
        out[key] = out.get(key, LedgerSummary()).add(r)
    return out


def format_summary(summary: dict[tuple[str, str], LedgerSummary]) -> str:
    """A text table of per-backend totals, one row per backend and model, and a total row.

    >>> print(format_summary({("fake", "m"): LedgerSummary(calls=2, billed_queries=100,
    ...     hit_queries=50, prompt_tokens=900, completion_tokens=100, dollars=0.5,
    ...     saved_dollars=0.25)}))
    backend  model  calls  failed  paid queries  cache hits  tokens  dollars    saved
    fake     m          2       0           100          50   1,000  $0.5000  $0.2500
    total               2       0           100          50   1,000  $0.5000  $0.2500
    """
    head: tuple[str, ...] = ("backend", "model", "calls", "failed", "paid queries")
    head += ("cache hits", "tokens", "dollars", "saved")
    total = LedgerSummary()
    for s in summary.values():
        total = LedgerSummary(*(getattr(total, f.name) + getattr(s, f.name) for f in fields(s)))
    # Only a ledger with estimated spend gets the column that says how much of it is estimated.
    unconfirmed = total.unconfirmed_dollars > 0
    if unconfirmed:
        head += ("of which unconfirmed",)
    rows = [
        (backend, model, *_cells(s, unconfirmed)) for (backend, model), s in sorted(summary.items())
    ]
    rows.append(("total", "", *_cells(total, unconfirmed)))
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]

    def line(r: tuple[str, ...]) -> str:
        cells = [
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r, widths, strict=True))
        ]
        return "  ".join(cells).rstrip()

    return "\n".join(line(r) for r in [head, *rows])


def _cells(s: LedgerSummary, unconfirmed: bool) -> tuple[str, ...]:
    tokens = s.prompt_tokens + s.completion_tokens
    extra = (f"${s.unconfirmed_dollars:,.4f}",) if unconfirmed else ()
    return (
        f"{s.calls:,}",
        f"{s.failed_calls:,}",
        f"{s.billed_queries:,}",
        f"{s.hit_queries:,}",
        f"{tokens:,}",
        f"${s.dollars:,.4f}",
        f"${s.saved_dollars:,.4f}",
        *extra,
    )


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with open(path, encoding="utf-8", errors="replace") as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                yield i, line
