"""The presets' 16-shot splits shipped in the package equal those drawn from the data directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bdpl.data import find_data_dir, load_split
from bdpl.data.benchmarks import PRESET_DATA, SHIPPED_SEEDS, shipped_split
from bdpl.tasks import get_task

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(PRESET_DATA))
def test_shipped_splits_equal_the_data_directory(name: str) -> None:
    root = find_data_dir()
    for seed in SHIPPED_SEEDS:
        for split in ("train", "dev"):
            shipped = shipped_split(get_task(name), split, seed=seed, k=16)
            assert shipped is not None, f"{name} {split} seed {seed} is not shipped"
            drawn = load_split(name, split, seed=seed, data_dir=root)
            assert shipped.examples == drawn.examples
            assert load_split(name, split, seed=seed).examples == drawn.examples


def test_train_and_dev_need_no_data_directory(tmp_path: Path) -> None:
    code = (
        "import bdpl\n"
        "from bdpl.errors import DataError\n"
        "print(len(bdpl.load_split('sst2', 'train')),"
        " len(bdpl.load_split('rte', 'dev', seed=87)))\n"
        "try:\n    bdpl.load_split('sst2', 'test')\nexcept DataError as e:\n    print('test:', e)\n"
    )
    env = {**os.environ, "BDPL_DATA_DIR": str(tmp_path / "none"), "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "32 32"
    assert lines[1].startswith("test: benchmark data directory") and "does not exist" in lines[1]


def test_other_seeds_and_k_are_not_shipped() -> None:
    assert shipped_split(get_task("sst2"), "train", seed=7, k=16) is None
    assert shipped_split(get_task("sst2"), "train", seed=13, k=8) is None
