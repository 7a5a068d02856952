"""Test doubles for pipelines built on bdpl: a fake backend and fault injection.

- :class:`FakeBackend`: deterministic, offline answers derived from a keyed hash, with
  realistic token usage; learnable when given a :class:`Planted` structure (a known best
  prompt an optimizer must find).
- :class:`FaultyBackend`: wraps *any* backend (the fake, an OpenAI backend, your own) and
  injects latency, errors (also "billed, then failed"), malformed answers, missing usage or a
  SIGKILL at a chosen call, and logs every answered call, durably.

Fault schedules are plain data: call index -> fault (:class:`Raise`, :class:`Kill`,
:class:`BadLogprob`, :class:`MissingAnswer`, :class:`ExtraAnswer`, :class:`WrongLabelCount`,
:class:`NoUsage`).

>>> from bdpl import Meter
>>> from bdpl.types import Query
>>> faulty = FaultyBackend(FakeBackend(), faults={0: BadLogprob(answer=1)})
>>> qs = [Query(f"review {i} It was", ".", (" bad", " good")) for i in range(3)]
>>> with Meter(faulty, cache=False) as meter:
...     answers = meter.score(qs)
>>> [len(call) for call in faulty.calls]   # the NaN answer alone was asked again
[3, 1]
>>> [a.logprobs for a in answers] == [a.logprobs for a in FakeBackend().score(qs)]
True
"""

from bdpl.testing.fake import FakeBackend
from bdpl.testing.faults import (
    BadLogprob,
    ExtraAnswer,
    Fault,
    FaultSchedule,
    FaultyBackend,
    Kill,
    MissingAnswer,
    NoUsage,
    Raise,
    WrongLabelCount,
)
from bdpl.testing.planted import Planted

__all__ = [
    "BadLogprob",
    "ExtraAnswer",
    "FakeBackend",
    "Fault",
    "FaultSchedule",
    "FaultyBackend",
    "Kill",
    "MissingAnswer",
    "NoUsage",
    "Planted",
    "Raise",
    "WrongLabelCount",
]
