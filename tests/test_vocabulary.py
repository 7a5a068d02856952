"""gather_vocabulary: sources in order, unlabelled texts, the shipped English words."""

from __future__ import annotations

import doctest

import pytest

import bdpl.vocabulary
from bdpl.errors import ConfigError
from bdpl.optimizer import Optimizer
from bdpl.tasks import Dataset, Example, get_task
from bdpl.testing import FakeBackend
from bdpl.vocab import build_vocabulary
from bdpl.vocabulary import Vocabulary, english_words, gather_vocabulary

TEXTS = ["i like new york"] * 6 + ["you like new york"] * 6 + ["i like tea"] * 6


def test_english_words_ship_with_the_package() -> None:
    words = english_words()
    assert len(words) == 2000 and len(set(words)) == 2000
    assert words[:5] == ("the", "of", "in", "a", "and")
    assert all(w.isalpha() and w.isascii() for w in words)


def test_sources_fill_in_order_up_to_size() -> None:
    few = ["a rare phrase here", "a rare phrase there", "nothing else"]
    vocab = gather_vocabulary(few, size=30)
    assert len(vocab) == 30 and len(set(vocab)) == 30
    # Nothing passes the reference's thresholds; seen-twice words come next, then English.
    assert vocab.counts() == {"pmi-relaxed": 1, "english": 29}
    assert list(vocab.sources) == ["pmi-relaxed"] + ["english"] * 29
    assert vocab[0] == "a rare phrase" and vocab.texts == {"train": 3, "unlabelled": 0}
    assert list(vocab[1:]) == list(english_words()[:29])


def test_min_size_zero_is_the_reference_method() -> None:
    assert list(gather_vocabulary(TEXTS, min_size=0)) == build_vocabulary(TEXTS)
    assert gather_vocabulary(TEXTS, min_size=0).counts() == {"pmi": 5}
    assert len(gather_vocabulary(TEXTS, size=3)) == 3  # size caps every source
    assert gather_vocabulary(TEXTS, size=50, english=False).counts().get("english") is None


def test_unlabelled_texts_join_the_corpus_and_labels_are_not_read() -> None:
    train = Dataset(get_task("sst2"), (Example("i like tea", label="1"),))
    alone = gather_vocabulary(train, size=50, english=False)
    pool = [Example(t) for t in TEXTS]  # unlabelled examples
    more = gather_vocabulary(train, unlabelled=pool, size=50, english=False)
    assert more.texts == {"train": 1, "unlabelled": 18}
    assert "new york" in more and "new york" not in alone
    assert list(gather_vocabulary(train, unlabelled=TEXTS, size=50)) == list(
        gather_vocabulary(train, unlabelled=pool, size=50)
    )


def test_vocabulary_is_a_sequence_and_json() -> None:
    vocab = gather_vocabulary(TEXTS, size=8)
    assert isinstance(vocab, Vocabulary) and len(vocab) == 8 and vocab[0] == "like"
    data = vocab.to_json()
    assert data["counts"] == {"pmi": 5, "english": 3} and data["candidates"] == list(vocab)
    with pytest.raises(ConfigError, match="size"):
        gather_vocabulary(TEXTS, size=0)
    with pytest.raises(ConfigError, match="not one string"):
        gather_vocabulary("i like tea")
    with pytest.raises(ConfigError, match="unlabelled must hold strings or Examples, got a int"):
        gather_vocabulary(TEXTS, unlabelled=["fine", 3])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="one source per candidate"):
        Vocabulary(("a",), (), {})


def test_fit_builds_from_train_and_unlabelled() -> None:
    task = get_task("sst2")
    train = Dataset(task, tuple(Example(f"film {i}", label=str(i % 2)) for i in range(4)))
    opt = Optimizer(
        FakeBackend(), prompt_length=1, sample_size=2, epochs=1, vocab_size=20, cache=False
    )
    opt.fit(train, unlabelled=TEXTS)
    assert opt.vocabulary is not None and opt.candidates == list(opt.vocabulary)
    assert opt.vocabulary.texts == {"train": 4, "unlabelled": 18}
    assert any("york" in c for c in opt.vocabulary)  # only the unlabelled texts have it
    opt.fit(train, unlabelled=TEXTS)  # continuing is fine


def test_unlabelled_texts_after_the_vocabulary_is_fixed_are_an_error() -> None:
    train = Dataset(
        get_task("sst2"), tuple(Example(f"film {i}", label=str(i % 2)) for i in range(4))
    )
    opt = Optimizer(FakeBackend(), epochs=1, sample_size=2, prompt_length=1, cache=False)
    opt.prepare(train)  # e.g. by estimate_cost(train) without the unlabelled texts
    with pytest.raises(ConfigError, match="pass them to the first"):
        opt.fit(train, unlabelled=TEXTS)
    given = Optimizer(FakeBackend(), candidates=["a", "b"], cache=False)
    with pytest.raises(ConfigError, match="candidates already"):
        given.prepare(train, unlabelled=TEXTS)
    assert given.prepare(train, unlabelled=[]) == train.task


def test_doctests() -> None:
    result = doctest.testmod(bdpl.vocabulary)
    assert result.attempted > 0 and result.failed == 0
