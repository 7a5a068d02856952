"""What each backend sees of a template with ``<prompt>`` before the slot."""

from __future__ import annotations

from typing import Any

import pytest

from bdpl.tasks import Example, Task
from bdpl.types import Query

BEFORE_SLOT = Task("s", "<s1> It was <prompt> <slot>.", {"0": "terrible", "1": "great"})
FILM = Example("A fine film", label="1")


LONG = "a dull movie , the plot was terrible and the acting bad"


def long_query(tok: Any, keep: int) -> tuple[Query, str]:
    """The long input under the prompt ``great fine``, and its first ``keep`` tokens' text."""
    cut = tok.decode(tok(LONG, add_special_tokens=False)["input_ids"][:keep])
    return BEFORE_SLOT.render(["great", "fine"], Example(LONG)), cut


def test_causal_lm_sees_the_prompt_before_the_slot_and_cuts_only_the_input(
    lm: Any, tok: Any
) -> None:
    pytest.importorskip("torch")
    from bdpl.backends.causal_lm import CausalLMBackend

    backend = CausalLMBackend(lm, tok, device="cpu", max_input_tokens=4)
    q, cut = long_query(tok, 4)
    assert q.before == LONG + " It was great fine"
    [row] = backend._plan([q]).rows
    expected = backend._plan([Query(cut + " It was great fine", ".", q.labels)]).rows[0]
    assert row == expected
    assert tok.decode(row).endswith(cut + " It was great fine")


def test_masked_lm_sees_the_prompt_before_the_mask_and_cuts_only_the_input(
    mlm: Any, tok: Any
) -> None:
    pytest.importorskip("torch")
    from bdpl.backends.masked_lm import MaskedLMBackend

    backend = MaskedLMBackend(mlm, tok, device="cpu", max_input_tokens=6)
    q, cut = long_query(tok, 6)
    _, rows, starts, _ = backend._plan([q])
    assert tok.decode(rows[0], skip_special_tokens=False) == (
        "<s>" + cut + " It was great fine<mask>.</s>"
    )
    assert rows[0][starts[0]] == tok.mask_token_id


def test_openai_completion_sends_the_prompt_before_the_slot() -> None:
    pytest.importorskip("openai")
    from bdpl.backends.openai_chat import OpenAIChatBackend
    from bdpl.backends.openai_completion import OpenAIBackend
    from tests.backends.openai_fakes import Recorder, mock_client

    q = BEFORE_SLOT.render(["great", "fine"], FILM)
    rec = Recorder()
    OpenAIBackend("fake-model", client=mock_client(rec), fallback="none").score([q])
    assert rec.bodies[0]["prompt"] in (
        "A fine film It was great fine",
        ["A fine film It was great fine"],
    )
    chat = Recorder()
    OpenAIChatBackend("fake-model", client=mock_client(chat)).score([q])
    sent = " ".join(str(m["content"]) for m in chat.bodies[0]["messages"])
    assert "A fine film It was great fine" in sent
