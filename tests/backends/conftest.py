"""Fixtures for backend tests that need real parts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.backends.tiny_models import tiny_causal_lm, tiny_mlm, tiny_tokenizer
from tests.backends.vllm_server import VLLMServer, VLLMUnavailable, vllm_server


@pytest.fixture(scope="module")
def tok() -> Any:
    """The tiny offline tokenizer, built afresh for each test module."""
    return tiny_tokenizer()


@pytest.fixture(scope="module")
def lm(tok: Any) -> Any:
    """A tiny random causal LM (Llama) for ``tok``."""
    return tiny_causal_lm(tok)


@pytest.fixture(scope="module")
def mlm(tok: Any) -> Any:
    """A tiny random masked LM (RoBERTa) for ``tok``."""
    return tiny_mlm(tok)


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
