"""``bdpl sweep`` as a user runs it: a folder of run folders, a table, one ledger total."""

from __future__ import annotations

import json
import socket
from pathlib import Path

from tests.cli.conftest import Run

SWEEP = """
[base]
backend = "fake"
epochs = 1
sample_size = 4
batch_size = 8
vocab_size = 20
test_rows = 8
[grid]
task = ["sst2"]
seed = [0, 1]
"""


def test_sweep_writes_a_table_and_the_ledger_sums_every_cell(bdpl: Run, tmp_path: Path) -> None:
    (tmp_path / "s.toml").write_text(SWEEP, encoding="utf-8")
    done = bdpl("sweep", "s.toml", "--workers", "0", "--cache", "cache")
    assert done.returncode == 0, done.stderr
    assert "sweep folder: sweeps/s  (2 run, 0 skipped, 0 failed)" in done.stdout
    table = json.loads((tmp_path / "sweeps/s/results.json").read_text(encoding="utf-8"))
    assert [g["cells"] for g in table["groups"]] == [2]
    paid = sum(r["paid_queries"] for r in table["cells"])
    ledger = bdpl("ledger", "sweeps/s", "--json")
    assert ledger.returncode == 0, ledger.stderr
    assert sum(row["billed_queries"] for row in json.loads(ledger.stdout)) == paid > 0
    again = bdpl("sweep", "s.toml", "--workers", "0", "--cache", "cache")
    assert "(0 run, 2 skipped, 0 failed)" in again.stdout


def test_bad_sweeps_are_one_line_errors(bdpl: Run, tmp_path: Path) -> None:
    (tmp_path / "bad.toml").write_text("[grid]\nseed = 3\n", encoding="utf-8")
    bad = bdpl("sweep", "bad.toml")
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "bdpl: error: bad.toml: grid.seed: give a non-empty list, e.g. seed = [0, 1]"
    )
    (tmp_path / "s.toml").write_text(SWEEP, encoding="utf-8")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = bdpl("sweep", "s.toml", "--cache", f"redis://127.0.0.1:{port}/0")
    assert down.returncode == 2
    assert down.stderr.startswith(
        f"bdpl: error: cannot reach the Redis cache at redis://127.0.0.1:{port}/0"
    )
    assert not (tmp_path / "sweeps").exists()
