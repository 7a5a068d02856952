"""A prompt vocabulary from the data a user has, saying where each candidate came from.

The reference builds its PMI vocabulary (:func:`bdpl.vocab.build_vocabulary`) from a task's
whole training file. A 16-shot training set yields only a handful of phrases at the reference's
thresholds (2 for CoLA, 12 for SST-2), too few to make a prompt. :func:`gather_vocabulary`
fills the vocabulary in three steps, each only while it is still short of ``min_size``:

1. ``"pmi"``: PMI n-grams at the reference's thresholds, from the training texts together with
   any unlabelled in-domain texts (cheap to get; the presets' ``load_split(task, "pool")`` is
   what the reference used).
2. ``"pmi-relaxed"``: PMI n-grams with the count thresholds lowered to "seen twice".
3. ``"english"``: the most frequent English words (2,000 words shipped with bdpl, from
   English Wikipedia unigram counts as packaged by ``wordninja`` 2.0.0, MIT license).

>>> texts = ["i like new york"] * 6 + ["you like new york"] * 6 + ["i like tea"] * 6
>>> vocab = gather_vocabulary(texts, size=8)
>>> list(vocab)
['like', 'i', 'new york', 'tea', 'you', 'the', 'of', 'in']
>>> vocab.counts()
{'pmi': 5, 'english': 3}
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Literal, overload

from bdpl._validate import positive_int
from bdpl.errors import ConfigError
from bdpl.tasks import Dataset, Example
from bdpl.vocab import build_vocabulary, texts_of

Source = Literal["pmi", "pmi-relaxed", "english"]
SOURCES: tuple[Source, ...] = ("pmi", "pmi-relaxed", "english")
ENGLISH_WORDS_FILE = "english_words.txt"


@dataclass(frozen=True)
class Vocabulary(Sequence[str]):
    """Prompt candidates and where each came from; a sequence of the candidates.

    Pass it wherever candidates go (``Optimizer(candidates=vocab)``).

    Attributes:
        candidates: distinct phrases, in the order the optimizer indexes them.
        sources: the source of each candidate (``"pmi"``, ``"pmi-relaxed"`` or
            ``"english"``), parallel to ``candidates``.
        texts: how many texts the PMI steps read, per corpus (``"train"``, ``"unlabelled"``).
    """

    candidates: tuple[str, ...]
    sources: tuple[Source, ...]
    texts: dict[str, int]

    def __post_init__(self) -> None:
        if len(self.sources) != len(self.candidates):
            raise ValueError("sources must give one source per candidate")

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[str]: ...
    def __getitem__(self, i: int | slice) -> str | Sequence[str]:
        return self.candidates[i]

    def __len__(self) -> int:
        return len(self.candidates)

    def __iter__(self) -> Iterator[str]:
        return iter(self.candidates)

    def counts(self) -> dict[str, int]:
        """Candidates per source, sources in the order they were used (absent ones left out)."""
        return {s: n for s in SOURCES if (n := self.sources.count(s))}

    def to_json(self) -> dict[str, Any]:
        """Plain-JSON form: candidates, their sources, the counts and the corpus sizes."""
        return {
            "candidates": list(self.candidates),
            "sources": list(self.sources),
            "counts": self.counts(),
            "texts": dict(self.texts),
        }


@functools.cache
def english_words() -> tuple[str, ...]:
    """The shipped English words, most frequent first (comment lines skipped)."""
    text = (
        resources.files("bdpl")
        .joinpath("resources")
        .joinpath(ENGLISH_WORDS_FILE)
        .read_text("utf-8")
    )
    return tuple(w for w in (line.strip() for line in text.splitlines()) if w and w[0] != "#")


def _corpus(name: str, texts: Dataset | Iterable[Example] | Iterable[str]) -> list[str]:
    if isinstance(texts, str):
        raise ConfigError(f"{name} must be a list of texts, not one string")
    out: list[str] = []
    for item in texts.examples if isinstance(texts, Dataset) else texts:
        if isinstance(item, Example):
            out.extend(texts_of([item]))
        elif isinstance(item, str):
            out.extend([item] if item.strip() else [])
        else:
            raise ConfigError(
                f"{name} must hold strings or Examples, got a {type(item).__name__}: {item!r:.60}"
            )
    return out


def gather_vocabulary(
    texts: Dataset | Iterable[Example] | Iterable[str],
    *,
    unlabelled: Dataset | Iterable[Example] | Iterable[str] = (),
    size: int = 200,
    min_size: int | None = None,
    english: bool = True,
) -> Vocabulary:
    """Up to ``size`` prompt candidates from ``texts`` (and ``unlabelled``), filled up to
    ``min_size`` from relaxed PMI thresholds and then frequent English words.

    Args:
        texts: the training data: a :class:`~bdpl.tasks.Dataset`, examples or plain texts.
        unlabelled: more in-domain texts, in any of the same forms; labels are never read.
        size: the most candidates (the prompt search space ``N``).
        min_size: fill steps 2 and 3 run while the vocabulary is shorter than this;
            defaults to ``size``. Give ``0`` for the reference's PMI method alone.
        english: whether step 3 may add English words.

    Returns:
        A :class:`Vocabulary`; PMI phrases first, most frequent first within each source.

    Raises:
        ConfigError: ``size`` < 1, ``min_size`` < 0, or texts that are neither strings nor
            examples.
    """
    size = positive_int("size", size)
    target = size if min_size is None else min(size, positive_int("min_size", min_size, 0))
    train, extra = _corpus("texts", texts), _corpus("unlabelled", unlabelled)
    corpus = train + extra
    found: dict[str, Source] = {}

    def add(source: Source, phrases: Iterable[str], limit: int) -> None:
        for phrase in phrases:
            if len(found) >= limit:
                return
            found.setdefault(phrase, source)

    add("pmi", build_vocabulary(corpus, size=size) if corpus else [], size)
    if len(found) < target and corpus:
        add("pmi-relaxed", build_vocabulary(corpus, size=size, min_count=1, min_freq=1), target)
    if len(found) < target and english:
        add("english", english_words(), target)
    return Vocabulary(
        tuple(found),
        tuple(found.values()),
        {"train": len(train), "unlabelled": len(extra)},
    )
