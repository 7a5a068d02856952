"""The shared label matching and bounds of the OpenAI-style backends."""

from __future__ import annotations

import math

import pytest

from bdpl.backends._toplogprobs import (
    first_token,
    is_trailing_punctuation,
    match_labels,
    offsets_from_end,
    reply_form,
    same_first_token,
    span_logprob,
    token_counter,
    topk_bound,
)


def test_only_exact_token_strings_match() -> None:
    top = {" great": -0.5, "great": -2.0, " Great": -3.0}
    assert match_labels([" great", " good", "Great"], top) == [-0.5, None, None]
    assert reply_form(" great") == "great" and reply_form("great") == "great"


def test_the_bound_is_the_smaller_of_min_top_and_the_mass_left_over() -> None:
    # Top-2 holds 0.5 + 0.3: 0.2 is left, but no token outside may beat the smallest (0.3).
    top = {" a": math.log(0.5), " b": math.log(0.3)}
    assert topk_bound(" c", top) == pytest.approx(math.log(0.2))
    # When the top-k holds almost everything, the left-over mass is the tighter bound.
    top = {" a": math.log(0.9), " b": math.log(0.09)}
    assert topk_bound(" c", top) == pytest.approx(math.log(0.01))
    # Rounding may make the top-k sum past 1: then only the smallest top-k value bounds.
    top = {" a": math.log(0.7), " b": math.log(0.3000001)}
    assert topk_bound(" c", top) == pytest.approx(math.log(0.3000001))


def test_a_multi_token_label_is_bounded_by_its_prefix_in_the_top_k() -> None:
    top = {" so": math.log(0.6), " a": math.log(0.3)}
    # " so-so" may start with the token " so": p(" so-so") <= p(" so").
    assert topk_bound(" so-so", top) == pytest.approx(math.log(0.6))
    with pytest.raises(ValueError):
        topk_bound(" x", {})


def test_span_logprob_sums_the_label_tokens_and_notices_a_merge() -> None:
    # "It was great": tokens "It", " was", " great" at 0, 2, 6.
    offsets, values = [0, 2, 6], [None, -1.0, -2.5]
    assert span_logprob(offsets, values, 6, 12) == (-2.5, True)
    assert span_logprob(offsets, values, 2, 12) == (-3.5, True)
    # A label starting mid-token ("as great" from 4): the merged token is included, not clean.
    assert span_logprob(offsets, values, 4, 12) == (-3.5, False)
    with pytest.raises(ValueError):
        span_logprob(offsets, values, 0, 12)  # the first token has no log-prob


def test_offsets_are_rebuilt_from_the_end_of_the_prompt() -> None:
    assert offsets_from_end(["", " was", " great"], len("It was great")) == [2, 2, 6]


def test_trailing_punctuation_and_token_counts() -> None:
    assert is_trailing_punctuation("") and is_trailing_punctuation(" .!")
    assert not is_trailing_punctuation(" and more.")
    count = token_counter("davinci-002")
    assert count("It was great") >= 3  # an upper bound: bytes (or tiktoken) plus one


@pytest.mark.parametrize(
    ("text", "first"),
    [(" very good", " very"), ("very good", "very"), (" 42 apples", " 42"), ("!!! yes", "!!!")],
)
def test_first_token_without_an_encoding_is_the_first_word(text: str, first: str) -> None:
    # No tiktoken encoding is known for this name: the documented word rule applies.
    assert first_token(text, "no-such-model") == first


def test_same_first_token_names_the_clashing_pair() -> None:
    labels = (" great", " very bad", " very good")
    assert same_first_token(labels, "no-such-model") == (" very bad", " very good", " very")
    assert same_first_token((" great", " terrible"), "no-such-model") is None
    assert same_first_token((" great", "great"), "no-such-model", reply_form) == (
        " great",
        "great",
        "great",
    )
