"""The benchmark study's case-study parts: their reports compute what they show from the
results, and the parts that run themselves (budget, transfer, explanations) work on fakes."""

from __future__ import annotations

import importlib
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

STUDY = Path(__file__).resolve().parents[2] / "benchmarks" / "study"
CASES = ("data_size", "prompt_length", "vocabulary", "sample_size", "budget", "loss",
         "learning_rate", "placement", "transfer", "explanations", "few_candidates")  # fmt: skip

pytest.importorskip("matplotlib")


def study_module(name: str) -> Any:
    """A module of ``benchmarks/study`` (``sweeps``, ``parts.paper_tasks``...), imported as
    ``study.py`` imports it."""
    sys.path.insert(0, str(STUDY))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(STUDY))


@pytest.fixture(scope="module")
def parts() -> Iterator[dict[str, Any]]:
    """The case-study part modules, imported as ``study.py`` imports them."""
    sys.path.insert(0, str(STUDY))
    try:
        yield {name: importlib.import_module(f"parts.{name}") for name in CASES}
    finally:
        sys.path.remove(str(STUDY))


def cell(seed: int, values: dict[str, Any], dev: tuple[float, float],
         test: tuple[float, float], **more: Any) -> dict[str, Any]:  # fmt: skip
    """A finished record as the study writes it (the keys the reports read)."""
    config = {"task": "sst2", "backend": "local", "calibration": "content-free", "epochs": 10,
              "test_rows": 200, "data_seed": seed, "vocab_size": 200, **values}  # fmt: skip
    return {
        "cell": ",".join(f"{k}={v}" for k, v in values.items()) + f",data_seed={seed}",
        "status": "done", "values": {**values, "data_seed": seed}, "config": config,
        "metric": "accuracy", "dev_manual": dev[0], "dev_learned": dev[1],
        "test_manual": test[0], "test_learned": test[1], "paid_queries": 100,
        "cached_queries": 20, "wall_seconds": 60.0, "final_entropy": 5.0 - seed / 10,
        "history": [], **more,
    }  # fmt: skip


def write(folder: Path, part: str, doc: dict[str, Any]) -> Path:
    results = folder / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"{part}.json").write_text(json.dumps(doc), encoding="utf-8")
    return results


def rows_of(markdown: str, first: str) -> list[list[str]]:
    """The table rows whose first cell is ``first``."""
    out = []
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first:
            out.append(cells)
    return out


def test_a_factor_report_shows_mean_and_std_over_seeds(
    parts: dict[str, Any], tmp_path: Path
) -> None:
    records = [
        cell(13, {"k": 4}, (0.5, 0.6), (0.55, 0.65)),
        cell(21, {"k": 4}, (0.5, 0.8), (0.55, 0.55)),
        cell(13, {"k": 8}, (0.5, 0.7), (0.60, 0.80)),
        cell(21, {"k": 8}, (0.5, 0.7), (0.60, 0.70)),
        {**cell(42, {"k": 8}, (0.5, 0.9), (0.6, 0.9)), "status": "failed", "error": "boom"},
    ]
    results = write(tmp_path, "data_size", {"cells": records})
    text = parts["data_size"].report(results, tmp_path / "figures")
    assert text.startswith("## Case study: training data size")
    [k4] = rows_of(text, "4")
    # runs, dev manual, dev learned, test manual, test learned, gain, entropy, queries, minutes
    assert k4[1:] == ["2", "0.500 ± 0.000", "0.700 ± 0.141", "0.550 ± 0.000", "0.600 ± 0.071",
                      "0.050 ± 0.071", "3.300 ± 0.566", "120", "2.0"]  # fmt: skip
    [k8] = rows_of(text, "8")
    assert k8[1] == "2" and k8[3] == "0.700 ± 0.000" and k8[5] == "0.750 ± 0.071"
    # k is data, not a setting (dev grows with it): the report says so instead of choosing.
    assert "Chosen on dev" not in text and "dev does not choose it here" in text
    assert "5 runs (4 finished), data seeds 13, 21, 42" in text
    assert "Not finished: k=8,data_seed=42." in text
    assert (tmp_path / "figures" / "data_size.png").stat().st_size > 1000


def test_two_factors_and_named_values(parts: dict[str, Any], tmp_path: Path) -> None:
    records = [
        cell(13, {"vocab_source": "pool", "vocab_size": 25}, (0.5, 0.6), (0.5, 0.6)),
        cell(13, {"vocab_source": "pool", "vocab_size": 200}, (0.5, 0.9), (0.5, 0.7)),
        cell(13, {"vocab_source": "english", "vocab_size": 25}, (0.5, 0.5), (0.5, 0.5)),
    ]
    text = parts["vocabulary"].report(write(tmp_path, "vocabulary", {"cells": records}),
                                      tmp_path / "f")  # fmt: skip
    assert [r[:2] for r in rows_of(text, "pool")] == [["pool", "25"], ["pool", "200"]]
    assert rows_of(text, "english")[0][4] == "0.500 (1 seed)"  # one value: no spread shown
    assert "vocab_source = pool, vocab_size = 200" in text
    placement = parts["placement"]
    records = [cell(13, {"template": t}, (0.5, 0.6), (0.5, 0.6)) for t in placement.PLACES]
    text = placement.report(write(tmp_path, "placement", {"cells": records}), tmp_path / "f")
    assert len(rows_of(text, "before the slot: `<s1> It was <prompt> <slot>.`")) == 1
    assert (
        parts["loss"]
        .report(tmp_path / "none", tmp_path / "f")
        .startswith("## Case study: loss\n\n_Not run")
    )


def test_few_candidates_chooses_the_count_on_dev_and_tests_the_gaps(
    parts: dict[str, Any], tmp_path: Path
) -> None:
    def fit(seed: int, size: int, method: str, dev: float, test: float) -> dict[str, Any]:
        values = {"task": "sst2", "vocab_size": size, "method": method}
        return cell(seed, values, (0.6, dev), (0.7, test), task="sst2", method=method)

    records = [
        fit(13, 25, "bdpl", 0.8, 0.80), fit(21, 25, "bdpl", 0.8, 0.82),
        fit(13, 25, "random", 0.7, 0.70), fit(21, 25, "random", 0.7, 0.72),
        # Better on test, worse on dev: dev chooses 25 all the same.
        fit(13, 200, "bdpl", 0.6, 0.90), fit(21, 200, "bdpl", 0.6, 0.90),
        fit(13, 200, "random", 0.7, 0.95), fit(21, 200, "random", 0.7, 0.95),
    ]  # fmt: skip
    part = parts["few_candidates"]
    text = part.report(write(tmp_path, "few_candidates", {"cells": records}), tmp_path / "f")
    assert part.chosen_size(records, "sst2") == 25
    [bdpl25] = [r for r in rows_of(text, "sst2") if r[1:3] == ["25", "bdpl"]]
    assert bdpl25[5:8] == ["0.800 ± 0.000", "0.700 ± 0.000", "0.810 ± 0.014"]
    [verdict] = [r for r in rows_of(text, "sst2") if len(r) == 7]
    # test 0.81 against the template's 0.70 and random's 0.71; the stds are at most 0.014
    assert verdict[1:] == ["25", "0.800 ± 0.000", "0.810 ± 0.014", "+0.110 (> std)",
                           "+0.100 (> std)", "yes"]  # fmt: skip
    assert "more than one std on 1 of 1 tasks (sst2)" in text
    assert "25 candidates 0.800, 200 candidates 0.600" in text and "would choose 25" in text
    assert (tmp_path / "f" / "few_candidates.png").stat().st_size > 1000
    # Random search beating bdpl at the chosen count is a "no", whatever 200 would show.
    records[2:4] = [fit(13, 25, "random", 0.7, 0.81), fit(21, 25, "random", 0.7, 0.83)]
    text = part.report(write(tmp_path, "few_candidates", {"cells": records}), tmp_path / "f")
    assert "-0.010" in text and "more than one std on 0 of 1 tasks." in text


def test_paper_tasks_count_the_goal_with_the_reduced_runs_tasks(tmp_path: Path) -> None:
    paper_tasks = study_module("parts.paper_tasks")

    def fit(task: str, seed: int, method: str, dev: float, test: float) -> dict[str, Any]:
        values = {"task": task, "data_seed": seed, "method": method}
        return {"cell": ",".join(f"{k}={v}" for k, v in values.items()), "status": "done",
                "task": task, "data_seed": seed, "seed": 0, "method": method,
                "estimator": "loo", "calibration": "content-free", "backend": "local",
                "metric": "accuracy", "dev": dev, "test": test, "history": []}  # fmt: skip

    def comparison(task: str, bdpl: tuple[float, float]) -> list[dict[str, Any]]:
        return [fit(task, s, m, 0.6, t + s / 1000)
                for s in (13, 21) for m, t in (("manual", 0.5), ("random", 0.6), ("bdpl", bdpl[0]))
                ] + [fit(task, 42, "bdpl", 0.6, bdpl[1])]  # fmt: skip

    reduced = [*comparison("sst2", (0.9, 0.9)), *comparison("cola", (0.5, 0.5))]
    write(tmp_path, "reduced", {"cells": reduced})
    # rte: bdpl 0.9 against 0.5 and 0.6 (clear); qnli: below random. sst2 wins in `reduced`.
    mine = [*comparison("rte", (0.9, 0.9)), *comparison("qnli", (0.55, 0.55))]
    mine.append({**fit("rte", 42, "random", 0.6, 0.6), "status": "not run"})
    # One seed has no spread: a large gap on sciie's only seed is not a clear win.
    mine += [fit("sciie", 13, m, 0.6, t) for m, t in (("manual", 0.5), ("random", 0.6),
                                                       ("bdpl", 0.9))]  # fmt: skip
    sweep = {"base": {"epochs": 3}, "when": {"task": {"sciie": {"max_input_tokens": 256}}}}
    doc = {"cells": mine, "sweep_config": sweep}
    text = paper_tasks.report(write(tmp_path, "paper_tasks", doc), tmp_path / "f")
    assert "Settings: epochs 3; task sciie only: max_input_tokens 256; split seeds" in text
    [sciie] = rows_of(text, "sciie")[1:]
    assert sciie[4:] == ["+0.400", "+0.300", "no"]
    assert "beaten on 1 of the 3 paper tasks run (rte); not met." in text
    assert (
        "with the tasks only `reduced` ran: beaten on 2 of the 5 paper tasks run (sst2, rte)"
        in text
    )
    assert "**A partial run:** 17 of the sweep's 18 cells have finished" in text
    # With no task only `reduced` ran, there is no second count.
    write(tmp_path, "reduced", {"cells": comparison("rte", (0.1, 0.1))})
    text = paper_tasks.report(tmp_path / "results", tmp_path / "f")
    assert text.count("**Goal") == 1


def test_the_sweep_parts_shrink_to_one_seed_and_one_epoch(parts: dict[str, Any]) -> None:
    from bdpl.cli.config import read_toml
    from bdpl.sweep import Sweep

    for name in ("data_size", "prompt_length", "vocabulary", "sample_size", "loss",
                 "learning_rate", "placement", "few_candidates"):  # fmt: skip
        part = parts[name]
        full = read_toml(STUDY / part.SWEEP, "sweep file")
        assert full["base"]["backend"] == "local" and full["grid"]["data_seed"] == [13, 21, 42]
        small = part.tiny(full)
        assert small["grid"]["data_seed"] == [13] and small["base"]["epochs"] == 1
        cells = Sweep.build(small["base"], small["grid"]).cells
        assert 2 <= len(cells) < len(Sweep.build(full["base"], full["grid"]).cells)


def test_only_hyperpartisan_is_cut_and_a_fake_or_tiny_run_still_builds(
    parts: dict[str, Any],  # keeps benchmarks/study importable while the test runs
) -> None:
    from bdpl.sweep import Sweep

    study = study_module("study")
    part = study.load("paper_tasks")

    def cut(backend: str | None, tiny: bool) -> dict[str, Any]:
        config = study.sweep_config(part, backend, tiny)
        when = config.get("when")
        cells = Sweep.build(config["base"], config["grid"], config.get("budget"), when).cells
        return {c.name: c.config.max_input_tokens for c in cells}

    full = cut(None, False)
    assert len(full) == 45
    assert {n for n, v in full.items() if v == 256} == {
        n for n in full if n.startswith("task=hyperpartisan,")
    }
    assert sum(v is None for v in full.values()) == 36
    # The fake takes no cut: --backend fake drops it (and the tiny grid has no HyperPartisan).
    assert set(cut("fake", False).values()) == {None}
    assert len(cut(None, True)) < 45 and set(cut(None, True).values()) == {None}


def test_budget_curve_keeps_the_best_dev_prompt_so_far(parts: dict[str, Any]) -> None:
    history = [
        {"kind": "step", "paid_queries": 90, "cached_queries": 10},
        {"kind": "epoch", "epoch": 0, "dev_metric": 0.6, "prompt": ["a"]},
        {"kind": "step", "paid_queries": 150, "cached_queries": 50},
        {"kind": "epoch", "epoch": 1, "dev_metric": 0.5, "prompt": ["b"]},
        {"kind": "step", "paid_queries": 250, "cached_queries": 50},
        {"kind": "epoch", "epoch": 2, "dev_metric": 0.6, "prompt": ["c"]},  # a tie: the later
    ]
    points = parts["budget"].curve(history)
    assert [(p["queries"], p["best_dev"], p["kept"]) for p in points] == [
        (100, 0.6, ["a"]), (200, 0.6, ["a"]), (300, 0.6, ["c"])
    ]  # fmt: skip


def test_budget_report_averages_the_curves_over_seeds(
    parts: dict[str, Any], tmp_path: Path
) -> None:
    def curve(test: float) -> list[dict[str, Any]]:
        first = {"epoch": 0, "queries": 100, "dev": 0.5, "best_dev": 0.5, "test": 0.5}
        return [first, {"epoch": 1, "queries": 300, "dev": 0.7, "best_dev": 0.7, "test": test}]

    records = [cell(13, {}, (0.5, 0.7), (0.5, 0.6), curve=curve(0.6)),
               cell(21, {}, (0.5, 0.7), (0.5, 0.8), curve=curve(0.8))]  # fmt: skip
    text = parts["budget"].report(write(tmp_path, "budget", {"cells": records}), tmp_path / "f")
    assert rows_of(text, "1")[0][1:] == ["2", "100", "0.500 ± 0.000", "0.500 ± 0.000",
                                         "0.500 ± 0.000"]  # fmt: skip
    assert rows_of(text, "2")[0][2:] == ["300", "0.700 ± 0.000", "0.700 ± 0.000",
                                         "0.700 ± 0.141"]  # fmt: skip
    assert "120 queries on average; test learned 0.700 ± 0.141" in text
    assert (tmp_path / "f" / "budget.png").is_file()


def test_transfer_report_tables(parts: dict[str, Any], tmp_path: Path) -> None:
    transfer = parts["transfer"]
    model = [
        {"data_seed": s, "learned_on": "local", "evaluated_on": "openai:smollm2", "prompt": ["x"],
         "source": {"manual": 0.6, "learned": a}, "moved": {"manual": 0.6, "learned": b}}
        for s, a, b in ((13, 0.70, 0.68), (21, 0.80, 0.80))
    ]  # fmt: skip
    calibration = [
        {"data_seed": s, "learned_with": a, "evaluated_with": b, "prompt": ["x"],
         "manual": {"none": 0.5, "batch": 0.6}[b] + s / 1000, "learned": 0.7 + s / 100}
        for s in (13, 21) for a in ("none", "batch") for b in ("none", "batch")
    ]  # fmt: skip
    doc = {"cells": [cell(13, {"calibration": "none"}, (0.5, 0.6), (0.5, 0.6))],
           "model_transfer": model, "calibration_transfer": calibration,
           "vllm": {"ran": True, "startup_s": 31.5, "why": None}}  # fmt: skip
    text = transfer.report(write(tmp_path, "transfer", doc), tmp_path / "f")
    [row] = rows_of(text, "`local` → `openai:smollm2`")
    assert row[1:] == ["2", "0.600 ± 0.000", "0.750 ± 0.071", "0.600 ± 0.000", "0.740 ± 0.085",
                       "0.010 ± 0.014"]  # fmt: skip
    assert rows_of(text, "learned with `none`")[0][1:] == ["0.870 ± 0.057"] * 2
    assert rows_of(text, "template alone")[0][1:] == ["0.517 ± 0.006", "0.617 ± 0.006"]
    assert "started in 31.5 s" in text and "skipped" not in text
    doc["vllm"] = {"ran": False, "why": "vLLM unavailable: no venv"}
    text = transfer.report(write(tmp_path, "transfer", doc), tmp_path / "f")
    assert "**The vLLM leg was skipped**: vLLM unavailable: no venv." in text
    assert transfer.other_fake("fake") == "fake:seed=1"
    assert transfer.other_fake("fake:noise=0.2,seed=4") == "fake:noise=0.2,seed=5"


def test_explanations_report(parts: dict[str, Any], tmp_path: Path) -> None:
    def position(i: int, phrase: str, removed: float) -> dict[str, Any]:
        return {"position": i, "phrase": phrase, "probability": 0.25, "top": [[phrase, 0.25],
                ["y", 0.1]], "removed_change": removed, "replacement": "y",
                "replaced_change": -0.1, "removed_score": 0.0, "replaced_score": 0.0}  # fmt: skip

    explanation = {"prompt": ["good", "film"], "metric": "accuracy", "score": 0.8,
                   "manual_score": 0.6, "queries": 96, "kept_manual": False, "split": "dev",
                   "positions": [position(0, "good", -0.2), position(1, "film", 0.0)]}  # fmt: skip
    records = [cell(13, {}, (0.6, 0.8), (0.5, 0.7), explanation=explanation)]
    text = parts["explanations"].report(
        write(tmp_path, "explanations", {"cells": records}), tmp_path / "f"
    )
    assert rows_of(text, "13")[0][1:] == ["`good` `film`", "no", "0.600", "0.800", "96"]
    assert rows_of(text, "13")[1][1:] == ["1", "`good`", "0.250", "`good` 0.250, `y` 0.100",
                                          "-0.200", "`y`", "-0.100"]  # fmt: skip
    assert (
        "Over 2 positions: removing the phrase lowered the dev metric at 1, raised it at 0 "
        "and left it unchanged at 1 (mean change -0.100 ± 0.141)" in text
    )
    assert "p = 0.0050" in text


# ------------------------------------------------------------------ the self-running parts
def test_transfer_runs_between_two_fakes(parts: dict[str, Any], tmp_path: Path) -> None:
    transfer = parts["transfer"]
    transfer.run(tmp_path, "fake", True)
    doc = json.loads((tmp_path / "results" / "transfer.json").read_text())
    records = {r["config"]["calibration"]: r for r in doc["cells"]}
    assert set(records) == {"none", "content-free", "batch"}
    assert all(r["status"] == "done" for r in records.values())
    assert doc["vllm"]["ran"] is False and "fake:seed=1" in doc["vllm"]["why"]
    # Scored with the calibration it was learned with, a prompt scores what its run reported.
    rows = doc["calibration_transfer"]
    assert len(rows) == 9
    for r in rows:
        own = records[r["learned_with"]]
        if r["evaluated_with"] == r["learned_with"]:
            assert r["learned"] == own["test_learned"] and r["manual"] == own["test_manual"]
    there, back = doc["model_transfer"]
    assert (there["learned_on"], there["evaluated_on"]) == ("fake", "fake:seed=1")
    assert (back["learned_on"], back["evaluated_on"]) == ("fake:seed=1", "fake")
    assert there["source"]["learned"] == records["content-free"]["test_learned"]
    assert there["moved"]["manual"] != there["source"]["manual"]  # another model answered
    again = tmp_path / "runs" / "transfer-back" / "cells"
    assert [p.name for p in again.iterdir()] == ["data_seed=13"]
    metrics = json.loads((again / "data_seed=13" / "metrics.json").read_text())
    assert metrics["test"]["learned"] == back["source"]["learned"]
    assert "base_url" not in (again / "data_seed=13" / "config.toml").read_text()
    text = transfer.report(tmp_path / "results", tmp_path / "figures")
    assert "**The vLLM leg was skipped**" in text and "`fake` → `fake:seed=1`" in text
    # A second run reuses every finished fit and writes the same numbers.
    transfer.run(tmp_path, "fake", True)
    assert json.loads((tmp_path / "results" / "transfer.json").read_text())[
        "model_transfer"] == doc["model_transfer"]  # fmt: skip


def test_budget_and_explanations_run_on_the_fake(parts: dict[str, Any], tmp_path: Path) -> None:
    parts["budget"].run(tmp_path, "fake", True)
    [record] = json.loads((tmp_path / "results" / "budget.json").read_text())["cells"]
    assert record["status"] == "done" and len(record["curve"]) == 2
    # After the last epoch the kept prompt is the run's own: the same test score.
    assert record["curve"][-1]["kept"] == record["prompt"]
    assert record["curve"][-1]["test"] == record["test_learned"]
    parts["explanations"].run(tmp_path, "fake", True)
    [record] = json.loads((tmp_path / "results" / "explanations.json").read_text())["cells"]
    explanation = record["explanation"]
    assert explanation["prompt"] == record["prompt"] and explanation["split"] == "dev"
    assert len(explanation["positions"]) == 3
    assert (Path(record["run"]) / "explanation.json").is_file()
    text = parts["explanations"].report(tmp_path / "results", tmp_path / "figures")
    assert len(rows_of(text, "13")) == 4  # the prompt, then its 3 positions


def test_the_server_leg_through_an_openai_compatible_server(
    parts: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the vLLM leg does, against bdpl's fake OpenAI server: score there for free, learn
    there, and learn again when the server comes back on another port."""
    pytest.importorskip("openai")
    from tests.backends.openai_fakes import FaultServer

    transfer = parts["transfer"]
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    transfer.run(tmp_path, "fake", True)
    doc = json.loads((tmp_path / "results" / "transfer.json").read_text())
    [record] = [r for r in doc["cells"] if r["config"]["calibration"] == transfer.MOVED]
    urls = []
    for _ in range(2):
        with FaultServer() as server, transfer._api_key():
            urls.append(server.base_url)
            row = transfer.move(tmp_path, record, "openai:my-model", server.base_url)
            assert row["moved"]["rows"] == 16 and row["evaluated_on"] == "openai:my-model"
            [back] = transfer.learn_on(tmp_path, [record], "openai:my-model", server.base_url)
            assert back["status"] == "done" and back["config"]["base_url"] == server.base_url
            assert back["config"]["price_input"] == 0.0
            assert any(path.endswith("/completions") for path, _, _ in server.seen)
    assert urls[0] != urls[1]  # the second start refitted: its run names the new server
    assert "OPENAI_API_KEY" not in os.environ  # the placeholder is removed


def test_a_collect_dates_the_cells_from_their_ledgers(tmp_path: Path) -> None:
    sweeps = study_module("sweeps")
    assert sweeps.ledger_span(tmp_path) is None  # no cell has run
    for cell_name, times in (("a", ["2026-11-30T12:21:38.5Z", "2026-11-30T12:40:00.0Z"]),
                             ("b", ["2026-11-30T12:10:00.9Z", "2026-11-30T13:22:37.1Z",
                                    "2026-11-30T13:00:00Z"])):  # fmt: skip
        folder = tmp_path / "cells" / cell_name
        folder.mkdir(parents=True)
        lines = [json.dumps({"kind": "intent", "time": t}) for t in times]
        (folder / "ledger.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    # The first and last line of each ledger, the earliest and the latest of them.
    assert sweeps.ledger_span(tmp_path) == (
        "2026-11-30T12:10:00+00:00",
        "2026-11-30T13:00:00+00:00",
    )


def test_a_part_run_takes_the_whole_sweeps_budget_share(tmp_path: Path) -> None:
    from bdpl.cli.config import read_config

    sweeps = study_module("sweeps")
    config = {"base": {"backend": "fake", "task": "sst2", "epochs": 1, "sample_size": 2,
                       "test_rows": 4},
              "grid": {"data_seed": [13, 21]}, "budget": {"max_queries": 100_000}}  # fmt: skip
    sweeps.run("part", config, tmp_path, 0, only={"data_seed": [13]}, cache=tmp_path / "c")
    cells = tmp_path / "runs" / "part" / "cells"
    assert [p.name for p in cells.iterdir()] == ["data_seed=13"]
    # Half of the sweep's limit (two cells), as a full run gives it: not all of it.
    assert read_config(cells / "data_seed=13" / "config.toml").max_queries == 50_000
