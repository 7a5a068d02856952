"""The Hugging Face fallback: test sets and pools through ``datasets.load_dataset``.

No test reaches the network. The Hub is replaced by ``$BDPL_HF_MIRROR``: a folder laid out as
the Hub repository ``nyu-mll/glue`` (its README's ``configs:`` and ``dataset_info:`` sections,
whose ``ClassLabel`` names are copied from the Hub's card, and one parquet file per split),
built here from the benchmark data directory's rows. bdpl runs in a subprocess with
``HF_HUB_OFFLINE=1``, a private ``HF_DATASETS_CACHE`` and a copy of the package outside the
checkout, so no data directory is found and the same ``load_dataset`` call as online is made.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from bdpl.data import load_split, read_examples
from bdpl.tasks import Example

pytest.importorskip(
    "datasets", reason="the Hugging Face fallback needs `pip install bdpl[datasets]`"
)
pq = pytest.importorskip("pyarrow.parquet")
pa = pytest.importorskip("pyarrow")

ROOT = Path(__file__).resolve().parents[2]

# The label names of nyu-mll/glue's README (dataset_info), in ClassLabel order.
HUB_FEATURES = {
    "sst2": ("sentence", None, ("negative", "positive")),
    "mrpc": ("sentence1", "sentence2", ("not_equivalent", "equivalent")),
    "rte": ("sentence1", "sentence2", ("entailment", "not_entailment")),
    "mnli": ("premise", "hypothesis", ("entailment", "neutral", "contradiction")),
}

Rows = Iterable[tuple[str, str | None, int]]
Run = Callable[..., Any]


def _readme(splits: dict[str, list[str]], names: dict[str, tuple[str, ...]]) -> str:
    """The YAML header of a hub dataset card: each config's features and data files."""
    info, configs = [], []
    for config, (a, b, _) in sorted(HUB_FEATURES.items()):
        if config not in splits:
            continue
        texts = [a] if b is None else [a, b]
        features = "".join(f"  - name: {t}\n    dtype: string\n" for t in texts)
        labels = "".join(f"          '{i}': {n}\n" for i, n in enumerate(names[config]))
        info.append(
            f"- config_name: {config}\n  features:\n{features}"
            f"  - name: label\n    dtype:\n      class_label:\n        names:\n{labels}"
            "  - name: idx\n    dtype: int32\n"
        )
        files = "".join(f"  - split: {s}\n    path: {config}/{s}-*\n" for s in splits[config])
        configs.append(f"- config_name: {config}\n  data_files:\n{files}")
    return f"---\ndataset_info:\n{''.join(info)}configs:\n{''.join(configs)}---\n"


def _write_split(repo: Path, config: str, split: str, rows: Rows) -> None:
    """One split as the Hub stores it: ``<config>/<split>-00000-of-00001.parquet``."""
    a, b, _ = HUB_FEATURES[config]
    rows = list(rows)
    columns: dict[str, list[Any]] = {a: [r[0] for r in rows]}
    if b is not None:
        columns[b] = [r[1] for r in rows]
    columns["label"] = [r[2] for r in rows]
    columns["idx"] = list(range(len(rows)))
    (repo / config).mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), repo / config / f"{split}-00000-of-00001.parquet")


def _coded(examples: Iterable[Example], config: str) -> list[tuple[str, str | None, int]]:
    """Examples with their labels coded as the Hub codes them (the ClassLabel's index)."""
    names = HUB_FEATURES[config][2]
    preset = {"sst2": ("0", "1"), "mrpc": ("0", "1")}.get(config, names)
    return [(e.text_a, e.text_b, preset.index(str(e.label))) for e in examples]


def _tsv(path: Path, a: str, b: str | None, label: str, **kw: Any) -> list[Example]:
    return read_examples(path, text_a=a, text_b=b, label=label, **kw)


MNLI_MATCHED = "MNLI/k-shot/16-13/dev_matched.tsv"
MNLI_OTHER = "MNLI/k-shot/16-21/dev_matched.tsv"


def _build_mirror(root: Path, data_dir: Path, names: dict[str, tuple[str, ...]]) -> Path:
    """``root/nyu-mll/glue`` from the data directory's rows."""
    repo = root / "nyu-mll" / "glue"
    d = data_dir
    sst2_pool = [
        e
        for f in ("train", "dev")
        for e in _tsv(d / f"SST-2/full_train_alps/{f}.tsv", "sentence", None, "label")
    ]
    _write_split(repo, "sst2", "train", _coded(sst2_pool, "sst2"))
    sst2_test = _tsv(d / "SST-2/k-shot/test.tsv", "sentence", None, "label")
    _write_split(repo, "sst2", "validation", _coded(sst2_test, "sst2"))
    mrpc_test = _tsv(d / "MRPC/k-shot/test.tsv", "#1 String", "#2 String", "Quality")
    _write_split(repo, "mrpc", "validation", _coded(mrpc_test, "mrpc"))
    # RTE: the rows of an export of HF's glue/rte itself, labels as HF codes them (0, 1).
    for split, f in (("train", "train"), ("validation", "dev")):
        hf = _tsv(d / f"RTE/hf_glue/{f}.tsv", "sentence1", "sentence2", "label", quoted=True)
        _write_split(repo, "rte", split, [(e.text_a, e.text_b, int(str(e.label))) for e in hf])
    for split, f in (("validation_matched", MNLI_MATCHED), ("validation_mismatched", MNLI_OTHER)):
        rows = _tsv(d / f, "sentence1", "sentence2", "gold_label")
        _write_split(repo, "mnli", split, _coded(rows, "mnli"))
    splits = {
        "sst2": ["train", "validation"],
        "mrpc": ["validation"],
        "rte": ["train", "validation"],
        "mnli": ["validation_matched", "validation_mismatched"],
    }
    (repo / "README.md").write_text(_readme(splits, names), encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of bdpl outside the checkout, so that no ``../shared/data`` is found next to it."""
    where = tmp_path_factory.mktemp("pkg")
    shutil.copytree(ROOT / "bdpl", where / "bdpl", ignore=shutil.ignore_patterns("__pycache__"))
    return where


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    names = {config: labels for config, (_, _, labels) in HUB_FEATURES.items()}
    return _build_mirror(tmp_path_factory.mktemp("mirror"), data_dir, names)


@pytest.fixture
def run(package: Path, tmp_path: Path) -> Run:
    """``run(code, **env)``: run ``code`` with the copied bdpl, offline, no data directory."""

    def go(code: str, **extra: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if k not in ("BDPL_DATA_DIR", "HF_HOME")}
        env.update(
            PYTHONPATH=str(package),
            HF_HUB_OFFLINE="1",
            HF_DATASETS_OFFLINE="1",
            HF_DATASETS_CACHE=str(tmp_path / "hf-cache"),
            HF_HOME=str(tmp_path / "hf-home"),
            HF_HUB_DISABLE_PROGRESS_BARS="1",
        )
        env.update(extra)
        work = tmp_path / "work"
        work.mkdir(exist_ok=True)
        return subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    return go


LOAD = """
    import json, bdpl
    from bdpl.errors import DataError
    out = {}
    for task, split, seed, k in {calls}:
        try:
            ds = bdpl.load_split(task, split, seed=seed, k=k)
            out[f"{task} {split} {seed} {k}"] = [[e.text_a, e.text_b, e.label] for e in ds]
        except DataError as e:
            out[f"{task} {split} {seed} {k}"] = "DataError: " + str(e)
    print(json.dumps(out))
"""


def _load(run: Run, calls: list[tuple[str, str, int, int]], **env: str) -> dict[str, Any]:
    done = run(LOAD.replace("{calls}", json.dumps(calls)), **env)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def _rows(examples: Iterable[Example]) -> list[list[str | None]]:
    return [[e.text_a, e.text_b, e.label] for e in examples]


def test_test_sets_from_the_hub_equal_the_data_directory(
    run: Run, mirror: Path, data_dir: Path, tmp_path: Path
) -> None:
    calls = [("sst2", "test", 13, 16), ("mrpc", "test", 13, 16), ("rte", "test", 13, 16)]
    got = _load(run, calls, BDPL_HF_MIRROR=str(mirror))
    for task, split, seed, k in calls:
        expected = _rows(load_split(task, split, seed=seed, k=k, data_dir=data_dir))
        assert got[f"{task} {split} {seed} {k}"] == expected, task
    # RTE's rows are HF's own export (0 = entailment): the label mapping is the Hub's.
    assert got["rte test 13 16"][0][2] == "not_entailment"
    assert len(got["sst2 test 13 16"]) == 872 and len(got["rte test 13 16"]) == 277
    # `datasets` cached what it built where $HF_DATASETS_CACHE says, not in the user's home.
    assert any((tmp_path / "hf-cache").rglob("*.arrow"))


def test_pools_and_drawn_splits_from_the_hub_equal_the_data_directory(
    run: Run, mirror: Path, data_dir: Path
) -> None:
    calls = [
        ("sst2", "pool", 13, 16),
        ("sst2", "train", 7, 4),
        ("sst2", "dev", 7, 4),
        ("rte", "pool", 13, 16),
        ("rte", "train", 21, 8),
    ]
    got = _load(run, calls, BDPL_HF_MIRROR=str(mirror))
    for task, split, seed, k in calls:
        expected = _rows(load_split(task, split, seed=seed, k=k, data_dir=data_dir))
        assert got[f"{task} {split} {seed} {k}"] == expected, (task, split)
    assert len(got["sst2 pool 13 16"]) > 60_000 and len(got["sst2 train 7 4"]) == 8


def test_mnli_test_is_the_matched_dev_set(run: Run, mirror: Path, data_dir: Path) -> None:
    got = _load(run, [("mnli", "test", 13, 16)], BDPL_HF_MIRROR=str(mirror))["mnli test 13 16"]
    matched = _tsv(data_dir / MNLI_MATCHED, "sentence1", "sentence2", "gold_label")
    other = _tsv(data_dir / MNLI_OTHER, "sentence1", "sentence2", "gold_label")
    assert got == _rows(matched) != _rows(other)
    assert {row[2] for row in got} == {"entailment", "neutral", "contradiction"}


def test_label_names_in_another_order_are_refused(
    run: Run, tmp_path_factory: pytest.TempPathFactory, data_dir: Path
) -> None:
    names = {config: labels for config, (_, _, labels) in HUB_FEATURES.items()}
    names["sst2"] = ("positive", "negative")
    swapped = _build_mirror(tmp_path_factory.mktemp("swapped"), data_dir, names)
    got = _load(run, [("sst2", "test", 13, 16)], BDPL_HF_MIRROR=str(swapped))["sst2 test 13 16"]
    assert got.startswith("DataError: ") and "['positive', 'negative']" in got
    assert "expected ['negative', 'positive']" in got


def test_an_unreachable_hub_is_one_clear_error(run: Run, tmp_path: Path) -> None:
    got = _load(run, [("sst2", "test", 13, 16), ("qnli", "pool", 13, 16)])
    for message in got.values():
        assert message.startswith("DataError: cannot load Hugging Face nyu-mll/glue")
        assert "$BDPL_DATA_DIR" in message and "$BDPL_HF_MIRROR" in message
    assert "qnli: train" in got["qnli pool 13 16"]
    # A mirror without the repository: named, with what it should hold.
    empty = tmp_path / "empty"
    empty.mkdir()
    got = _load(run, [("rte", "test", 13, 16)], BDPL_HF_MIRROR=str(empty))
    assert str(empty / "nyu-mll" / "glue") in got["rte test 13 16"]
    # Tasks with no Hub copy say so, and shipped splits still load.
    got = _load(run, [("citation_intent", "test", 13, 16), ("sst2", "train", 13, 16)])
    assert "no verified copy on the Hugging Face Hub" in got["citation_intent test 13 16"]
    assert len(got["sst2 train 13 16"]) == 32


def test_without_datasets_the_error_names_the_extra(run: Run) -> None:
    code = "import sys\nsys.modules['datasets'] = None  # as if not installed\n" + textwrap.dedent(
        LOAD
    )
    done = run(code.replace("{calls}", json.dumps([["sst2", "test", 13, 16]])))
    assert done.returncode == 0, done.stderr
    message = json.loads(done.stdout)["sst2 test 13 16"]
    assert "set BDPL_DATA_DIR" in message and "pip install 'bdpl[datasets]'" in message


def test_bdpl_data_names_each_splits_source(run: Run, mirror: Path, data_dir: Path) -> None:
    listing = "from bdpl.cli.accounts import data_table\nprint(data_table(as_json=True))"
    rows = {r["task"]: r for r in json.loads(run(listing, BDPL_HF_MIRROR=str(mirror)).stdout)}
    hub = f"Hugging Face {mirror / 'nyu-mll' / 'glue'} ($BDPL_HF_MIRROR)"
    assert rows["sst2"]["test"] == f"{hub}, sst2: validation"
    assert rows["mnli"]["test"] == f"{hub}, mnli: validation_matched"
    assert rows["qqp"]["pool"] == f"{hub}, qqp: train"
    assert rows["rct"]["test"].startswith("unavailable: set $BDPL_DATA_DIR")
    assert rows["sst2"]["train/dev"].startswith("shipped in bdpl")
    rows = {r["task"]: r for r in json.loads(run(listing, BDPL_DATA_DIR=str(data_dir)).stdout)}
    assert rows["rct"]["test"] == rows["sst2"]["pool"] == str(data_dir)
    blocked = "import sys\nsys.modules['datasets'] = None\n" + listing
    rows = {r["task"]: r for r in json.loads(run(blocked).stdout)}
    assert "pip install 'bdpl[datasets]'" in rows["sst2"]["test"]
