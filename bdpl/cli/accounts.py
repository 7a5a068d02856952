"""``bdpl ledger``, ``bdpl cache`` and ``bdpl data``: what was spent, saved and shipped."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bdpl.errors import ConfigError
from bdpl.metering.ledger import Ledger, LedgerRecord, format_summary, summarize


def _ledgers(source: Path) -> list[Path]:
    if source.is_file():
        return [source]
    found = sorted(source.rglob("ledger.jsonl"))
    if not found:
        raise ConfigError(f"no ledger.jsonl under {source}")
    return found


def ledger_report(source: Path, *, as_json: bool = False) -> str:
    """Per-backend totals over one ledger file, a run folder, or every run below a folder."""
    records: list[LedgerRecord] = []
    for path in _ledgers(source):
        records.extend(Ledger.read(path))
    summary = summarize(records)
    if not as_json:
        return format_summary(summary)
    return json.dumps(
        [
            {"backend": backend, "model": model, **asdict(s)}
            for (backend, model), s in sorted(summary.items())
        ],
        indent=1,
    )


def cache_dir(directory: str | None) -> Path:
    """The cache directory given, else the user's default one."""
    from bdpl.paths import cache_root

    return Path(directory) if directory else cache_root() / "queries"


def _cache(directory: str | None) -> Any:
    from bdpl.metering import QueryCache
    from bdpl.metering.meter import default_cache

    return QueryCache(directory) if directory else default_cache()


def cache_info(directory: str | None) -> dict[str, Any]:
    """The cache's location, number of answers and size on disk."""
    cache = _cache(directory)
    try:
        stats = cache.stats()
        return {
            "directory": str(cache.directory),
            "entries": stats.entries,
            "bytes": stats.size_bytes,
        }
    finally:
        cache.close()


def cache_clear(directory: str | None) -> int:
    """Remove every cached answer; returns how many there were."""
    cache = _cache(directory)
    try:
        return int(cache.clear())
    finally:
        cache.close()


def data_table(*, as_json: bool = False) -> str:
    """The presets, their template, labels and metric, and where each split comes from."""
    from bdpl.data import split_source
    from bdpl.tasks import PRESETS

    shipped = "shipped in bdpl: 16 per class, seeds 13, 21, 42, 87, 100"
    rows: list[dict[str, Any]] = []
    for name, task in sorted(PRESETS.items()):
        pool = split_source(task, "pool")
        rows.append(
            {
                "task": name,
                "template": task.template,
                "labels": dict(task.verbalizer),
                "metric": task.metric,
                # Other k or seeds are drawn from the pool, so they come from where it does.
                "train/dev": f"{shipped} (other k or seeds: drawn from the pool)",
                "test": split_source(task, "test"),
                "pool": pool,
            }
        )
    if as_json:
        return json.dumps(rows, indent=1)
    lines = [f"train/dev: {shipped}; other k or seeds are drawn from the pool"]
    for r in rows:
        labels = ", ".join(f"{k}={v}" for k, v in dict(r["labels"]).items())
        lines.append(f"{r['task']:<16} {r['metric']:<9} {r['template']}  [{labels}]")
        lines.append(f"{'':<16} test: {r['test']}")
        lines.append(f"{'':<16} pool: {r['pool']}")
    return "\n".join(lines)
