"""A planted, learnable structure for :class:`~bdpl.testing.FakeBackend`: a known best prompt.

:class:`Planted` says which candidate is best at each prompt position and by how much each
candidate raises or lowers the correct label's score; :class:`PlantedOracle` reads a rendered
query back (the prompt in front, the input, the label words) and turns it into logits, so a
fake backend built with one has a best prompt an optimizer must find.

The prompt is what :meth:`~bdpl.tasks.Task.render` put before the first input
(``Query.input_spans``), less the template's own text there; it is split back into
candidates, longest match first (candidates may hold spaces). The input is the text of the
input spans.

A set-up usually plants over the training and the dev set together, so the fake knows every
input it will be asked about:

>>> from bdpl.tasks import Dataset, Example, get_task
>>> task = get_task("sst2")
>>> train = Dataset(task, (Example("a film", label="1"), Example("a plot", label="0")))
>>> dev = Dataset(task, (Example("a song", label="1"),))
>>> planted = Planted.for_dataset([train, dev], ["truly", "good", "film"], prompt_length=2, seed=3)
>>> planted.best_prompt, len(planted.answers)
(['truly', 'film'], 3)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from bdpl.errors import ConfigError, UnsupportedQueryError
from bdpl.tasks import Dataset, Example, Task
from bdpl.types import Query
from bdpl.vocab import check_candidates

__all__ = ["Planted", "PlantedOracle"]


def _input_key(texts: Iterable[str]) -> str:
    return "\x1f".join(texts)


@dataclass(frozen=True)
class Planted:
    """A learnable structure for :class:`~bdpl.testing.FakeBackend`: a known best prompt.

    The correct label's logit is raised by ``sum(effects[i][token_i])`` over the prompt's
    positions; every other label is unaffected. Each example also has fixed base logits
    (``difficulty`` times hashed numbers in [-1, 1), so with no prompt accuracy is near chance),
    and the backend adds per-query hashed noise of scale ``FakeBackend.noise``. With additive
    effects the expected cross-entropy is minimised by the per-position argmax of ``effects``,
    which is ``best`` — as long as the backend's noise is small against ``margin``.

    Args:
        prompt_length: most prompt tokens a query may carry (fewer are fine: the missing
            positions add nothing).
        candidates: the prompt vocabulary, as given to the optimizer (the same rule:
            :func:`bdpl.vocab.check_candidates`).
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
        if self.prompt_length < 1:
            raise ConfigError(f"Planted: prompt_length must be >= 1, got {self.prompt_length}")
        cands = tuple(check_candidates(self.candidates))  # as the optimizer takes them
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
        dataset: Dataset | Sequence[Dataset],
        candidates: Sequence[str],
        *,
        prompt_length: int,
        best: Sequence[int] | None = None,
        seed: int = 0,
        **options: float,
    ) -> Planted:
        """Plant a structure over ``dataset``; ``best`` is drawn from ``seed`` when not given.

        Args:
            dataset: the inputs the fake must know: one dataset, or several of one task (a
                training and a dev set, say), planted over together.
            candidates: the prompt vocabulary.
            prompt_length: prompt positions.
            best: the best candidate's index at each position; drawn when ``None``.
            seed: seeds ``best`` (when drawn), the effects and the base logits.
            **options: ``strength``, ``margin``, ``difficulty`` (see :class:`Planted`).

        Raises:
            ConfigError: no dataset, datasets of different tasks, or a bad structure.
        """
        datasets = (dataset,) if isinstance(dataset, Dataset) else tuple(dataset)
        if not datasets:
            raise ConfigError("Planted.for_dataset: needs at least one dataset")
        task = datasets[0].task
        if any(d.task != task for d in datasets):
            raise ConfigError("Planted.for_dataset: the datasets must share one task")
        if best is None:
            rng = np.random.default_rng([seed, 0xB357])
            best = [int(x) for x in rng.integers(0, len(candidates), prompt_length)]
        return cls(
            prompt_length,
            candidates,
            task,
            [e for d in datasets for e in d],
            best,
            seed=seed,
            **options,  # type: ignore[arg-type]
        )

    @property
    def best_prompt(self) -> list[str]:
        """The planted best prompt, as tokens."""
        return [self.candidates[b] for b in self.best]


# Marks where the prompt goes when the oracle renders a probe (never in a real prompt).
_MARK = "\x00"


def _gaps(before: str, spans: Sequence[tuple[int, int]]) -> list[str]:
    """The texts of ``before`` around the input spans (one more than there are spans)."""
    ends = [0, *(b for _, b in spans)]
    starts = [*(a for a, _ in spans), len(before)]
    return [before[a:b] for a, b in zip(ends, starts, strict=True)]


class PlantedOracle:
    """Turns a query rendered for a :class:`Planted` task into logits (thread-safe).

    Args:
        planted: the structure.
        uniforms: the keyed hash the fake draws numbers in [-1, 1) from (so base logits are
            stable across processes).
    """

    def __init__(self, planted: Planted, uniforms: Callable[[bytes, int], list[float]]) -> None:
        self.planted = planted
        self._uniforms = uniforms
        task = planted.task
        probe = Example("x", "y" if task.is_pair else None)
        empty, marked = task.render([], probe), task.render([_MARK], probe)
        # The prompt sits between two input spans (or the start/end of ``before``): the
        # ``gap``-th gap. The template's text in that gap is ``pre`` + prompt + ``post`` with
        # a prompt, and ``self.bare`` without one.
        at = marked.before.index(_MARK)
        self.gap = sum(1 for _, end in marked.input_spans if end <= at)
        self.pre, self.post = _gaps(marked.before, marked.input_spans)[self.gap].split(_MARK)
        self.bare_gaps = _gaps(empty.before, empty.input_spans)
        self.bare = self.bare_gaps[self.gap]
        self.label_words = tuple(w.strip() for w in task.label_words)
        self.max_tokens = planted.prompt_length
        self.index = {tuple(c.split(" ")): i for i, c in enumerate(planted.candidates)}
        self.longest = max(len(k) for k in self.index)
        self._effects: dict[str, float | None] = {}
        self._base: dict[str, list[float]] = {}

    def logits(self, q: Query, noise: Sequence[float]) -> list[float]:
        """The query's logits: base logits plus ``noise``, the correct label shifted.

        Raises:
            UnsupportedQueryError: other label words than the task's, no input spans, an
                unknown input, or a prompt that is not made of the planted candidates.
        """
        planted = self.planted
        if tuple(lab.strip() for lab in q.labels) != self.label_words:
            raise UnsupportedQueryError(
                f"FakeBackend: labels {q.labels} are not the planted task's {self.label_words}"
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
        shift = self.effect(self.region(before, spans))
        base = self._base.get(key)
        if base is None:
            seed = f"{planted.seed}\x00base\x00{key}".encode("utf-8", "surrogatepass")
            base = [planted.difficulty * x for x in self._uniforms(seed, len(q.labels))]
            self._base[key] = base  # a race here only recomputes the same value
        z = [b + x for b, x in zip(base, noise, strict=True)]
        z[label] += shift
        return z

    def region(self, before: str, spans: Sequence[tuple[int, int]]) -> str:
        """The gap where the prompt goes; every other gap must be the template's own text."""
        gaps = _gaps(before, spans)
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
            found = self._effects[region]
        except KeyError:
            found = self._effect(region)
            if len(self._effects) < 1_000_000:  # bounded: one entry per distinct prompt
                self._effects[region] = found
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
        effects = self.planted.effects
        assert effects is not None
        return sum(effects[i][t] for i, t in enumerate(tokens))

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
