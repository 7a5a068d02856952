"""Spending limits that are checked before each paid call and can never be overshot.

A call first *reserves* its estimated spend (an upper bound) under a lock, then *settles* the
reservation with what it actually used. Because reservations count against the limits until
they are settled, any number of concurrent calls together stay within every limit.
"""

from __future__ import annotations

import itertools
import math
import threading
from dataclasses import dataclass
from pathlib import Path

from bdpl.errors import BudgetExceededError, ConfigError

__all__ = ["Budget", "Reservation", "Spend"]


@dataclass(frozen=True, slots=True)
class Spend:
    """An amount of spending, measured every way a budget can limit it.

    Attributes:
        queries: queries the backend answered (each one billed).
        requests: requests (HTTP calls or forward passes) as the backend reported them.
        tokens: prompt plus completion tokens as the backend reported them.
        dollars: what those tokens cost at the meter's price.
    """

    queries: int = 0
    requests: int = 0
    tokens: int = 0
    dollars: float = 0.0

    def __add__(self, other: Spend) -> Spend:
        return Spend(
            self.queries + other.queries,
            self.requests + other.requests,
            self.tokens + other.tokens,
            self.dollars + other.dollars,
        )

    def __sub__(self, other: Spend) -> Spend:
        return Spend(
            self.queries - other.queries,
            self.requests - other.requests,
            self.tokens - other.tokens,
            self.dollars - other.dollars,
        )


@dataclass(frozen=True, slots=True)
class Reservation:
    """A reserved estimate, to be settled once with :meth:`Budget.settle`."""

    estimate: Spend
    ticket: int


_LIMITS = ("queries", "requests", "tokens", "dollars")


class Budget:
    """Upper limits on what a :class:`~bdpl.metering.Meter` may spend; ``None`` means no limit.

    Thread-safe: one budget may be shared by several meters and threads.

    Args:
        max_queries: most queries the backend may answer (cache hits are free).
        max_requests: most requests, as backends report them.
        max_tokens: most prompt + completion tokens, as backends report them.
        max_dollars: most dollars, priced from reported tokens.
        spent: what was already spent (by an earlier run of the same job) and counts against
            the limits; see :meth:`from_ledger`.

    Raises:
        ConfigError: a limit is negative, not a number, or (for counts) not an integer.

    >>> budget = Budget(max_queries=10)
    >>> r = budget.reserve(Spend(queries=8))
    >>> budget.settle(r, Spend(queries=8))
    >>> try:
    ...     budget.reserve(Spend(queries=4))
    ... except BudgetExceededError as exc:
    ...     print(exc.limit)
    queries
    """

    def __init__(
        self,
        max_queries: int | None = None,
        max_requests: int | None = None,
        max_tokens: int | None = None,
        max_dollars: float | None = None,
        *,
        spent: Spend | None = None,
    ) -> None:
        for name, value in (
            ("max_queries", max_queries),
            ("max_requests", max_requests),
            ("max_tokens", max_tokens),
        ):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise ConfigError(
                    f"Budget({name}=...) must be a non-negative integer, got {value!r}"
                )
        if max_dollars is not None and (
            isinstance(max_dollars, bool)
            or not isinstance(max_dollars, (int, float))
            or not math.isfinite(max_dollars)
            or max_dollars < 0
        ):
            raise ConfigError(
                f"Budget(max_dollars=...) must be a non-negative number, got {max_dollars!r}"
            )
        self.max_queries = max_queries
        self.max_requests = max_requests
        self.max_tokens = max_tokens
        self.max_dollars = None if max_dollars is None else float(max_dollars)
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._spent = spent if spent is not None else Spend()
        self._reserved = Spend()
        self._open: dict[int, int] = {}  # ticket -> thread that holds the reservation
        self._tickets = itertools.count()

    @classmethod
    def from_ledger(
        cls,
        ledger: str | Path,
        max_queries: int | None = None,
        max_requests: int | None = None,
        max_tokens: int | None = None,
        max_dollars: float | None = None,
    ) -> Budget:
        """A budget already charged with everything spent in ``ledger``.

        A job that is killed and restarted with the same ledger file thus keeps one budget
        over all its runs, rather than a fresh one per process. Calls that were in flight when
        a run was killed count at their estimates (the ledger wrote each one's estimate before
        making it, and nothing settled it), as do calls whose outcome was unknown (timeouts,
        dropped connections): estimates are upper bounds, so what the provider billed stays
        within the limits over all runs. A missing file is no spend.
        """
        from bdpl.metering.ledger import Ledger

        spent = Spend()
        if Path(ledger).exists():
            for r in Ledger.read(ledger):
                spent += Spend(
                    r.billed_queries, r.requests, r.prompt_tokens + r.completion_tokens, r.dollars
                )
        return cls(max_queries, max_requests, max_tokens, max_dollars, spent=spent)

    def __repr__(self) -> str:
        limits = ", ".join(
            f"max_{n}={getattr(self, f'max_{n}')!r}"
            for n in _LIMITS
            if getattr(self, f"max_{n}") is not None
        )
        return f"Budget({limits})"

    @property
    def spent(self) -> Spend:
        """What settled calls have spent so far."""
        with self._lock:
            return self._spent

    @property
    def reserved(self) -> Spend:
        """What calls in flight have reserved and not yet settled."""
        with self._lock:
            return self._reserved

    def remaining(self) -> dict[str, float | None]:
        """Per limit, what is left after settled and in-flight spending (``None``: no limit)."""
        with self._lock:
            used = self._spent + self._reserved
            out: dict[str, float | None] = {}
            for name in _LIMITS:
                limit = getattr(self, f"max_{name}")
                out[name] = None if limit is None else limit - getattr(used, name)
            return out

    def reserve(self, estimate: Spend) -> Reservation:
        """Reserve ``estimate`` (an upper bound on the next call's spend) before making the call.

        When the estimate does not fit only because calls in flight in other threads hold
        reservations, this waits for them to settle (estimates are upper bounds, so settling
        usually frees room) and tries again; it refuses when waiting cannot help.

        Raises:
            BudgetExceededError: settled plus reserved spending plus ``estimate`` would pass a
                limit, and waiting for other threads' calls cannot change that; nothing is
                reserved then. ``limit`` names the limit.
        """
        me = threading.get_ident()
        with self._settled:
            while True:
                over = self._first_limit_passed(estimate, self._reserved)
                if over is None:
                    break
                # Wait only where it can help: the estimate fits once the reservations of
                # calls in flight in *other* threads are settled (a thread never waits on its own).
                others = any(owner != me for owner in self._open.values())
                if not others or self._first_limit_passed(estimate, Spend()) is not None:
                    name, limit, spent, reserved, need = over
                    raise BudgetExceededError(
                        f"budget: max_{name}={limit} would be passed: {_fmt(spent)} spent, "
                        f"{_fmt(reserved)} reserved by calls in flight, this call needs up to "
                        f"{_fmt(need)}",
                        limit=name,
                    )
                self._settled.wait()
            self._reserved = self._reserved + estimate
            reservation = Reservation(estimate, next(self._tickets))
            self._open[reservation.ticket] = me
            return reservation

    def _first_limit_passed(
        self, estimate: Spend, reserved_now: Spend
    ) -> tuple[str, float, float, float, float] | None:
        for name in _LIMITS:
            limit = getattr(self, f"max_{name}")
            if limit is None:
                continue
            spent, reserved = getattr(self._spent, name), getattr(reserved_now, name)
            need = getattr(estimate, name)
            # A tiny tolerance keeps float sums of dollars from refusing an exact fit.
            slack = 1e-12 if name == "dollars" else 0
            if spent + reserved + need > limit + slack:
                return name, limit, spent, reserved, need
        return None

    def settle(self, reservation: Reservation, actual: Spend) -> None:
        """Replace a reservation by what the call actually spent (zero if it failed unbilled).

        Raises:
            ValueError: the reservation was already settled or is not from this budget.
        """
        with self._lock:
            if reservation.ticket not in self._open:
                raise ValueError("this reservation was already settled or is not from this budget")
            del self._open[reservation.ticket]
            self._reserved = self._reserved - reservation.estimate
            self._spent = self._spent + actual
            self._settled.notify_all()


def _fmt(x: float) -> str:
    return f"{x:.6g}" if isinstance(x, float) else str(x)
