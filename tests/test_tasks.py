"""Tasks: the presets as issue 2 specifies them, rendering, and invalid definitions."""

from __future__ import annotations

import doctest
import re

import pytest

import bdpl.tasks
from bdpl.errors import ConfigError, DataError, InvalidTaskError
from bdpl.tasks import PRESETS, Dataset, Example, Task, get_task

# The table of issue 2: template, verbalizer (data label -> word), metric.
SPEC: dict[str, tuple[str, dict[str, str], str]] = {
    "sst2": ("<s1> It was <slot>.", {"0": "terrible", "1": "great"}, "accuracy"),
    "mrpc": ("<s1> <sep> <s2>? <slot>,", {"0": "no", "1": "yes"}, "f1"),
    "qqp": ("<s1> <sep> <s2>? <slot>,", {"0": "no", "1": "yes"}, "f1"),
    "cola": ("<s1> correct? <slot>.", {"0": "no", "1": "yes"}, "matthews"),
    "qnli": (
        "<s1> <sep> <s2> entailment? <slot>.",
        {"entailment": "yes", "not_entailment": "no"},
        "accuracy",
    ),
    "rte": (
        "<s1> <sep> <s2> entailment? <slot>.",
        {"entailment": "yes", "not_entailment": "no"},
        "accuracy",
    ),
    "mnli": (
        "<s1> <sep> <s2> entailment? <slot>.",
        {"entailment": "yes", "neutral": "maybe", "contradiction": "no"},
        "accuracy",
    ),
    "citation_intent": (
        "<s1> What is the intent? <slot>.",
        {
            "Background": "background",
            "CompareOrContrast": "comparison",
            "Extends": "extension",
            "Future": "future",
            "Motivation": "motivation",
            "Uses": "use",
        },
        "macro_f1",
    ),
    "sciie": (
        "<s1> What is the relation? <slot>.",
        {
            "COMPARE": "comparison",
            "CONJUNCTION": "conjunction",
            "EVALUATE-FOR": "evaluation",
            "FEATURE-OF": "feature",
            "HYPONYM-OF": "hyponym",
            "PART-OF": "part",
            "USED-FOR": "function",
        },
        "macro_f1",
    ),
    "rct": (
        "<s1> It is <slot>.",
        {
            "BACKGROUND": "background",
            "CONCLUSIONS": "conclusion",
            "METHODS": "method",
            "OBJECTIVE": "objective",
            "RESULTS": "result",
        },
        "macro_f1",
    ),
    "hyperpartisan": ("<s1> It is <slot>.", {"false": "unhelpful", "true": "helpful"}, "macro_f1"),
}


def test_presets_match_the_issue_table() -> None:
    assert set(PRESETS) == set(SPEC)
    for name, (template, verbalizer, metric) in SPEC.items():
        task = get_task(name)
        assert (task.template, dict(task.verbalizer), task.metric) == (
            template,
            verbalizer,
            metric,
        )
        assert list(task.labels) == list(verbalizer)  # class order = verbalizer order


def _expected_text(template: str, prompt: str, a: str, b: str, sep: str, word: str) -> str:
    """The full text the model should see, by plain substitution in the template."""
    body = template.replace("<s1>", a).replace("<s2>", b).replace("<sep>", sep)
    return prompt + body.replace("<slot>", word)


@pytest.mark.parametrize("name", sorted(SPEC))
@pytest.mark.parametrize("prompt", [(), ("bright", "in short")])
def test_render_every_preset(name: str, prompt: tuple[str, ...]) -> None:
    task = get_task(name)
    example = Example("  First input, here. ", "Second input?" if task.is_pair else None, None)
    q = task.render(prompt, example, separator=" | ")
    prefix = " ".join(prompt) + " " if prompt else ""
    assert q.before.startswith(prefix)
    # Every input span covers exactly the stripped input text, in order.
    inputs = [q.before[a:b] for a, b in q.input_spans]
    assert inputs == (
        ["First input, here.", "Second input?"] if task.is_pair else ["First input, here."]
    )
    # The slot holds " word" (the template has a space before <slot>); only punctuation follows.
    assert q.labels == tuple(" " + w for w in SPEC[name][1].values())
    assert re.fullmatch(r"[.,]", q.after)
    for label in q.labels:
        expected = _expected_text(
            task.template, prefix, "First input, here.", "Second input?", " | ", label.strip()
        )
        assert q.before + label + q.after == expected
    # The prompt and the template are never inside an input span.
    spans = q.input_spans
    assert all(a >= len(prefix) for a, _ in spans)
    assert all(b <= len(q.before) for _, b in spans)


def test_render_uses_separator_and_requires_pairs() -> None:
    rte = get_task("rte")
    q = rte.render([], Example("A man sleeps.", "Nobody sleeps."), separator="</s>")
    # The template's spaces around <sep> stay; the separator goes between them.
    assert q.before == "A man sleeps. </s> Nobody sleeps. entailment?"
    with pytest.raises(DataError, match="text pairs"):
        rte.render([], Example("A man sleeps."))


def test_custom_task_in_a_few_lines() -> None:
    topic = Task(
        name="topic",
        template="Article: <s1>\nTopic:<slot>",
        verbalizer={"sports": " Sports", "politics": "Politics "},
        metric="macro_f1",
    )
    q = topic.render(["news"], Example("The match ended 2-1.", label="sports"))
    assert q.before == "news Article: The match ended 2-1.\nTopic:"
    # No space before the slot in the template: labels carry none either (words are stripped).
    assert q.labels == ("Sports", "Politics")
    assert q.after == ""
    assert q.before[slice(*q.input_spans[0])] == "The match ended 2-1."
    assert topic.label_index(Example("x", label="politics")) == 1
    assert not topic.is_pair
    ds = Dataset(topic, (Example("a", label="politics"), Example("b", label="sports")))
    assert ds.label_indices() == [1, 0]


def test_input_just_before_slot_keeps_its_span() -> None:
    task = Task("t", "<s1> <slot>!", {"a": "yes", "b": "no"})
    q = task.render([], Example("Is it"))
    assert (q.before, q.labels, q.after) == ("Is it", (" yes", " no"), "!")
    assert q.input_spans == ((0, 5),)


def test_unknown_labels_and_names() -> None:
    sst2 = get_task("sst2")
    with pytest.raises(DataError, match=r"'2' is not one of \['0', '1'\]"):
        sst2.label_index(Example("x", label="2"))
    with pytest.raises(DataError):
        sst2.label_index(Example("x"))
    assert get_task("SST-2") is sst2
    with pytest.raises(InvalidTaskError, match="no preset task 'imdb'"):
        get_task("imdb")


VERB = {"0": "no", "1": "yes"}


@pytest.mark.parametrize(
    ("template", "verbalizer", "metric", "match"),
    [
        ("<s1> It was.", VERB, "accuracy", "exactly one <slot>"),
        ("<s1> <slot> or <slot>.", VERB, "accuracy", "exactly one <slot>"),
        ("It was <slot>.", VERB, "accuracy", "lacks <s1>"),
        ("<slot>: <s1>", VERB, "accuracy", "must end the template"),
        ("<s1> It was <slot> indeed.", VERB, "accuracy", "must end the template"),
        ("<s1> <slot>.", {"0": "no"}, "accuracy", "at least 2 labels"),
        ("<s1> <slot>.", {"0": "yes", "1": " yes"}, "accuracy", "distinct"),
        ("<s1> <slot>.", {"0": "", "1": "yes"}, "accuracy", "non-empty"),
        ("<s1> <slot>.", VERB, "auc", "unknown metric"),
        # Wrong types get the same typed error, naming the culprit, not a TypeError from re.
        (5, VERB, "accuracy", "template must be a string, got 5"),
        (None, VERB, "accuracy", "template must be a string, got None"),
        ("<s1> <slot>.", ["no", "yes"], "accuracy", "verbalizer must map"),
        ("<s1> <slot>.", {"0": 1, "1": "yes"}, "accuracy", "entry '0': 1 must map"),
        ("<s1> <slot>.", {"0": None, "1": "yes"}, "accuracy", "entry '0': None must map"),
        ("<s1> <slot>.", {0: "no", 1: "yes"}, "accuracy", "entry 0: 'no' must map"),
    ],
)
def test_invalid_tasks(template: str, verbalizer: dict[str, str], metric: str, match: str) -> None:
    with pytest.raises(InvalidTaskError, match=match) as info:
        Task("bad", template, verbalizer, metric)  # type: ignore[arg-type]
    # Typed for callers that catch broadly.
    assert isinstance(info.value, ConfigError)
    assert isinstance(info.value, ValueError)


def test_docstring_examples() -> None:
    result = doctest.testmod(bdpl.tasks)
    assert result.attempted > 0 and result.failed == 0
