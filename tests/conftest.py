"""Fixtures shared by every test module."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bdpl.paths import models_dir

ROOT = Path(__file__).resolve().parents[1]

# Resolve the converted-model folder once, before any test redirects BDPL_CACHE_DIR.
os.environ.setdefault("BDPL_MODEL_DIR", str(models_dir()))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The benchmark data: ``$BDPL_DATA_DIR`` or ``../shared/data`` next to the checkout."""
    path = Path(os.environ.get("BDPL_DATA_DIR", ROOT.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.fail(f"benchmark data not found at {path}; set BDPL_DATA_DIR")
    return path


@pytest.fixture(autouse=True)
def _private_bdpl_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the user's real query cache.

    Converted models stay shared (``BDPL_MODEL_DIR``, fixed below at start-up): converting
    SmolLM2 takes ~20 s, too long to repeat per test.
    """
    monkeypatch.setenv("BDPL_CACHE_DIR", str(tmp_path / "bdpl-cache"))
