"""Checks that a backend's answers are usable before they are cached or returned."""

from __future__ import annotations

import math
from collections.abc import Sequence

from bdpl.errors import MalformedResponseError
from bdpl.types import LabelScores, Query, Usage

__all__ = ["LOGPROB_TOLERANCE", "MAX_COUNT", "check_answers", "problem_with", "usage_problem"]

# Log-probabilities are <= 0; rounding in a backend's log-softmax may leave a hair above.
LOGPROB_TOLERANCE = 1e-6
# Above this a count is not exact as a float, and no provider bills that much for one call.
MAX_COUNT = 2**53


def usage_problem(usage: object) -> str | None:
    """Why ``usage`` is not a usable report (a Usage of integer counts in ``[0, 2**53)``)."""
    if not isinstance(usage, Usage):
        return f"usage is {type(usage).__name__}, not Usage"
    for name in ("prompt_tokens", "completion_tokens", "requests"):
        n = getattr(usage, name)
        if type(n) is not int:
            return f"usage {name}={n!r} is not an integer"
        if not 0 <= n < MAX_COUNT:
            return f"usage {name}={n!r} is out of range"
    return None


def problem_with(query: Query, scores: object) -> str | None:
    """Why ``scores`` is not a valid answer to ``query``, or ``None`` when it is."""
    if not isinstance(scores, LabelScores):
        return f"got {type(scores).__name__}, not LabelScores"
    if len(scores.logprobs) != len(query.labels):
        return f"{len(scores.logprobs)} log-probs for {len(query.labels)} labels"
    for x in scores.logprobs:
        if not isinstance(x, (int, float)) or isinstance(x, bool):
            return f"log-prob {x!r} is not a number"
        if not math.isfinite(x):
            return f"log-prob {x!r} is not finite"
        if x > LOGPROB_TOLERANCE:
            return f"log-prob {x!r} is positive"
    return usage_problem(scores.usage)


def check_answers(identity: str, queries: Sequence[Query], answers: object) -> None:
    """Raise unless ``answers`` holds one valid :class:`LabelScores` per query.

    Raises:
        MalformedResponseError: (retryable) naming the backend identity and the first problem.
    """
    if not isinstance(answers, list):
        raise MalformedResponseError(
            f"backend {identity!r} returned {type(answers).__name__}, not a list"
        )
    if len(answers) != len(queries):
        raise MalformedResponseError(
            f"backend {identity!r} returned {len(answers)} answers for {len(queries)} queries"
        )
    for i, (q, a) in enumerate(zip(queries, answers, strict=True)):
        problem = problem_with(q, a)
        if problem is not None:
            raise MalformedResponseError(f"backend {identity!r}, answer {i}: {problem}")
