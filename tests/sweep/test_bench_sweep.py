"""benchmarks/bench_sweep.py runs (tiny settings) and writes its Markdown table."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_sweep_benchmark_smoke(tmp_path: Path, redis_url: str) -> None:
    # redis_url: the fixture fails with the install command when redis-server is missing.
    main: Any = runpy.run_path(str(ROOT / "benchmarks" / "bench_sweep.py"))["main"]
    out = tmp_path / "sweep.md"
    text = main(["--workers", "1,2", "--latency", "0", "--out", str(out)])
    assert out.read_text(encoding="utf-8") == text
    assert "| 2 |" in text and "| Redis |" in text and "| disk (SQLite) |" in text
