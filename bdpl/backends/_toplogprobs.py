"""Label log-probs from an API's top-k next-token log-probs, shared by the OpenAI-style backends.

How a label is matched
    A label is scored from the next-token distribution when some top-k token string equals the
    label *exactly* as it sits in the text (leading space and case included: ``" great"``), i.e.
    when the label is one token for that model. Nothing looser (no stripping, no lower-casing)
    is ever used, because ``"Great"`` and ``" great"`` are different events for the model.
    A chat reply starts a new message, so there the label is matched without its leading space
    (:func:`reply_form`), case still exact.

A label missing from the top-k
    is either outside the top-k or not a single token. The completion backend then scores it
    exactly by asking for the prompt log-probs of ``before + label`` (``echo`` or vLLM's
    ``prompt_logprobs``; see :func:`span_logprob`), which also covers multi-token labels (the sum
    of their tokens' log-probs). Where no exact way is configured it gets :func:`topk_bound`, an
    upper bound, and the answer says ``exact=False``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence

from bdpl.tokens import count_tokens
from bdpl.types import is_trailing_punctuation as is_trailing_punctuation  # the one rule

# The first pre-token of a text as byte-level BPE tokenizers (GPT-2 style) split it: a run of
# letters, of digits or of other symbols, each with one leading space; or a run of spaces.
_FIRST_WORD = re.compile(r" ?[^\W\d_]+| ?\d+| ?[^\s\w]+| ?_+|\s+")


def reply_form(label: str) -> str:
    """The label as the first token of a chat reply: without its leading space, case kept."""
    return label[1:] if label.startswith(" ") else label


def match_labels(labels: Sequence[str], top: Mapping[str, float]) -> list[float | None]:
    """Each label's log-prob when a top-k token equals it exactly, else ``None``."""
    return [top.get(label) for label in labels]


def topk_bound(label: str, top: Mapping[str, float]) -> float:
    """An upper bound on ``log p(label)`` for a label that is not itself a top-k token.

    The label's first token is either outside the top-k, where its probability is at most both
    the smallest top-k probability and the mass the top-k leaves over, or it is a top-k token
    that is a proper prefix of the label (a multi-token label), whose probability bounds the
    label's. The bound is the larger of the two cases.

    Limits: a top-k list shortened by the server (fewer entries than asked, or two tokens that
    decode to the same text) can make the first case loose but never wrong in practice; a label
    whose first token would run past the label into the following text is not covered.

    Raises:
        ValueError: ``top`` is empty.
    """
    if not top:
        raise ValueError("no top logprobs to bound a label with")
    values = list(top.values())
    smallest = min(values)
    left_over = 1.0 - sum(math.exp(v) for v in values)
    outside = min(smallest, math.log(left_over)) if left_over > 0 else smallest
    prefixes = [v for tok, v in top.items() if tok and tok != label and label.startswith(tok)]
    return max([outside, *prefixes])


def span_logprob(
    offsets: Sequence[int],
    logprobs: Sequence[float | None],
    start: int,
    end: int,
) -> tuple[float, bool]:
    """Sum of the log-probs of the prompt tokens that make up characters ``[start, end)``.

    Args:
        offsets: character offset of each prompt token, ascending.
        logprobs: each prompt token's log-prob given the tokens before it (``None`` for the
            first token, which has no context).
        start: where the label starts in the prompt (``len(before)``).
        end: where the scored text ends (``len(prompt)``).

    Returns:
        ``(sum, clean)``: ``clean`` is False when the tokenizer merged the label with the text
        before it (no token starts exactly at ``start``), so the sum covers the merged token
        and is not exactly ``log p(label | before)``.

    Raises:
        ValueError: no token lies in the span, or one of its log-probs is missing.
    """
    inside = [i for i, off in enumerate(offsets) if off < end and off >= start]
    clean = bool(inside) and offsets[inside[0]] == start
    if not clean:
        # The label's first characters belong to a token that starts earlier: include it.
        before = [i for i, off in enumerate(offsets) if off < start]
        if before:
            inside = [before[-1], *inside]
    if not inside:
        raise ValueError(f"no prompt token covers characters [{start}, {end})")
    total = 0.0
    for i in inside:
        value = logprobs[i]
        if value is None:
            raise ValueError(f"prompt token {i} has no log-prob")
        total += float(value)
    return total, clean


def offsets_from_end(tokens: Sequence[str], length: int) -> list[int]:
    """Character offsets of ``tokens`` that end the ``length``-character prompt, walking back.

    For answers that give the prompt tokens' text but no offsets (vLLM's ``prompt_logprobs``).
    Only the tail matters (the label sits at the end), so an undecodable token early in the
    prompt cannot shift it.
    """
    offsets = [0] * len(tokens)
    pos = length
    for i in range(len(tokens) - 1, -1, -1):
        pos -= len(tokens[i])
        offsets[i] = pos
    return offsets


def first_token(text: str, model: str) -> str:
    """The first token of ``text`` for ``model``, to find labels the top-k cannot tell apart.

    With tiktoken's encoding for ``model`` on disk (as for token counts: never downloaded),
    the encoding's first token. Otherwise a conservative rule: the first word with its leading
    space (see ``_FIRST_WORD``). Byte-level BPE never merges across such a word boundary, so
    two texts with the same first word surely share their first token; the rule may miss
    texts that share a first token inside different words (``" goodness"``, ``" good"``).
    """
    from bdpl.tokens import local_encoding

    encoding = local_encoding(model)
    if encoding is not None:
        ids = encoding.encode(text)
        if ids:
            first: bytes = encoding.decode_single_token_bytes(ids[0])
            return first.decode("utf-8", "backslashreplace")
    match = _FIRST_WORD.match(text)
    return match.group(0) if match else text


def same_first_token(
    labels: Sequence[str], model: str, form: Callable[[str], str] = str
) -> tuple[str, str, str] | None:
    """Two labels (and the token) whose ``form`` starts with the same token, if any.

    ``form`` is how the label is matched (:func:`reply_form` for chat replies).
    """
    seen: dict[str, str] = {}
    for label in labels:
        token = first_token(form(label), model)
        if token in seen and seen[token] != label:
            return seen[token], label, token
        seen.setdefault(token, label)
    return None


def token_counter(model: str) -> Callable[[str], int]:
    """How budget estimates count a prompt's tokens for ``model``: an upper bound.

    :func:`bdpl.tokens.count_tokens` (tiktoken when its file is on disk, else one
    token per UTF-8 byte) plus one token for a beginning-of-sequence marker that some servers
    add to every prompt.
    """

    def count(text: str) -> int:
        return count_tokens(text, model) + 1

    return count
