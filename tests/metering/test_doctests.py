"""The ``>>>`` examples in the metering modules run and pass."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "budget",
    "cache",
    "estimate",
    "ledger",
    "meter",
    "prices",
    "redaction",
    "retry",
    "tokens",
    "validation",
]


@pytest.mark.parametrize("name", MODULES)
def test_doctests(name: str) -> None:
    module = importlib.import_module(f"bdpl.metering.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
