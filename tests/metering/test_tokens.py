"""estimate_usage: the backend's own bound first, else the conservative rule."""

from __future__ import annotations

import pytest

import bdpl.metering
import bdpl.tokens
from bdpl.metering import estimate_usage
from bdpl.metering.tokens import conservative_usage
from bdpl.testing import FakeBackend
from bdpl.types import Query
from tests.metering.helpers import LABELS


def test_estimate_prefers_the_backend() -> None:
    qs = [Query("abc", ".", LABELS)]
    assert estimate_usage(FakeBackend(), qs) == FakeBackend().estimate(qs)

    class NoEstimate:
        identity = "x"

    assert estimate_usage(NoEstimate(), qs) == conservative_usage(qs)

    class BadEstimate:
        identity = "x"

        def estimate(self, queries: object) -> int:
            return 3

    with pytest.raises(TypeError, match="must return a Usage"):
        estimate_usage(BadEstimate(), qs)


def test_moved_names_are_still_reachable_from_the_metering_layer() -> None:
    from bdpl.metering import tokens

    assert bdpl.metering.count_tokens is bdpl.tokens.count_tokens
    for name in ("count_tokens", "conservative_usage", "local_encoding", "REQUEST_OVERHEAD_TOKENS"):
        assert getattr(tokens, name) is getattr(bdpl.tokens, name)
