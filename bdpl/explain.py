"""Explanations of a learned prompt: what each position holds and what it is worth.

For each position of the prompt, :func:`explain` reports the most probable candidates under
the learned distribution, and the task metric on a dataset when that position's phrase is
removed, or replaced by the next most probable candidate. Every evaluation goes through the
optimizer's metering layer (cached, counted, under its budget), like any other query. This is
the BDPL paper's case study of learned prompts, as a feature.

>>> from bdpl import Dataset, Example, FakeBackend, Optimizer, Planted, get_task
>>> words = ["good", "bad", "film", "plot", "truly", "meh"]
>>> train = Dataset(get_task("sst2"), [Example(f"review {i}", label=str(i % 2)) for i in range(16)])
>>> planted = Planted.for_dataset(train, words, prompt_length=2, best=[0, 4], strength=2.0)
>>> opt = Optimizer(FakeBackend(planted=planted), candidates=words, prompt_length=2,
...                 sample_size=8, batch_size=16, epochs=20, seed=0, cache=False)
>>> _ = opt.fit(train)
>>> report = opt.explain(train, top=2)
>>> report.prompt, report.score
(['good', 'truly'], 1.0)
>>> [(p.phrase, p.removed_score, p.replacement) for p in report.positions]
[('good', 0.5, 'film'), ('truly', 1.0, 'bad')]
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bdpl._validate import positive_int
from bdpl.errors import ConfigError
from bdpl.tasks import Dataset

if TYPE_CHECKING:
    from bdpl.optimizer import Optimizer


@dataclass(frozen=True)
class PositionExplanation:
    """One prompt position.

    Attributes:
        position: 0-based position in the prompt.
        phrase: the prompt's phrase there.
        probability: its probability under the learned distribution.
        top: the most probable candidates there, ``[phrase, probability]``, most probable
            first.
        removed_score: the metric with this position's phrase left out.
        removed_change: ``removed_score - score`` (negative: the phrase helps).
        replacement: the most probable candidate other than ``phrase``.
        replaced_score: the metric with ``replacement`` in its place.
        replaced_change: ``replaced_score - score``.
    """

    position: int
    phrase: str
    probability: float
    top: list[tuple[str, float]]
    removed_score: float
    removed_change: float
    replacement: str
    replaced_score: float
    replaced_change: float


@dataclass(frozen=True)
class Explanation:
    """What :func:`explain` returns; :meth:`to_json` gives plain JSON.

    Attributes:
        prompt: the explained prompt.
        metric: the task's metric name.
        score: the metric with the whole prompt.
        manual_score: the metric with no prompt at all (the template alone).
        positions: one :class:`PositionExplanation` per prompt position.
        queries: queries this explanation sent to the metering layer (cache hits included).
    """

    prompt: list[str]
    metric: str
    score: float
    manual_score: float
    positions: list[PositionExplanation]
    queries: int

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form (lists, strings and numbers only)."""
        data = asdict(self)
        for pos in data["positions"]:
            pos["top"] = [list(pair) for pair in pos["top"]]
        return data

    def dumps(self) -> str:
        """:meth:`to_json` as an indented JSON string, for printing or saving."""
        return json.dumps(self.to_json(), indent=1)


def explain(
    optimizer: Optimizer,
    dataset: Dataset,
    *,
    top: int = 5,
    prompt: Sequence[str] | None = None,
) -> Explanation:
    """Explain ``optimizer``'s prompt on ``dataset``: per position, the top candidates and
    the metric's change when the phrase is removed or replaced by the next-best one.

    Costs ``(2 * prompt_length + 2) * len(dataset)`` queries at most (the whole prompt, no
    prompt, and two ablations per position), fewer when they hit the cache.

    Args:
        optimizer: a fitted (or loaded) optimizer; its distribution gives the probabilities.
        dataset: labelled examples to measure on (a dev set).
        top: candidates to list per position.
        prompt: the prompt to explain, as candidate phrases (default: the optimizer's best,
            as :meth:`~bdpl.optimizer.Optimizer.evaluate` uses).

    Raises:
        ConfigError: no candidates yet, a phrase that is not a candidate, a prompt of the
            wrong length, or ``top`` < 1.
        BudgetExceededError: the metering layer's budget would be passed.
    """
    top = positive_int("top", top)
    if optimizer.candidates is None:
        raise ConfigError("no candidates yet: fit or load the optimizer first")
    candidates = optimizer.candidates
    if prompt is None:
        prompt = (
            optimizer.best_prompt if optimizer.best_prompt is not None else optimizer.recommend()
        )
    phrases = list(prompt)
    if len(phrases) != optimizer.prompt_length:
        raise ConfigError(
            f"the prompt has {len(phrases)} phrases; this optimizer's has {optimizer.prompt_length}"
        )
    unknown = [p for p in phrases if p not in candidates]
    if unknown:
        raise ConfigError(f"not among the optimizer's candidates: {unknown}")
    # The distribution the best prompt came from, as saved with it; else the current one.
    state = optimizer.best_state
    probs = optimizer.estimator.probs(state) if state is not None else optimizer.probs
    start = optimizer.queries
    score = optimizer.evaluate(dataset, phrases)
    manual = optimizer.evaluate(dataset, [])
    positions = []
    for i, phrase in enumerate(phrases):
        row = probs[i]
        # Stable sort on -p: ties keep candidate order, so the listing is deterministic.
        order = [int(j) for j in np.argsort(-row, kind="stable")]
        current = candidates.index(phrase)
        nxt = next(j for j in order if j != current)
        removed = optimizer.evaluate(dataset, phrases[:i] + phrases[i + 1 :])
        replaced = optimizer.evaluate(dataset, [*phrases[:i], candidates[nxt], *phrases[i + 1 :]])
        positions.append(
            PositionExplanation(
                position=i,
                phrase=phrase,
                probability=float(row[current]),
                top=[(candidates[j], float(row[j])) for j in order[:top]],
                removed_score=removed,
                removed_change=removed - score,
                replacement=candidates[nxt],
                replaced_score=replaced,
                replaced_change=replaced - score,
            )
        )
    task = optimizer.task if optimizer.task is not None else dataset.task
    return Explanation(
        prompt=phrases,
        metric=task.metric,
        score=score,
        manual_score=manual,
        positions=positions,
        queries=optimizer.queries - start,
    )
