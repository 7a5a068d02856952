"""In-context demonstrations: stratified choice by seed, rendering, input spans."""

from __future__ import annotations

import doctest
from collections import Counter

import pytest

import bdpl.demonstrations
from bdpl.backends.base import Capabilities
from bdpl.baselines import ManualPrompt
from bdpl.demonstrations import DemonstrationTask, choose_demonstrations, with_demonstrations
from bdpl.errors import ConfigError, DataError
from bdpl.tasks import Dataset, Example, Task, get_task
from bdpl.types import LabelScores, Query, Usage

TRAIN = Dataset(get_task("sst2"), tuple(Example(f"text {i}", label=str(i % 2)) for i in range(20)))


def test_choice_is_stratified_and_fixed_by_seed() -> None:
    for k in (1, 2, 4, 7):
        demos = choose_demonstrations(TRAIN, k, seed=3)
        assert len(demos) == k == len(set(demos))
        counts = Counter(d.label for d in demos)
        assert max(counts.values()) - min(counts.get(c, 0) for c in "01") <= 1
    assert choose_demonstrations(TRAIN, 4, seed=3) == choose_demonstrations(TRAIN, 4, seed=3)
    picks = {choose_demonstrations(TRAIN, 4, seed=s) for s in range(6)}
    assert len(picks) > 1
    three = Dataset(
        get_task("mnli"),
        tuple(
            Example(f"p{i}", f"h{i}", label=("entailment", "neutral", "contradiction")[i % 3])
            for i in range(12)
        ),
    )
    assert Counter(d.label for d in choose_demonstrations(three, 6, seed=0)) == {
        "entailment": 2,
        "neutral": 2,
        "contradiction": 2,
    }


def test_rendering_puts_labelled_demonstrations_before_the_query() -> None:
    demos = (Example("A", label="1"), Example("B", label="0"))
    task = DemonstrationTask(
        "sst2", "<s1> It was <slot>.", {"0": "terrible", "1": "great"}, demonstrations=demos
    )
    q = task.render(["p1", "p2"], Example("C"))
    assert q.before == "A It was great.\n\nB It was terrible.\n\np1 p2 C It was"
    assert q.labels == (" terrible", " great") and q.after == "."
    assert [q.before[a:b] for a, b in q.input_spans] == ["A", "B", "C"]
    # Without the demonstrations it is the plain task's query, shifted.
    plain = get_task("sst2").render(["p1", "p2"], Example("C"))
    assert q.before.endswith(plain.before)
    # An example that is a demonstration does not see its own label.
    own = task.render([], demos[0])
    assert own.before == "B It was terrible.\n\nA It was"


def test_input_spans_cover_every_text_and_nothing_else() -> None:
    task = with_demonstrations(
        Dataset(
            get_task("rte"),
            (
                *(Example(f"premise {i}.", f"hyp {i}", label="entailment") for i in range(3)),
                Example("x", "y", label="not_entailment"),
            ),
        ),
        k=3,
        seed=1,
    )
    q = task.render(["prompt words"], Example("the premise", "the hypothesis"), separator=" | ")
    texts = [q.before[a:b] for a, b in q.input_spans]
    assert len(texts) == 8 and texts[-2:] == ["the premise", "the hypothesis"]
    assert all(
        t in {d.text_a for d in task.demonstrations} | {d.text_b for d in task.demonstrations}
        for t in texts[:-2]
    )
    # Blanking every span leaves templates, label words, the prompt and the slot intact:
    # that is all a length-limited backend may never cut.
    kept, last = [], 0
    for a, b in q.input_spans:
        kept.append(q.before[last:a])
        last = b
    kept.append(q.before[last:])
    skeleton = "".join(kept)
    assert skeleton.endswith("prompt words   |   entailment?")
    assert skeleton.count("entailment? yes.") + skeleton.count("entailment? no.") == 3


def test_bad_demonstrations_fail_early() -> None:
    with pytest.raises(DataError, match="label"):
        DemonstrationTask(
            "t", "<s1> <slot>", {"0": "no", "1": "yes"}, demonstrations=(Example("a", label="7"),)
        )
    with pytest.raises(ConfigError, match="k=21"):
        with_demonstrations(TRAIN, 21)
    with pytest.raises(ConfigError, match="k"):
        with_demonstrations(TRAIN, 0)


class _Recorder:
    """Answers every query with equal scores and keeps the queries."""

    identity = "recorder"
    capabilities = Capabilities(is_local=True)

    def __init__(self) -> None:
        self.queries: list[Query] = []

    def score(self, queries: list[Query]) -> list[LabelScores]:
        self.queries.extend(queries)
        return [LabelScores((-1.0,) * len(q.labels), Usage(1, 0, 1)) for q in queries]


def test_a_demonstration_task_goes_through_the_metered_baselines() -> None:
    task = with_demonstrations(TRAIN, 2, seed=0)
    backend = _Recorder()
    manual = ManualPrompt(backend, task=task, cache=False)
    dev = Dataset(get_task("sst2"), (Example("new one", label="1"),))
    manual.evaluate(dev)
    (q,) = backend.queries
    assert q == task.render([], dev[0], separator="\n") and q.before.count("It was") == 3
    assert isinstance(task, Task) and task.labels == get_task("sst2").labels


def test_doctests() -> None:
    result = doctest.testmod(bdpl.demonstrations)
    assert result.attempted > 0 and result.failed == 0
