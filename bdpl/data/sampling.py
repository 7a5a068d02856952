"""Stratified, seeded k-shot sampling."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bdpl._validate import positive_int
from bdpl.data.files import check_label
from bdpl.tasks import Example, Task, get_task


def draw(
    examples: Sequence[Example], task: Task, sizes: Sequence[int | None], seed: int
) -> list[list[Example]]:
    """Disjoint stratified draws: part ``j`` gets ``sizes[j]`` examples of every class
    (``None``: all that are left). A class short of examples fills the earlier parts first.
    Each part keeps the input order."""
    by_class: dict[str, list[int]] = {label: [] for label in task.labels}
    for i, example in enumerate(examples):
        check_label(task, example.label, f"examples, example {i}")
        by_class[str(example.label)].append(i)
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in sizes]
    # Classes are visited in the task's order, so the draw depends only on the seed and data.
    for label in task.labels:
        order = np.asarray(by_class[label], dtype=np.int64)[rng.permutation(len(by_class[label]))]
        start = 0
        for part, size in zip(parts, sizes, strict=True):
            taken = order[start:] if size is None else order[start : start + size]
            part.extend(taken.tolist())
            start += len(taken)
    return [[examples[i] for i in sorted(part)] for part in parts]


def sample_k_shot(
    examples: Sequence[Example], task: Task | str, k: int, seed: int
) -> list[Example]:
    """``k`` examples of every class of ``task``, drawn with ``numpy.random.default_rng(seed)``.

    The draw depends only on the examples, their order, ``k`` and ``seed`` (not on the process
    or platform). A class with fewer than ``k`` examples gives all it has. The result keeps
    the input order.

    Raises:
        ConfigError: ``k`` < 1.
        DataError: an example without a label or with one the task does not know.
    """
    task = get_task(task) if isinstance(task, str) else task
    positive_int("k", k)
    return draw(examples, task, (k,), seed)[0]
