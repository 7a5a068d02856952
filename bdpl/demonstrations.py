"""In-context demonstrations: labelled training examples rendered before every input.

:func:`with_demonstrations` picks ``k`` training examples (stratified over the classes, by
seed) and returns a :class:`DemonstrationTask`: the same task, whose queries start with each
demonstration rendered through the template with its label word filled in. Give it to any
optimizer or baseline (``Optimizer(backend, task=...)``, ``ManualPrompt(backend, task=...)``).

>>> from bdpl.tasks import Dataset, Example, get_task
>>> train = Dataset(get_task("sst2"), (Example("A fine film", label="1"),
...                                    Example("Dull", label="0"), Example("Fun", label="1")))
>>> task = with_demonstrations(train, k=2, seed=0)
>>> q = task.render(["wow"], Example("So good"))
>>> print(q.before + q.labels[1] + q.after)
Dull It was terrible.
<BLANKLINE>
A fine film It was great.
<BLANKLINE>
wow So good It was great.
>>> [q.before[a:b] for a, b in q.input_spans]
['Dull', 'A fine film', 'So good']

Every demonstration's text is an input span, like the input's own, so a backend with a
length limit shortens texts (demonstrations and input alike, from their ends) and never the
templates, the label words, the prompt or the slot. A query for an example that is itself a
demonstration leaves that demonstration out, so its label is never shown to the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bdpl._validate import positive_int
from bdpl.errors import ConfigError
from bdpl.tasks import Dataset, Example, Task
from bdpl.types import Query


@dataclass(frozen=True)
class DemonstrationTask(Task):
    """A task whose queries start with labelled demonstrations.

    Args:
        name, template, verbalizer, metric: as for :class:`~bdpl.tasks.Task`.
        demonstrations: labelled examples, rendered in this order before the input.
        joiner: put after each rendered demonstration.

    Raises:
        InvalidTaskError: as :class:`~bdpl.tasks.Task`.
        DataError: a demonstration without a label the verbalizer knows, or without the
            second text of a pair task.
    """

    demonstrations: tuple[Example, ...] = ()
    joiner: str = "\n\n"

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "demonstrations", tuple(self.demonstrations))
        for demo in self.demonstrations:
            self._shown(demo, "\n")  # a bad one fails now, not at the first paid query

    def _shown(self, example: Example, separator: str) -> tuple[str, tuple[tuple[int, int], ...]]:
        """``example`` rendered with its label word in the slot, and its input spans."""
        q = Task.render(self, [], example, separator=separator)
        return q.before + q.labels[self.label_index(example)] + q.after, q.input_spans

    def render(self, prompt: Sequence[str], example: Example, *, separator: str = "\n") -> Query:
        """The demonstrations (without ``example`` itself), then the query as
        :meth:`Task.render <bdpl.tasks.Task.render>` builds it."""
        texts: list[str] = []
        spans: list[tuple[int, int]] = []
        pos = 0
        for demo in self.demonstrations:
            if demo == example:
                continue
            text, demo_spans = self._shown(demo, separator)
            spans.extend((pos + a, pos + b) for a, b in demo_spans)
            texts.append(text + self.joiner)
            pos += len(texts[-1])
        query = Task.render(self, prompt, example, separator=separator)
        spans.extend((pos + a, pos + b) for a, b in query.input_spans)
        return Query("".join(texts) + query.before, query.after, query.labels, tuple(spans))


def choose_demonstrations(train: Dataset, k: int, *, seed: int = 0) -> tuple[Example, ...]:
    """``k`` examples of ``train``, stratified: the classes take turns (each class's
    examples in a seeded random order), then the chosen ones are shuffled so that the
    last demonstration's class does not follow from ``k``.

    Raises:
        ConfigError: ``k`` < 1 or more than ``train`` holds.
        DataError: an example with an unknown label.
    """
    k = positive_int("k", k)
    if k > len(train):
        raise ConfigError(f"k={k} demonstrations, but the training set holds {len(train)}")
    rng = np.random.default_rng([positive_int("seed", seed, 0), 0xDE30])
    labels = train.label_indices()
    pools = []
    for c in range(len(train.task.labels)):
        members = [i for i, y in enumerate(labels) if y == c]
        pools.append([members[j] for j in rng.permutation(len(members))])
    chosen: list[int] = []
    while len(chosen) < k:
        for pool in pools:
            if pool and len(chosen) < k:
                chosen.append(pool.pop(0))
    return tuple(train.examples[chosen[j]] for j in rng.permutation(k))


def with_demonstrations(
    train: Dataset,
    k: int,
    *,
    seed: int = 0,
    task: Task | None = None,
    joiner: str = "\n\n",
) -> DemonstrationTask:
    """``task`` (default ``train.task``) with ``k`` demonstrations from ``train``.

    See :func:`choose_demonstrations` for the choice; the same ``seed`` gives the same ones.
    """
    base = task or train.task
    return DemonstrationTask(
        name=base.name,
        template=base.template,
        verbalizer=base.verbalizer,
        metric=base.metric,
        demonstrations=choose_demonstrations(Dataset(base, train.examples), k, seed=seed),
        joiner=joiner,
    )
