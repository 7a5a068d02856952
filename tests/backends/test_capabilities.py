"""Capabilities: typed, frozen, keyword-only; a misspelt name fails when it is built."""

from __future__ import annotations

import dataclasses
import doctest

import pytest

import bdpl.backends.base
from bdpl.backends.base import Capabilities, capabilities_of
from bdpl.errors import ConfigError


def test_a_misspelt_capability_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="max_batch_sise"):
        Capabilities(max_batch_sise=16)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Capabilities("gpt-4o-mini")  # type: ignore[call-arg]  # keyword-only


def test_capabilities_are_frozen_and_checked() -> None:
    caps = Capabilities(model="m", max_batch_size=4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        caps.max_batch_size = 8  # type: ignore[misc]
    for bad in ({"max_batch_size": 0}, {"max_concurrency": True}, {"is_local": 1}, {"model": ""}):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            Capabilities(**bad)


def test_capabilities_of_reads_only_a_real_capabilities() -> None:
    class Declared:
        capabilities = Capabilities(max_batch_size=3)

    class Wrong:
        capabilities = ("max_batch_size", 3)

    assert capabilities_of(Declared()).max_batch_size == 3
    assert capabilities_of(object()) == Capabilities()
    with pytest.raises(ConfigError, match="must be a bdpl Capabilities"):
        capabilities_of(Wrong())


def test_doctests() -> None:
    result = doctest.testmod(bdpl.backends.base, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
