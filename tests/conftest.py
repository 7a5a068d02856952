"""Fixtures shared by every test module."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The private query cache of every test (and BDPL_MODEL_DIR) is set in the root conftest.py.


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The benchmark data: ``$BDPL_DATA_DIR`` or ``../shared/data`` next to the checkout."""
    path = Path(os.environ.get("BDPL_DATA_DIR", ROOT.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.fail(f"benchmark data not found at {path}; set BDPL_DATA_DIR")
    return path
