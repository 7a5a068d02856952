"""Where the prompt goes: the ``<prompt>`` placeholder, for the task, the fake and every backend."""

from __future__ import annotations

import pytest

from bdpl.errors import InvalidTaskError, UnsupportedQueryError
from bdpl.optimizer import Optimizer
from bdpl.tasks import PRESETS, Dataset, Example, Task
from bdpl.testing import FakeBackend, Planted

LABELS = {"0": "terrible", "1": "great"}
START = Task("s", "<s1> It was <slot>.", LABELS)
AFTER_INPUT = Task("s", "<s1> <prompt> It was <slot>.", LABELS)
BEFORE_SLOT = Task("s", "<s1> It was <prompt> <slot>.", LABELS)
PAIR_MIDDLE = Task("p", "<s1> <sep> <prompt> <s2>? <slot>,", {"0": "no", "1": "yes"})
REVIEW = Task("s", "Review: <s1> Sentiment: <prompt> <slot>", LABELS)
FILM = Example("A fine film", label="1")


@pytest.mark.parametrize(
    ("task", "before"),
    [
        (START, "truly so A fine film It was"),
        (AFTER_INPUT, "A fine film truly so It was"),
        (BEFORE_SLOT, "A fine film It was truly so"),
        (REVIEW, "Review: A fine film Sentiment: truly so"),
    ],
)
def test_prompt_goes_where_the_template_says(task: Task, before: str) -> None:
    q = task.render(["truly", " so "], FILM)
    assert q.before == before
    assert q.labels == (" terrible", " great")
    [(a, b)] = q.input_spans
    assert q.before[a:b] == "A fine film"


def test_empty_prompt_reads_as_the_template_without_it() -> None:
    for task in (AFTER_INPUT, BEFORE_SLOT):
        assert task.render([], FILM) == START.render([], FILM)
    pair = PAIR_MIDDLE.render([], Example("a", "b"), separator="</s>")
    assert pair == Task("p", "<s1> <sep> <s2>? <slot>,", PAIR_MIDDLE.verbalizer).render(
        [], Example("a", "b"), separator="</s>"
    )
    q = PAIR_MIDDLE.render(["w1"], Example("first", "second"), separator="</s>")
    assert q.before == "first </s> w1 second?"
    assert [q.before[a:b] for a, b in q.input_spans] == ["first", "second"]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_default_placement_is_an_explicit_prompt_first(name: str) -> None:
    """Templates without ``<prompt>`` render as before, so cached queries stay valid."""
    task = PRESETS[name]
    explicit = Task(task.name, "<prompt> " + task.template, task.verbalizer, task.metric)
    ex = Example("some text", "more text" if task.is_pair else None)
    for prompt in ([], ["w1"], ["two words", "w2"]):
        assert task.render(prompt, ex) == explicit.render(prompt, ex)
    assert task.render(["w1"], ex).before.startswith("w1 some text")


@pytest.mark.parametrize(
    "template",
    ["<s1> <prompt> <prompt> <slot>", "<s1> It was <slot> <prompt>", "<s1> <slot>.<prompt>"],
)
def test_prompt_once_and_before_the_slot(template: str) -> None:
    with pytest.raises(InvalidTaskError, match=r"one <prompt>|must end the template"):
        Task("bad", template, LABELS)


WORDS = [f"w{i}" for i in range(10)] + ["two words"]


@pytest.mark.parametrize("task", [START, AFTER_INPUT, BEFORE_SLOT, PAIR_MIDDLE])
def test_planted_fake_finds_the_prompt_wherever_it_goes(task: Task) -> None:
    train = Dataset(
        task,
        tuple(
            Example(f"review {i}", f"other {i}" if task.is_pair else None, label=task.labels[i % 2])
            for i in range(16)
        ),
    )
    planted = Planted.for_dataset(train, WORDS, prompt_length=2, best=[10, 4], strength=2.0)
    fake = FakeBackend(planted=planted)
    with_best = fake.score([task.render(planted.best_prompt, e) for e in train])
    without = fake.score([task.render([], e) for e in train])
    assert all(
        a.logprobs[y] > b.logprobs[y]
        for a, b, y in zip(with_best, without, train.label_indices(), strict=True)
    )
    opt = Optimizer(fake, candidates=WORDS, prompt_length=2, sample_size=8, batch_size=16,
                    epochs=25, cache=False)  # fmt: skip
    assert opt.fit(train).prompt == planted.best_prompt


def test_planted_fake_refuses_a_prompt_elsewhere_clearly() -> None:
    train = Dataset(BEFORE_SLOT, (Example("review 1", label="1"), Example("review 2", label="0")))
    fake = FakeBackend(planted=Planted.for_dataset(train, WORDS, prompt_length=2))
    # The prompt where this task does not put it (at the start) is no prompt the fake knows.
    moved = START.render(["w1"], train[0])
    with pytest.raises(UnsupportedQueryError, match="puts the prompt between ' It was ' and ''"):
        fake.score([moved])
    with pytest.raises(UnsupportedQueryError, match="planted candidates between"):
        fake.score([BEFORE_SLOT.render(["w1", "nonsense"], train[0])])
