"""The benchmark study: run its parts (sweeps of ``bdpl fit``) and write BENCHMARKS.md.

Usage::

    python benchmarks/study/study.py run reduced estimators efficiency  # <= 60 min, 2 cores
    python benchmarks/study/study.py run main --only task=sst2,rte      # the full run, in parts
    python benchmarks/study/study.py report                  # BENCHMARKS.md + figures

A long sweep runs in parts: ``run main --only task=sst2,rte`` runs those cells only (the
results still list every finished cell), and ``run main --collect`` runs nothing and writes
the results of what has finished so far (for an interim report).

A part is a module ``parts/<name>.py`` with ``TITLE``, ``SWEEP`` (its sweep file in this
folder, or None when it runs itself), optionally ``tiny(config) -> config`` and
``run(out, backend, tiny)``, and ``report(results, figures) -> str`` (its Markdown section).

``run`` runs a sweep part as ``bdpl sweep <part>.toml --out OUT/runs/<part>`` does (cells one
by one, in this process, resumable: finished cells are skipped, a killed one resumes from its
checkpoint, and the study's query cache ``OUT/runs/cache`` answers what was paid for), then
writes ``OUT/results/<part>.json``: every cell's record (``common.RECORD_FIELDS``) with the
machine, date, versions and the exact commands. ``report`` reads only ``OUT/results``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import common

# The bdpl of this checkout, not whichever one the environment installed: a script's own
# folder heads sys.path, the repository root does not.
sys.path.insert(1, str(common.ROOT))

import sweeps

HERE = common.HERE
ROOT = common.ROOT
DEFAULT_OUT = HERE / "out"
PARTS = HERE / "parts"


# The report's order: these first, then the other parts (the case studies) by name.
_FIRST = ("main", "reduced", "paper_tasks", "few_candidates", "estimators", "efficiency")


def part_names() -> list[str]:
    """Every part found under ``parts/``, in the report's order."""
    found = {p.stem for p in PARTS.glob("*.py") if not p.stem.startswith("_")}
    return [n for n in _FIRST if n in found] + sorted(found - set(_FIRST))


def load(name: str) -> Any:
    """The part module ``parts/<name>.py``."""
    if name not in part_names():
        raise SystemExit(f"unknown part {name!r}; parts: {', '.join(part_names())}")
    return importlib.import_module(f"parts.{name}")


# ------------------------------------------------------------------------------ running
def shrink(config: dict[str, Any]) -> dict[str, Any]:
    """The default ``--tiny``: the first task and seed, one epoch, 16 test rows, no budget."""
    grid = dict(config.get("grid", {}))
    base = dict(config.get("base", {}))
    for key in ("task", "seed", "data_seed"):
        if key in grid:
            grid[key] = grid[key][:1]
    base.update(epochs=1, test_rows=16)
    return {"base": base, "grid": grid}


def sweep_config(part: Any, backend: str | None, tiny: bool) -> dict[str, Any]:
    """The part's sweep file as a dict, with ``--tiny`` and ``--backend`` applied."""
    return common.sweep_config(part.SWEEP, backend, tiny, getattr(part, "tiny", shrink))


@dataclass(frozen=True)
class Options:
    """How ``run`` runs the parts (the command line's options)."""

    out: Path = DEFAULT_OUT
    backend: str | None = None
    tiny: bool = False
    workers: int = 0
    only: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    collect: bool = False


def parse_only(items: Sequence[str]) -> dict[str, list[Any]]:
    """``["task=sst2,rte", "data_seed=13"]`` as ``{"task": ["sst2", "rte"], "data_seed": [13]}``."""
    out: dict[str, list[Any]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise SystemExit(f"--only {item!r}: give KEY=VALUE[,VALUE...], e.g. task=sst2,rte")
        out.setdefault(key, []).extend(int(v) if v.isdigit() else v for v in values.split(","))
    return out


def machine() -> dict[str, Any]:
    """The machine the study ran on."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    with contextlib.suppress(AttributeError):  # not on Linux
        info["usable_cpus"] = len(os.sched_getaffinity(0))
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        first = meminfo.read_text(encoding="utf-8").splitlines()[0].split()
        info["memory_gib"] = round(int(first[1]) / 2**20, 1)
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return info


def commit() -> str | None:
    """The checkout's git commit, ``+dirty`` when it has uncommitted changes; None outside git."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()  # fmt: skip

    try:
        head, dirty = git("rev-parse", "HEAD"), git("status", "--porcelain", "-uno")
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty.strip() else "")


def now() -> str:
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def command_line(argv: Sequence[str]) -> str:
    """The command as typed from the repository root."""
    script = Path(__file__).resolve().relative_to(ROOT).as_posix()
    return shlex.join(["python", script, *argv])


def run_part(name: str, options: Options, argv: Sequence[str]) -> None:
    """Run one part and write ``OUT/results/<name>.json``."""
    from bdpl.cli.runs import versions

    part = load(name)
    out = options.out
    before = common.load_part(out / "results", name) or {}
    doc: dict[str, Any] = {
        "part": name,
        "title": part.TITLE,
        "sweep": part.SWEEP,
        "tiny": options.tiny,
        "backend": options.backend,
        "commands": [*before.get("commands", []), command_line(argv)],
        "started": before.get("started", now()),
        "machine": machine(),
        "versions": versions(),
        "commit": commit(),
    }
    if part.SWEEP is not None:
        config = sweep_config(part, options.backend, options.tiny)

        def started() -> None:  # a run killed before its end still names its command
            common.write_results(out, name, {**before, **doc})

        result = sweeps.run(name, config, out, options.workers, only=options.only,
                            collect=options.collect, on_start=started)  # fmt: skip
        sweep_cmd = (f"bdpl sweep benchmarks/study/{part.SWEEP} --out "
                     f"{_shown(out / 'runs' / name)} --workers 0 --cache "
                     f"{_shown(out / 'runs' / 'cache')}")  # fmt: skip
        plain = options.backend is None and not options.tiny and not options.only
        doc.update(
            cells=result["cells"],
            failed=result["failed"],
            sweep_config=result["sweep_config"],
            equivalent=sweep_cmd if plain else None,
        )
    else:
        runner: Callable[[Path, str | None, bool], None] | None = getattr(part, "run", None)
        if runner is None or options.collect:
            return  # a report-only part (it reads other parts' results), or nothing to run
        runner(out, options.backend, options.tiny)
        written = common.load_part(out / "results", name) or {}
        doc.update({k: v for k, v in written.items() if k not in doc or k == "cells"})
    # Collecting runs nothing: the cells ran when their ledgers say (a killed run wrote no
    # end), else the part finished when its last run did.
    span = sweeps.ledger_span(out / "runs" / name) if options.collect else None
    if span is not None:
        doc["started"], doc["finished"] = min(doc["started"], span[0]), span[1]
    else:
        doc["finished"] = before.get("finished", now()) if options.collect else now()
    common.write_results(out, name, doc)


# ----------------------------------------------------------------------------- reporting
def report(out: Path, markdown: Path) -> str:
    """Write ``markdown`` (and ``OUT/figures``) from ``OUT/results``; return its text."""
    results = out / "results"
    figures = out / "figures"
    common.MARKDOWN_DIR = markdown.resolve().parent
    docs = {n: common.load_part(results, n) for n in part_names()}
    ran = {n: d for n, d in docs.items() if d is not None}
    lines = [
        "# Benchmarks: the BDPL study",
        "",
        "Generated by `python benchmarks/study/study.py report` from "
        f"`{_shown(results)}/*.json`; every number below is what the run wrote. "
        "Regenerate the figures and this file with that command; rerun a part with the "
        "command listed under it (finished cells are skipped).",
        "",
    ]
    if any(d.get("tiny") or d.get("backend") == "fake" for d in ran.values()):
        lines += [
            "> **Not a benchmark result:** some parts below ran with `--tiny` or the `fake` "
            "backend (a smoke test of the scripts); their numbers mean nothing about BDPL.",
            "",
        ]
    lines += ["## Runs", "", _runs_table(ran).strip(), ""]
    for name in part_names():
        part = load(name)
        body = part.report(results, figures)
        lines += [body.strip(), ""]
    text = "\n".join(lines).rstrip() + "\n"
    markdown.write_text(text, encoding="utf-8")
    return text


def _shown(path: Path) -> str:
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def _runs_table(docs: Mapping[str, Mapping[str, Any]]) -> str:
    if not docs:
        return "_No part has run yet._\n"
    rows = []
    for name, d in docs.items():
        m = d.get("machine", {})
        v = d.get("versions", {})
        where = f"{m.get('cpu', '?')}, {m.get('usable_cpus', m.get('cpus', '?'))} CPUs"
        if m.get("gpu"):
            where += f", {m['gpu']}"
        soft = ", ".join(f"{k} {v[k]}" for k in ("bdpl", "python", "torch", "transformers")
                         if k in v)  # fmt: skip
        if d.get("commit"):
            dirty = " (uncommitted changes)" if d["commit"].endswith("+dirty") else ""
            soft += f", commit {d['commit'][:12]}{dirty}"
        cells = d.get("cells", [])
        finished = sum(1 for c in cells if c.get("status") == "done")
        cmds = "<br>".join(f"`{c}`" for c in d.get("commands", []))
        if d.get("equivalent"):
            cmds += f"<br>(= `{d['equivalent']}`)"
        rows.append([name, f"{d.get('started', '?')} to {d.get('finished', '?')}",
                     where, soft, f"{finished}/{len(cells)}", cmds])  # fmt: skip
    return common.markdown_table(
        ["part", "ran (UTC)", "machine", "versions", "cells done", "commands"], rows
    )


# ---------------------------------------------------------------------------------- main
def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="study.py", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run parts (resumable)")
    run.add_argument("parts", nargs="+", metavar="PART", help=f"of: {', '.join(part_names())}")
    run.add_argument("--out", type=Path, default=DEFAULT_OUT)
    run.add_argument("--backend", help="override every cell's backend (e.g. fake)")
    run.add_argument("--tiny", action="store_true", help="a smoke-test-sized study")
    run.add_argument("--workers", type=int, default=0,
                     help="cells in parallel processes (0: one by one, here; parallel cells "
                          "share the cores, so their wall times are longer)")  # fmt: skip
    run.add_argument("--only", action="append", default=[], metavar="KEY=V1,V2",
                     help="run only the cells with these grid values (a long sweep in parts); "
                          "repeatable")  # fmt: skip
    run.add_argument(
        "--collect",
        action="store_true",
        help="run nothing: write the results of the cells finished so far",
    )
    rep = sub.add_parser("report", help="write BENCHMARKS.md and the figures")
    rep.add_argument("--out", type=Path, default=DEFAULT_OUT)
    rep.add_argument("--markdown", type=Path, default=ROOT / "BENCHMARKS.md")
    args = parser.parse_args(argv)
    from bdpl.errors import BDPLError

    try:
        if args.command == "run":
            for name in args.parts:
                load(name)  # every name checked before anything runs
            options = Options(args.out, args.backend, args.tiny, args.workers,
                              parse_only(args.only), args.collect)  # fmt: skip
            for name in args.parts:
                run_part(name, options, argv)
        else:
            report(args.out, args.markdown)
            print(f"wrote {args.markdown}", file=sys.stderr)
    except BDPLError as exc:
        print(f"study.py: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
