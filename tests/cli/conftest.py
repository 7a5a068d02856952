"""Run the installed ``bdpl`` entry point as a user would: a subprocess, in a temporary folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINT = Path(sys.executable).with_name("bdpl")

Run = Callable[..., subprocess.CompletedProcess[str]]


def cli_env(tmp_path: Path) -> dict[str, str]:
    """This checkout's bdpl, a private cache, the benchmark data, no API key."""
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env["PYTHONPATH"] = str(ROOT)
    env["BDPL_CACHE_DIR"] = str(tmp_path / "user-cache")
    return env


@pytest.fixture
def bdpl(tmp_path: Path) -> Run:
    """``bdpl(*args)``: the entry point's result (text output, not raising on failure)."""
    assert ENTRY_POINT.is_file(), f"the bdpl entry point is not installed at {ENTRY_POINT}"
    env = cli_env(tmp_path)

    def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ENTRY_POINT), *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    return run


def read_calls(path: Path) -> list[tuple[str, ...]]:
    """Every query the fake answered, as comparable tuples, from its call log."""
    out: list[tuple[str, ...]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        for q in json.loads(line)["queries"]:
            out.append((q["before"], q["after"], *q["labels"]))
    return out
