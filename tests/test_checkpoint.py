"""Prompt files: save, load, resume bit for bit, and files written by earlier versions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bdpl import checkpoint
from bdpl.errors import ConfigError
from bdpl.optimizer import Optimizer
from bdpl.tasks import Dataset, Example, get_task
from bdpl.testing import FakeBackend
from tests.test_optimizer import WORDS, make_optimizer, planted, sst2

# Files written by bdpl before moments became estimator-specific (format version 1), as its
# Optimizer.save wrote them: an Optimizer with candidates ["good", "bad", "film"],
# prompt_length=2, sample_size=2, batch_size=4, epochs=1, seed=0, fit on four sst2 examples;
# its next ask() drew ``NEXT_ASK``.
FIXTURES = Path(__file__).parent / "fixtures"
V1_FILES = {
    name: (FIXTURES / f"prompt_v1_{name}.json").read_text(encoding="utf-8")
    for name in ("loo", "reference")
}
NEXT_ASK = {"loo": [2, 2], "reference": [1, 2]}


def test_save_load_roundtrip_and_resume(tmp_path: Path) -> None:
    train = sst2(16)
    fake = FakeBackend(planted=planted(2, train, 3))
    opt = make_optimizer(
        fake,
        candidates=WORDS,
        prompt_length=3,
        sample_size=6,
        batch_size=8,
        epochs=2,
        estimator="reference",
        loss="hinge",
        learning_rate=0.01,
    )
    opt.fit(train)
    path = tmp_path / "prompt.json"
    opt.save(path)
    again = Optimizer.load(path, fake, cache=False)
    assert again.best_prompt == opt.best_prompt and again.task == opt.task
    assert again.settings() == opt.settings() and again.candidates == opt.candidates
    np.testing.assert_array_equal(again.probs, opt.probs)
    assert (
        json.loads(path.read_text())["distribution"]
        == opt.estimator.probs(
            opt.best_state  # type: ignore[arg-type]
        ).tolist()
    )
    # Resuming continues bit for bit.
    for _ in range(3):
        opt.step(list(train.examples))
        again.step(list(train.examples))
    np.testing.assert_array_equal(again.probs, opt.probs)
    assert again.evaluate(train) == opt.evaluate(train)
    path.write_text('{"format": "other"}')
    with pytest.raises(ConfigError, match="not a bdpl prompt"):
        Optimizer.load(path, fake, cache=False)


@pytest.mark.parametrize("estimator", ["loo", "reference"])
def test_a_version_1_file_still_loads_and_resumes(tmp_path: Path, estimator: str) -> None:
    path = tmp_path / "old.json"
    path.write_text(V1_FILES[estimator])
    old = json.loads(V1_FILES[estimator])
    opt = Optimizer.load(path, FakeBackend(), cache=False)
    assert opt.best_prompt == old["prompt"] == ["film", "film"]
    expected = {**old["settings"], "selection": "best-dev", "alpha": 0.05, "calibration": None}
    assert opt.settings() == expected and opt.candidates == old["candidates"]
    np.testing.assert_array_equal(opt.probs, old["distribution"])
    assert opt.ask()[0].tolist() == NEXT_ASK[estimator]  # the random state came back too
    state = opt.state.estimator
    if estimator == "loo":  # plain SGD: the zeros it used to save are dropped
        assert state.m is None and state.v is None
    else:
        assert state.m is not None and state.m.tolist() == old["state"]["m"]
        assert state.v is not None and state.v.tolist() == old["state"]["v"]


def test_a_loo_checkpoint_carries_no_moments(tmp_path: Path) -> None:
    train = sst2(8)
    for estimator, has_moments in (("loo", False), ("loo-rank", False), ("reference", True)):
        opt = make_optimizer(
            FakeBackend(),
            candidates=WORDS[:4],
            prompt_length=2,
            sample_size=2,
            epochs=1,
            estimator=estimator,
        )
        opt.fit(train)
        path = tmp_path / f"{estimator}.json"
        opt.save(path)
        data = json.loads(path.read_text())
        assert data["version"] == checkpoint.FORMAT_VERSION == 2
        for key in ("state", "best_state"):
            assert ("m" in data[key]) is has_moments and ("v" in data[key]) is has_moments
        again = Optimizer.load(path, FakeBackend(), cache=False)
        np.testing.assert_array_equal(again.probs, opt.probs)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("not json", "not JSON"),
        ('{"format": "other"}', "not a bdpl prompt"),
        ('{"format": "bdpl.prompt", "version": 99}', "version 99"),
        ('{"format": "bdpl.prompt", "version": 2, "prompt": []}', "malformed"),
    ],
)
def test_unreadable_files_are_config_errors(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        checkpoint.read(path)


def test_a_state_of_another_shape_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(V1_FILES["loo"])
    data = json.loads(V1_FILES["loo"])
    data["state"]["params"] = [[0.0, 0.0], [0.0, 0.0]]
    data["state"]["m"] = data["state"]["v"] = None
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="shape"):
        Optimizer.load(path, FakeBackend(), cache=False)


def test_task_roundtrip() -> None:
    task = Dataset(get_task("sst2"), (Example("a", label="0"),)).task
    assert checkpoint.task_from_json(checkpoint.task_to_json(task)) == task
