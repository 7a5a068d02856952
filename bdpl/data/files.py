"""Reading labelled examples from TSV, CSV, JSONL and JSON files with a column mapping.

Texts keep their content but have whitespace runs (newlines and tabs included) collapsed to one
space and the ends stripped; nothing is truncated here (backends shorten inputs by tokens, see
:attr:`bdpl.types.Query.input_spans`). Labels are stored as strings: ``1`` becomes ``"1"``,
JSON ``true`` becomes ``"true"``.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "reviews.csv"
>>> _ = path.write_text('review,stars\\n"Great, really",1\\nDull,0\\n')
>>> ds = read_dataset("sst2", path, text_a="review", label="stars")
>>> [(e.text_a, e.label) for e in ds]
[('Great, really', '1'), ('Dull', '0')]
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypedDict

from bdpl.errors import ConfigError, DataError
from bdpl.tasks import Dataset, Example, Task, get_task

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack needs Python 3.11

Format = Literal["tsv", "csv", "jsonl", "json"]
Column = str | int


class _Columns(TypedDict):
    text_a: Column
    label: Column | None


class ReadOptions(_Columns, total=False):
    """How :func:`read_dataset` reads its file: :func:`read_examples`'s arguments, less ``task``.

    ``text_a`` and ``label`` are required; see :func:`read_examples` for each one's meaning.
    """

    text_b: Column | None
    format: Format | None
    has_header: bool
    quoted: bool | None
    label_map: Mapping[str, str] | None
    skip_empty: bool


_SUFFIX_FORMATS: dict[str, Format] = {
    ".tsv": "tsv",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".json": "json",
}


def clean_text(value: str) -> str:
    """``value`` with whitespace runs collapsed to one space and the ends stripped."""
    return " ".join(value.split())


def _clean_label(value: object) -> str:
    # JSON gives bools and numbers; the task's labels are strings such as "true" or "1".
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _format_of(path: Path, format: Format | None) -> Format:
    if format is not None:
        if format not in _SUFFIX_FORMATS.values():
            raise ConfigError(f"unknown format {format!r}; use tsv, csv, jsonl or json")
        return format
    try:
        return _SUFFIX_FORMATS[path.suffix.lower()]
    except KeyError:
        raise ConfigError(
            f"{path}: cannot tell the format from the suffix {path.suffix!r}; "
            "pass format='tsv', 'csv', 'jsonl' or 'json'"
        ) from None


def _table_rows(path: Path, delimiter: str, quoted: bool) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) for every non-empty row of a delimited file."""
    # utf-8-sig drops the byte-order mark that GLUE's MRPC files start with.
    with path.open(encoding="utf-8-sig", newline="") as f:
        if not quoted:
            # GLUE TSVs are not CSV-quoted: a field may start with '"' and must stay as it is.
            for number, line in enumerate(f, start=1):
                line = line.rstrip("\r\n")
                if line.strip():
                    yield number, line.split(delimiter)
            return
        reader = csv.reader(f, delimiter=delimiter, quotechar='"', strict=True)
        start = 1
        try:
            for fields in reader:
                if any(x.strip() for x in fields):
                    yield start, fields
                start = reader.line_num + 1
        except csv.Error as exc:
            raise DataError(f"{path}, line {start}: cannot parse the row ({exc})") from exc


def _records(
    path: Path, fmt: Format, has_header: bool, quoted: bool | None
) -> Iterator[tuple[str, Mapping[Column, Any]]]:
    """(location, record) pairs; a record maps column names and/or positions to values."""
    try:
        yield from _parse(path, fmt, has_header, quoted)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc})") from exc


def _parse(
    path: Path, fmt: Format, has_header: bool, quoted: bool | None
) -> Iterator[tuple[str, Mapping[Column, Any]]]:
    if fmt in ("tsv", "csv"):
        rows = _table_rows(
            path, "\t" if fmt == "tsv" else ",", fmt == "csv" if quoted is None else quoted
        )
        header: list[str] | None = None
        for number, fields in rows:
            if has_header and header is None:
                header = [h.strip() for h in fields]
                continue
            record: dict[Column, Any] = dict(enumerate(fields))
            if header is not None:
                record.update(zip(header, fields, strict=False))
            yield f"line {number}", record
    elif fmt == "jsonl":
        with path.open(encoding="utf-8-sig") as f:
            for number, line in enumerate(f, start=1):
                if line.strip():
                    yield f"line {number}", _json_object(path, f"line {number}", line)
    else:
        with path.open(encoding="utf-8-sig") as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: not valid JSON ({exc})") from exc
        # Either a list of records or an object of records keyed by id (the PCP pools).
        if not isinstance(data, dict | list):
            raise DataError(f"{path}: expected a JSON list or object of records")
        items = data.items() if isinstance(data, dict) else enumerate(data)
        for key, value in items:
            where = f"record {key!r}"
            if not isinstance(value, dict):
                raise DataError(f"{path}, {where}: expected a JSON object, got {value!r:.80}")
            yield where, value


def _json_object(path: Path, where: str, line: str) -> dict[Column, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}, {where}: not valid JSON ({exc})") from exc
    if not isinstance(value, dict):
        raise DataError(f"{path}, {where}: expected a JSON object, got {value!r:.80}")
    return value


def _field(path: Path, where: str, record: Mapping[Column, Any], column: Column) -> Any:
    try:
        return record[column]
    except KeyError:
        names = [c for c in record if isinstance(c, str)] or f"{len(record)} columns"
        raise DataError(f"{path}, {where}: no column {column!r} (the row has {names})") from None


def _blank(text: object) -> bool:
    """Whether an example's text holds nothing: not a string (JSON null) or only whitespace.

    One rule for files (:func:`read_examples`) and examples built in code (:func:`make_dataset`).
    """
    return not isinstance(text, str) or not text.strip()


def _text(path: Path, where: str, record: Mapping[Column, Any], column: Column) -> str:
    """The cleaned text in ``column``; "" when it is blank or not a string (JSON null)."""
    value = _field(path, where, record, column)
    return clean_text(value) if isinstance(value, str) else ""


def check_label(task: Task, label: str | None, where: str) -> None:
    if label is None or label not in task.verbalizer:
        raise DataError(
            f"{where}: label {label!r} is not a label of task {task.name!r}; "
            f"valid labels are {list(task.labels)}"
        )


def read_examples(
    path: str | os.PathLike[str],
    *,
    text_a: Column,
    text_b: Column | None = None,
    label: Column | None,
    format: Format | None = None,
    has_header: bool = True,
    quoted: bool | None = None,
    label_map: Mapping[str, str] | None = None,
    task: Task | str | None = None,
    skip_empty: bool = False,
) -> list[Example]:
    """Read examples from a TSV, CSV, JSONL or JSON file.

    Args:
        path: the file (UTF-8; a byte-order mark is ignored).
        text_a: column (header name, or 0-based position in a TSV/CSV) of the first text;
            a key for JSON formats.
        text_b: column of the second text of a pair task.
        label: column of the label; ``None`` for unlabelled data.
        format: ``"tsv"``, ``"csv"``, ``"jsonl"`` (one object per line) or ``"json"`` (a list
            of objects, or an object of objects keyed by id); by default from the suffix.
        has_header: whether the first TSV/CSV row names the columns.
        quoted: whether fields may be CSV-quoted (``"a, b"``). Default: yes for CSV, no for
            TSV, because GLUE TSVs hold literal quotes.
        label_map: file label -> task label, for files that code labels differently
            (e.g. ``{"0": "entailment", "1": "not_entailment"}``).
        task: when given, every label is checked against it here, so that an unknown label is
            reported with its file and line.
        skip_empty: drop rows with a missing or blank text instead of raising.

    Raises:
        DataError: unreadable file or row, missing column, empty text, or (with ``task``) a
            label the task does not know; the message names the file and the line or record.
    """
    file = Path(path)
    fmt = _format_of(file, format)
    if fmt in ("json", "jsonl") and any(isinstance(c, int) for c in (text_a, text_b, label)):
        raise ConfigError(f"{file}: {fmt} records are read by key; columns must be names")
    if isinstance(task, str):
        task = get_task(task)
    # Keys as the file's labels will look once cleaned, so {0: ...} matches a "0" cell.
    mapping = None if label_map is None else {_clean_label(k): v for k, v in label_map.items()}
    if not file.is_file():
        raise DataError(f"data file {file} does not exist")
    examples = []
    for where, record in _records(file, fmt, has_header, quoted):
        first = _text(file, where, record, text_a)
        second = None if text_b is None else _text(file, where, record, text_b)
        blank = [c for c, t in ((text_a, first), (text_b, second)) if t is not None and _blank(t)]
        if blank and skip_empty:
            continue
        if blank:
            raise DataError(f"{file}, {where}: column {blank[0]!r} holds no text")
        raw = None if label is None else _clean_label(_field(file, where, record, label))
        value = raw if raw is None or mapping is None else mapping.get(raw, raw)
        if task is not None:
            check_label(task, value, f"{file}, {where}")
        examples.append(Example(first, second, value))
    return examples


def make_dataset(
    task: Task | str, examples: Iterable[Example], *, source: str | None = None
) -> Dataset:
    """A :class:`Dataset` of ``examples``, checked against ``task``.

    Labels that are not strings (``1``, ``True``) are turned into the task's string form.
    Unlabelled examples (label ``None``) are kept, for prediction.

    Args:
        task: the task, or a preset's name.
        examples: the examples.
        source: where they came from, named in error messages.

    Raises:
        DataError: a label the task does not know, a text that is missing or blank (the rule
            :func:`read_examples` applies), or a pair task's example without a second text;
            the message names the example's position and what is wrong.
    """
    task = get_task(task) if isinstance(task, str) else task
    origin = source or "examples"
    checked = []
    for i, example in enumerate(examples):
        where = f"{origin}, example {i}"
        if example.label is not None:
            label = _clean_label(example.label)
            check_label(task, label, where)
            if label != example.label:
                example = replace(example, label=label)
        if _blank(example.text_a):
            raise DataError(f"{where}: text_a holds no text, got {example.text_a!r}")
        if task.is_pair and _blank(example.text_b):
            raise DataError(
                f"{where}: task {task.name!r} takes text pairs; text_b holds no text, "
                f"got {example.text_b!r}"
            )
        checked.append(example)
    return Dataset(task, tuple(checked))


def read_dataset(
    task: Task | str, path: str | os.PathLike[str], **options: Unpack[ReadOptions]
) -> Dataset:
    """:func:`read_examples` then :func:`make_dataset`: a user file as a task's dataset.

    Args:
        task: the task, or a preset's name; labels are checked against it.
        path: the file.
        **options: how to read it, as for :func:`read_examples` (``text_a`` and ``label``
            are required), see :class:`ReadOptions`.

    Raises:
        DataError: as :func:`read_examples`; the message names the file and the line.
    """
    task = get_task(task) if isinstance(task, str) else task
    examples = read_examples(path, task=task, **options)
    return make_dataset(task, examples, source=str(path))
