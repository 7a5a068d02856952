"""The PMI n-gram vocabulary on crafted corpora whose answer is worked out by hand."""

from __future__ import annotations

import doctest
import math
import random
from pathlib import Path

import pytest

import bdpl.vocab
from bdpl.data import load_split
from bdpl.errors import ConfigError
from bdpl.tasks import Example
from bdpl.vocab import build_vocabulary, check_candidates, normalize_candidates, texts_of

# Counts: like 18, i 12, new 12, york 12, you 6, tea 6; pairs: (i, like) 12, (like, new) 12,
# (new, york) 12, (you, like) 6, (like, tea) 6; total = 48 pairs.
CORPUS = ["i like new york"] * 6 + ["you like new york"] * 6 + ["i like tea"] * 6


def test_hand_worked_corpus() -> None:
    assert math.log(48 * 12 / (12 * 12)) >= 1.0  # new york: strong
    assert math.log(48 * 12 / (12 * 18)) < 1.0  # i like, like new: weak
    assert math.log(48 * 6 / (6 * 18)) < 1.0  # you like, like tea: weak
    # Segments: [i][like][new york], [you][like][new york], [i][like][tea]; ties by phrase.
    # "new york" and "tea" end their sentences: the reference would never count them.
    assert build_vocabulary(CORPUS) == ["like", "i", "new york", "tea", "you"]
    assert build_vocabulary(CORPUS, size=3) == ["like", "i", "new york"]


def test_pmi_threshold_moves_segment_boundaries() -> None:
    # Above log 4 no link is strong: single words only.
    assert build_vocabulary(CORPUS, pmi_threshold=1.5) == ["like", "i", "new", "york", "tea", "you"]
    # Below log(8/3) every link is strong: whole sentences (all <= 5 words, 6 times each).
    assert build_vocabulary(CORPUS, pmi_threshold=0.5) == [
        "i like new york",
        "i like tea",
        "you like new york",
    ]
    # ... unless they are longer than max_ngram.
    assert build_vocabulary(CORPUS, pmi_threshold=0.5, max_ngram=3) == ["i like tea"]


def test_max_ngram_one_keeps_only_words() -> None:
    assert build_vocabulary(CORPUS, max_ngram=1) == ["like", "i", "tea", "you"]


def test_count_thresholds_are_strict() -> None:
    # 6 occurrences pass "more than 5" but not "more than 6"; 12 do not pass "more than 12".
    assert build_vocabulary(CORPUS, min_count=6) == ["like", "i", "new york"]
    assert build_vocabulary(CORPUS, min_count=12) == ["like"]
    # min_freq filters the recount: like (18) and the 12s survive "more than 6", not the 6s.
    assert build_vocabulary(CORPUS, min_freq=6) == ["like", "i", "new york"]
    assert build_vocabulary(CORPUS[:5]) == []  # 5 of one sentence: not more than 5


def test_recount_counts_every_occurrence() -> None:
    # "new york" is a segment in 6 sentences, and also sits inside 6 longer segments
    # ("in new york city" is all-strong); the recount sees all 12.
    texts = ["new york"] * 6 + ["x new york"] * 6
    vocab = build_vocabulary(texts, pmi_threshold=-10.0)
    assert vocab == ["new york", "x new york"]


def test_trailing_symbols_are_stripped_and_empty_phrases_dropped() -> None:
    texts = ["hello , world"] * 6  # every link has PMI log 2 < 1
    assert build_vocabulary(texts) == ["hello", "world"]
    assert build_vocabulary(texts, strip_symbols=False) == [",", "hello", "world"]
    # "york" (12) and "york ." (6) collapse to one candidate after stripping.
    texts = ["york ."] * 6 + ["york"] * 6
    assert build_vocabulary(texts, pmi_threshold=-10.0) == ["york"]


def test_output_is_deterministic_and_order_free() -> None:
    shuffled = list(CORPUS)
    random.Random(0).shuffle(shuffled)
    assert build_vocabulary(shuffled) == build_vocabulary(CORPUS)


def test_empty_texts_and_bad_sizes() -> None:
    assert build_vocabulary([]) == []
    assert build_vocabulary(["", "   ", *CORPUS]) == build_vocabulary(CORPUS)
    with pytest.raises(ConfigError):
        build_vocabulary(CORPUS, size=0)
    with pytest.raises(ConfigError):
        build_vocabulary(CORPUS, max_ngram=0)
    with pytest.raises(ConfigError, match=r"size must be an integer >= 1, got 2\.5"):
        build_vocabulary(CORPUS, size=2.5)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="max_ngram must be an integer >= 1, got True"):
        build_vocabulary(CORPUS, max_ngram=True)


def _strip(word: str) -> str:
    while word and not word[-1].isalnum():
        word = word[:-1]
    return word


def _occurrences(texts: list[str], phrase: str) -> int:
    """Occurrences of ``phrase`` as words, its last word possibly followed by symbols."""
    *head, last = phrase.split()
    n = len(head) + 1
    return sum(
        1
        for t in texts
        for w in [t.split()]
        for i in range(len(w) - n + 1)
        if w[i : i + n - 1] == head and _strip(w[i + n - 1]) == last
    )


def test_real_training_texts(data_dir: Path) -> None:
    texts = texts_of(load_split("citation_intent", "train", data_dir=data_dir))
    vocab = build_vocabulary(texts, size=50)
    assert 0 < len(vocab) <= 50
    assert len(set(vocab)) == len(vocab)
    assert "et al" in vocab  # a genuine two-word PMI phrase of citation contexts
    counts = [_occurrences(texts, p) for p in vocab]
    assert all(c > 5 for c in counts)
    assert all(p[-1].isalnum() for p in vocab)


def test_texts_of_takes_both_texts() -> None:
    examples = [Example("a b", "c d", "0"), Example("e", None, "1")]
    assert texts_of(examples) == ["a b", "c d", "e"]


def test_normalize_candidates() -> None:
    assert normalize_candidates([" great ", "very  good\n", "great", "bad"]) == [
        "great",
        "very good",
        "bad",
    ]
    assert normalize_candidates(iter(["x"])) == ["x"]


@pytest.mark.parametrize(
    ("candidates", "match"),
    [
        ([], "empty"),
        (["good", "  "], "candidate 1 is blank"),
        (["good", 3], "candidate 1 is not a string"),
        ("good", "not one string"),
    ],
)
def test_normalize_candidates_rejects(candidates: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        normalize_candidates(candidates)  # type: ignore[arg-type]


BAD_CANDIDATES = [
    ("good", "not one string"),
    (["good"], "at least 2"),
    ([], "at least 2"),
    (["good", "  "], "candidate 1 is blank"),
    (["good", 3], "candidate 1 is not a string"),
    (["good", "bad", " good"], "candidates 0 and 2 are both 'good'"),
]


def test_check_candidates_strips_and_keeps_inner_whitespace() -> None:
    # Inner whitespace is kept: a prompt renders (and is cached) exactly as before.
    assert check_candidates(iter([" great ", "very  good\n", "bad"])) == [
        "great",
        "very  good",
        "bad",
    ]
    assert check_candidates(normalize_candidates([" great ", "very  good", "great", "b"])) == [
        "great",
        "very good",
        "b",
    ]


@pytest.mark.parametrize(("candidates", "match"), BAD_CANDIDATES)
def test_check_candidates_rejects(candidates: object, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        check_candidates(candidates)  # type: ignore[arg-type]


@pytest.mark.parametrize(("candidates", "match"), BAD_CANDIDATES)
def test_the_optimizer_and_the_planted_fake_apply_the_same_rule(
    candidates: object, match: str
) -> None:
    from bdpl.optimizer import Optimizer
    from bdpl.tasks import Dataset, get_task
    from bdpl.testing import FakeBackend, Planted

    data = Dataset(get_task("sst2"), (Example("a film", label="1"),))
    with pytest.raises(ConfigError, match=match):
        Optimizer(FakeBackend(), candidates=candidates, prompt_length=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=match):
        Planted(1, candidates, data.task, data, [0])  # type: ignore[arg-type]
    good = [" great", "very  good "]
    planted = Planted(1, good, data.task, data, [0])
    assert list(planted.candidates) == Optimizer(FakeBackend(), candidates=good).candidates


def test_docstring_examples() -> None:
    result = doctest.testmod(bdpl.vocab)
    assert result.attempted > 0 and result.failed == 0
