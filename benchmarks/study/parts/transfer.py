"""Case study: prompt transfer, across serving stacks and across calibration settings.

- Serving stacks: the content-free prompts learned with the in-process model (``local``) are
  scored on test through a vLLM server serving the same weights (``bdpl eval RUN --backend
  openai:smollm2 --base-url URL``, as :func:`bdpl.cli.evaluate.evaluate_prompt`), and prompts
  learned through that server are scored in-process ("back"). vLLM is started as the test
  suite starts it (``tests/backends/vllm_server.py``); its port, part of the backend's
  identity and so of every cache key, changes at each start, so a rerun of this part repeats
  the vLLM leg (the other fits and scores come from the study's cache). Under the fake
  backend (``--backend fake``, the smoke test) two fakes with different seeds stand in for
  the two stacks, and the vLLM leg is reported as skipped.
- Calibration: every prompt learned with one calibration (none, content-free, batch) is scored
  on test under each of them (the learned prompt with the same template and verbalizer, only
  the calibration differs).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import common
from parts import _cases

TITLE = "Case study: prompt transfer"
SWEEP = None
FILE = "transfer.toml"
CALIBRATIONS = ("none", "content-free", "batch")
MOVED = "content-free"  # the calibration whose prompts move between serving stacks
# Data seeds learned through the server for the way back: each is a whole fit at the CPU
# server's speed (about 10 queries/s, benchmarks/results/openai.md), so one.
BACK = 1
SERVED = "openai:smollm2"  # the vLLM server's model, as an openai: backend


def shrink(config: dict[str, Any]) -> dict[str, Any]:
    """The ``--tiny`` fits: one data seed, 1 epoch, every calibration."""
    return _cases.shrink(config)


def other_fake(spec: str) -> str:
    """A fake backend that answers differently from ``spec`` (another seed)."""
    options = dict(item.split("=", 1) for item in spec.partition(":")[2].split(",") if "=" in item)
    options["seed"] = str(int(options.get("seed", "0")) + 1)
    return "fake:" + ",".join(f"{k}={v}" for k, v in sorted(options.items()))


def calibration_transfer(out: Path, records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each learned prompt's test metric (and the template's) under every calibration."""
    from bdpl.cli.runs import build_meter, find_prompt_file, load_data
    from bdpl.optimizer import Optimizer

    rows = []
    for r in records:
        config = _cases.run_config(r)
        test = load_data(config).test
        if test is None:
            continue
        with build_meter(config, ledger=None, cache=_cases.cache_of(out)) as meter:
            saved = Optimizer.load(find_prompt_file(Path(r["run"])), meter=meter)
            for calibration in CALIBRATIONS:
                scorer = Optimizer(
                    meter=meter,
                    task=saved.task,
                    candidates=saved.candidates,
                    prompt_length=saved.prompt_length,
                    calibration=None if calibration == "none" else calibration,
                )
                rows.append({
                    "data_seed": config.data_seed,
                    "learned_with": config.calibration,
                    "evaluated_with": calibration,
                    "prompt": r["prompt"],
                    "manual": scorer.evaluate(test, prompt=[]),
                    "learned": scorer.evaluate(test, prompt=r["prompt"]),
                })  # fmt: skip
    return rows


def move(
    out: Path, record: Mapping[str, Any], backend: str, base_url: str | None
) -> dict[str, Any]:
    """``bdpl eval RUN --backend BACKEND --split test`` of one learned run (with ``--base-url
    URL --price-input 0 --price-output 0`` for a server: a local one is free)."""
    from bdpl.cli.evaluate import evaluate_prompt

    free = {"price_input": 0.0, "price_output": 0.0} if base_url is not None else {}
    moved = evaluate_prompt(
        Path(record["run"]), backend=backend, base_url=base_url, split="test", data_file=None,
        text_a="text", text_b=None, label="label", rows=None, cache=_cases.cache_of(out), **free,
    )  # fmt: skip
    return {
        "data_seed": _cases.value(record, _cases.SEED),
        "learned_on": record["config"]["backend"],
        "evaluated_on": backend,
        "prompt": record["prompt"],
        "source": {"manual": record["test_manual"], "learned": record["test_learned"]},
        "moved": {"manual": moved["manual"], "learned": moved["learned"], "rows": moved["rows"]},
    }


def learn_on(out: Path, records: Sequence[Mapping[str, Any]], backend: str,
             base_url: str | None) -> list[dict[str, Any]]:  # fmt: skip
    """The same fits as ``records``, learned on ``backend``, as the cells of
    ``OUT/runs/transfer-back`` (one per data seed); one record each.

    A fit through an earlier start of the server is fitted again: the server's URL (its port)
    is one of the run's settings and part of every cache key, and it changes at each start.
    """
    from bdpl.cli.config import read_config

    base = _cases.run_config(records[0]).model_dump()
    if base_url is not None:  # a local server: free
        base.update(price_input=0.0, price_output=0.0)
    config = {
        "base": {**base, "backend": backend, "base_url": base_url},
        "grid": {_cases.SEED: [_cases.value(r, _cases.SEED) for r in records]},
    }
    cells = out / "runs" / "transfer-back" / "cells"
    for run in cells.iterdir() if cells.is_dir() else ():
        saved = run / "config.toml"
        if saved.is_file() and read_config(saved).base_url != base_url:
            shutil.rmtree(run)
    return _cases.run_grid(out, "transfer-back", config)


@contextlib.contextmanager
def _api_key() -> Iterator[None]:
    """A placeholder OpenAI key for the local server (vLLM checks none), unless one is set."""
    had = "OPENAI_API_KEY" in os.environ
    os.environ.setdefault("OPENAI_API_KEY", "EMPTY")
    try:
        yield
    finally:
        if not had:
            os.environ.pop("OPENAI_API_KEY", None)


def model_transfer(out: Path, records: Sequence[Mapping[str, Any]],
                   learn: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:  # fmt: skip
    """Move the prompts to the other serving stack and back; (rows, what the vLLM leg did)."""
    if not records:
        return [], {"ran": False, "why": f"no {MOVED} run finished, so no prompt to move"}
    if learn.startswith("fake"):
        target = other_fake(learn)
        rows = [move(out, r, target, None) for r in records]
        back = learn_on(out, records[:BACK], target, None)
        rows += [move(out, r, learn, None) for r in common.done(back)]
        return rows, {"ran": False, "why": f"the `{learn}` backend: `{target}` stands in for "
                      "the vLLM server (a smoke test of the code path)"}  # fmt: skip
    if learn != "local":
        return [], {"ran": False, "why": f"vLLM serves the embedded model: the prompts were "
                    f"learned with `{learn}`, not `local`"}  # fmt: skip
    import sys

    if str(common.ROOT) not in sys.path:  # the test suite's server helper
        sys.path.insert(0, str(common.ROOT))
    from bdpl.embedded import embedded_model_dir
    from tests.backends.vllm_server import VLLMUnavailable, vllm_server

    log = out / "runs" / "transfer" / "vllm.log"
    try:
        with vllm_server(embedded_model_dir(), log) as server, _api_key():
            rows = [move(out, r, SERVED, server.base_url) for r in records]
            back = learn_on(out, records[:BACK], SERVED, server.base_url)
            rows += [move(out, r, learn, None) for r in common.done(back)]
            return rows, {"ran": True, "startup_s": round(server.startup_s, 1), "why": None}
    except VLLMUnavailable as exc:
        return [], {"ran": False, "why": f"vLLM unavailable: {str(exc).splitlines()[0]}"}


def run(out: Path, backend: str | None, tiny: bool) -> None:
    """Fit, then move prompts across calibrations and serving stacks; write
    ``results/transfer.json``."""
    config = _cases.sweep_config(FILE, backend, tiny, shrink)
    records = _cases.run_grid(out, "transfer", config)
    done = common.done(records)
    by_calibration = calibration_transfer(out, done)
    moved = [r for r in done if r["config"]["calibration"] == MOVED]
    learn = str(config["base"]["backend"])
    by_model, vllm = model_transfer(out, moved, learn)
    common.write_results(out, "transfer", {
        "cells": records, "calibration_transfer": by_calibration, "model_transfer": by_model,
        "vllm": vllm, "sweep_config": config,
    })  # fmt: skip


# ------------------------------------------------------------------------------ report
def model_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Per direction: test metric on the learning stack and on the other, mean ± std."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["learned_on"], r["evaluated_on"]), []).append(r)
    table = []
    for (src, dst), g in groups.items():
        diff = [abs(r["moved"]["learned"] - r["source"]["learned"]) for r in g
                if r["source"]["learned"] is not None]  # fmt: skip
        table.append([
            f"`{src}` → `{dst}`", str(len(g)),
            common.fmt_mean_std(r["source"]["manual"] for r in g),
            common.fmt_mean_std(r["source"]["learned"] for r in g),
            common.fmt_mean_std(r["moved"]["manual"] for r in g),
            common.fmt_mean_std(r["moved"]["learned"] for r in g),
            common.fmt_mean_std(diff),
        ])  # fmt: skip
    return common.markdown_table(
        ["learned on → scored on", "runs", "test manual (learned on)", "test learned (learned on)",
         "test manual (scored on)", "test learned (scored on)", "abs. difference, learned"],
        table,
    )  # fmt: skip


def calibration_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows: learned with; columns: scored with: test metric, mean ± std over seeds."""

    def cell(learned: str | None, evaluated: str) -> str:
        picked = [r for r in rows if r["evaluated_with"] == evaluated
                  and (learned is None or r["learned_with"] == learned)]  # fmt: skip
        if learned is None:  # the template alone: one value per seed
            seen = {r["data_seed"]: r["manual"] for r in picked}
            return common.fmt_mean_std(seen.values())
        return common.fmt_mean_std(r["learned"] for r in picked)

    learned_with = list(dict.fromkeys(r["learned_with"] for r in rows))
    evaluated_with = list(dict.fromkeys(r["evaluated_with"] for r in rows))
    table = [[f"learned with `{a}`", *(cell(a, b) for b in evaluated_with)] for a in learned_with]
    table.append(["template alone", *(cell(None, b) for b in evaluated_with)])
    return common.markdown_table(
        ["test metric", *(f"scored with `{b}`" for b in evaluated_with)], table
    )


def report(results: Path, figures: Path) -> str:
    doc = common.load_part(results, "transfer")
    if doc is None:
        return common.skipped_section(TITLE, "no results yet (run this part)")
    records = doc.get("cells", [])
    vllm = doc.get("vllm") or {}
    parts = [
        "Prompts learned on one stack or calibration, scored on test on another. The "
        "serving-stack rows move the content-free prompts (`bdpl eval RUN --backend ... "
        "--split test`); the calibration table scores every learned prompt with the same "
        "template and verbalizer under each calibration (the diagonal is each run's own "
        "test metric).",
        _cases.scale(records, ["calibration"]),
    ]
    if vllm.get("ran"):
        parts.append(f"vLLM (CPU build, float32) served the embedded SmolLM2 as `{SERVED}`; "
                     f"it started in {vllm['startup_s']} s.")  # fmt: skip
    else:
        parts.append(f"**The vLLM leg was skipped**: {vllm.get('why', 'not run')}.")
    if doc.get("model_transfer"):
        parts.append(model_table(doc["model_transfer"]))
    if doc.get("calibration_transfer"):
        parts.append(calibration_table(doc["calibration_transfer"]))
    return common.section(TITLE, "\n\n".join(parts))
