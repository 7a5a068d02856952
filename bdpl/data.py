"""Reading labelled examples: user files with a column mapping, and the bundled benchmark data.

User files (TSV, CSV, JSONL or JSON) are read with :func:`read_examples` or, straight into a
:class:`~bdpl.tasks.Dataset`, :func:`read_dataset`; :func:`sample_k_shot` draws ``k`` examples
per class. The preset tasks load their benchmark splits with :func:`load_split`.

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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from bdpl.errors import ConfigError, DataError
from bdpl.tasks import Dataset, Example, Task, get_task

Format = Literal["tsv", "csv", "jsonl", "json"]
Column = str | int
Split = Literal["train", "dev", "test"]
SPLITS: tuple[str, ...] = ("train", "dev", "test")

_SUFFIX_FORMATS: dict[str, Format] = {
    ".tsv": "tsv",
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".json": "json",
}


# --------------------------------------------------------------------------- reading files


def _clean_text(value: str) -> str:
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


def _check_label(task: Task, label: str | None, where: str) -> None:
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
    if not file.is_file():
        raise DataError(f"data file {file} does not exist")
    examples = []
    for where, record in _records(file, fmt, has_header, quoted):
        texts: list[str | None] = []
        for column in (text_a, text_b):
            if column is None:
                texts.append(None)
                continue
            value = _field(file, where, record, column)
            text = _clean_text(value) if isinstance(value, str) else ""
            if not text:
                raise DataError(f"{file}, {where}: column {column!r} holds no text ({value!r:.80})")
            texts.append(text)
        raw = None if label is None else _clean_label(_field(file, where, record, label))
        value = raw if raw is None or label_map is None else label_map.get(raw, raw)
        if task is not None:
            _check_label(task, value, f"{file}, {where}")
        examples.append(Example(texts[0] or "", texts[1], value))
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
        DataError: a label the task does not know, or a pair task's example without a
            second text; the message names the example's position and the label.
    """
    task = get_task(task) if isinstance(task, str) else task
    origin = source or "examples"
    checked = []
    for i, example in enumerate(examples):
        where = f"{origin}, example {i}"
        if example.label is not None:
            label = _clean_label(example.label)
            _check_label(task, label, where)
            if label != example.label:
                example = replace(example, label=label)
        if task.is_pair and not example.text_b:
            raise DataError(f"{where}: task {task.name!r} takes text pairs; text_b is empty")
        checked.append(example)
    return Dataset(task, tuple(checked))


def read_dataset(
    task: Task | str,
    path: str | os.PathLike[str],
    *,
    text_a: Column,
    text_b: Column | None = None,
    label: Column | None,
    format: Format | None = None,
    has_header: bool = True,
    quoted: bool | None = None,
    label_map: Mapping[str, str] | None = None,
) -> Dataset:
    """:func:`read_examples` then :func:`make_dataset`: a user file as a task's dataset."""
    task = get_task(task) if isinstance(task, str) else task
    examples = read_examples(
        path,
        text_a=text_a,
        text_b=text_b,
        label=label,
        format=format,
        has_header=has_header,
        quoted=quoted,
        label_map=label_map,
        task=task,
    )
    return make_dataset(task, examples, source=str(path))


# --------------------------------------------------------------------------- k-shot sampling


def _draw(
    examples: Sequence[Example], task: Task, sizes: Sequence[int | None], seed: int
) -> list[list[Example]]:
    """Disjoint stratified draws: part ``j`` gets ``sizes[j]`` examples of every class
    (``None``: all that are left). A class short of examples fills the earlier parts first.
    Each part keeps the input order."""
    by_class: dict[str, list[int]] = {label: [] for label in task.labels}
    for i, example in enumerate(examples):
        _check_label(task, example.label, f"examples, example {i}")
        by_class[str(example.label)].append(i)
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[] for _ in sizes]
    # Classes are visited in the task's order, so the draw depends only on the seed and data.
    for label in task.labels:
        order = np.asarray(by_class[label], dtype=np.int64)[rng.permutation(len(by_class[label]))]
        start = 0
        for part, size in zip(parts, sizes, strict=True):
            taken = order[start:] if size is None else order[start : start + size]
            part.extend(taken.tolist())
            start += len(taken)
    return [[examples[i] for i in sorted(part)] for part in parts]


def sample_k_shot(
    examples: Sequence[Example], task: Task | str, k: int, seed: int
) -> list[Example]:
    """``k`` examples of every class of ``task``, drawn with ``numpy.random.default_rng(seed)``.

    The draw depends only on the examples, their order, ``k`` and ``seed`` (not on the process
    or platform). A class with fewer than ``k`` examples gives all it has. The result keeps
    the input order.

    Raises:
        ConfigError: ``k`` < 1.
        DataError: an example without a label or with one the task does not know.
    """
    task = get_task(task) if isinstance(task, str) else task
    _check_k(k)
    return _draw(examples, task, (k,), seed)[0]


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ConfigError(f"k must be a positive integer, got {k!r}")


# --------------------------------------------------------------------------- benchmark data


@dataclass(frozen=True)
class FileSpec:
    """One benchmark file and how to read it (the arguments of :func:`read_examples`).

    ``path`` is relative to the data directory; ``{k}`` and ``{seed}`` in it are filled in.
    """

    path: str
    text_a: Column
    text_b: Column | None
    label: Column
    format: Format = "tsv"
    has_header: bool = True
    quoted: bool | None = None
    label_map: Mapping[str, str] | None = None

    def at(self, path: str) -> FileSpec:
        """The same columns in another file."""
        return replace(self, path=path)

    def read(self, root: Path, task: Task, *, k: int = 16, seed: int = 13) -> list[Example]:
        return read_examples(
            root / self.path.format(k=k, seed=seed),
            text_a=self.text_a,
            text_b=self.text_b,
            label=self.label,
            format=self.format,
            has_header=self.has_header,
            quoted=self.quoted,
            label_map=self.label_map,
            task=task,
        )


@dataclass(frozen=True)
class TaskData:
    """Where a preset task's benchmark data lives in the data directory.

    Attributes:
        k_shot: the LM-BFF train and dev files of folder ``{k}-{seed}``, used when that folder
            exists; otherwise train and dev are disjoint ``k``-per-class samples of ``pool``.
        test: the test file; ``None``: the rest of ``pool`` once train and dev are drawn.
        pool: the labelled training data that k-shot samples are drawn from.
        test_from_train: the test file is itself drawn from the task's training data, so
            examples that also occur in train or dev are dropped from it.
    """

    k_shot: tuple[FileSpec, FileSpec] | None
    test: FileSpec | None
    pool: tuple[FileSpec, ...]
    test_from_train: bool = False


def _glue(folder: str, text_a: Column, text_b: Column | None, label: Column, **kw: Any) -> FileSpec:
    return FileSpec(f"{folder}/k-shot/{{k}}-{{seed}}/train.tsv", text_a, text_b, label, **kw)


def _lmbff(spec: FileSpec, dev: str = "dev.tsv") -> tuple[FileSpec, FileSpec]:
    return spec, spec.at(spec.path.replace("train.tsv", dev))


def _pcp(folder: str, *files: str) -> tuple[FileSpec, ...]:
    return tuple(
        FileSpec(f"{folder}/train_pool_subset/{f}.json", "text_a", "text_b", "label", "json")
        for f in files
    )


def _jsonl(folder: str, test: bool = True) -> TaskData:
    spec = FileSpec(f"{folder}/train.jsonl", "text", None, "label", "jsonl")
    return TaskData(None, spec.at(f"{folder}/test.jsonl") if test else None, (spec,))


_SST2 = _glue("SST-2", "sentence", None, "label")
_COLA = _glue("CoLA", 3, None, 1, has_header=False)
_MRPC = _glue("MRPC", "#1 String", "#2 String", "Quality")
_RTE = _glue("RTE", "sentence1", "sentence2", "label")
_QNLI = _glue("QNLI", "question", "sentence", "label")
_MNLI = _glue("MNLI", "sentence1", "sentence2", "gold_label")
_QQP = _glue("QQP", "question1", "question2", "is_duplicate")
_COLA_PCP = FileSpec("CoLA/full_train_pcp/train.tsv", "sentence", "label", "label")

#: Preset task name -> where its data lives (see ``../shared/data/SOURCES.md``).
PRESET_DATA: dict[str, TaskData] = {
    "sst2": TaskData(
        _lmbff(_SST2),
        _SST2.at("SST-2/k-shot/test.tsv"),
        (_SST2.at("SST-2/full_train_alps/train.tsv"), _SST2.at("SST-2/full_train_alps/dev.tsv")),
    ),
    "cola": TaskData(
        _lmbff(_COLA),
        _COLA.at("CoLA/k-shot/test.tsv"),
        tuple(
            FileSpec(f"CoLA/full_train_pcp/{f}.tsv", "sentence", None, "label", quoted=True)
            for f in ("train", "dev")
        ),
    ),
    # glue_raw/dev.tsv and hf_glue/dev.tsv are GLUE dev, i.e. the test set: not in the pools.
    "mrpc": TaskData(
        _lmbff(_MRPC), _MRPC.at("MRPC/k-shot/test.tsv"), (_MRPC.at("MRPC/glue_raw/train.tsv"),)
    ),
    "rte": TaskData(
        _lmbff(_RTE),
        _RTE.at("RTE/k-shot/test.tsv"),
        (
            FileSpec(
                "RTE/hf_glue/train.tsv",
                "sentence1",
                "sentence2",
                "label",
                quoted=True,
                label_map={"0": "entailment", "1": "not_entailment"},
            ),
        ),
    ),
    "qnli": TaskData(_lmbff(_QNLI), _QNLI.at("QNLI/k-shot/test.tsv"), _pcp("QNLI", "train", "dev")),
    # GLUE dev of MNLI and QQP is not shipped: test is the PCP pool's 1,000-example "dev" file,
    # which is drawn from GLUE train like the k-shot files (disjoint from the pool's train file).
    "mnli": TaskData(
        _lmbff(_MNLI, "dev_matched.tsv"), _pcp("MNLI", "dev")[0], _pcp("MNLI", "train"), True
    ),
    "qqp": TaskData(_lmbff(_QQP), _pcp("QQP", "dev")[0], _pcp("QQP", "train"), True),
    "citation_intent": _jsonl("CitationIntent"),
    "sciie": _jsonl("SciERC"),
    "hyperpartisan": _jsonl("HyperPartisan"),
    # Only 500 training sentences of RCT are available: train, dev and test all come from them.
    "rct": _jsonl("RCT/rct-sample", test=False),
}


def find_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The benchmark data directory.

    In order: ``data_dir``; ``$BDPL_DATA_DIR``; ``../shared/data`` from the working directory;
    ``../shared/data`` next to the bdpl checkout.

    Raises:
        DataError: the directory given (or named by ``$BDPL_DATA_DIR``) does not exist, or
            none of the defaults does.
    """
    given = data_dir if data_dir is not None else os.environ.get("BDPL_DATA_DIR")
    if given:
        path = Path(given).expanduser()
        if not path.is_dir():
            raise DataError(f"benchmark data directory {path} does not exist")
        return path
    tried = [
        Path.cwd().parent / "shared" / "data",
        Path(__file__).resolve().parents[1].parent / "shared" / "data",
    ]
    for path in tried:
        if path.is_dir():
            return path
    raise DataError(
        f"benchmark data not found (looked in {', '.join(map(str, tried))}); "
        "set BDPL_DATA_DIR to the data directory or pass data_dir="
    )


def load_split(
    task: str | Task,
    split: str,
    *,
    seed: int = 13,
    k: int = 16,
    data_dir: str | os.PathLike[str] | None = None,
) -> Dataset:
    """One split of a preset task's benchmark data.

    - GLUE tasks: ``train``/``dev`` are the LM-BFF k-shot files of folder ``{k}-{seed}``
      (shipped for ``k=16`` and seeds 13, 21, 42, 87, 100); for any other ``k`` or seed they
      are disjoint ``k``-per-class samples of the task's full training data. ``test`` is
      GLUE dev, except for MNLI and QQP, whose GLUE dev is not shipped: there it is a
      1,000-example held-out subset of GLUE train, minus any example that is also in this
      seed's train or dev.
    - CitationIntent, SciERC, HyperPartisan: ``train``/``dev`` are disjoint ``k``-per-class
      samples of ``train.jsonl`` (the reference's protocol); ``test`` is all of ``test.jsonl``.
    - RCT (500 sentences, train only): ``train``/``dev`` are disjoint ``k``-per-class samples;
      ``test`` is every remaining sentence (so it depends on ``seed`` and ``k``).

    Samples are drawn with :func:`sample_k_shot`'s generator: the same ``seed`` and ``k``
    always give the same examples, on any machine.

    Args:
        task: a preset task or its name.
        split: ``"train"``, ``"dev"`` or ``"test"``.
        seed: sampling seed (and LM-BFF folder).
        k: examples per class in train and in dev.
        data_dir: the data directory; see :func:`find_data_dir`.

    Raises:
        InvalidTaskError: no preset of that name.
        ConfigError: unknown split, ``k`` < 1, or a task with no benchmark data.
        DataError: data directory or file missing or malformed.
    """
    task = get_task(task) if isinstance(task, str) else task
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; use one of {list(SPLITS)}")
    _check_k(k)
    layout = PRESET_DATA.get(task.name)
    if layout is None:
        raise ConfigError(
            f"task {task.name!r} has no benchmark data; read your files with read_dataset()"
        )
    root = find_data_dir(data_dir)
    train, dev, rest = _train_dev(layout, root, task, k, seed)
    if split == "train":
        examples = train
    elif split == "dev":
        examples = dev
    elif layout.test is None:
        examples = rest
    else:
        examples = layout.test.read(root, task)
        if layout.test_from_train:
            seen = {(e.text_a, e.text_b) for e in (*train, *dev)}
            examples = [e for e in examples if (e.text_a, e.text_b) not in seen]
    return Dataset(task, tuple(examples))


def _train_dev(
    layout: TaskData, root: Path, task: Task, k: int, seed: int
) -> tuple[list[Example], list[Example], list[Example]]:
    """Train, dev, and what is left of the pool (only drawn when there is no k-shot folder)."""
    if layout.k_shot is not None:
        train_spec, dev_spec = layout.k_shot
        if (root / train_spec.path.format(k=k, seed=seed)).is_file():
            return (
                train_spec.read(root, task, k=k, seed=seed),
                dev_spec.read(root, task, k=k, seed=seed),
                [],
            )
    pool = [e for spec in layout.pool for e in spec.read(root, task)]
    train, dev, rest = _draw(pool, task, (k, k, None), seed)
    return train, dev, rest
