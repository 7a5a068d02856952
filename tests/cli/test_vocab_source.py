"""``vocab_source``: where a run's prompt candidates come from (train, pool, English words)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bdpl.cli.config import RunConfig, read_config
from bdpl.cli.runs import fit_run, load_data, vocabulary_of
from bdpl.data import load_split
from bdpl.errors import ConfigError
from bdpl.vocabulary import english_words, gather_vocabulary
from tests.cli.conftest import Run

SMALL = {"task": "sst2", "epochs": 1, "sample_size": 2, "batch_size": 16, "vocab_size": 30}


def candidates(run: Path) -> list[str]:
    return list(json.loads((run / "prompt.json").read_text())["candidates"])


def test_each_source_gives_its_own_candidates(tmp_path: Path) -> None:
    train = load_split("sst2", "train")
    runs = {}
    for source in ("train", "pool", "english"):
        config = RunConfig.build({**SMALL, "vocab_source": source, "test_rows": 4})
        fit_run(config, tmp_path / source, cache="off")
        runs[source] = candidates(tmp_path / source)
        assert read_config(tmp_path / source / "config.toml").vocab_source == source
    # The default is the optimizer's own vocabulary, as before the option existed.
    assert runs["train"] == list(gather_vocabulary(train, size=30))
    assert runs["english"] == list(english_words()[:30])
    pool = gather_vocabulary(train, unlabelled=load_split("sst2", "pool"), size=30)
    assert runs["pool"] == list(pool) and pool.counts() == {"pmi": 30}
    assert len({tuple(c) for c in runs.values()}) == 3


def test_the_random_baseline_searches_the_same_candidates(tmp_path: Path) -> None:
    config = RunConfig.build({**SMALL, "vocab_source": "english", "test_rows": 4})
    fit_run(config, tmp_path / "r", cache="off", method="random")
    assert candidates(tmp_path / "r") == list(english_words()[:30])


def test_pool_needs_a_preset_and_refuses_before_writing_anything(tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("text,label\ngood film,1\nbad film,0\nfine,1\nawful,0\n", encoding="utf-8")
    config = RunConfig.build(
        {"train": str(data), "dev": str(data), "template": "<s1> It was <slot>.",
         "verbalizer": {"0": "bad", "1": "good"}, "vocab_source": "pool"}
    )  # fmt: skip
    with pytest.raises(ConfigError, match="vocab_source 'pool' needs a preset task"):
        vocabulary_of(config, load_data(config))
    with pytest.raises(ConfigError, match="needs a preset task"):
        fit_run(config, tmp_path / "run", cache="off")
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="vocab_source"):
        RunConfig.build({"vocab_source": "wiki"})


def test_the_command_line_takes_the_source(bdpl: Run, tmp_path: Path) -> None:
    done = bdpl(
        "fit", "--task", "sst2", "--epochs", "1", "--sample-size", "2", "--vocab-size", "12",
        "--vocab-source", "english", "--test-rows", "4", "--out", "run", "-q",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert candidates(tmp_path / "run") == list(english_words()[:12])
    estimate = bdpl("estimate", "--config", "run/config.toml")
    assert estimate.returncode == 0, estimate.stderr
    assert json.loads(estimate.stdout)["queries"] > 0
    bad = bdpl("fit", "--task", "sst2", "--vocab-source", "wiki")
    assert bad.returncode == 2 and "wiki" in bad.stderr
