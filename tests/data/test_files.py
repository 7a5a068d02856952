"""User files: TSV, CSV, JSONL and JSON with a column mapping, and the errors they raise."""

from __future__ import annotations

import doctest
import json
from pathlib import Path

import pytest

import bdpl.data.files
from bdpl.data import make_dataset, read_dataset, read_examples
from bdpl.errors import ConfigError, DataError
from bdpl.tasks import Example


def test_user_csv_with_header_names(tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text(
        'id,premise,hypothesis,gold\n1,"A, B\nand C",It is C.,entailment\n2,X,  Y ,not_entailment\n'
    )
    ds = read_dataset("rte", path, text_a="premise", text_b="hypothesis", label="gold")
    assert list(ds) == [
        Example("A, B and C", "It is C.", "entailment"),
        Example("X", "Y", "not_entailment"),
    ]


def test_user_tsv_by_position_without_header_and_label_map(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text('pos\tgreat film\nneg\t"awful" film\n')
    examples = read_examples(
        path,
        text_a=1,
        label=0,
        format="tsv",
        has_header=False,
        label_map={"pos": "1", "neg": "0"},
        task="sst2",
    )
    assert examples == [Example("great film", None, "1"), Example('"awful" film', None, "0")]
    # Integer keys match the text the file holds.
    path.write_text("1\tyes\n0\tno\n")
    examples = read_examples(
        path, text_a=1, label=0, format="tsv", has_header=False, label_map={0: "a", 1: "b"}
    )
    assert [e.label for e in examples] == ["b", "a"]


def test_user_jsonl_and_json(tmp_path: Path) -> None:
    rows = [{"text": "hello\tthere", "y": 1}, {"text": "bye", "y": 0}]
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    as_list = tmp_path / "list.json"
    as_list.write_text(json.dumps(rows))
    as_pool = tmp_path / "pool.json"
    as_pool.write_text(json.dumps({str(i): r for i, r in enumerate(rows)}))
    expected = [Example("hello there", None, "1"), Example("bye", None, "0")]
    for path in (jsonl, as_list, as_pool):
        assert read_examples(path, text_a="text", label="y", task="sst2") == expected
    # Unlabelled data, e.g. for prediction.
    assert read_examples(jsonl, text_a="text", label=None)[0].label is None
    # JSON booleans become the "true"/"false" labels HyperPartisan uses.
    hp = tmp_path / "hp.jsonl"
    hp.write_text('{"text": "t", "label": true}\n')
    assert read_examples(hp, text_a="text", label="label", task="hyperpartisan")[0].label == "true"


def test_blank_texts_raise_or_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"t": "a", "y": "0"}\n{"t": " ", "y": "1"}\n{"t": null, "y": "1"}\n')
    with pytest.raises(DataError, match=r"line 2: column 't' holds no text"):
        read_examples(path, text_a="t", label="y")
    assert read_examples(path, text_a="t", label="y", skip_empty=True) == [Example("a", None, "0")]


def test_bad_label_names_file_line_label_and_valid_labels(tmp_path: Path) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text("sentence\tlabel\ngood\t1\nmeh\t2\n")
    with pytest.raises(DataError) as info:
        read_dataset("sst2", path, text_a="sentence", label="label")
    message = str(info.value)
    assert str(path) in message and "line 3" in message
    assert "'2'" in message and "['0', '1']" in message


def test_bad_json_records_name_their_place(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a", "label": "0"}\n{"text": "b", "label": \n')
    with pytest.raises(DataError, match=r"bad.jsonl, line 2: not valid JSON"):
        read_examples(path, text_a="text", label="label")
    pool = tmp_path / "pool.json"
    pool.write_text(json.dumps({"0": {"text_a": "a", "label": "zero"}}))
    with pytest.raises(DataError, match=r"record '0': label 'zero'"):
        read_examples(pool, text_a="text_a", label="label", task="sst2")


@pytest.mark.parametrize(
    ("content", "kwargs", "match"),
    [
        ("a\tb\nx\t1\n", {"text_a": "sentence", "label": "b"}, r"line 2: no column 'sentence'"),
        ("a\tb\nx\n", {"text_a": "a", "label": "b"}, r"line 2: no column 'b'"),
        ("a\tb\n \t1\n", {"text_a": "a", "label": "b"}, r"line 2: column 'a' holds no text"),
    ],
)
def test_malformed_rows(tmp_path: Path, content: str, kwargs: dict[str, str], match: str) -> None:
    path = tmp_path / "f.tsv"
    path.write_text(content)
    with pytest.raises(DataError, match=match):
        read_examples(path, **kwargs)  # type: ignore[arg-type]


def test_unreadable_files(tmp_path: Path) -> None:
    latin = tmp_path / "latin.tsv"
    latin.write_bytes("sentence\tlabel\ncaf\xe9\t1\n".encode("latin-1"))
    with pytest.raises(DataError, match="not UTF-8"):
        read_examples(latin, text_a="sentence", label="label")
    scalar = tmp_path / "scalar.json"
    scalar.write_text("3")
    with pytest.raises(DataError, match="list or object of records"):
        read_examples(scalar, text_a="text", label="label")
    broken = tmp_path / "broken.csv"
    broken.write_text('text,label\n"open quote,1\n')
    with pytest.raises(DataError, match=r"broken\.csv, line 2: cannot parse"):
        read_examples(broken, text_a="text", label="label")


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_examples(tmp_path / "none.tsv", text_a=0, label=1)
    (tmp_path / "f.xlsx").write_text("")
    with pytest.raises(ConfigError, match="cannot tell the format"):
        read_examples(tmp_path / "f.xlsx", text_a=0, label=1)
    with pytest.raises(ConfigError, match="by key"):
        read_examples(tmp_path / "f.xlsx", text_a=0, label=1, format="jsonl")


def test_make_dataset_checks_labels_and_pairs() -> None:
    ds = make_dataset("sst2", [Example("a", label=1), Example("b", label="0")])  # type: ignore[arg-type]
    assert [e.label for e in ds] == ["1", "0"]
    assert make_dataset("sst2", [Example("a")])[0].label is None  # unlabelled is fine
    with pytest.raises(DataError, match=r"mine.csv, example 1: label 'pos'.*\['0', '1'\]"):
        make_dataset(
            "sst2", [Example("a", label="1"), Example("b", label="pos")], source="mine.csv"
        )
    with pytest.raises(DataError, match="takes text pairs"):
        make_dataset("rte", [Example("a", label="entailment")])


@pytest.mark.parametrize(
    ("task", "example", "match"),
    [
        ("sst2", Example("", label="1"), r"example 1: text_a holds no text, got ''"),
        ("sst2", Example(" \t\n", label="1"), "text_a holds no text"),
        ("sst2", Example(None, label="1"), "text_a holds no text, got None"),  # type: ignore[arg-type]
        ("sst2", Example(5, label="1"), "text_a holds no text, got 5"),  # type: ignore[arg-type]
        ("rte", Example("a", "  ", label="entailment"), "takes text pairs; text_b holds no text"),
        ("rte", Example("a", None, label="entailment"), "text_b holds no text, got None"),
    ],
)
def test_make_dataset_refuses_blank_texts_as_files_do(
    task: str, example: Example, match: str, tmp_path: Path
) -> None:
    good = Example("fine", "text", label=example.label)
    with pytest.raises(DataError, match=match):
        make_dataset(task, [good, example])
    # The same blank text in a file is refused by read_dataset too.
    if isinstance(example.text_a, str) and not example.text_a.strip():
        path = tmp_path / "d.jsonl"
        path.write_text(json.dumps({"t": example.text_a, "y": example.label}) + "\n")
        with pytest.raises(DataError, match="holds no text"):
            read_dataset(task, path, text_a="t", label="y")


def test_docstring_examples() -> None:
    result = doctest.testmod(bdpl.data.files)
    assert result.attempted > 0 and result.failed == 0
