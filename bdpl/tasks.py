"""Tasks: a template, a verbalizer and a metric, plus the presets of the BDPL paper.

A template is a string with the placeholders ``<s1>`` (first input), ``<s2>`` (second input,
pair tasks), ``<sep>`` (the backend's pair separator), exactly one ``<slot>`` (where the label
word goes) and at most one ``<prompt>`` (where the learned prompt goes; without it, the prompt
is put before the rendered template, as in the BDPL paper). With an empty prompt the
``<prompt>`` placeholder and one space beside it vanish, so the template reads as without it.

>>> task = Task(name="sst2", template="<s1> It was <slot>.",
...             verbalizer={"0": "terrible", "1": "great"}, metric="accuracy")
>>> q = task.render(["wonderful"], Example("A fine film", label="1"))
>>> q.before, q.labels, q.after
('wonderful A fine film It was', (' terrible', ' great'), '.')
>>> near = Task(name="sst2", template="<s1> It was <prompt> <slot>.",
...             verbalizer={"0": "terrible", "1": "great"})
>>> near.render(["truly", "so"], Example("A fine film")).before
'A fine film It was truly so'
>>> near.render([], Example("A fine film")).before
'A fine film It was'
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from bdpl.errors import DataError, InvalidTaskError
from bdpl.types import Query, is_trailing_punctuation

Metric = Literal["accuracy", "f1", "macro_f1", "matthews"]
_METRICS = ("accuracy", "f1", "macro_f1", "matthews")
_PLACEHOLDER = re.compile(r"<(s1|s2|sep|slot|prompt)>")


@dataclass(frozen=True, slots=True)
class Example:
    """One input: a text or a text pair, and its data label (``None`` when unlabelled)."""

    text_a: str
    text_b: str | None = None
    label: str | None = None


@dataclass(frozen=True)
class Task:
    """What to predict and how to ask a model for it.

    Args:
        name: a short name, stored with saved prompts.
        template: the text around the inputs, with ``<s1>``, optional ``<s2>``/``<sep>``, one
            ``<slot>`` and at most one ``<prompt>`` (where the learned prompt goes; default:
            before everything); the slot must come last but for trailing punctuation/space so
            that causal models can score the label as the next token.
        verbalizer: data label -> label word. Its order fixes the class order.
        metric: ``"accuracy"``, ``"f1"`` (binary, positive = second class), ``"macro_f1"`` or
            ``"matthews"``.

    Raises:
        InvalidTaskError: on a malformed or non-string template, a verbalizer that is not a
            mapping of strings to strings, an empty or duplicate verbalizer, or an unknown
            metric.
    """

    name: str
    template: str
    verbalizer: Mapping[str, str]
    metric: Metric = "accuracy"
    _parts: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.template, str):
            raise InvalidTaskError(
                f"task {self.name!r}: the template must be a string, got {self.template!r}"
            )
        if not isinstance(self.verbalizer, Mapping):
            raise InvalidTaskError(
                f"task {self.name!r}: the verbalizer must map data labels to label words "
                f"(a dict of strings), got {self.verbalizer!r}"
            )
        for label, word in self.verbalizer.items():
            if not isinstance(label, str) or not isinstance(word, str):
                raise InvalidTaskError(
                    f"task {self.name!r}: verbalizer entry {label!r}: {word!r} must map a "
                    "string data label to a string label word"
                )
        parts = tuple(_PLACEHOLDER.split(self.template))
        names = parts[1::2]
        if names.count("slot") != 1:
            raise InvalidTaskError(
                f"task {self.name!r}: template {self.template!r} must contain exactly one <slot>"
            )
        if names.count("prompt") > 1 or "prompt" in names[names.index("slot") :]:
            raise InvalidTaskError(
                f"task {self.name!r}: template {self.template!r} may hold one <prompt>, "
                "before the <slot>"
            )
        if "s1" not in names:
            raise InvalidTaskError(f"task {self.name!r}: template {self.template!r} lacks <s1>")
        tail = parts[-1] if names[-1] == "slot" else None
        if tail is None or not is_trailing_punctuation(tail):
            raise InvalidTaskError(
                f"task {self.name!r}: <slot> must end the template (only punctuation may follow), "
                f"got {self.template!r}"
            )
        if len(self.verbalizer) < 2:
            raise InvalidTaskError(f"task {self.name!r}: the verbalizer needs at least 2 labels")
        words = [w.strip() for w in self.verbalizer.values()]
        if any(not w for w in words) or len(set(words)) != len(words):
            raise InvalidTaskError(
                f"task {self.name!r}: label words must be non-empty and distinct, got {words}"
            )
        if self.metric not in _METRICS:
            raise InvalidTaskError(
                f"task {self.name!r}: unknown metric {self.metric!r}; use one of {_METRICS}"
            )
        object.__setattr__(self, "verbalizer", dict(self.verbalizer))
        if "prompt" not in names:  # the paper's placement: the prompt, a space, the template
            parts = ("", "prompt", " " + parts[0], *parts[1:])
        object.__setattr__(self, "_parts", parts)

    @property
    def is_pair(self) -> bool:
        """Whether the template takes two inputs."""
        return "s2" in self._parts[1::2]

    @property
    def labels(self) -> tuple[str, ...]:
        """The data labels, in class order."""
        return tuple(self.verbalizer)

    @property
    def label_words(self) -> tuple[str, ...]:
        """The label words, in class order."""
        return tuple(self.verbalizer.values())

    def label_index(self, example: Example) -> int:
        """Class index of ``example``'s label.

        Raises:
            DataError: the example has no label, or one the verbalizer does not know.
        """
        try:
            return self.labels.index(str(example.label))
        except ValueError:
            raise DataError(
                f"task {self.name!r}: label {example.label!r} is not one of {list(self.labels)}"
            ) from None

    def render(self, prompt: Sequence[str], example: Example, *, separator: str = "\n") -> Query:
        """Build the query for ``example`` with the learned ``prompt`` tokens in it.

        Args:
            prompt: prompt tokens/phrases; joined by spaces and put at ``<prompt>`` (before
                the template when it has none). Empty: ``<prompt>`` and one space beside it
                are dropped.
            example: the input.
            separator: what ``<sep>`` becomes (the backend's ``pair_separator``).
        """
        if self.is_pair and example.text_b is None:
            raise DataError(f"task {self.name!r} takes text pairs; an example has no second text")
        before: list[str] = []
        spans: list[tuple[int, int]] = []
        pos = 0

        def put(text: str, is_input: bool = False) -> None:
            nonlocal pos
            if is_input:
                spans.append((pos, pos + len(text)))
            before.append(text)
            pos += len(text)

        prompt_text = " ".join(t.strip() for t in prompt if t.strip())
        parts = list(self._parts)
        slot_at = parts.index("slot", 1)
        if not prompt_text:
            # Drop one space beside the empty prompt: "a <prompt> b" reads "a b", not "a  b".
            at = parts.index("prompt", 1)
            if parts[at + 1].startswith(" "):
                parts[at + 1] = parts[at + 1][1:]
            elif parts[at - 1].endswith(" "):
                parts[at - 1] = parts[at - 1][:-1]
        for i in range(slot_at):
            part = parts[i]
            if i % 2 == 0:
                put(part)
            elif part == "prompt":
                put(prompt_text)
            elif part == "s1":
                put(example.text_a.strip(), is_input=True)
            elif part == "s2":
                put((example.text_b or "").strip(), is_input=True)
            else:
                put(separator)
        text = "".join(before)
        # A space typed before <slot> belongs to the label word, the way tokenizers see it.
        space = ""
        if text.endswith(" "):
            text, space = text.rstrip(" "), " "
            spans = [(a, min(b, len(text))) for a, b in spans]
        labels = tuple(space + w.strip() for w in self.label_words)
        return Query(text, parts[slot_at + 1], labels, tuple(spans))


PRESETS: dict[str, Task] = {
    t.name: t
    for t in (
        Task("sst2", "<s1> It was <slot>.", {"0": "terrible", "1": "great"}, "accuracy"),
        Task("mrpc", "<s1> <sep> <s2>? <slot>,", {"0": "no", "1": "yes"}, "f1"),
        Task("qqp", "<s1> <sep> <s2>? <slot>,", {"0": "no", "1": "yes"}, "f1"),
        Task("cola", "<s1> correct? <slot>.", {"0": "no", "1": "yes"}, "matthews"),
        Task(
            "qnli",
            "<s1> <sep> <s2> entailment? <slot>.",
            {"entailment": "yes", "not_entailment": "no"},
        ),
        Task(
            "rte",
            "<s1> <sep> <s2> entailment? <slot>.",
            {"entailment": "yes", "not_entailment": "no"},
        ),
        Task(
            "mnli",
            "<s1> <sep> <s2> entailment? <slot>.",
            {"entailment": "yes", "neutral": "maybe", "contradiction": "no"},
        ),
        Task(
            "citation_intent",
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
        Task(
            "sciie",
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
        Task(
            "rct",
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
        Task(
            "hyperpartisan",
            "<s1> It is <slot>.",
            {"false": "unhelpful", "true": "helpful"},
            "macro_f1",
        ),
    )
}


def get_task(name: str) -> Task:
    """The preset task called ``name`` (see :data:`PRESETS`).

    Raises:
        InvalidTaskError: no preset has that name.
    """
    try:
        return PRESETS[name.lower().replace("-", "")]
    except KeyError:
        raise InvalidTaskError(
            f"no preset task {name!r}; presets are {sorted(PRESETS)} (or build a Task)"
        ) from None


@dataclass(frozen=True)
class Dataset:
    """Labelled (or unlabelled) examples of one task.

    >>> ds = Dataset(get_task("sst2"), (Example("good", label="1"), Example("bad", label="0")))
    >>> len(ds), ds.label_indices()
    (2, [1, 0])
    """

    task: Task
    examples: tuple[Example, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "examples", tuple(self.examples))

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.examples)

    def __getitem__(self, i: int) -> Example:
        return self.examples[i]

    def label_indices(self) -> list[int]:
        """Class index of every example (raises :class:`DataError` on an unknown label)."""
        return [self.task.label_index(e) for e in self.examples]
