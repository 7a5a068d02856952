"""Fixtures for backend tests that need real parts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.backends.vllm_server import VLLMServer, VLLMUnavailable, vllm_server


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
