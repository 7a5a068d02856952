"""The cache key of a fixed query is pinned: a change would orphan every user's cache."""

from __future__ import annotations

from bdpl.metering.cache import cache_key
from bdpl.testing import FakeBackend
from bdpl.types import Query

# Computed on the commit that introduced this test, before any refactoring of the backends.
PINNED = "c645befad3dc81b50710be517a31d502e37503cb744ecc4e8ff8aebbd6579c9b"


def test_cache_key_of_a_fixed_query_never_changes() -> None:
    identity = FakeBackend(seed=0).identity
    assert identity == "fake:fake-model:seed=0:noise=0.1:planted=none"
    assert cache_key(identity, Query("It was", ".", (" bad", " good"))) == PINNED
