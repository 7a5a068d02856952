"""Fixtures for backend tests that need real parts."""

from __future__ import annotations

from typing import Any

import pytest

from tests.backends.tiny_models import tiny_causal_lm, tiny_mlm, tiny_tokenizer


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
