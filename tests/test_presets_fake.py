"""Every preset task loads its benchmark data and runs end-to-end on the fake backend."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from bdpl.data import load_split
from bdpl.optimizer import Optimizer
from bdpl.tasks import PRESETS
from bdpl.testing import FakeBackend, Planted
from bdpl.vocab import build_vocabulary


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_end_to_end(name: str, data_dir: Path) -> None:
    train = load_split(name, "train", data_dir=data_dir)
    dev = load_split(name, "dev", data_dir=data_dir)
    texts = [t for e in train.examples for t in (e.text_a, e.text_b) if t]
    candidates = build_vocabulary(texts, size=20, min_count=1, min_freq=1)
    assert len(candidates) >= 4, candidates
    planted = Planted.for_dataset([train, dev], candidates, prompt_length=3, seed=1)
    fake = FakeBackend(planted=planted)
    opt = Optimizer(
        fake,
        candidates=candidates,
        prompt_length=3,
        sample_size=4,
        batch_size=16,
        epochs=2,
        cache=False,  # the test counts backend calls
    )
    result = opt.fit(train, dev)
    assert result.stop_reason == "epochs" and result.selection is not None
    # Two epochs may not learn enough to pass the selection: the template is kept then.
    assert len(result.prompt) == (0 if result.selection.kept_manual else 3)
    assert result.selection.candidate and len(result.selection.candidate) == 3
    assert result.dev_score is not None and math.isfinite(result.dev_score)
    assert 0 < result.queries == sum(len(c) for c in fake.calls)
    # The task's metric sees the planted structure: the best prompt beats no prompt.
    best, none = opt.evaluate(dev, planted.best_prompt), opt.evaluate(dev, [])
    assert best > none and best >= 0.9
