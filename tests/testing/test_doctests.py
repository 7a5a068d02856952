"""The ``>>>`` examples in bdpl.testing run and pass."""

from __future__ import annotations

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["", ".fake", ".faults", ".planted"])
def test_doctests(name: str) -> None:
    module = importlib.import_module(f"bdpl.testing{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
