"""Token counts *before* a call, for budgets and cost estimates. Never downloads anything.

The provider's reported usage is what gets billed and recorded; these counts only have to be
upper bounds, so that a budget checked with them cannot be overshot.

Counting rule, documented for users:

1. If ``tiktoken`` is installed and the encoding of the backend's model is already on disk in
   tiktoken's cache (``$TIKTOKEN_CACHE_DIR``, else ``$DATA_GYM_CACHE_DIR``, else
   ``<tmp>/data-gym-cache``) with the expected checksum, texts are counted with it.
   tiktoken itself would download a missing file; we check first and never let it.
2. Otherwise a text counts as many tokens as it has UTF-8 bytes. Byte-level BPE tokenizers
   (GPT-2, r50k/p50k/cl100k/o200k, Llama-3, Qwen, SmolLM) never produce more tokens than
   bytes, and SentencePiece with byte fallback at most one more (its dummy-prefix token), so
   with the overhead below this is an upper bound (about four times a typical English count).

Either way each request is allowed :data:`REQUEST_OVERHEAD_TOKENS` more (BOS, dummy-prefix
and chat formatting tokens).

When a backend has no ``estimate`` method, :func:`estimate_usage` bounds a call by assuming the
worst a scoring backend does: one request for the next-token distribution plus one per label
for full continuations (exact fallbacks), each sending the whole query text, and at most
:data:`COMPLETION_TOKENS_PER_REQUEST` generated token per request. Backends that know better
implement ``estimate``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from bdpl.backends.base import UsageBounded, capabilities_of
from bdpl.metering.validation import usage_problem
from bdpl.types import Query, Usage

__all__ = [
    "COMPLETION_TOKENS_PER_REQUEST",
    "REQUEST_OVERHEAD_TOKENS",
    "conservative_usage",
    "count_tokens",
    "estimate_usage",
    "local_encoding",
]

log = logging.getLogger(__name__)

REQUEST_OVERHEAD_TOKENS = 16
COMPLETION_TOKENS_PER_REQUEST = 1

# tiktoken's encoding files and checksums (from tiktoken_ext/openai_public.py), so that we can
# tell whether a file is already cached without calling code that would fetch it.
_BLOB = "https://openaipublic.blob.core.windows.net/encodings/"
_ENCODING_FILES = {
    "r50k_base": (
        _BLOB + "r50k_base.tiktoken",
        "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
    ),
    "p50k_base": (
        _BLOB + "p50k_base.tiktoken",
        "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069",
    ),
    "cl100k_base": (
        _BLOB + "cl100k_base.tiktoken",
        "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    ),
    "o200k_base": (
        _BLOB + "o200k_base.tiktoken",
        "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
    ),
}


def _tiktoken_cache_dir() -> str | None:
    """tiktoken's cache directory, by tiktoken's own rules; ``None`` when caching is off."""
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        path = os.environ["TIKTOKEN_CACHE_DIR"]
    elif "DATA_GYM_CACHE_DIR" in os.environ:
        path = os.environ["DATA_GYM_CACHE_DIR"]
    else:
        path = os.path.join(tempfile.gettempdir(), "data-gym-cache")
    return path or None


def local_encoding(model: str | None) -> Any | None:
    """tiktoken's encoding for ``model`` if it can be loaded without the network, else ``None``."""
    if not model:
        return None
    return _local_encoding(model, _tiktoken_cache_dir())


@lru_cache(maxsize=32)
def _local_encoding(model: str, cache_dir: str | None) -> Any | None:
    try:
        import tiktoken
    except ImportError:
        return None
    try:
        name = tiktoken.encoding_name_for_model(model)
    except KeyError:
        return None
    known = _ENCODING_FILES.get(name)
    if known is None or cache_dir is None:
        return None
    url, sha256 = known
    path = os.path.join(cache_dir, hashlib.sha1(url.encode()).hexdigest())
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    # tiktoken deletes and re-downloads a file whose checksum is wrong; check it ourselves.
    if hashlib.sha256(data).hexdigest() != sha256:
        log.warning("tiktoken file for %s at %s has a wrong checksum; counting bytes", name, path)
        return None
    try:
        return tiktoken.get_encoding(name)
    except Exception as exc:  # a broken install must not stop a run; the byte rule is safe
        log.warning("tiktoken could not load %s (%s); counting bytes", name, type(exc).__name__)
        return None


def count_tokens(text: str, model: str | None = None) -> int:
    """An upper bound on the tokens of ``text`` (see the module docstring for the rule)."""
    encoding = local_encoding(model)
    if encoding is not None:
        return len(encoding.encode(text, disallowed_special=()))
    return len(text.encode("utf-8"))


def conservative_usage(queries: Sequence[Query], model: str | None = None) -> Usage:
    """An upper bound on one call's usage for a backend that cannot estimate it.

    Per query with ``n`` labels: ``n + 1`` requests, each sending the query's text with its
    longest label plus :data:`REQUEST_OVERHEAD_TOKENS`, and generating at most
    :data:`COMPLETION_TOKENS_PER_REQUEST` token; plus one request for the call itself.
    """
    prompt = completion = requests = 0
    for q in queries:
        longest = max((count_tokens(label, model) for label in q.labels), default=0)
        text = count_tokens(q.before, model) + count_tokens(q.after, model) + longest
        n = len(q.labels) + 1
        prompt += n * (text + REQUEST_OVERHEAD_TOKENS)
        completion += n * COMPLETION_TOKENS_PER_REQUEST
        requests += n
    return Usage(prompt, completion, requests + 1 if queries else 0)


def estimate_usage(backend: object, queries: Sequence[Query]) -> Usage:
    """An upper bound on what ``backend.score(queries)`` will use.

    The backend's own ``estimate(queries)`` when it has one, else :func:`conservative_usage`
    with the backend's ``model`` name (for tiktoken).
    """
    if isinstance(backend, UsageBounded):
        usage = backend.estimate(queries)
        # A negative or fractional estimate would credit the budget when it is reserved and
        # when a try whose outcome is unknown is charged at it.
        problem = usage_problem(usage)
        if problem is not None:
            raise TypeError(
                f"{type(backend).__name__}.estimate() must return a Usage of non-negative "
                f"integer counts ({problem})"
            )
        return usage
    return conservative_usage(queries, capabilities_of(backend).model)
