"""The prompt vocabulary: candidate tokens/phrases for each prompt position.

:func:`build_vocabulary` is the BDPL reference's PMI n-gram method (``pmi_ngram.py`` in
shizhediao/Black-Box-Prompt-Learning), with the reference's defaults:

1. Split every text on whitespace (no lower-casing, as the reference). Count words and adjacent
   word pairs; ``total`` is the number of pairs. Keep words and pairs seen more than
   ``min_count`` times.
2. A kept pair ``(a, b)`` is a strong link when
   ``PMI = log(total · c(a,b) / (c(a) · c(b))) >= pmi_threshold``.
3. Cut every text into segments at each link that is not strong; keep the segments of at most
   ``max_ngram`` words that occur more than ``min_count`` times.
4. Recount each kept segment everywhere it occurs as a contiguous word sequence (not only
   where segmentation produced it) and keep those seen more than ``min_freq`` times.
5. Order by that count, highest first; strip trailing non-alphanumeric characters (the
   reference's ``delete_special_symbol``, on by default); drop empty and repeated phrases;
   keep the first ``size``.

Deviations from the reference, all deliberate:

- The reference never counts the last segment of a text (its loop only emits a segment when
  a weak link follows it); here it is counted, so sentence-final phrases are not lost.
- Ties in step 5 are broken by the phrase, ascending (the reference breaks them by the word
  tuple, descending); either way the output is deterministic.
- Empty texts are skipped (the reference crashes on them).
- When the texts yield fewer than ``size`` phrases, fewer are returned; nothing is padded.
  A 16-shot training set gives few phrases at the reference's thresholds (2 for CoLA, 12 for
  SST-2): build the vocabulary from more unlabelled in-domain text (a preset's
  ``load_split(task, "pool")``), lower the thresholds, or pass your own list through
  :func:`normalize_candidates`. :func:`bdpl.vocabulary.gather_vocabulary`, what the optimizer
  uses by default, does the first two and then adds frequent English words.

>>> texts = ["i like new york"] * 6 + ["you like new york"] * 6 + ["i like tea"] * 6
>>> build_vocabulary(texts)
['like', 'i', 'new york', 'tea', 'you']

Here only ``new york`` is a strong link: ``PMI = log(48·12 / (12·12)) = log 4``, while
``i like`` has ``log(48·12 / (12·18)) = log(8/3) < 1``.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Iterable, Sequence

from bdpl._validate import positive_int
from bdpl.errors import ConfigError
from bdpl.tasks import Example

Ngram = tuple[str, ...]


def build_vocabulary(
    texts: Sequence[str],
    *,
    size: int = 200,
    max_ngram: int = 5,
    pmi_threshold: float = 1.0,
    min_count: int = 5,
    min_freq: int = 5,
    strip_symbols: bool = True,
) -> list[str]:
    """Up to ``size`` frequent PMI n-grams of ``texts``, most frequent first.

    Args:
        texts: the corpus, e.g. :func:`texts_of` the training examples.
        size: the most phrases to return (the prompt search space ``N``).
        max_ngram: longest phrase, in words (reference ``--ngram``, 5).
        pmi_threshold: least PMI of a strong link (reference ``--min_pmi``, 1).
        min_count: words, pairs and segments must occur *more* than this often
            (reference ``--min_count``, 5).
        min_freq: phrases must occur *more* than this often in the final recount
            (reference ``--ngram_freq_threshold``, 5).
        strip_symbols: strip trailing non-alphanumeric characters from each phrase.

    Returns:
        Distinct non-empty phrases (words joined by one space); fewer than ``size`` when the
        corpus does not yield more.

    Raises:
        ConfigError: ``size`` or ``max_ngram`` is not an integer >= 1.
    """
    positive_int("size", size)
    positive_int("max_ngram", max_ngram)
    sentences = [words for words in (text.split() for text in texts) if words]
    strong = _strong_links(sentences, pmi_threshold, min_count)
    segments = Counter(seg for words in sentences for seg in _segments(words, strong))
    kept = {seg for seg, c in segments.items() if c > min_count and len(seg) <= max_ngram}
    counts = _occurrences(sentences, kept, max_ngram)
    ranked = sorted(
        ((c, " ".join(g)) for g, c in counts.items() if c > min_freq),
        key=lambda item: (-item[0], item[1]),
    )
    phrases = (_strip_trailing_symbols(p) if strip_symbols else p for _, p in ranked)
    return list(dict.fromkeys(p for p in phrases if p))[:size]


def _strong_links(
    sentences: Sequence[Sequence[str]], pmi_threshold: float, min_count: int
) -> set[tuple[str, str]]:
    words: Counter[str] = Counter(w for s in sentences for w in s)
    pairs: Counter[tuple[str, str]] = Counter(p for s in sentences for p in itertools.pairwise(s))
    total = sum(pairs.values())
    strong = set()
    for (a, b), c in pairs.items():
        frequent = c > min_count and words[a] > min_count and words[b] > min_count
        if frequent and math.log(total * c / (words[a] * words[b])) >= pmi_threshold:
            strong.add((a, b))
    return strong


def _segments(words: Sequence[str], strong: set[tuple[str, str]]) -> Iterable[Ngram]:
    """Maximal runs of words joined by strong links, the last one included."""
    start = 0
    for i in range(1, len(words)):
        if (words[i - 1], words[i]) not in strong:
            yield tuple(words[start:i])
            start = i
    yield tuple(words[start:])


def _occurrences(
    sentences: Sequence[Sequence[str]], grams: set[Ngram], max_n: int
) -> Counter[Ngram]:
    counts: Counter[Ngram] = Counter()
    if not grams:
        return counts
    for words in sentences:
        for i in range(len(words)):
            for n in range(1, min(max_n, len(words) - i) + 1):
                gram = tuple(words[i : i + n])
                if gram in grams:
                    counts[gram] += 1
    return counts


def _strip_trailing_symbols(phrase: str) -> str:
    end = len(phrase)
    while end > 0 and not phrase[end - 1].isalnum():
        end -= 1
    return phrase[:end]


def texts_of(examples: Iterable[Example]) -> list[str]:
    """Every text of ``examples`` (``text_a``, then ``text_b`` where present), as a corpus."""
    return [t for e in examples for t in (e.text_a, e.text_b) if t]


def check_candidates(candidates: Iterable[str]) -> list[str]:
    """The prompt vocabulary as an optimizer uses it: what makes a valid candidate list.

    Each candidate is a non-blank string, used with its outer whitespace stripped (inner
    whitespace is kept as given, so that a prompt renders, and is cached, as before); the
    list holds at least two, all distinct once stripped. The optimizer and the test doubles
    apply this one rule; :func:`normalize_candidates` cleans a raw list into one that passes.

    >>> check_candidates([" great", "very good "])
    ['great', 'very good']

    Raises:
        ConfigError: one string instead of a list, a candidate that is not a string or is
            blank, fewer than two candidates, or a repeat.
    """
    cleaned = [_candidate(i, c).strip() for i, c in enumerate(_as_list(candidates))]
    if len(cleaned) < 2:
        raise ConfigError(f"candidates must hold at least 2 strings, got {len(cleaned)}")
    seen: dict[str, int] = {}
    for i, text in enumerate(cleaned):
        if text in seen:
            raise ConfigError(
                f"candidates {seen[text]} and {i} are both {text!r}; candidates must be "
                "distinct (normalize_candidates drops repeats)"
            )
        seen[text] = i
    return cleaned


def normalize_candidates(candidates: Iterable[str]) -> list[str]:
    """A user-supplied candidate list, cleaned: whitespace stripped (and inner runs made one
    space), repeats dropped keeping the first.

    >>> normalize_candidates([" great ", "very  good", "great"])
    ['great', 'very good']

    Raises:
        ConfigError: a candidate that is not a string or is blank, or no candidates at all.
    """
    cleaned = [" ".join(_candidate(i, c).split()) for i, c in enumerate(_as_list(candidates))]
    if not cleaned:
        raise ConfigError("the candidate list is empty")
    return list(dict.fromkeys(cleaned))


def _as_list(candidates: Iterable[str]) -> list[object]:
    if isinstance(candidates, str):
        raise ConfigError("candidates must be a list of strings, not one string")
    return list(candidates)


def _candidate(i: int, cand: object) -> str:
    """Candidate ``i`` itself, if it is a valid one: a string with some non-space text."""
    if not isinstance(cand, str):
        raise ConfigError(f"candidate {i} is not a string: {cand!r}")
    if not cand.strip():
        raise ConfigError(f"candidate {i} is blank")
    return cand
