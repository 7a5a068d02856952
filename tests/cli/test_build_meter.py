"""The command line's meter owns the backend it built: leaving it closes both, on any path."""

from __future__ import annotations

from typing import Any

import pytest

import bdpl.cli.runs as runs
from bdpl.cli.config import RunConfig
from bdpl.errors import UnknownPriceError
from tests.backends.openai_fakes import FaultServer

pytest.importorskip("openai")


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The backends ``build_meter`` makes (the real factory, recorded)."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-build-meter-test")
    made: list[Any] = []
    real = runs.make_backend

    def recording(*args: Any, **kwargs: Any) -> Any:
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(runs, "make_backend", recording)
    return made


def _config(server: FaultServer, **extra: Any) -> RunConfig:
    return RunConfig.build({"backend": "openai:my-model", "base_url": server.base_url, **extra})


def test_leaving_the_block_closes_the_backend(built: list[Any]) -> None:
    with FaultServer() as server:
        config = _config(server, price_input=0.0, price_output=0.0)
        with runs.build_meter(config, ledger=None, cache="off") as meter:
            assert meter.backend is built[0] and not built[0]._client.is_closed()
        assert built[0]._client.is_closed()
        with (
            pytest.raises(RuntimeError, match="boom"),
            runs.build_meter(config, ledger=None, cache="off"),
        ):
            raise RuntimeError("boom")
        assert built[1]._client.is_closed()


def test_a_model_without_a_price_closes_the_backend_it_refuses(built: list[Any]) -> None:
    with FaultServer() as server:
        with (
            pytest.raises(UnknownPriceError, match="--price-input"),
            runs.build_meter(_config(server), ledger=None, cache="off"),
        ):
            pytest.fail("no meter for a model without a price")
        assert built[0]._client.is_closed()
