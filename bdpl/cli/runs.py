"""Run folders: what ``bdpl fit`` writes, and how a killed run is resumed.

A run folder holds:

- ``config.toml``: the resolved configuration (``bdpl fit --config`` takes it as it is);
- ``versions.json``: bdpl's, Python's and the dependencies' versions;
- ``checkpoint.json``: the optimizer after the last finished epoch (for ``--resume``);
- ``history.jsonl``: one line per step (loss, entropy of each position, paid and cached
  queries, dollars, counts of non-finite and floored probabilities) and per epoch (dev
  metric, argmax prompt, each position's distribution);
- ``prompt.json``: the learned prompt (:meth:`bdpl.Optimizer.load` reads it);
- ``metrics.json``: dev and test metrics of the manual and the learned prompt;
- ``ledger.jsonl`` and ``ledger-summary.json``: every paid call and the totals.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from bdpl.backends.base import Closeable, capabilities_of
from bdpl.cli.backends import make_backend
from bdpl.cli.config import RunConfig, read_config, write_config
from bdpl.cli.methods import make_optimizer
from bdpl.data import load_split, read_dataset
from bdpl.errors import ConfigError, DataError, UnknownPriceError
from bdpl.metering import Budget, Ledger, Meter, Price, QueryCache
from bdpl.metering.redis_cache import RedisQueryCache, is_redis_url
from bdpl.optimizer import EpochRecord, Optimizer
from bdpl.tasks import Dataset, Task, get_task
from bdpl.vocabulary import Vocabulary, gather_vocabulary

__all__ = ["RunData", "build_meter", "fit_run", "load_data", "versions", "vocabulary_of"]

RUN_FORMAT = 1
_DEPENDENCIES: tuple[str, ...] = ("numpy", "pydantic", "diskcache", "tenacity", "click")
_DEPENDENCIES += ("torch", "transformers", "openai", "tiktoken", "httpx")


@dataclass(frozen=True)
class RunData:
    """The task and the splits a run uses (``test`` may be absent)."""

    task: Task
    train: Dataset
    dev: Dataset
    test: Dataset | None


def versions() -> dict[str, str]:
    """bdpl's, Python's and the installed dependencies' versions."""
    out = {"bdpl": metadata.version("bdpl"), "python": platform.python_version()}
    for name in _DEPENDENCIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def task_of(config: RunConfig) -> Task:
    """The preset task with the config's overrides, or the user's task."""
    if config.task is not None:
        base = get_task(config.task)
        if config.template is None and config.verbalizer is None and config.metric is None:
            return base
        return Task(
            base.name,
            config.template or base.template,
            config.verbalizer or dict(base.verbalizer),
            config.metric or base.metric,
        )
    if config.template is None or config.verbalizer is None:
        raise ConfigError(
            "without --task, give --template and --verbalizer (e.g. --verbalizer 0=bad "
            "--verbalizer 1=good) for your data files"
        )
    return Task("custom", config.template, config.verbalizer, config.metric or "accuracy")


def _read(config: RunConfig, task: Task, path: str) -> Dataset:
    return read_dataset(task, path, text_a=config.text_a, text_b=config.text_b, label=config.label)


def load_data(config: RunConfig) -> RunData:
    """The run's data: files the config names, else the preset's benchmark splits.

    Raises:
        ConfigError: neither a task nor a training file is given.
        DataError: a file is missing or has a row the task cannot use.
    """
    task = task_of(config)
    if config.train is not None:
        train = _read(config, task, config.train)
        dev = _read(config, task, config.dev) if config.dev is not None else None
        test = _read(config, task, config.test) if config.test is not None else None
    elif config.task is not None:

        def split(name: str) -> Dataset:
            data = load_split(config.task or "", name, seed=config.data_seed, k=config.k)
            return Dataset(task, data.examples)

        train, dev = split("train"), split("dev")
        try:
            test = split("test")
        except DataError:  # the test sets are not shipped with the package
            test = None
    else:
        raise ConfigError("give --task (a preset) or --train (your file)")
    if dev is None:
        raise ConfigError("give --dev: a dev set chooses the prompt and reports its metric")
    if test is not None and config.test_rows is not None:
        test = Dataset(task, test.examples[: config.test_rows])
    return RunData(task, train, dev, test)


def vocabulary_of(config: RunConfig, data: RunData) -> Vocabulary | None:
    """The prompt candidates ``config.vocab_source`` asks for, or ``None`` for ``"train"``
    (the optimizer then builds them from the training texts, as it always has).

    ``"pool"`` adds the preset's ``pool`` split (its cleaned training data; labels are never
    read) to the training texts as unlabelled in-domain text; ``"english"`` takes the most
    frequent English words alone, so no candidate comes from the task's data.

    Raises:
        ConfigError: ``"pool"`` without a preset task (user files have no pool).
        DataError: the pool's data file is missing.
    """
    if config.vocab_source == "train":
        return None
    if config.vocab_source == "english":
        return gather_vocabulary((), size=config.vocab_size)
    if config.task is None or config.train is not None:
        raise ConfigError(
            "vocab_source 'pool' needs a preset task (--task): user files have no pool; "
            "use 'train' or 'english'"
        )
    pool = load_split(config.task, "pool")
    return gather_vocabulary(data.train, unlabelled=pool, size=config.vocab_size)


@contextlib.contextmanager
def build_meter(
    config: RunConfig,
    *,
    ledger: Path | None,
    cache: str | QueryCache | None,
    call_log: str | None = None,
    resume: bool = False,
    check: bool = True,
) -> Iterator[Meter]:
    """The backend the config names, behind a meter with its budget, ledger and cache.

    With ``resume`` the budget is charged with what the run's ledger already holds, so a
    resumed run keeps one budget over all its processes. A context manager: on exit the meter
    is closed, and so is the backend (built here, so owned here: an OpenAI client's
    connections are not left to the garbage collector).
    """
    backend = make_backend(
        config.backend,
        base_url=config.base_url,
        call_log=call_log,
        check=check,
        max_input_tokens=config.max_input_tokens,
    )
    limits: dict[str, Any] = {
        "max_queries": config.max_queries,
        "max_tokens": config.max_tokens,
        "max_dollars": config.max_dollars,
    }
    if resume and ledger is not None:
        budget = Budget.from_ledger(ledger, **limits)
    else:
        budget = Budget(**limits)
    price = None
    if config.price_input is not None or config.price_output is not None:
        price = Price(
            input_per_1m=config.price_input or 0.0, output_per_1m=config.price_output or 0.0
        )
    the_cache: QueryCache | str | bool | None = None if cache is None else cache
    if cache == "off":
        the_cache = False
    try:
        try:
            meter = Meter(backend, cache=the_cache, ledger=ledger, budget=budget, price=price)
        except UnknownPriceError:
            raise UnknownPriceError(
                f"no price for model {capabilities_of(backend).model!r} in bdpl's price table; "
                "give --price-input and --price-output (USD per 1M tokens)"
            ) from None
        with meter:
            yield meter
    finally:
        if isinstance(backend, Closeable):
            backend.close()


def check_budget_fits_one_step(optimizer: Optimizer, meter: Meter, data: RunData) -> None:
    """Refuse a budget that cannot pay for one training step (a run that could learn nothing).

    Raises:
        ConfigError: one step's worst case passes a limit; the message names it and the need.
    """
    budget = meter.budget
    if all(getattr(budget, f"max_{n}") is None for n in ("queries", "tokens", "dollars")):
        return
    one_step = Dataset(data.task, data.train.examples[: optimizer.batch_size])
    probe = Optimizer(
        meter.backend,
        task=data.task,
        candidates=optimizer.candidates,
        prompt_length=optimizer.prompt_length,
        sample_size=optimizer.sample_size,
        batch_size=optimizer.batch_size,
        epochs=1,
        calibration=optimizer.calibration,  # its extra queries are part of a step
        meter=meter,
    )
    cost = probe.estimate_cost(one_step)
    left = budget.remaining()
    for name, need in (
        ("queries", cost.queries),
        ("tokens", cost.tokens),
        ("dollars", cost.dollars),
    ):
        have = left.get(name)
        if have is not None and need > have:
            raise ConfigError(
                f"the budget is too small for one training step: it needs up to {need:,} "
                f"{name} and --max-{name} leaves {have:,}; raise --max-{name} or lower "
                "--sample-size/--batch-size"
            )


def optimizer_settings(config: RunConfig) -> dict[str, Any]:
    """The :class:`~bdpl.optimizer.Optimizer` keyword arguments the config sets."""
    return {
        "prompt_length": config.prompt_length,
        "sample_size": config.sample_size,
        "batch_size": config.batch_size,
        "epochs": config.epochs,
        "learning_rate": config.learning_rate,
        "estimator": config.estimator,
        "loss": config.loss,
        "vocab_size": config.vocab_size,
        "seed": config.seed,
        "selection": config.selection,
        "alpha": config.alpha,
        "calibration": None if config.calibration == "none" else config.calibration,
    }


def _entropies(probs: np.ndarray[Any, Any]) -> list[float]:
    p = np.clip(probs, 1e-300, 1.0)
    return [round(float(-(row * np.log(row)).sum()), 6) for row in p]


def _stability(optimizer: Optimizer, probs: np.ndarray[Any, Any]) -> dict[str, int]:
    """How close a step came to the numerical failures the estimators guard against.

    ``nonfinite``: NaN or infinite probabilities in the distribution after the step (no
    estimator should ever produce one). ``floored``: probabilities the reference estimator
    raised to its floor, each one a ``1/p`` that the BDPL reference code, which has no
    floor, would have turned into ``inf - inf`` (NaN); 0 for an estimator without a floor.
    """
    floor = getattr(optimizer.estimator, "floor", None)
    floored = 0
    if floor is not None:
        floored = int(np.count_nonzero(optimizer.state.estimator.params <= floor))
    return {"nonfinite": int(probs.size - np.count_nonzero(np.isfinite(probs))), "floored": floored}


def _write_json(path: Path, data: object) -> None:
    """Write JSON atomically: a kill leaves the old file or the new one, never half of one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
    os.replace(tmp, path)


def _history_line(path: Path, record: Mapping[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


def _check_resume(run: Path, config: RunConfig) -> None:
    saved = run / "config.toml"
    if not saved.is_file():
        raise ConfigError(f"{run} is not a bdpl run folder (no config.toml): nothing to resume")
    before = read_config(saved)
    if before != config:
        changed = sorted(
            k for k, v in config.model_dump().items() if before.model_dump().get(k) != v
        )
        raise ConfigError(
            f"--resume {run}: the arguments differ from the run's ({', '.join(changed)}); "
            "resume with the same arguments, or start a new run folder"
        )
    meta = run / "run.json"
    if meta.is_file():
        fmt = json.loads(meta.read_text(encoding="utf-8")).get("format")
        if fmt != RUN_FORMAT:
            raise ConfigError(
                f"{run} was written by an incompatible bdpl (run format {fmt!r}, this bdpl "
                f"reads {RUN_FORMAT}); start a new run folder"
            )


def fit_run(
    config: RunConfig,
    run: Path,
    *,
    resume: bool = False,
    cache: str | QueryCache | None = None,
    call_log: str | None = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
    method: str = "bdpl",
    demonstrations: int = 4,
) -> dict[str, Any]:
    """Learn a prompt as ``config`` says, writing the run folder ``run``; return the metrics.

    ``method`` is ``bdpl`` or a baseline (:mod:`bdpl.cli.methods`; ``demonstrations`` is
    the in-context baseline's number of examples); only ``bdpl`` resumes from a checkpoint,
    a baseline runs again from the start on cached answers.

    With ``resume`` the run continues from its last checkpoint; the steps of the epoch that
    was cut short are run again, and the query cache answers every query they already paid
    for, so nothing is paid twice and the result equals an uninterrupted run's.

    Raises:
        ConfigError: bad settings, a run folder that exists (without ``resume``), or a
            resume with other arguments than the run's.
        CacheError: ``cache`` is a Redis URL (``redis://host:6379/0``) that cannot be reached.
    """
    if is_redis_url(cache):
        with RedisQueryCache(str(cache)) as shared:
            return fit_run(
                config,
                run,
                resume=resume,
                cache=shared,
                call_log=call_log,
                on_step=on_step,
                method=method,
                demonstrations=demonstrations,
            )
    started = time.perf_counter()
    if resume:
        _check_resume(run, config)
    elif run.exists() and any(run.iterdir()):
        raise ConfigError(
            f"run folder {run} already exists and is not empty; pass --resume {run} to "
            "continue it, or choose another --out"
        )
    data = load_data(config)
    vocabulary = vocabulary_of(config, data)  # before the run folder: a bad source writes nothing
    run.mkdir(parents=True, exist_ok=True)
    write_config(config, run / "config.toml")
    _write_json(run / "run.json", {"format": RUN_FORMAT, "method": method})
    _write_json(run / "versions.json", versions())
    ledger_path = run / "ledger.jsonl"
    checkpoint = run / "checkpoint.json"
    history = run / "history.jsonl"
    settings = optimizer_settings(config)
    first_epoch = 0
    with build_meter(
        config, ledger=ledger_path, cache=cache, call_log=call_log, resume=resume
    ) as meter:
        if resume and checkpoint.is_file() and method == "bdpl":
            optimizer = Optimizer.load(checkpoint, meter.backend, meter=meter)
            first_epoch = int(json.loads(checkpoint.read_text(encoding="utf-8"))["next_epoch"])
            _truncate_history(history, first_epoch)
        else:
            if vocabulary is not None and method in ("bdpl", "random"):
                settings["candidates"] = vocabulary
            optimizer = make_optimizer(method, meter.backend, data.train, meter, settings,
                                       demonstrations=demonstrations)  # fmt: skip
            history.unlink(missing_ok=True)
        optimizer.prepare(data.train)
        if method in ("bdpl", "random"):  # the others take no training step
            check_budget_fits_one_step(optimizer, meter, data)
        step = 0

        def after_step(loss: float) -> None:
            nonlocal step
            step += 1
            stats = meter.stats
            probs = optimizer.probs
            record = {
                "kind": "step",
                "step": step,
                "loss": round(loss, 6),
                "entropy": _entropies(probs),
                "paid_queries": stats.paid_queries,
                "cached_queries": stats.hits + stats.duplicates,
                "dollars": round(stats.dollars, 8),
                **_stability(optimizer, probs),
            }
            _history_line(history, record)
            if on_step is not None:
                on_step(record)

        def after_epoch(record: EpochRecord) -> None:
            _history_line(
                history,
                {
                    "kind": "epoch",
                    "epoch": record.epoch,
                    "train_loss": None if math.isnan(record.train_loss) else record.train_loss,
                    "dev_metric": record.dev_score,
                    "prompt": record.prompt,
                    "distribution": np.round(optimizer.probs, 6).tolist(),
                },
            )
            optimizer.save(checkpoint)
            saved = json.loads(checkpoint.read_text(encoding="utf-8"))
            saved["next_epoch"] = record.epoch + 1
            _write_json(checkpoint, saved)

        result = optimizer.fit(
            data.train,
            data.dev,
            first_epoch=first_epoch,
            on_step=after_step,
            on_epoch=after_epoch,
        )
        optimizer.save(run / "prompt.json")
        metrics: dict[str, Any] = {
            "method": method,
            "task": data.task.name,
            "metric": data.task.metric,
            "prompt": result.prompt,
            "stop_reason": result.stop_reason,
            "selection": None if result.selection is None else result.selection.to_json(),
            "dev": {
                "manual": optimizer.evaluate(data.dev, prompt=[]),
                "learned": optimizer.evaluate(data.dev, prompt=result.prompt),
            },
        }
        if data.test is not None:
            metrics["test"] = {
                "manual": optimizer.evaluate(data.test, prompt=[]),
                "learned": optimizer.evaluate(data.test, prompt=result.prompt),
                "rows": len(data.test),
            }
        stats = meter.stats
        metrics["queries"] = {
            "paid": stats.paid_queries,
            "cached": stats.hits,
            "duplicates": stats.duplicates,
            "dollars": stats.dollars,
        }
    # This process's wall time (a resumed run: its last process's), loading the model included.
    metrics["seconds"] = round(time.perf_counter() - started, 3)
    _write_json(run / "metrics.json", metrics)
    summary = Ledger.read(ledger_path) if ledger_path.exists() else []
    _write_json(run / "ledger-summary.json", _ledger_totals(summary))
    return metrics


def _truncate_history(path: Path, next_epoch: int) -> None:
    """Drop the history of the epoch a kill cut short (it is run again)."""
    if not path.exists():
        return
    kept: list[str] = []
    epochs = 0
    pending: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            break  # a torn last line
        pending.append(line)
        if record.get("kind") == "epoch":
            epochs += 1
            kept.extend(pending)
            pending = []
            if epochs == next_epoch:
                break
    path.write_text("".join(line + "\n" for line in kept), encoding="utf-8")


def _ledger_totals(records: list[Any]) -> dict[str, Any]:
    from bdpl.metering.ledger import summarize

    return {
        f"{backend} ({model})": {
            "calls": s.calls,
            "failed_calls": s.failed_calls,
            "paid_queries": s.billed_queries,
            "cache_hits": s.hit_queries,
            "tokens": s.prompt_tokens + s.completion_tokens,
            "dollars": s.dollars,
            "saved_dollars": s.saved_dollars,
        }
        for (backend, model), s in summarize(records).items()
    }


def find_prompt_file(source: Path) -> Path:
    """The prompt file of a run folder, or ``source`` itself when it is a file."""
    if source.is_dir():
        found = source / "prompt.json"
        if not found.is_file():
            raise ConfigError(f"{source} holds no prompt.json: is it a finished bdpl run?")
        return found
    if not source.is_file():
        raise ConfigError(f"{source} not found (give a run folder or a saved prompt file)")
    return source


def stdout_is_terminal() -> bool:
    """Whether progress bars may be drawn (stderr is a terminal)."""
    return sys.stderr.isatty()
