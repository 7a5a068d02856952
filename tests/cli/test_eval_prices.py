"""``bdpl eval --backend``: another backend gets the prices given for it, never the run's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bdpl.cli.app import main
from bdpl.cli.config import RunConfig
from bdpl.cli.evaluate import evaluate_prompt
from bdpl.cli.runs import fit_run
from bdpl.errors import UnknownPriceError
from tests.backends.openai_fakes import FaultServer

pytest.importorskip("openai")


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A finished fake run whose config prices its own (free) backend at 0."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-eval-prices-test")
    config = RunConfig.build({"task": "sst2", "epochs": 1, "sample_size": 2, "vocab_size": 12,
                              "test_rows": 4, "price_input": 0.0, "price_output": 0.0})  # fmt: skip
    fit_run(config, tmp_path / "run", cache="off")
    return tmp_path / "run"


def moved(run: Path, url: str, **prices: float) -> dict[str, object]:
    return evaluate_prompt(
        run, backend="openai:my-model", base_url=url, split="dev", data_file=None,
        text_a="text", text_b=None, label="label", rows=4, cache="off", **prices,
    )  # fmt: skip


def test_the_runs_price_does_not_follow_the_prompt_to_another_model(run: Path) -> None:
    with FaultServer() as server:
        # The run's price 0 was for its own backend: a model the table lacks is not free.
        with pytest.raises(UnknownPriceError, match="give --price-input and --price-output"):
            moved(run, server.base_url)
        assert server.seen == []  # refused before any request
        result = moved(run, server.base_url, price_input=1.0, price_output=2.0)
        assert result["rows"] == 4 and len(server.seen) > 0
        assert str(result["backend"]).startswith("openai")


def test_the_command_line_takes_prices_for_the_other_backend(run: Path) -> None:
    with FaultServer() as server:
        args = ["eval", str(run), "--backend", "openai:my-model", "--base-url",
                server.base_url, "--split", "dev", "--rows", "4", "--cache", "off"]  # fmt: skip
        refused = CliRunner().invoke(main, args)
        assert refused.exit_code == 2 and "give --price-input" in refused.output
        done = CliRunner().invoke(main, [*args, "--price-input", "0", "--price-output", "0"])
        assert done.exit_code == 0, done.output
        result = json.loads(done.output)
        assert (
            result["rows"] == 4
            and result["prompt"] == json.loads((run / "metrics.json").read_text())["prompt"]
        )
