"""Data loading: every benchmark layout, user files, k-shot sampling and label errors."""

from __future__ import annotations

import doctest
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import bdpl.data.benchmarks
import bdpl.data.files
import bdpl.data.sampling
from bdpl.data import (
    PRESET_DATA,
    find_data_dir,
    load_split,
    make_dataset,
    read_dataset,
    read_examples,
    sample_k_shot,
)
from bdpl.errors import ConfigError, DataError, InvalidTaskError
from bdpl.tasks import PRESETS, Example, Task, get_task

SEEDS = (13, 21, 42, 87, 100)
ROOT = Path(__file__).resolve().parents[1]


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


# ----------------------------------------------------------------------------- sample_k_shot


def _examples(counts: dict[str, int]) -> list[Example]:
    return [Example(f"{label} {i}", label=label) for label, n in counts.items() for i in range(n)]


def test_sample_k_shot_is_stratified_seeded_and_ordered() -> None:
    examples = _examples({"0": 10, "1": 30})
    sample = sample_k_shot(examples, "sst2", 4, seed=3)
    assert Counter(e.label for e in sample) == {"0": 4, "1": 4}
    assert sample == sorted(sample, key=examples.index)  # input order kept
    assert sample_k_shot(examples, "sst2", 4, seed=3) == sample
    assert sample_k_shot(examples, "sst2", 4, seed=4) != sample
    # A short class gives all it has.
    assert Counter(e.label for e in sample_k_shot(examples, "sst2", 12, seed=0)) == {
        "0": 10,
        "1": 12,
    }


@pytest.mark.parametrize("k", [0, -1, 1.5, True])
def test_sample_k_shot_rejects_bad_k(k: object) -> None:
    with pytest.raises(ConfigError, match="k must be"):
        sample_k_shot(_examples({"0": 2}), "sst2", k, seed=0)  # type: ignore[arg-type]


def test_sample_k_shot_rejects_unknown_labels() -> None:
    with pytest.raises(DataError, match=r"example 1: label '7'"):
        sample_k_shot([Example("a", label="0"), Example("b", label="7")], "sst2", 1, seed=0)


# ----------------------------------------------------------------------------- user files


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


def test_docstring_examples() -> None:
    for module in (bdpl.data.files, bdpl.data.sampling, bdpl.data.benchmarks):
        result = doctest.testmod(module)
        assert result.failed == 0
    assert doctest.testmod(bdpl.data.files).attempted > 0
