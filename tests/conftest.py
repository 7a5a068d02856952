"""Fixtures shared by every test module."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backends.vllm_server import VLLMServer, VLLMUnavailable, vllm_server

ROOT = Path(__file__).resolve().parents[1]
# The private query cache of every test (and BDPL_MODEL_DIR) is set in the root conftest.py.


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The benchmark data: ``$BDPL_DATA_DIR`` or ``../shared/data`` next to the checkout."""
    path = Path(os.environ.get("BDPL_DATA_DIR", ROOT.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.fail(f"benchmark data not found at {path}; set BDPL_DATA_DIR")
    return path


@pytest.fixture(scope="session")
def vllm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMServer]:
    """A vLLM server serving the embedded SmolLM2 on 127.0.0.1 for the whole session.

    Fails (never skips) when vLLM is not installed: CI installs it with scripts/setup_vllm.sh.
    """
    from bdpl.embedded import embedded_model_dir

    log = tmp_path_factory.mktemp("vllm") / "server.log"
    try:
        with vllm_server(embedded_model_dir(), log) as server:
            yield server
    except VLLMUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
