"""Wire types between the optimizer, the metering layer and backends.

These are frozen, slotted dataclasses rather than pydantic models: millions of them are made
in a fit, and they are validated where they are built (the task renders queries, backends
build scores).
"""

from __future__ import annotations

from dataclasses import dataclass, field

TRAILING_PUNCTUATION = " .,!?;:"
"""What may follow the label slot for the label to be scored as the next token: these
characters only (space included; other whitespace, brackets and quotes are text)."""


def is_trailing_punctuation(after: str) -> bool:
    """Whether ``after`` (the text after the slot) is empty or only :data:`TRAILING_PUNCTUATION`.

    Such a tail is not scored: the label is the last scored text, so one next-token
    distribution can score all single-token labels. Any other tail is part of the text to
    score (``label + after``), or is refused by a backend that can only read the next token.
    Templates (:class:`~bdpl.tasks.Task`) and every backend use this one rule, so a query is
    scored the same way whichever backend answers it.

    >>> [is_trailing_punctuation(a) for a in ("", " .", "?!,", ")", " movie.")]
    [True, True, True, False, False]
    """
    return after.strip(TRAILING_PUNCTUATION) == ""


@dataclass(frozen=True, slots=True)
class Query:
    """One request for label scores.

    The text the model sees is ``before + label + after`` for each label; labels are the exact
    surface strings put in the slot, leading space included (``" great"``), so every backend
    tokenises them the same way.

    Attributes:
        before: text before the label slot (learned prompt, inputs, template).
        after: text after the slot, often only punctuation such as ``"."``.
        labels: the verbalizer's words as they appear in the slot, one per class.
        input_spans: ``(start, end)`` character spans of ``before`` that hold input text. A
            backend with a length limit shortens only these (from their ends), never the
            prompt, the template or the slot.
    """

    before: str
    after: str
    labels: tuple[str, ...]
    input_spans: tuple[tuple[int, int], ...] = ()

    def to_json(self) -> dict[str, object]:
        """Plain-JSON form, used in cache keys and logs."""
        return {
            "before": self.before,
            "after": self.after,
            "labels": list(self.labels),
            "input_spans": [list(s) for s in self.input_spans],
        }


@dataclass(frozen=True, slots=True)
class Usage:
    """What a call used, as the provider counted it.

    Attributes:
        prompt_tokens: input tokens billed.
        completion_tokens: output tokens billed.
        requests: HTTP requests (or forward passes for local backends) made, including
            any extra requests an exact fallback needed.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.requests + other.requests,
        )

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True, slots=True)
class LabelScores:
    """A backend's answer to one :class:`Query`.

    Attributes:
        logprobs: ``log p(label | context)`` for each label, in the query's order.
        usage: this query's share of the call's usage (a call's usage is split across its
            queries so that the shares add up to the provider's totals).
        exact: False when some log-prob is a bound rather than the model's value (e.g. a label
            outside an API's top-k with no exact fallback available).
    """

    logprobs: tuple[float, ...]
    usage: Usage = field(default_factory=Usage)
    exact: bool = True

    def to_json(self) -> dict[str, object]:
        u = self.usage
        return {
            "logprobs": list(self.logprobs),
            "usage": [u.prompt_tokens, u.completion_tokens, u.requests],
            "exact": self.exact,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> LabelScores:
        """Inverse of :meth:`to_json`; raises ValueError, TypeError or KeyError on bad data."""
        raw = data["logprobs"]
        usage = data["usage"]
        if not isinstance(raw, list) or not isinstance(usage, list) or len(usage) != 3:
            raise ValueError("malformed LabelScores JSON")
        logprobs = tuple(float(x) for x in raw)
        exact = data["exact"]
        if not isinstance(exact, bool):
            raise ValueError("malformed LabelScores JSON")
        return cls(logprobs, Usage(*(int(x) for x in usage)), exact)


def split_usage(total: Usage, n: int) -> list[Usage]:
    """Split one call's usage over ``n`` queries so that the parts add up exactly to ``total``.

    The first query carries the call's requests; tokens are spread evenly, remainders first.
    """
    if n <= 0:
        return []

    def spread(x: int) -> list[int]:
        q, r = divmod(x, n)
        return [q + (1 if i < r else 0) for i in range(n)]

    p, c = spread(total.prompt_tokens), spread(total.completion_tokens)
    return [Usage(p[i], c[i], total.requests if i == 0 else 0) for i in range(n)]
