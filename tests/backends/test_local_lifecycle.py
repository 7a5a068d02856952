"""Local Hugging Face backends: settings fixed at construction, close() drops the model."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest

from bdpl.backends.base import Closeable
from bdpl.backends.causal_lm import CausalLMBackend
from bdpl.backends.masked_lm import MaskedLMBackend
from bdpl.errors import ConfigError
from bdpl.types import Query
from tests.backends.tiny_models import tiny_causal_lm, tiny_mlm

Q = Query("it was", ".", (" bad", " good"))
SETTINGS = ("model", "max_batch_size", "pair_separator", "capabilities", "identity")


def build(kind: str, tok: Any) -> Any:
    if kind == "causal":
        return CausalLMBackend(tiny_causal_lm(tok), tok, device="cpu", batch_size=4)
    return MaskedLMBackend(tiny_mlm(tok), tok, device="cpu", batch_size=4)


@pytest.mark.parametrize(("kind", "extra"), [("causal", "left_pad"), ("masked", "head_only")])
def test_settings_cannot_be_assigned(kind: str, extra: str, tok: Any) -> None:
    backend = build(kind, tok)
    identity = backend.identity
    for name in (*SETTINGS, extra):
        with pytest.raises(AttributeError):
            setattr(backend, name, getattr(backend, name))
    assert backend.identity == identity


@pytest.mark.parametrize("kind", ["causal", "masked"])
def test_close_drops_the_model_and_tokenizer(kind: str, tok: Any) -> None:
    backend = build(kind, tok)
    model = weakref.ref(backend._model)
    with backend as same:
        assert same is backend and isinstance(backend, Closeable)
        assert backend.score([Q])[0].logprobs
    gc.collect()
    assert model() is None  # nothing else held the model: its memory is free
    assert backend._tokenizer is None
    backend.close()  # idempotent
    with pytest.raises(ConfigError, match="closed"):
        backend.score([Q])
    with pytest.raises(ConfigError, match="closed"):
        backend.estimate([Q])
    assert backend.identity  # still names what it was
