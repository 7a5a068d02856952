"""The benchmark data of the preset tasks: where each split lives and how it is drawn."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from bdpl._validate import positive_int
from bdpl.data.files import Column, Format, check_label, read_examples
from bdpl.data.hub import PRESET_HUB, HubData, datasets_installed, load_hub_split
from bdpl.data.sampling import draw
from bdpl.errors import ConfigError, DataError
from bdpl.tasks import Dataset, Example, Task, get_task

SPLITS: tuple[str, ...] = ("train", "dev", "test", "pool")


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
    skip_empty: bool = False

    def at(self, path: str) -> FileSpec:
        """The same columns in another file."""
        return replace(self, path=path)

    def read(self, root: Path, task: Task, *, k: int = 16, seed: int = 13) -> list[Example]:
        """The file's examples, labels checked against ``task``."""
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
            skip_empty=self.skip_empty,
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
    # HyperPartisan's dev.jsonl has an article with no text; the reference drops such rows too.
    spec = FileSpec(f"{folder}/train.jsonl", "text", None, "label", "jsonl", skip_empty=True)
    return TaskData(None, spec.at(f"{folder}/test.jsonl") if test else None, (spec,))


_SST2 = _glue("SST-2", "sentence", None, "label")
_COLA = _glue("CoLA", 3, None, 1, has_header=False)
_MRPC = _glue("MRPC", "#1 String", "#2 String", "Quality")
_RTE = _glue("RTE", "sentence1", "sentence2", "label")
_QNLI = _glue("QNLI", "question", "sentence", "label")
_MNLI = _glue("MNLI", "sentence1", "sentence2", "gold_label")
_QQP = _glue("QQP", "question1", "question2", "is_duplicate")

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
    path = _data_dir_or_none(data_dir)
    if path is None:
        raise DataError(
            f"benchmark data not found (looked in {', '.join(map(str, _default_data_dirs()))}); "
            "set BDPL_DATA_DIR to the data directory or pass data_dir="
        )
    return path


def _default_data_dirs() -> list[Path]:
    found = [
        Path.cwd().parent / "shared" / "data",
        Path(__file__).resolve().parents[2].parent / "shared" / "data",
    ]
    return list(dict.fromkeys(found))  # the two are one folder when run from the checkout


def _data_dir_or_none(data_dir: str | os.PathLike[str] | None) -> Path | None:
    """:func:`find_data_dir`, but ``None`` when none was named and no default exists."""
    given = data_dir if data_dir is not None else os.environ.get("BDPL_DATA_DIR")
    if given:
        path = Path(given).expanduser()
        if not path.is_dir():
            raise DataError(f"benchmark data directory {path} does not exist")
        return path
    return next((path for path in _default_data_dirs() if path.is_dir()), None)


_Shots = tuple[list[Example], list[Example]]


class _Source(Protocol):
    """Where a preset's test set and pool (and maybe k-shot folders) are read from."""

    @property
    def test_from_train(self) -> bool:
        """The test set is drawn from the training data, so train and dev leave it."""
        ...

    def test(self, task: Task) -> list[Example] | None: ...

    def pool(self, task: Task) -> list[Example]: ...

    def k_shot(self, task: Task, k: int, seed: int) -> _Shots | None: ...


@dataclass(frozen=True)
class _DataDir:
    layout: TaskData
    root: Path

    @property
    def test_from_train(self) -> bool:
        return self.layout.test_from_train

    def test(self, task: Task) -> list[Example] | None:
        spec = self.layout.test
        return None if spec is None else spec.read(self.root, task)

    def pool(self, task: Task) -> list[Example]:
        return [e for spec in self.layout.pool for e in spec.read(self.root, task)]

    def k_shot(self, task: Task, k: int, seed: int) -> _Shots | None:
        if self.layout.k_shot is None:
            return None
        train, dev = self.layout.k_shot
        if not (self.root / train.path.format(k=k, seed=seed)).is_file():
            return None
        return (
            train.read(self.root, task, k=k, seed=seed),
            dev.read(self.root, task, k=k, seed=seed),
        )


@dataclass(frozen=True)
class _Hub:
    hub: HubData
    # GLUE dev, the Hub's test set, is disjoint from GLUE train by construction.
    test_from_train: bool = False

    def test(self, task: Task) -> list[Example] | None:
        return load_hub_split(task, self.hub, "test")

    def pool(self, task: Task) -> list[Example]:
        return load_hub_split(task, self.hub, "pool")

    def k_shot(self, task: Task, k: int, seed: int) -> _Shots | None:
        return None


def _source(task: Task, split: str, data_dir: str | os.PathLike[str] | None) -> _Source:
    """The data directory when there is one, else the Hugging Face Hub when it can serve."""
    layout = PRESET_DATA[task.name]
    root = _data_dir_or_none(data_dir)
    if root is not None:
        return _DataDir(layout, root)
    hub = PRESET_HUB.get(task.name)
    if hub is not None and datasets_installed():
        return _Hub(hub)
    raise DataError(
        f"{task.name}'s {split} split is not shipped in bdpl and no benchmark data directory "
        f"was found (looked in {', '.join(map(str, _default_data_dirs()))}); "
        f"set BDPL_DATA_DIR to the data directory or pass data_dir={_hub_hint(task)}"
    )


def _hub_hint(task: Task) -> str:
    hub = PRESET_HUB.get(task.name)
    if hub is None:
        return f"; {task.name} has no verified copy on the Hugging Face Hub"
    return f"; or pip install 'bdpl[datasets]' to load it from the Hugging Face Hub ({hub.repo})"


def split_source(
    task: str | Task,
    split: str,
    *,
    seed: int = 13,
    k: int = 16,
    data_dir: str | os.PathLike[str] | None = None,
) -> str:
    """Where :func:`load_split` would take ``split`` from, in words; nothing is read.

    ``"shipped in bdpl"``, the data directory's path, ``"Hugging Face <repo>, <config>:
    <split>"`` (or its ``$BDPL_HF_MIRROR`` copy), or ``"unavailable: <how to get it>"``.
    Train and dev that are not shipped are drawn from the pool, so they come from where it does.

    Raises:
        InvalidTaskError: no preset of that name.
        ConfigError: unknown split, or a task with no benchmark data.
    """
    task = _preset(task, split)
    if split in ("train", "dev") and data_dir is None and _is_shipped(task, split, seed, k):
        return "shipped in bdpl"
    try:
        source = _source(task, split, data_dir)
    except DataError:
        return f"unavailable: set $BDPL_DATA_DIR{_hub_hint(task)}"
    if isinstance(source, _DataDir):
        return str(source.root)
    assert isinstance(source, _Hub)
    return source.hub.describe("test" if split == "test" else "pool")


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

    Before sampling, the training data loses repeated texts, texts with conflicting labels
    and texts that are also in the test file, so train, dev and test never share a text.
    That cleaned training data is the ``pool`` split: all the task's shipped training
    examples (66,973 distinct sentences for SST-2; 500 for RCT, whose pool includes its test
    sentences). It is
    meant as unlabelled in-domain text for :func:`bdpl.vocab.build_vocabulary`, which finds
    few phrases in 16-shot data; training on its labels leaves the few-shot setting.

    Where the splits come from: ``train``/``dev`` of ``k=16`` and the five seeds are shipped in
    bdpl; everything else is read from the benchmark data directory (:func:`find_data_dir`).
    When none is set or found and the optional ``datasets`` package is installed
    (``pip install 'bdpl[datasets]'``), the GLUE presets' ``test`` and ``pool`` come from the
    Hugging Face Hub instead (``nyu-mll/glue``: ``test`` is GLUE dev for every GLUE preset,
    MNLI's ``validation_matched``, so for MNLI and QQP too; ``pool`` is GLUE train), or from a
    local copy of it named by ``$BDPL_HF_MIRROR`` (see :mod:`bdpl.data.hub`, also for how the
    Hub's copies differ from the data directory's). :func:`split_source` says which applies.

    Samples are drawn with :func:`sample_k_shot`'s generator: the same ``seed`` and ``k``
    always give the same examples, on any machine.

    Args:
        task: a preset task or its name.
        split: ``"train"``, ``"dev"``, ``"test"`` or ``"pool"``.
        seed: sampling seed (and LM-BFF folder).
        k: examples per class in train and in dev.
        data_dir: the data directory; see :func:`find_data_dir`.

    Raises:
        InvalidTaskError: no preset of that name.
        ConfigError: unknown split, ``k`` < 1, or a task with no benchmark data.
        DataError: data directory or file missing or malformed; no data directory and the
            Hub cannot serve the split (``datasets`` not installed, Hub or
            ``$BDPL_HF_MIRROR`` unreachable, or a task that has no Hub copy).
    """
    task = _preset(task, split)
    positive_int("k", k)
    if split in ("train", "dev") and data_dir is None:
        shipped = shipped_split(task, split, seed=seed, k=k)
        if shipped is not None:
            return shipped
    source = _source(task, split, data_dir)
    if split == "pool":
        return Dataset(task, tuple(_pool(source, task)))
    test = source.test(task) if split == "test" else None
    if test is not None and not source.test_from_train:
        # Train and dev need not be drawn (for the Hub, that spares loading GLUE train).
        return Dataset(task, tuple(test))
    train, dev, rest = _train_dev(source, task, k, seed)
    if split == "train":
        return Dataset(task, tuple(train))
    if split == "dev":
        return Dataset(task, tuple(dev))
    if test is None:
        return Dataset(task, tuple(rest))
    seen = {(e.text_a, e.text_b) for e in (*train, *dev)}
    return Dataset(task, tuple(e for e in test if (e.text_a, e.text_b) not in seen))


def _preset(task: str | Task, split: str) -> Task:
    """The preset ``task`` names, checked to have benchmark data and ``split`` to be known."""
    task = get_task(task) if isinstance(task, str) else task
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; use one of {list(SPLITS)}")
    if task.name not in PRESET_DATA:
        raise ConfigError(
            f"task {task.name!r} has no benchmark data; read your files with read_dataset()"
        )
    return task


SHIPPED_K = 16
SHIPPED_SEEDS: tuple[int, ...] = (13, 21, 42, 87, 100)
_SHIPPED = Path(__file__).resolve().parent / "presets"


def shipped_split(task: Task, split: str, *, seed: int, k: int) -> Dataset | None:
    """The preset's ``k=16`` train or dev split of ``seed`` as shipped inside the package.

    ``None`` when it is not shipped (another ``k`` or seed, or not a preset). The files hold
    exactly what :func:`load_split` draws from the benchmark data directory
    (``scripts/ship_presets.py`` writes them; a test checks they agree).
    """
    if not _is_shipped(task, split, seed, k):
        return None
    path = _SHIPPED / task.name / f"{k}-{seed}" / f"{split}.jsonl"
    examples = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        row = json.loads(line)
        check_label(task, row["label"], f"{path}, line {lineno}")
        examples.append(Example(row["text_a"], row["text_b"], row["label"]))
    return Dataset(task, tuple(examples))


def _is_shipped(task: Task, split: str, seed: int, k: int) -> bool:
    path = _SHIPPED / task.name / f"{k}-{seed}" / f"{split}.jsonl"
    return k == SHIPPED_K and seed in SHIPPED_SEEDS and path.is_file()


def _train_dev(
    source: _Source, task: Task, k: int, seed: int
) -> tuple[list[Example], list[Example], list[Example]]:
    """Train, dev, and what is left of the pool (only drawn when there is no k-shot folder)."""
    shots = source.k_shot(task, k, seed)
    if shots is not None:
        return shots[0], shots[1], []
    train, dev, rest = draw(_pool(source, task), task, (k, k, None), seed)
    return train, dev, rest


def _pool(source: _Source, task: Task) -> list[Example]:
    return _distinct(source.pool(task), exclude=source.test(task) or [])


def _distinct(examples: Sequence[Example], *, exclude: Sequence[Example]) -> list[Example]:
    """The examples whose texts occur once with one label and not in ``exclude``.

    Some shipped training files repeat texts (CitationIntent: 418 repeats, 20 texts with two
    labels) or share them with the test file (HyperPartisan: 51 of 65 test articles); without
    this, one text could land in both train and dev, or a test text in train.
    """
    labels: dict[tuple[str, str | None], set[str | None]] = {}
    for e in examples:
        labels.setdefault((e.text_a, e.text_b), set()).add(e.label)
    taken = {(e.text_a, e.text_b) for e in exclude}
    kept = []
    for e in examples:
        key = (e.text_a, e.text_b)
        if key not in taken and len(labels[key]) == 1:
            taken.add(key)
            kept.append(e)
    return kept
