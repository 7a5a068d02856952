"""A deterministic, offline backend for tests, examples and benchmarks.

:class:`FakeBackend` answers any well-formed :class:`~bdpl.types.Query` with log-probabilities
derived from a keyed hash of the query, so the same backend (same ``seed``) always gives the
same answer, in any process. Given a :class:`Planted` structure it becomes *learnable*: it
recognises the learned prompt at the front of ``Query.before``, knows the correct label of
every input it was built with, and raises or lowers the correct label's score by a per
(position, candidate) effect, so there is a known best prompt an optimizer must find.

The prompt is what :meth:`~bdpl.tasks.Task.render` put at the template's ``<prompt>`` (before
the first input by default): the parser finds it between the input spans
(``Query.input_spans``) that surround that place, less the template's own text there, and
splits it back into candidates, longest match first (candidates may hold spaces). The input
is the text of the input spans.

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

A planted fake, where ``"truly"`` first and ``"good"`` second is the best prompt:

>>> from bdpl.tasks import Dataset, Example, get_task
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
import json
import math
import os
import signal
import struct
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from bdpl.backends.base import Capabilities
from bdpl.errors import ConfigError, UnsupportedQueryError
from bdpl.tasks import Dataset, Example, Task
from bdpl.types import LabelScores, Query, Usage

Fault = BaseException | Literal["malformed"]

# Scale of the logits an un-planted fake draws from its hash: wide enough that answers are
# confidently different (like a real model's), narrow enough that no log-prob underflows.
_UNPLANTED_SCALE = 3.0
_TO_UNIT = 2.0 / 2**32
_UNPACK = [struct.Struct(f"<{k}I").unpack for k in range(17)]
# Marks where the prompt goes when the parser renders a probe (never in a real prompt).
_MARK = "\x00"


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


def _input_key(texts: Iterable[str]) -> str:
    return "\x1f".join(texts)


@dataclass(frozen=True)
class Planted:
    """A learnable structure for :class:`FakeBackend`: a known best prompt.

    The correct label's logit is raised by ``sum(effects[i][token_i])`` over the prompt's
    positions; every other label is unaffected. Each example also has fixed base logits
    (``difficulty`` times hashed numbers in [-1, 1), so with no prompt accuracy is near chance),
    and the backend adds per-query hashed noise of scale ``FakeBackend.noise``. With additive
    effects the expected cross-entropy is minimised by the per-position argmax of ``effects``,
    which is ``best`` — as long as the backend's noise is small against ``margin``.

    Args:
        prompt_length: most prompt tokens a query may carry (fewer are fine: the missing
            positions add nothing).
        candidates: the prompt vocabulary, as given to the optimizer (stripped, non-empty,
            distinct).
        task: the task whose queries are answered (template and label words are checked).
        examples: the inputs the backend knows, with their labels (a :class:`Dataset` or
            examples). The first label wins when the same input appears twice.
        best: index into ``candidates`` of the best token at each position.
        effects: an explicit ``prompt_length x len(candidates)`` matrix; drawn from ``seed``
            when ``None``: ``best`` gets ``strength``, every other candidate a value uniform
            in ``[-strength, strength - margin]`` (some help, most hurt, all less than best).
        strength: effect of the best token at each position.
        margin: how much better the best token is than any other at its position.
        difficulty: scale of each example's fixed base logits.
        seed: seeds the drawn effects and the base logits.

    Raises:
        ConfigError: on inconsistent sizes, bad candidates, or labels the task does not know.
    """

    prompt_length: int
    candidates: Sequence[str]
    task: Task
    examples: Dataset | Iterable[Example] = field(compare=False, repr=False)
    best: Sequence[int]
    effects: Sequence[Sequence[float]] | None = None
    strength: float = 1.0
    margin: float = 0.5
    difficulty: float = 1.0
    seed: int = 0
    answers: dict[str, int] = field(init=False, repr=False)
    sha256: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        cands = tuple(self.candidates)
        if self.prompt_length < 1:
            raise ConfigError(f"Planted: prompt_length must be >= 1, got {self.prompt_length}")
        if len(cands) < 2:
            raise ConfigError("Planted: needs at least 2 candidates")
        if any(not c.strip() or c != c.strip() for c in cands) or len(set(cands)) != len(cands):
            raise ConfigError("Planted: candidates must be stripped, non-empty and distinct")
        best = tuple(int(b) for b in self.best)
        if len(best) != self.prompt_length or not all(0 <= b < len(cands) for b in best):
            raise ConfigError(
                f"Planted: best must hold {self.prompt_length} indices in [0, {len(cands)})"
            )
        if not 0 < self.margin <= 2 * self.strength:
            raise ConfigError("Planted: need 0 < margin <= 2 * strength")
        if self.effects is None:
            rng = np.random.default_rng([self.seed, 0x9E37])
            eff = rng.uniform(-self.strength, self.strength - self.margin, (len(best), len(cands)))
            eff[np.arange(len(best)), best] = self.strength
        else:
            eff = np.asarray(self.effects, dtype=np.float64)
            if eff.shape != (len(best), len(cands)) or not np.all(np.isfinite(eff)):
                raise ConfigError(
                    f"Planted: effects must be a finite {len(best)} x {len(cands)} matrix"
                )
        answers: dict[str, int] = {}
        for ex in self.examples:
            key = _input_key(t.strip() for t in (ex.text_a, ex.text_b) if t is not None)
            try:
                answers.setdefault(key, self.task.label_index(ex))
            except ValueError as exc:
                raise ConfigError(f"Planted: {exc}") from None
        if not answers:
            raise ConfigError("Planted: needs at least one labelled example")
        object.__setattr__(self, "candidates", cands)
        object.__setattr__(self, "best", best)
        object.__setattr__(self, "effects", tuple(tuple(float(x) for x in row) for row in eff))
        object.__setattr__(self, "examples", ())  # answers hold what is needed; drop the rest
        object.__setattr__(self, "answers", answers)
        blob = json.dumps(
            {
                "prompt_length": self.prompt_length,
                "candidates": list(cands),
                "task": [self.task.name, self.task.template, self.task.verbalizer],
                "answers": sorted(answers.items()),
                "effects": self.effects,
                "difficulty": self.difficulty,
                "seed": self.seed,
            },
            sort_keys=True,
            ensure_ascii=False,
        )
        object.__setattr__(self, "sha256", hashlib.sha256(blob.encode()).hexdigest())

    @classmethod
    def for_dataset(
        cls,
        dataset: Dataset,
        candidates: Sequence[str],
        *,
        prompt_length: int,
        best: Sequence[int] | None = None,
        seed: int = 0,
        **options: float,
    ) -> Planted:
        """Plant a structure over ``dataset``; ``best`` is drawn from ``seed`` when not given."""
        if best is None:
            rng = np.random.default_rng([seed, 0xB357])
            best = [int(x) for x in rng.integers(0, len(candidates), prompt_length)]
        return cls(
            prompt_length,
            candidates,
            dataset.task,
            dataset,
            best,
            seed=seed,
            **options,  # type: ignore[arg-type]
        )

    @property
    def best_prompt(self) -> list[str]:
        """The planted best prompt, as tokens."""
        return [self.candidates[b] for b in self.best]


class _PromptParser:
    """Finds the planted candidates where :meth:`Task.render` put the prompt; sums effects."""

    def __init__(self, planted: Planted) -> None:
        task = planted.task
        probe = Example("x", "y" if task.is_pair else None)
        empty, marked = task.render([], probe), task.render([_MARK], probe)
        # The prompt sits between two input spans (or the start/end of ``before``): the
        # ``gap``-th gap. The template's text in that gap is ``pre`` + prompt + ``post`` with
        # a prompt, and ``self.bare`` without one.
        at = marked.before.index(_MARK)
        self.gap = sum(1 for _, end in marked.input_spans if end <= at)
        self.pre, self.post = self.gaps(marked.before, marked.input_spans)[self.gap].split(_MARK)
        self.bare_gaps = self.gaps(empty.before, empty.input_spans)
        self.bare = self.bare_gaps[self.gap]
        self.label_words = tuple(w.strip() for w in task.label_words)
        self.max_tokens = planted.prompt_length
        self.index = {tuple(c.split(" ")): i for i, c in enumerate(planted.candidates)}
        self.longest = max(len(k) for k in self.index)
        self.effects = planted.effects
        self.cache: dict[str, float | None] = {}

    @staticmethod
    def gaps(before: str, spans: Sequence[tuple[int, int]]) -> list[str]:
        """The texts of ``before`` around the input spans (one more than there are spans)."""
        ends = [0, *(b for _, b in spans)]
        starts = [*(a for a, _ in spans), len(before)]
        return [before[a:b] for a, b in zip(ends, starts, strict=True)]

    def region(self, before: str, spans: Sequence[tuple[int, int]]) -> str:
        """The gap where the prompt goes; every other gap must be the template's own text."""
        gaps = self.gaps(before, spans)
        for i, (got, bare) in enumerate(zip(gaps, self.bare_gaps, strict=True)):
            if i != self.gap and got != bare:
                raise UnsupportedQueryError(
                    f"FakeBackend: {got!r} is not the template's {bare!r}; the planted "
                    f"task puts the prompt between {self.pre!r} and {self.post!r}"
                )
        return gaps[self.gap]

    def effect(self, region: str) -> float:
        """Summed effect of the prompt in ``region`` (see :meth:`region`)."""
        try:
            found = self.cache[region]
        except KeyError:
            found = self._effect(region)
            if len(self.cache) < 1_000_000:  # bounded: one entry per distinct prompt
                self.cache[region] = found
        if found is None:
            raise UnsupportedQueryError(
                f"FakeBackend: {region!r} is not at most {self.max_tokens} planted candidates "
                f"between the template's {self.pre!r} and {self.post!r}"
            )
        return found

    def _effect(self, region: str) -> float | None:
        if region == self.bare:
            return 0.0
        pre, post = self.pre, self.post
        if len(region) <= len(pre) + len(post) or not (
            region.startswith(pre) and region.endswith(post)
        ):
            return None
        tokens = self._split(region[len(pre) : len(region) - len(post)].split(" "))
        if tokens is None:
            return None
        assert self.effects is not None
        return sum(self.effects[i][t] for i, t in enumerate(tokens))

    def _split(self, words: list[str]) -> tuple[int, ...] | None:
        # Depth-first, longest candidate first: deterministic, and exact for any vocabulary
        # where no two token sequences of the same text exist (a real model could not tell
        # them apart either).
        def go(at: int, depth: int) -> tuple[int, ...] | None:
            if at == len(words):
                return ()
            if depth == self.max_tokens:
                return None
            for n in range(min(self.longest, len(words) - at), 0, -1):
                i = self.index.get(tuple(words[at : at + n]))
                if i is not None:
                    rest = go(at + n, depth + 1)
                    if rest is not None:
                        return (i, *rest)
            return None

        return go(0, 0)


class FakeBackend:
    """Deterministic offline backend; learnable when given a :class:`Planted` structure.

    Args:
        seed: keys the hash all answers derive from.
        planted: the learnable structure; ``None`` answers any well-formed query.
        noise: scale of the per-query hashed noise added to planted logits (unused otherwise,
            where logits are hashed numbers in [-3, 3)).
        latency: seconds each call sleeps (outside any lock, so concurrent calls overlap).
        faults: call index -> exception raised at that call, or ``"malformed"`` to answer with
            one answer too few (one too many for an empty call). Indices count every attempt,
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
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        planted: Planted | None = None,
        noise: float = 0.1,
        latency: float = 0.0,
        faults: Mapping[int, Fault] | None = None,
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
        for call, fault in (faults or {}).items():
            if not (isinstance(fault, BaseException) or fault == "malformed"):
                raise ConfigError(
                    f"FakeBackend: fault at call {call} must be an exception or 'malformed', "
                    f"got {fault!r}"
                )
        self.seed = seed
        self.planted = planted
        self.noise = noise
        self.latency = latency
        self.faults = dict(faults or {})
        self.call_log = Path(call_log) if call_log is not None else None
        self.die_at_call = die_at_call
        self.capabilities = Capabilities(
            model=model,
            max_batch_size=max_batch_size,
            max_concurrency=max_concurrency,
            is_local=is_local,
        )
        self.model = model
        self.calls: list[tuple[Query, ...]] = []
        self.attempts = 0
        self.peak_concurrency = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._parser = _PromptParser(planted) if planted is not None else None
        self._base: dict[str, list[float]] = {}
        self._usage_objects: dict[int, Usage] = {}
        self._key_prefix = f"{seed}\x00".encode()
        structure = planted.sha256 if planted is not None else "none"
        self._identity = f"fake:{model}:seed={seed}:noise={noise!r}:planted={structure}"

    @property
    def identity(self) -> str:
        """Stable: model, seed, noise and the sha256 of the planted structure."""
        return self._identity

    @property
    def call_count(self) -> int:
        """Number of answered calls."""
        with self._lock:
            return len(self.calls)

    def estimate(self, queries: Sequence[Query]) -> Usage:
        """What :meth:`score` on ``queries`` reports (exact, hence an upper bound)."""
        total = Usage()
        for u in self._usages(queries):
            total = total + u
        return total

    def score(self, queries: Sequence[Query]) -> list[LabelScores]:
        """Label log-probabilities for each query (see the module docstring for the rules).

        Raises:
            UnsupportedQueryError: a query this fake was not built to answer.
            BaseException: whatever ``faults`` injects at this call.
        """
        queries = tuple(queries)
        with self._lock:
            call = self.attempts
            self.attempts += 1
            self._in_flight += 1
            self.peak_concurrency = max(self.peak_concurrency, self._in_flight)
        try:
            if call == self.die_at_call:
                os.kill(os.getpid(), signal.SIGKILL)
            fault = self.faults.get(call)
            if isinstance(fault, BaseException):
                raise fault
            if len(queries) > self.capabilities.max_batch_size:
                raise UnsupportedQueryError(
                    f"FakeBackend: {len(queries)} queries in one call, max_batch_size is "
                    f"{self.capabilities.max_batch_size}"
                )
            if self.latency:
                time.sleep(self.latency)
            answers = [
                LabelScores(self._logprobs(q), u)
                for q, u in zip(queries, self._usages(queries), strict=True)
            ]
            malformed = fault == "malformed"
            if malformed:
                answers = answers[:-1] if answers else [LabelScores((0.0,), Usage())]
            self._record(call, queries, malformed)
            return answers
        finally:
            with self._lock:
                self._in_flight -= 1

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
        if self._parser is None:
            return _log_softmax([_UNPLANTED_SCALE * x for x in u])
        return _log_softmax(self._planted_logits(q, u))

    def _planted_logits(self, q: Query, u: list[float]) -> list[float]:
        planted, parser = self.planted, self._parser
        assert planted is not None and parser is not None
        if tuple(lab.strip() for lab in q.labels) != parser.label_words:
            raise UnsupportedQueryError(
                f"FakeBackend: labels {q.labels} are not the planted task's {parser.label_words}"
            )
        spans = q.input_spans
        if not spans:
            raise UnsupportedQueryError("FakeBackend: a planted fake needs input_spans")
        before = q.before
        key = (
            before[spans[0][0] : spans[0][1]]
            if len(spans) == 1
            else _input_key(before[a:b] for a, b in spans)
        )
        label = planted.answers.get(key)
        if label is None:
            raise UnsupportedQueryError(f"FakeBackend: unknown input {key[:80]!r}")
        shift = parser.effect(parser.region(before, spans))
        base = self._base.get(key)
        if base is None:
            seed = f"{planted.seed}\x00base\x00{key}".encode("utf-8", "surrogatepass")
            base = [planted.difficulty * x for x in _uniforms(seed, len(q.labels))]
            self._base[key] = base  # a race here only recomputes the same value
        noise = self.noise
        z = [b + noise * x for b, x in zip(base, u, strict=True)]
        z[label] += shift
        return z

    def _record(self, call: int, queries: tuple[Query, ...], malformed: bool) -> None:
        line = b""
        if self.call_log is not None:
            entry: dict[str, object] = {"call": call, "queries": [q.to_json() for q in queries]}
            if malformed:
                entry["malformed"] = True
            line = (json.dumps(entry, ensure_ascii=False) + "\n").encode("utf-8", "surrogatepass")
        with self._lock:
            self.calls.append(queries)
            if self.call_log is not None:
                fd = os.open(self.call_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    # One write per line: O_APPEND makes it land whole after other writers'.
                    view = memoryview(line)
                    while view:
                        view = view[os.write(fd, view) :]
                    os.fsync(fd)
                finally:
                    os.close(fd)
