"""Token counts: upper bounds, tiktoken only from local files, never a download."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import tiktoken
import tiktoken.load

from bdpl import tokens
from bdpl.testing import FakeBackend
from bdpl.tokens import (
    _ENCODING_FILES,
    REQUEST_OVERHEAD_TOKENS,
    conservative_usage,
    count_tokens,
    local_encoding,
)
from bdpl.types import Query, Usage

LABELS = (" bad", " good")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def refuse(url: str) -> bytes:
        raise AssertionError(f"tried to download {url}")

    monkeypatch.setattr(tiktoken.load, "read_file", refuse)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken"))


def test_without_local_files_bytes_are_counted() -> None:
    assert local_encoding("gpt-4o-mini") is None
    assert count_tokens("héllo", "gpt-4o-mini") == len("héllo".encode())
    assert local_encoding("no-such-model") is None and local_encoding(None) is None


def test_a_cached_file_with_a_wrong_checksum_is_left_alone(tmp_path: Path) -> None:
    url, _ = _ENCODING_FILES["o200k_base"]
    cache = tmp_path / "tiktoken"
    cache.mkdir()
    bad = cache / hashlib.sha1(url.encode()).hexdigest()
    bad.write_bytes(b"tampered")
    assert local_encoding("gpt-4.1-mini") is None  # tiktoken would delete and re-download it
    assert bad.read_bytes() == b"tampered"


def test_conservative_usage_bounds_a_real_call() -> None:
    qs = [Query("A fine film, truly. It was", ".", LABELS), Query("x", "", (" a", " b", " c"))]
    bound = conservative_usage(qs)
    actual = FakeBackend().estimate(qs)
    assert bound.prompt_tokens >= actual.prompt_tokens
    assert bound.completion_tokens >= actual.completion_tokens
    assert bound.requests >= actual.requests
    # One request per label plus one per query, plus the call: 3 + 4 + 1.
    assert bound.requests == 8
    assert bound.prompt_tokens >= 3 * (len("A fine film, truly. It was.") + REQUEST_OVERHEAD_TOKENS)
    assert conservative_usage([]) == Usage()


def test_a_verified_local_file_enables_tiktoken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Gating logic: file present with the right checksum -> tiktoken is used (stubbed here,
    since the real encoding files cannot be downloaded in tests)."""
    content = b"stand-in for o200k_base.tiktoken"
    url = "https://example.invalid/o200k_base.tiktoken"
    monkeypatch.setitem(_ENCODING_FILES, "o200k_base", (url, hashlib.sha256(content).hexdigest()))
    cache = tmp_path / "tiktoken"
    cache.mkdir()
    (cache / hashlib.sha1(url.encode()).hexdigest()).write_bytes(content)

    class WordEncoding:
        def encode(self, text: str, disallowed_special: object = ()) -> list[str]:
            return text.split()

    monkeypatch.setattr(tiktoken, "get_encoding", lambda name: WordEncoding())
    tokens._local_encoding.cache_clear()
    assert isinstance(local_encoding("gpt-4.1-mini"), WordEncoding)
    assert count_tokens("three words here", "gpt-4.1-mini") == 3
    assert count_tokens("three words here", None) == len(b"three words here")
    tokens._local_encoding.cache_clear()


def test_token_counting_sits_below_backends_and_metering() -> None:
    """Both layers use this module, so it may import neither."""
    import ast

    tree = ast.parse(Path(tokens.__file__).read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    bdpl_imports = {m for m in imported if m.startswith("bdpl")}
    assert bdpl_imports == {"bdpl.types"}
