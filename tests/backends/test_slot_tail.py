"""What may follow the label slot: templates and every backend classify ``after`` alike.

A tail that is only trailing punctuation is not scored (the label is read as the next token);
any other tail is scored with the label (``label + after``) or refused by a backend that can
only read the next token. The same hand-built query must take the same route everywhere.
"""

from __future__ import annotations

from typing import Any

import pytest

from bdpl.errors import InvalidTaskError, UnsupportedQueryError
from bdpl.tasks import Task
from bdpl.types import Query, is_trailing_punctuation

torch = pytest.importorskip("torch")
pytest.importorskip("openai")

from bdpl.backends.causal_lm import CausalLMBackend  # noqa: E402
from bdpl.backends.openai_chat import OpenAIChatBackend  # noqa: E402
from bdpl.backends.openai_completion import OpenAIBackend  # noqa: E402
from tests.backends.openai_fakes import Recorder, mock_client  # noqa: E402

AFTERS = ["", ".", " .", "!?", " .,!?;:", ")", "\n", "a", " movie.", ".)", "\t", '"']
TRAILING = {"", ".", " .", "!?", " .,!?;:"}
BEFORE = "a fine film it was"
LABELS = (" great", " bad")


@pytest.fixture(scope="module")
def causal(lm: Any, tok: Any) -> CausalLMBackend:
    return CausalLMBackend(lm, tok, device="cpu")


def causal_ignores_tail(backend: CausalLMBackend, after: str) -> bool:
    """Whether the causal backend scored ``after`` at all: an ignored tail changes nothing."""
    [with_tail] = backend.score([Query(BEFORE, after, LABELS)])
    [without] = backend.score([Query(BEFORE, "", LABELS)])
    return with_tail.logprobs == without.logprobs


def completion_ignores_tail(after: str) -> bool:
    """Whether the completion backend asked for the next token after ``before`` alone."""
    rec = Recorder()
    OpenAIBackend("fake-model", client=mock_client(rec), top_logprobs=18).score(
        [Query(BEFORE, after, LABELS)]
    )
    prompt = rec.bodies[0]["prompt"]
    return prompt in (BEFORE, [BEFORE])


def chat_accepts_tail(after: str) -> bool:
    """Whether the chat backend (next token only) takes the query rather than refusing it."""
    backend = OpenAIChatBackend("fake-chat", client=mock_client(Recorder()), top_logprobs=18)
    try:
        backend.score([Query(BEFORE, after, LABELS)])
    except UnsupportedQueryError:
        return False
    return True


def template_accepts_tail(after: str) -> bool:
    try:
        Task("t", "<s1> it was <slot>" + after, {"0": "bad", "1": "great"})
    except InvalidTaskError:
        return False
    return True


@pytest.mark.parametrize("after", AFTERS, ids=repr)
def test_every_path_classifies_the_tail_the_same_way(causal: CausalLMBackend, after: str) -> None:
    expected = after in TRAILING
    assert is_trailing_punctuation(after) is expected
    assert causal_ignores_tail(causal, after) is expected
    assert completion_ignores_tail(after) is expected
    assert chat_accepts_tail(after) is expected
    assert template_accepts_tail(after) is expected
