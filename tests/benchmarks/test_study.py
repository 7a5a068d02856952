"""The benchmark study's scripts run end to end on the fake backend (a tiny study), so they
cannot rot between real runs: every part runs, the report has each part's section with
numbers, and every figure it links is a valid PNG."""

from __future__ import annotations

import json
import math
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[2]
STUDY = ROOT / "benchmarks" / "study"
# Parts whose section must carry numbers on the fake backend (a case part that needs the real
# model may instead say that it did not run).
MINE = ("main", "reduced", "paper_tasks", "estimators", "efficiency")


def _parts() -> list[str]:
    return sorted(p.stem for p in (STUDY / "parts").glob("*.py") if not p.stem.startswith("_"))


def _study(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env["PYTHONPATH"] = str(ROOT)
    env["BDPL_CACHE_DIR"] = str(cwd / "user-cache")
    env["MPLBACKEND"] = "Agg"
    return subprocess.run(
        [sys.executable, str(STUDY / "study.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _sections(markdown: str) -> dict[str, str]:
    """Each ``## title`` section's text."""
    pieces = re.split(r"^## (.+)$", markdown, flags=re.MULTILINE)
    return {pieces[i].strip(): pieces[i + 1] for i in range(1, len(pieces) - 1, 2)}


def _is_png(path: Path) -> bool:
    """The PNG signature, then an IHDR chunk with a non-zero width and height."""
    data = path.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return False
    width, height = struct.unpack(">II", data[16:24])
    return width > 0 and height > 0 and data.rstrip(b"\x00")[-8:-4] == b"IEND"


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("study")
    done = _study("run", *_parts(), "--tiny", "--backend", "fake", "--out", str(out), cwd=out)
    assert done.returncode == 0, done.stderr[-3000:]
    return out


def _report(out: Path, name: str = "BENCHMARKS.md") -> str:
    done = _study("report", "--out", str(out), "--markdown", str(out / name), cwd=out)
    assert done.returncode == 0, done.stderr[-3000:]
    return (out / name).read_text(encoding="utf-8")


def test_every_part_runs_and_reports_numbers_and_figures(study: Path) -> None:
    markdown = _report(study)
    sections = _sections(markdown)
    sys.path.insert(0, str(STUDY))
    try:
        import importlib

        titles = {name: importlib.import_module(f"parts.{name}").TITLE for name in _parts()}
    finally:
        sys.path.remove(str(STUDY))
    for name, title in titles.items():
        assert title in sections, f"no section for part {name}"
        body = sections[title]
        has_numbers = re.search(r"\d+\.\d{2,}", body) is not None
        if name in MINE:
            assert has_numbers, f"part {name}'s section has no numbers"
        else:
            assert has_numbers or "Not run" in body, f"part {name}: no numbers, no reason"
    assert "Not a benchmark result" in markdown  # a fake run is labelled as one
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    for name in ("main", "reduced"):
        assert f"{name}_test.png" in " ".join(links)
    for link in links:
        assert _is_png(study / link), link
    # Every number is computed: the goal's count follows from the verdict rows above it.
    main = sections[titles["main"]]
    rows = [line for line in main.splitlines() if line.startswith("| ") and line.endswith("|")]
    assert any(line.rstrip(" |").endswith(("yes", "no")) for line in rows)
    assert re.search(r"\*\*Goal .*: beaten on \d+ of the \d+ paper tasks run", main)


def test_results_hold_the_documented_record_and_the_run_metadata(study: Path) -> None:
    sys.path.insert(0, str(STUDY))
    try:
        import common
    finally:
        sys.path.remove(str(STUDY))
    doc = json.loads((study / "results" / "reduced.json").read_text(encoding="utf-8"))
    assert {"machine", "versions", "commit", "commands", "started", "finished"} <= set(doc)
    assert doc["tiny"] is True and doc["backend"] == "fake"
    assert "--tiny --backend fake" in doc["commands"][-1]
    cells = common.load_results(study / "results", "reduced")
    assert cells and all(set(common.RECORD_FIELDS) == set(c) for c in cells)
    fits = [c for c in cells if c["method"] in ("bdpl", "random")]
    for cell in fits:
        assert cell["status"] == "done" and cell["steps"] > 0
        steps = [h for h in cell["history"] if h["kind"] == "step"]
        assert steps[-1]["paid_queries"] == cell["train_paid_queries"]
        assert "distribution" not in str(cell["history"])  # compacted
    # BDPL's distribution starts uniform over its candidates: the last step's mean entropy is
    # a number between one-hot (0) and uniform (log of the vocabulary size).
    for cell in (c for c in fits if c["method"] == "bdpl"):
        size = cell["config"]["vocab_size"]
        assert 0.0 <= cell["final_entropy"] <= math.log(size) + 1e-6
    # Seeds of one method differ (the split seeds are averaged over, not repeated).
    seeds = {c["data_seed"] for c in fits if c["method"] == "random"}
    assert len(seeds) == 2


def test_rerun_skips_finished_cells_and_report_needs_no_run_folders(study: Path) -> None:
    again = _study("run", "reduced", "--tiny", "--backend", "fake", "--out", str(study),
                   cwd=study)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert ": done" not in again.stderr and ": skipped" in again.stderr
    doc = json.loads((study / "results" / "reduced.json").read_text(encoding="utf-8"))
    assert len(doc["commands"]) == 2  # both invocations recorded
    first = _report(study, "first.md")
    copy = study.parent / (study.name + "-results-only")
    shutil.copytree(study / "results", copy / "results")
    second = _report(copy, "first.md")
    # The same report but for the line naming the results folder it was generated from.
    assert second.split("## Runs")[1] == first.split("## Runs")[1]


def test_only_runs_part_of_a_sweep_and_collect_runs_nothing(tmp_path: Path) -> None:
    out = str(tmp_path / "out")
    part = _study("run", "reduced", "--tiny", "--backend", "fake", "--out", out,
                  "--only", "data_seed=21", cwd=tmp_path)  # fmt: skip
    assert part.returncode == 0, part.stderr[-3000:]
    cells = json.loads((tmp_path / "out" / "results" / "reduced.json").read_text())["cells"]
    status = {(c["data_seed"], c["status"]) for c in cells}
    assert status == {(21, "done"), (13, "not run")}
    # The report says the run is partial; cells not run are not "failed".
    section = _sections(_report(tmp_path / "out"))["Reduced comparison (the default run)"]
    half = len(cells) // 2
    assert f"**A partial run:** {half} of the sweep's {len(cells)} cells have finished" in section
    assert "failed" not in section
    collected = _study("run", "reduced", "--tiny", "--backend", "fake", "--out", out,
                       "--collect", cwd=tmp_path)  # fmt: skip
    assert collected.returncode == 0 and ": done" not in collected.stderr
    again = json.loads((tmp_path / "out" / "results" / "reduced.json").read_text())["cells"]
    assert [c["status"] for c in again] == [c["status"] for c in cells]
    wrong = _study("run", "reduced", "--tiny", "--backend", "fake", "--out", out,
                   "--only", "data_seed=7", cwd=tmp_path)  # fmt: skip
    assert wrong.returncode == 2 and "--only data_seed" in wrong.stderr
    # A refused run leaves no trace in the record; a run writes its command before any cell.
    doc = json.loads((tmp_path / "out" / "results" / "reduced.json").read_text())
    assert not any("data_seed=7" in c for c in doc["commands"])
    assert any("data_seed=21" in c for c in doc["commands"])


def test_a_killed_run_keeps_its_command_and_a_collect_dates_its_cells(tmp_path: Path) -> None:
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env.update(PYTHONPATH=str(ROOT), BDPL_CACHE_DIR=str(tmp_path / "user-cache"), MPLBACKEND="Agg")
    args = ["run", "paper_tasks", "--tiny", "--backend", "fake:latency=0.05", "--out", str(out)]
    proc = subprocess.Popen([sys.executable, str(STUDY / "study.py"), *args], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    ledgers = out / "runs" / "paper_tasks" / "cells"
    try:
        for _ in range(600):  # at most 60 s: kill it once its first cell has paid
            paid = any(f.stat().st_size for f in ledgers.glob("*/ledger.jsonl"))
            if paid or proc.poll() is not None:  # (a ledger is made before its first entry)
                break
            time.sleep(0.1)
        assert proc.poll() is None, "the run ended before it could be killed"
        proc.kill()
    finally:
        proc.wait(timeout=30)
    doc = json.loads((out / "results" / "paper_tasks.json").read_text())
    assert doc["commands"][-1].endswith(shlex.join(args)) and "finished" not in doc
    collected = _study("run", "paper_tasks", "--tiny", "--backend", "fake", "--out", str(out),
                       "--collect", cwd=tmp_path)  # fmt: skip
    assert collected.returncode == 0, collected.stderr[-3000:]
    doc = json.loads((out / "results" / "paper_tasks.json").read_text())
    assert doc["commands"][0].endswith(shlex.join(args))
    sys.path.insert(0, str(STUDY))
    try:
        import sweeps
    finally:
        sys.path.remove(str(STUDY))
    first, last = sweeps.ledger_span(out / "runs" / "paper_tasks")
    assert doc["started"] <= first and doc["finished"] == last  # the cells' times, not now()


def test_an_unknown_part_is_refused_before_anything_runs(tmp_path: Path) -> None:
    done = _study("run", "reduced", "no-such-part", "--out", str(tmp_path), cwd=tmp_path)
    assert done.returncode != 0 and "unknown part 'no-such-part'" in done.stderr
    assert not (tmp_path / "runs").exists()


def test_efficiency_measures_paid_queries_even_when_the_shared_cache_holds_them(
    study: Path,
) -> None:
    # Its fake answers are in the shared cache by now (the module's run): a rerun from an
    # empty run folder must pay them again through its own cache, or its throughput would be
    # a rate of cache hits.
    shutil.rmtree(study / "runs" / "efficiency")
    again = _study("run", "efficiency", "--tiny", "--backend", "fake", "--out", str(study),
                   cwd=study)  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    cells = json.loads((study / "results" / "efficiency.json").read_text())["cells"]
    assert cells and all(c["status"] == "done" and c["paid_queries"] > 0 for c in cells)
    assert (study / "runs" / "efficiency" / "cache").is_dir()
    report = _report(study, "efficiency.md")
    assert "| `fake` |" in report
    # The comparison's total wall time is the sum over all its cells, repeats included.
    reduced = json.loads((study / "results" / "reduced.json").read_text())["cells"]
    minutes = sum(c["wall_seconds"] for c in reduced if c["status"] == "done") / 60
    assert (
        f"the {len(reduced)} finished cells that recorded their wall time took "
        f"{minutes:.1f} minutes" in report
    )
