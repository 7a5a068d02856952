"""What every collected item shares: the tests under tests/ and the ``>>>`` examples in bdpl/.

pytest runs the examples with ``--doctest-modules``; importing a bdpl module never imports a
backend's SDK (they are imported where used), so collection needs no optional extra.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

from bdpl.paths import models_dir

# Resolve the converted-model folder once, before any test redirects BDPL_CACHE_DIR.
os.environ.setdefault("BDPL_MODEL_DIR", str(models_dir()))

# Examples that build an OpenAI client need the `openai` extra.
collect_ignore = (
    ["bdpl/backends/openai_chat.py", "bdpl/backends/openai_completion.py"]
    if importlib.util.find_spec("openai") is None
    else []
)

# Examples that load the real embedded SmolLM2 weights, marked as the tests that do.
_MODEL_EXAMPLES = {"bdpl.backends.causal_lm.CausalLMBackend"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if isinstance(item, pytest.DoctestItem) and item.name in _MODEL_EXAMPLES:
            item.add_marker(pytest.mark.model)


@pytest.fixture(autouse=True)
def _private_bdpl_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test or example reads or writes the user's real query cache.

    Converted models stay shared (``BDPL_MODEL_DIR``, fixed above at start-up): converting
    SmolLM2 takes ~20 s, too long to repeat per test.
    """
    monkeypatch.setenv("BDPL_CACHE_DIR", str(tmp_path / "bdpl-cache"))
