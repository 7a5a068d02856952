"""Benchmark data: every preset's layout, k-shot folders, pools, splits and the data folder."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import bdpl.data.benchmarks
from bdpl.data import PRESET_DATA, find_data_dir, load_split
from bdpl.errors import ConfigError, DataError, InvalidTaskError
from bdpl.tasks import PRESETS, Example, Task, get_task

SEEDS = (13, 21, 42, 87, 100)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def source_rows(data_dir: Path) -> dict[str, int]:
    """File -> row count, from the provenance table of SOURCES.md."""
    text = (data_dir / "SOURCES.md").read_text(encoding="utf-8")
    rows = {m[1]: int(m[2]) for m in re.finditer(r"^\| `([^`]+)` \| (\d+) \|", text, re.M)}
    assert len(rows) == 100  # "Total: 100 data files"
    return rows


def _blank_rows(path: Path) -> int:
    """JSONL rows whose text is empty (HyperPartisan dev has one)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return sum(1 for line in lines if line.strip() and not json.loads(line)["text"].strip())


def _all_specs() -> dict[str, tuple[str, bdpl.data.benchmarks.FileSpec]]:
    """Every file the presets read (k-shot folders for the five LM-BFF seeds) -> its reader."""
    specs: dict[str, tuple[str, bdpl.data.benchmarks.FileSpec]] = {}
    for name, layout in PRESET_DATA.items():
        for spec in (*(layout.k_shot or ()), *filter(None, [layout.test]), *layout.pool):
            for seed in SEEDS:
                specs[spec.path.format(k=16, seed=seed)] = (name, spec)
    return specs


def test_every_shipped_file_is_read_with_the_documented_row_count(
    data_dir: Path, source_rows: dict[str, int]
) -> None:
    specs = _all_specs()
    assert set(specs) <= set(source_rows)
    # Files no preset reads (GLUE dev copies of test sets, the domain dev.jsonl files) share
    # the layout of a file in the same folder that is read.
    folders = {str(Path(p).parent): spec for p, spec in specs.items()}
    for path in set(source_rows) - set(specs):
        name, spec = folders[str(Path(path).parent)]
        specs[path] = (name, spec.at(path))
    for path, (name, spec) in sorted(specs.items()):
        examples = spec.at(path).read(data_dir, get_task(name))
        blank = _blank_rows(data_dir / path) if spec.skip_empty else 0
        assert len(examples) == source_rows[path] - blank, path
        assert all(e.text_a and (e.text_b or not get_task(name).is_pair) for e in examples)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_loads_train_dev_test(
    name: str, data_dir: Path, source_rows: dict[str, int]
) -> None:
    task = get_task(name)
    train = load_split(name, "train", data_dir=data_dir)
    dev = load_split(task, "dev", data_dir=data_dir)
    test = load_split(name, "test", data_dir=data_dir)
    for split in (train, dev):
        assert split.task is task
        assert Counter(e.label for e in split) == dict.fromkeys(task.labels, 16)
    pairs = {(e.text_a, e.text_b) for e in train}
    assert not pairs & {(e.text_a, e.text_b) for e in dev}
    assert not pairs & {(e.text_a, e.text_b) for e in test}
    test.label_indices()  # every label known
    layout = PRESET_DATA[name]
    if layout.test is not None:
        assert len(test) == source_rows[layout.test.path]  # no overlap for seed 13
    else:  # RCT: the rest of the 500 training sentences
        assert len(test) == source_rows[layout.pool[0].path] - len(train) - len(dev)


def test_k_shot_folders_for_every_seed(data_dir: Path) -> None:
    for seed in SEEDS:
        a = load_split("sst2", "train", seed=seed, data_dir=data_dir)
        b = load_split("sst2", "train", seed=seed, data_dir=data_dir)
        assert a == b and len(a) == 32
    train13 = load_split("mnli", "train", seed=13, data_dir=data_dir)
    train21 = load_split("mnli", "train", seed=21, data_dir=data_dir)
    assert train13 != train21


def test_mnli_test_drops_examples_seen_in_training(
    data_dir: Path, source_rows: dict[str, int]
) -> None:
    # Seed 87's LM-BFF MNLI train shares examples with the PCP "dev" file used as test.
    test = load_split("mnli", "test", seed=87, data_dir=data_dir)
    seen = {
        (e.text_a, e.text_b)
        for split in ("train", "dev")
        for e in load_split("mnli", split, seed=87, data_dir=data_dir)
    }
    assert not seen & {(e.text_a, e.text_b) for e in test}
    assert 0 < source_rows["MNLI/train_pool_subset/dev.json"] - len(test) <= len(seen)


@pytest.mark.parametrize("name", ["rte", "mnli", "cola", "hyperpartisan", "rct"])
def test_other_seeds_and_k_sample_the_pool(name: str, data_dir: Path) -> None:
    task = get_task(name)
    train = load_split(name, "train", seed=7, k=4, data_dir=data_dir)
    dev = load_split(name, "dev", seed=7, k=4, data_dir=data_dir)
    assert Counter(e.label for e in train) == dict.fromkeys(task.labels, 4)
    assert Counter(e.label for e in dev) == dict.fromkeys(task.labels, 4)
    assert not set(train) & set(dev)
    assert load_split(name, "train", seed=7, k=4, data_dir=data_dir) == train
    assert load_split(name, "train", seed=8, k=4, data_dir=data_dir) != train


@pytest.mark.parametrize("name", ["rte", "citation_intent", "hyperpartisan", "rct"])
def test_pool_split_is_the_cleaned_training_data(name: str, data_dir: Path) -> None:
    task, layout = get_task(name), PRESET_DATA[name]
    raw = [e for spec in layout.pool for e in spec.read(data_dir, task)]
    test = load_split(name, "test", data_dir=data_dir) if layout.test else []
    labels: dict[tuple[str, str | None], set[str | None]] = {}
    for e in raw:
        labels.setdefault((e.text_a, e.text_b), set()).add(e.label)
    banned = {(e.text_a, e.text_b) for e in test}
    expected = {key for key, seen in labels.items() if len(seen) == 1 and key not in banned}
    pool = load_split(name, "pool", data_dir=data_dir)
    texts = [(e.text_a, e.text_b) for e in pool]
    assert len(texts) == len(set(texts)) and set(texts) == expected
    train = load_split(name, "train", seed=3, k=2, data_dir=data_dir)
    assert set(train) <= set(pool)


def test_rct_splits_partition_the_sample(data_dir: Path) -> None:
    splits = [load_split("rct", s, seed=21, data_dir=data_dir) for s in ("train", "dev", "test")]
    pool = PRESET_DATA["rct"].pool[0].read(data_dir, get_task("rct"))
    assert len(pool) == len(set(pool)) == 500  # no repeats in this file
    # train + dev + test is the sample: each sentence exactly once
    assert Counter(e for s in splits for e in s) == Counter(pool)


def test_label_conventions(data_dir: Path) -> None:
    rte_pool = PRESET_DATA["rte"].pool[0].read(data_dir, get_task("rte"))
    # hf_glue codes 0 = entailment, 1 = not_entailment; its first row is labelled 1.
    assert rte_pool[0] == Example(
        "No Weapons of Mass Destruction Found in Iraq Yet.",
        "Weapons of Mass Destruction Found in Iraq.",
        "not_entailment",
    )
    assert {e.label for e in load_split("hyperpartisan", "test", data_dir=data_dir)} == {
        "true",
        "false",
    }
    assert {e.label for e in load_split("qqp", "test", data_dir=data_dir)} == {"0", "1"}


def test_quoting_and_whitespace(data_dir: Path) -> None:
    cola = PRESET_DATA["cola"].pool[0].read(data_dir, get_task("cola"))
    assert Example('Susan whispered "Shut up" at them.', None, "1") in cola
    rte = PRESET_DATA["rte"].pool[0].read(data_dir, get_task("rte"))
    assert any(
        e.text_a.startswith('Valero Energy Corp., on Monday, said it found "extensive"')
        for e in rte
    )
    # GLUE TSVs are not CSV-quoted: a field that starts with a quote keeps it.
    mrpc = load_split("mrpc", "test", data_dir=data_dir)
    assert any((e.text_b or "").startswith('" The foodservice pie business') for e in mrpc)
    # alps SST-2 rows end with a space before the tab; texts are stripped.
    sst2 = PRESET_DATA["sst2"].pool[0].read(data_dir, get_task("sst2"))
    assert sst2[1] == Example("kids , spirit", None, "1")


def test_sampling_is_deterministic_across_processes(data_dir: Path) -> None:
    code = (
        "from bdpl.data import load_split;"
        f"print([e.text_a for e in load_split('citation_intent', 'train', seed=5, k=2, "
        f"data_dir={str(data_dir)!r})])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    here = load_split("citation_intent", "train", seed=5, k=2, data_dir=data_dir)
    assert out.strip() == str([e.text_a for e in here])


# ----------------------------------------------------------------------------- load_split errors


def test_load_split_errors(data_dir: Path) -> None:
    with pytest.raises(ConfigError, match="unknown split 'validation'"):
        load_split("sst2", "validation", data_dir=data_dir)
    with pytest.raises(InvalidTaskError):
        load_split("imdb", "train", data_dir=data_dir)
    custom = Task("mine", "<s1> <slot>.", {"a": "x", "b": "y"})
    with pytest.raises(ConfigError, match="read_dataset"):
        load_split(custom, "train", data_dir=data_dir)
    with pytest.raises(ConfigError, match="k must be"):
        load_split("sst2", "train", k=0, data_dir=data_dir)


def test_find_data_dir(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BDPL_DATA_DIR", str(data_dir))
    assert find_data_dir() == data_dir
    assert load_split("sst2", "train") == load_split("sst2", "train", data_dir=data_dir)
    monkeypatch.setenv("BDPL_DATA_DIR", str(tmp_path / "missing"))
    with pytest.raises(DataError, match="missing does not exist"):
        find_data_dir()
    monkeypatch.delenv("BDPL_DATA_DIR")
    # ../shared/data from the working directory
    (tmp_path / "shared" / "data").mkdir(parents=True)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    assert find_data_dir().resolve() == (tmp_path / "shared" / "data").resolve()
    # nothing anywhere: the error says how to fix it
    (tmp_path / "empty" / "checkout").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "empty" / "checkout")
    fake = tmp_path / "empty" / "checkout" / "bdpl" / "data" / "benchmarks.py"
    monkeypatch.setattr(bdpl.data.benchmarks, "__file__", str(fake))
    with pytest.raises(DataError, match="set BDPL_DATA_DIR"):
        find_data_dir()
