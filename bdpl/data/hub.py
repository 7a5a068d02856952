"""The preset GLUE tasks' test sets and pools from the Hugging Face Hub, through ``datasets``.

:func:`bdpl.data.load_split` falls back here when no benchmark data directory is found and the
optional ``datasets`` package is installed (``pip install 'bdpl[datasets]'``). Each GLUE preset
maps to its config of the Hub repository ``nyu-mll/glue``: the test set is GLUE's official dev
set (``validation``; MNLI: ``validation_matched``) and the pool is GLUE's ``train`` split.

``$BDPL_HF_MIRROR`` names a local folder that replaces the Hub: it holds each repository as
the Hub lays it out (``$BDPL_HF_MIRROR/nyu-mll/glue/README.md`` with its ``configs:`` section,
``.../sst2/validation-00000-of-00001.parquet``, ...), read by the same ``load_dataset`` call.
``datasets`` caches what it loads under ``$HF_DATASETS_CACHE`` (by default
``~/.cache/huggingface/datasets``).

The Hub copies are GLUE's originals, not the LM-BFF copies a data directory holds, so some
splits differ from the data directory's: SST-2's dev set comes in GLUE's order (LM-BFF's
shuffles it and escapes ``/`` as ``\\/``), MRPC's texts are untokenized, and MNLI's and QQP's
test sets are GLUE's dev sets (the data directory has none and uses a held-out part of GLUE
train). CitationIntent, SciERC, HyperPartisan and RCT have no Hub copy that bdpl could verify
as the same data with the same labels, so only a data directory has them.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bdpl.data.files import clean_text, make_dataset
from bdpl.errors import DataError
from bdpl.tasks import Example, Task

#: The environment variable naming a local folder that replaces the Hugging Face Hub.
HF_MIRROR_ENV = "BDPL_HF_MIRROR"


@dataclass(frozen=True)
class HubData:
    """Where a preset task's test set and pool live on the Hugging Face Hub.

    Attributes:
        repo: the dataset repository, e.g. ``"nyu-mll/glue"``.
        config: its config (subset), e.g. ``"sst2"``.
        test: the split that is the preset's test set.
        pool: the splits whose examples form the preset's pool.
        text_a: column of the first text.
        text_b: column of the second text of a pair task.
        label: column of the label, a ``ClassLabel``.
        labels: the ``ClassLabel``'s names, in its order, -> the preset's labels. A split
            whose names differ (in name or order) is refused rather than mislabelled.
    """

    repo: str
    config: str
    test: str
    pool: tuple[str, ...]
    text_a: str
    text_b: str | None
    label: str
    labels: Mapping[str, str]

    def location(self) -> str:
        """The repository, or its copy in ``$BDPL_HF_MIRROR`` when that is set."""
        mirror = os.environ.get(HF_MIRROR_ENV)
        if not mirror:
            return self.repo
        return f"{Path(mirror).expanduser() / self.repo} (${HF_MIRROR_ENV})"

    def describe(self, split: str) -> str:
        """Where ``split`` (``"test"`` or ``"pool"``) comes from, for messages and listings."""
        splits = self.test if split == "test" else "+".join(self.pool)
        return f"Hugging Face {self.location()}, {self.config}: {splits}"


def _glue(config: str, text_a: str, text_b: str | None, labels: Mapping[str, str]) -> HubData:
    test = "validation_matched" if config == "mnli" else "validation"
    return HubData("nyu-mll/glue", config, test, ("train",), text_a, text_b, "label", labels)


_NLI = {"entailment": "entailment", "not_entailment": "not_entailment"}

#: Preset task name -> its Hub copy. The ClassLabel names are those of ``nyu-mll/glue``.
PRESET_HUB: dict[str, HubData] = {
    "sst2": _glue("sst2", "sentence", None, {"negative": "0", "positive": "1"}),
    "cola": _glue("cola", "sentence", None, {"unacceptable": "0", "acceptable": "1"}),
    "mrpc": _glue("mrpc", "sentence1", "sentence2", {"not_equivalent": "0", "equivalent": "1"}),
    "qqp": _glue("qqp", "question1", "question2", {"not_duplicate": "0", "duplicate": "1"}),
    "rte": _glue("rte", "sentence1", "sentence2", _NLI),
    "qnli": _glue("qnli", "question", "sentence", _NLI),
    "mnli": _glue(
        "mnli",
        "premise",
        "hypothesis",
        {"entailment": "entailment", "neutral": "neutral", "contradiction": "contradiction"},
    ),
}


def datasets_installed() -> bool:
    """Whether the optional ``datasets`` package can be imported (without importing it)."""
    try:
        return importlib.util.find_spec("datasets") is not None
    except ValueError:  # sys.modules["datasets"] is None: imports of it are blocked
        return False


def load_hub_split(task: Task, hub: HubData, split: str) -> list[Example]:
    """The preset's ``split`` (``"test"`` or ``"pool"``) from the Hub, or from ``$BDPL_HF_MIRROR``.

    Texts are cleaned as :func:`bdpl.data.read_examples` cleans file texts; labels are the
    preset's strings, mapped through the label column's ``ClassLabel`` names.

    Raises:
        DataError: ``datasets`` is not installed, the Hub (or mirror) cannot be reached or
            lacks the split, or the split's columns or label names are not the expected ones.
    """
    if split == "test":
        return _load(task, hub, hub.test, skip_blank=False)
    # A pool only feeds sampling and vocabularies: a row without text is dropped, not fatal.
    return [e for name in hub.pool for e in _load(task, hub, name, skip_blank=True)]


def _load(task: Task, hub: HubData, split: str, *, skip_blank: bool) -> list[Example]:
    where = f"Hugging Face {hub.location()}, {hub.config}: {split}"
    try:
        datasets: Any = importlib.import_module("datasets")
    except ImportError as exc:
        raise DataError(
            f"loading {where} for task {task.name} needs the `datasets` package: "
            "pip install 'bdpl[datasets]', or set $BDPL_DATA_DIR to a benchmark data directory"
        ) from exc
    mirror = os.environ.get(HF_MIRROR_ENV)
    path = hub.repo
    if mirror:
        local = Path(mirror).expanduser() / hub.repo
        if not local.is_dir():
            raise DataError(
                f"${HF_MIRROR_ENV} is {mirror}, but it has no folder {local}: a copy of the "
                f"Hub repository {hub.repo} (its README.md and data files, laid out as on the Hub)"
            )
        path = str(local)
    try:
        ds = datasets.load_dataset(path, hub.config, split=split)
    except (TypeError, AttributeError):
        raise  # a programming error, not missing data
    except Exception as exc:
        # `datasets` signals an unreachable Hub, a missing config or file, and offline mode
        # with many exception types (ConnectionError, FileNotFoundError, ValueError, its own).
        raise DataError(
            f"cannot load {where} for task {task.name} "
            f"({type(exc).__name__}: {str(exc)[:300]}); set $BDPL_DATA_DIR to a benchmark data "
            f"directory, or ${HF_MIRROR_ENV} to a local copy of the Hub repository {hub.repo}"
        ) from exc
    return _examples(task, hub, ds, where, skip_blank=skip_blank)


def _examples(task: Task, hub: HubData, ds: Any, where: str, *, skip_blank: bool) -> list[Example]:
    columns = [c for c in (hub.text_a, hub.text_b, hub.label) if c is not None]
    missing = [c for c in columns if c not in ds.column_names]
    if missing:
        raise DataError(f"{where}: no column {missing[0]!r} (it has {ds.column_names})")
    names = list(getattr(ds.features[hub.label], "names", None) or [])
    if names != list(hub.labels):
        raise DataError(
            f"{where}: column {hub.label!r} has label names {names or 'none'}, expected "
            f"{list(hub.labels)} (a ClassLabel in that order, as on the Hub)"
        )
    labels = [hub.labels[n] for n in names]
    examples, row = [], 0
    # Batches: `datasets` formats row by row otherwise, ~40 µs a row (16 s for MNLI's train).
    for batch in ds.select_columns(columns).iter(batch_size=10_000):
        second = batch[hub.text_b] if hub.text_b is not None else [None] * len(batch[hub.label])
        for a, b, y in zip(batch[hub.text_a], second, batch[hub.label], strict=True):
            if not 0 <= y < len(labels):
                raise DataError(f"{where}, row {row}: label {y} is not one of 0..{len(labels) - 1}")
            row += 1
            text_a = clean_text(a) if isinstance(a, str) else a
            text_b = clean_text(b) if isinstance(b, str) else b
            if skip_blank and not (text_a and (text_b or hub.text_b is None)):
                continue
            examples.append(Example(text_a, text_b, labels[y]))
    return list(make_dataset(task, examples, source=where).examples)
