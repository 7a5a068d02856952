"""Prompt transfer end to end: learned through a real vLLM server, evaluated in-process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.backends.vllm_server import VLLMServer
from tests.cli.conftest import Run

pytestmark = [pytest.mark.server, pytest.mark.model]


def test_fit_through_vllm_then_eval_on_the_local_backend(
    bdpl: Run, vllm: VLLMServer, tmp_path: Path
) -> None:
    done = bdpl(
        "fit", "--task", "sst2", "--backend", f"openai:{vllm.model}", "--base-url",
        vllm.base_url, "--price-input", "0", "--price-output", "0", "--epochs", "1",
        "--prompt-length", "2", "--sample-size", "4", "--test-rows", "40", "--out", "run", "-q",
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["queries"]["paid"] > 0
    moved = bdpl("eval", "run", "--backend", "local", "--split", "test", "--rows", "40")
    assert moved.returncode == 0, moved.stderr
    result = json.loads(moved.stdout)
    assert result["backend"].startswith("causal_lm:") and result["prompt"] == metrics["prompt"]
    # The same weights behind both: they agree on (nearly) every answer.
    assert result["learned"] == pytest.approx(metrics["test"]["learned"], abs=0.05)
    assert result["manual"] == pytest.approx(metrics["test"]["manual"], abs=0.05)
