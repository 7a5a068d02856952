"""examples/sst2_smollm2.py runs end to end on the real SmolLM2 (short settings)."""

from __future__ import annotations

import re
import runpy
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.model
def test_sst2_smollm2_example_runs(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["sst2_smollm2.py", "--epochs", "1", "--test-rows", "200", "--prompt-length", "2"]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(ROOT / "examples" / "sst2_smollm2.py"), run_name="__main__")
    out = capsys.readouterr().out
    manual = re.search(r"manual prompt \(no learned tokens\): test accuracy (\d\.\d+)", out)
    learned = re.search(r"learned prompt: test accuracy (\d\.\d+)", out)
    assert manual and learned and "total wall time" in out
    # It says what it is doing while it works (a progress bar goes to stderr).
    assert "scoring the manual prompt on 200 test rows" in out and "epoch 0:" in out
    # Calibrated, the paper's template alone gets 0.685 on these rows (uncalibrated it
    # answers "great" almost always: 0.475).
    assert float(manual.group(1)) >= 0.65
    assert 0.0 <= float(learned.group(1)) <= 1.0
