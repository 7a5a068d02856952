"""Fixtures for the metering tests: no test may touch the user's real cache directory."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _private_cache_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BDPL_CACHE_DIR", str(tmp_path / "bdpl-cache"))
