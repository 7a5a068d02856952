"""A deterministic, offline backend for tests, examples and benchmarks.

:class:`FakeBackend` answers any well-formed :class:`~bdpl.types.Query` with log-probabilities
derived from a keyed hash of the query, so the same backend (same ``seed``) always gives the
same answer, in any process. Given a :class:`~bdpl.testing.Planted` structure it becomes
*learnable*: it recognises the learned prompt at the front of ``Query.before``, knows the
correct label of every input it was built with, and raises or lowers the correct label's score
by a per (position, candidate) effect, so there is a known best prompt an optimizer must find
(see :mod:`bdpl.testing.planted`).

Its latency, faults, call log and kill are those of :class:`~bdpl.testing.FaultyBackend`,
which it wraps around its own answers (and which wraps any other backend the same way).

It fails loudly (:class:`~bdpl.errors.UnsupportedQueryError`) on anything it was not built
to answer: no labels, duplicate labels, a batch larger than ``max_batch_size`` and, when
planted, an input it does not know, other label words than the task's, or a prompt that is
not made of its candidates.

Usage rule (what a call reports, and what :meth:`FakeBackend.estimate` predicts exactly):
for each query, ``prompt_tokens = ceil(len(before + after) / 4) + max(ceil(len(label) / 4))``
over its labels (one forward pass scores all labels, as a causal model scoring the next
token would) and ``completion_tokens = 1``; ``requests = 1`` per call, carried by the call's
first query. The shares of a call add up to the call's usage.

>>> from bdpl.types import Query
>>> fake = FakeBackend(seed=1)
>>> [s] = fake.score([Query("A fine film It was", ".", (" terrible", " great"))])
>>> round(sum(math.exp(x) for x in s.logprobs), 6), s.usage
(1.0, Usage(prompt_tokens=8, completion_tokens=1, requests=1))
>>> fake.call_count
1

Calls are counted two ways: :attr:`FakeBackend.attempts` counts every call started, while
:attr:`FakeBackend.calls` and the ``call_log`` file hold answered calls only (an injected
exception or a kill is no answer; an injected ``"malformed"`` answer is one, and is marked).
Faults are given by call index, as exceptions, ``"malformed"`` or any
:mod:`bdpl.testing.faults` fault:

>>> from bdpl.errors import RateLimitError
>>> from bdpl.testing.faults import BadLogprob
>>> fake = FakeBackend(faults={0: RateLimitError("429", retry_after=1.0), 1: BadLogprob()})
>>> q = Query("A fine film It was", ".", (" terrible", " great"))
>>> fake.score([q])
Traceback (most recent call last):
...
bdpl.errors.RateLimitError: 429
>>> fake.score([q])[0].logprobs[0], fake.attempts, fake.call_count
(nan, 2, 1)

A planted fake, where ``"truly"`` first and ``"good"`` second is the best prompt:

>>> from bdpl.tasks import Dataset, Example, get_task
>>> from bdpl.testing.planted import Planted
>>> data = Dataset(get_task("sst2"), (Example("a film", label="1"), Example("a plot", label="0")))
>>> planted = Planted.for_dataset(data, ["truly", "good", "film"], prompt_length=2, best=[0, 1])
>>> fake = FakeBackend(planted=planted)
>>> def correct(prompt):
...     scores = fake.score([data.task.render(prompt, e) for e in data])
...     return [round(math.exp(s.logprobs[y]), 2) for s, y in zip(scores, data.label_indices())]
>>> correct([]), correct(["truly", "good"])
([0.71, 0.56], [0.95, 0.91])
"""

from __future__ import annotations

import hashlib
import math
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

from bdpl.backends.base import Capabilities
from bdpl.errors import ConfigError, UnsupportedQueryError
from bdpl.testing.faults import Fault, FaultyBackend, Kill, MissingAnswer, Raise, as_faults
from bdpl.testing.planted import Planted, PlantedOracle
from bdpl.types import LabelScores, Query, Usage

__all__ = ["FakeBackend"]

# Scale of the logits an un-planted fake draws from its hash: wide enough that answers are
# confidently different (like a real model's), narrow enough that no log-prob underflows.
_UNPLANTED_SCALE = 3.0
_TO_UNIT = 2.0 / 2**32
_UNPACK = [struct.Struct(f"<{k}I").unpack for k in range(17)]


def _uniforms(key: bytes, n: int) -> list[float]:
    """``n`` numbers in [-1, 1) from a keyed hash (4 bytes each; blake2b is fast on short input)."""
    if n <= 16:  # the common case: one digest
        digest = hashlib.blake2b(key, digest_size=4 * n).digest()
        return [x * _TO_UNIT - 1.0 for x in _UNPACK[n](digest)]
    out: list[float] = []
    block = 0
    while len(out) < n:
        k = min(16, n - len(out))
        digest = hashlib.blake2b(
            key, digest_size=4 * k, person=block.to_bytes(4, "little")
        ).digest()
        out.extend(x * _TO_UNIT - 1.0 for x in _UNPACK[k](digest))
        block += 1
    return out


def _log_softmax(z: Sequence[float]) -> tuple[float, ...]:
    m = max(z)
    s = m + math.log(sum(math.exp(x - m) for x in z))
    return tuple(x - s for x in z)


class _HashedAnswers:
    """The fake's own answers: hashed (or planted) log-probs and the usage rule; no faults."""

    def __init__(
        self,
        seed: int,
        planted: Planted | None,
        noise: float,
        capabilities: Capabilities,
        identity: str,
    ) -> None:
        self.identity = identity
        self.capabilities = capabilities
        self._noise = noise
        self._oracle = PlantedOracle(planted, _uniforms) if planted is not None else None
        self._usage_objects: dict[int, Usage] = {}
        self._key_prefix = f"{seed}\x00".encode()

    def estimate(self, queries: Sequence[Query]) -> Usage:
        total = Usage()
        for u in self._usages(queries):
            total = total + u
        return total

    def score(self, queries: Sequence[Query]) -> list[LabelScores]:
        if len(queries) > self.capabilities.max_batch_size:
            raise UnsupportedQueryError(
                f"FakeBackend: {len(queries)} queries in one call, max_batch_size is "
                f"{self.capabilities.max_batch_size}"
            )
        return [
            LabelScores(self._logprobs(q), u)
            for q, u in zip(queries, self._usages(queries), strict=True)
        ]

    def _usages(self, queries: Sequence[Query]) -> list[Usage]:
        out = []
        # Usage values are immutable and repeat a lot: reuse them (this is the hot path).
        made = self._usage_objects
        for i, q in enumerate(queries):
            if not q.labels:
                raise UnsupportedQueryError("FakeBackend: a query has no labels")
            label_tokens = max((len(lab) + 3) // 4 for lab in q.labels)
            tokens = (len(q.before) + len(q.after) + 3) // 4 + label_tokens
            usage = made.get(tokens) if i else None
            if usage is None:
                usage = Usage(tokens, 1, 1 if i == 0 else 0)
                if i and len(made) < 100_000:
                    made[tokens] = usage
            out.append(usage)
        return out

    def _logprobs(self, q: Query) -> tuple[float, ...]:
        labels = q.labels
        if len(set(labels)) != len(labels):
            raise UnsupportedQueryError(f"FakeBackend: duplicate labels {labels}")
        key = b"".join(
            (
                self._key_prefix,
                q.before.encode("utf-8", "surrogatepass"),
                b"\x00",
                q.after.encode("utf-8", "surrogatepass"),
                b"\x00",
                "\x00".join(labels).encode("utf-8", "surrogatepass"),
            )
        )
        u = _uniforms(key, len(labels))
        if self._oracle is None:
            return _log_softmax([_UNPLANTED_SCALE * x for x in u])
        noise = self._noise
        return _log_softmax(self._oracle.logits(q, [noise * x for x in u]))


class FakeBackend:
    """Deterministic offline backend; learnable when given a :class:`~bdpl.testing.Planted`.

    Args:
        seed: keys the hash all answers derive from.
        planted: the learnable structure; ``None`` answers any well-formed query.
        noise: scale of the per-query hashed noise added to planted logits (unused otherwise,
            where logits are hashed numbers in [-3, 3)).
        latency: seconds each call sleeps (outside any lock, so concurrent calls overlap).
        faults: call index -> what goes wrong at that call: an exception (raised), the string
            ``"malformed"`` (one answer too few; one too many for an empty call), or any
            :mod:`bdpl.testing.faults` fault or list of them. Indices count every attempt,
            0-based, in the order calls start.
        call_log: a JSONL file; each answered call appends one line
            ``{"call": i, "queries": [...]}`` (``"malformed": true`` added for a malformed
            answer), flushed and fsync'ed before ``score`` returns. Lines are written with one
            ``O_APPEND`` write, so threads and processes may share the file.
        die_at_call: SIGKILL this process when the call with this index starts (a
            deterministic crash for restart tests).
        max_batch_size: most queries per call; larger calls raise UnsupportedQueryError.
        max_concurrency: advertised to the metering layer; :attr:`peak_concurrency` records
            how many calls actually overlapped.
        is_local: advertised to the metering layer (local = free).
        model: model name reported to the metering layer (price lookups).

    Attributes:
        calls: queries of every answered call, in the order they finished (a raised fault or
            a kill is not an answer; ``"malformed"`` is, as a provider would bill it).
        attempts: calls started, answered or not.
        peak_concurrency: most calls that were in flight at once.

    Raises:
        ConfigError: a negative noise or latency, a batch size or concurrency below 1, or a
            fault that is none of the above.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        planted: Planted | None = None,
        noise: float = 0.1,
        latency: float = 0.0,
        faults: Mapping[int, BaseException | Literal["malformed"] | Fault | Sequence[Fault]]
        | None = None,
        call_log: str | Path | None = None,
        die_at_call: int | None = None,
        max_batch_size: int = 64,
        max_concurrency: int = 16,
        is_local: bool = True,
        model: str = "fake-model",
    ) -> None:
        if noise < 0 or latency < 0 or max_batch_size < 1 or max_concurrency < 1:
            raise ConfigError(
                "FakeBackend: noise and latency must be >= 0, max_batch_size and "
                "max_concurrency >= 1"
            )
        schedule = {call: _fake_faults(call, fault) for call, fault in (faults or {}).items()}
        if die_at_call is not None:
            schedule[die_at_call] = (Kill(), *schedule.get(die_at_call, ()))
        self.seed = seed
        self.planted = planted
        self.noise = noise
        self.latency = latency
        self.faults = dict(faults or {})
        self.call_log = Path(call_log) if call_log is not None else None
        self.die_at_call = die_at_call
        self.model = model
        self.capabilities = Capabilities(
            model=model,
            max_batch_size=max_batch_size,
            max_concurrency=max_concurrency,
            is_local=is_local,
        )
        structure = planted.sha256 if planted is not None else "none"
        identity = f"fake:{model}:seed={seed}:noise={noise!r}:planted={structure}"
        self._answers = _HashedAnswers(seed, planted, noise, self.capabilities, identity)
        self._faulty = FaultyBackend(
            self._answers, faults=schedule, latency=latency, call_log=call_log
        )

    @property
    def identity(self) -> str:
        """Stable: model, seed, noise and the sha256 of the planted structure."""
        return self._answers.identity

    @property
    def calls(self) -> list[tuple[Query, ...]]:
        """Queries of every answered call, in the order they finished."""
        return self._faulty.calls

    @property
    def attempts(self) -> int:
        """Calls started, answered or not."""
        return self._faulty.attempts

    @property
    def peak_concurrency(self) -> int:
        """Most calls that were in flight at once."""
        return self._faulty.peak_concurrency

    @property
    def call_count(self) -> int:
        """Number of answered calls."""
        return self._faulty.call_count

    def estimate(self, queries: Sequence[Query]) -> Usage:
        """What :meth:`score` on ``queries`` reports (exact, hence an upper bound)."""
        return self._answers.estimate(queries)

    def score(self, queries: Sequence[Query]) -> list[LabelScores]:
        """Label log-probabilities for each query (see the module docstring for the rules).

        Raises:
            UnsupportedQueryError: a query this fake was not built to answer.
            BaseException: whatever ``faults`` injects at this call.
        """
        return self._faulty.score(queries)


def _fake_faults(call: int, fault: object) -> tuple[Fault, ...]:
    """A legacy fault (an exception or ``"malformed"``) as :mod:`bdpl.testing.faults` data."""
    if isinstance(fault, BaseException):
        return (Raise(fault),)
    if fault == "malformed":
        return (MissingAnswer(),)
    try:
        return as_faults(f"fault at call {call}", fault)
    except ConfigError:
        raise ConfigError(
            f"FakeBackend: fault at call {call} must be an exception, 'malformed' or a "
            f"bdpl.testing fault, got {fault!r}"
        ) from None
