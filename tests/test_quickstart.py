"""examples/quickstart.py runs in seconds and finds the planted prompt."""

from __future__ import annotations

import runpy
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_quickstart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BDPL_CACHE_DIR", str(tmp_path))  # keep any query cache out of $HOME
    start = time.perf_counter()
    runpy.run_path(str(ROOT / "examples" / "quickstart.py"), run_name="__main__")
    assert time.perf_counter() - start < 30
    out = capsys.readouterr().out
    assert "learned prompt: 'honest overall verdict' (planted: 'honest overall verdict')" in out
    assert "dev accuracy with it: 1.000" in out
