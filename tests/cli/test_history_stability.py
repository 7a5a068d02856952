"""A run's history counts, per step, non-finite and floored probabilities (the estimators'
numerical health, which the benchmark study reports)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bdpl.cli.config import RunConfig
from bdpl.cli.runs import fit_run


def _steps(run: Path) -> list[dict[str, object]]:
    lines = (run / "history.jsonl").read_text(encoding="utf-8").splitlines()
    return [h for h in map(json.loads, lines) if h["kind"] == "step"]


@pytest.mark.parametrize(
    ("estimator", "learning_rate", "floors"),
    [("reference", 1.0, True), ("reference", 1e-6, False), ("loo", 1.0, False)],
)
def test_steps_record_nonfinite_and_floored_probabilities(
    tmp_path: Path, estimator: str, learning_rate: float, floors: bool
) -> None:
    config = RunConfig.build({"task": "sst2", "backend": "fake", "epochs": 2,
                              "estimator": estimator, "learning_rate": learning_rate,
                              "vocab_size": 20})  # fmt: skip
    fit_run(config, tmp_path / "run", cache="off")
    steps = _steps(tmp_path / "run")
    assert len(steps) == 4
    assert all(s["nonfinite"] == 0 for s in steps)
    floored = [int(str(s["floored"])) for s in steps]
    # A reference step of size 1 pushes most probabilities below 0; the projection clips
    # them to 0 and the floor raises them (where the reference code's 1/p is infinite).
    # A tiny step, or the loo estimator (softmax, no floor), never floors anything.
    assert (max(floored) > 0) is floors
    assert all(0 <= f <= 3 * 20 for f in floored)
