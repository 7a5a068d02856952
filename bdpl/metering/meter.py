"""One layer between the optimizer and any backend (minimal version: dedup and chunking).

The full layer (cache, budget, retries, ledger, concurrency) replaces this module.
"""

from __future__ import annotations

from collections.abc import Sequence

from bdpl.backends.base import Backend, backend_option
from bdpl.errors import MalformedResponseError
from bdpl.types import LabelScores, Query


class Meter:
    """Wraps a backend: drops duplicate queries and sends the rest in chunks."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def score(self, queries: Sequence[Query]) -> list[LabelScores]:
        """Scores for ``queries`` (same order); each distinct query is sent at most once."""
        unique = list(dict.fromkeys(queries))
        size = max(1, int(backend_option(self.backend, "max_batch_size", 32)))
        answers: dict[Query, LabelScores] = {}
        for i in range(0, len(unique), size):
            chunk = unique[i : i + size]
            got = self.backend.score(chunk)
            if len(got) != len(chunk):
                raise MalformedResponseError(
                    f"backend {self.backend.identity!r} returned {len(got)} answers for {len(chunk)} queries"
                )
            answers.update(zip(chunk, got))
        return [answers[q] for q in queries]
