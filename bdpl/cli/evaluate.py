"""``bdpl eval``: a saved prompt on a split or a file, with its own backend or another one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bdpl.cli.backends import is_local
from bdpl.cli.config import RunConfig, read_config
from bdpl.cli.runs import build_meter, find_prompt_file, load_data
from bdpl.data import read_dataset
from bdpl.errors import ConfigError
from bdpl.optimizer import Optimizer
from bdpl.tasks import Dataset


def evaluate_prompt(
    source: Path,
    *,
    backend: str | None,
    base_url: str | None,
    split: str,
    data_file: str | None,
    text_a: str,
    text_b: str | None,
    label: str,
    rows: int | None,
    cache: str | None,
    price_input: float | None = None,
    price_output: float | None = None,
) -> dict[str, Any]:
    """The metric of the manual and the saved prompt on the chosen data.

    The backend is the run's unless ``backend`` names another: a prompt learned on one model
    and evaluated on another is the paper's prompt transfer. Another backend takes neither
    the run's ``base_url`` nor its prices (they were its own model's): ``base_url`` and
    ``price_input``/``price_output`` (USD per 1M tokens) are given for it, or the price
    table's are used. The run's ``max_input_tokens`` goes with the prompt to another local
    backend (its inputs are cut as they were in training) and is left behind for a backend
    that cannot cut (the fake, an API: they read whole inputs).

    Raises:
        ConfigError: no prompt file, an unknown split, or a prompt file with no task.
    """
    prompt_file = find_prompt_file(source)
    run = prompt_file.parent
    config = read_config(run / "config.toml") if (run / "config.toml").is_file() else None
    given = {"price_input": price_input, "price_output": price_output}
    if config is None:
        overrides = {"backend": backend, "base_url": base_url, **given}
        config = RunConfig.build({k: v for k, v in overrides.items() if v is not None})
    elif backend is not None:
        moved = {"backend": backend, "base_url": base_url, **given}
        if not is_local(backend):
            moved["max_input_tokens"] = None
        config = RunConfig.build({**config.model_dump(), **moved})
    else:
        config = config.merged(given)
    saved = json.loads(prompt_file.read_text(encoding="utf-8"))
    with build_meter(config, ledger=None, cache=cache) as meter:
        optimizer = Optimizer.load(prompt_file, meter.backend, meter=meter)
        task = optimizer.task
        if task is None:
            raise ConfigError(f"{prompt_file} holds no task: cannot render its prompt")
        if data_file is not None:
            data = read_dataset(task, data_file, text_a=text_a, text_b=text_b, label=label)
            where = data_file
        else:
            if split not in ("train", "dev", "test"):
                raise ConfigError(f"unknown split {split!r}; use train, dev or test")
            if config.task is None and config.train is None:
                raise ConfigError("this prompt has no run config: pass --data FILE")
            splits = load_data(config)
            found = getattr(splits, split)
            if found is None:
                raise ConfigError(
                    f"the {split} split is not available (test sets come from "
                    "$BDPL_DATA_DIR, or the Hugging Face Hub with pip install "
                    "'bdpl[datasets]'; `bdpl data` says which); pass --data FILE"
                )
            data, where = found, f"{config.task or 'custom'}:{split}"
        if rows is not None:
            data = Dataset(task, data.examples[:rows])
        prompt = [str(t) for t in saved["prompt"]]
        return {
            "data": where,
            "rows": len(data),
            "backend": meter.identity,
            "metric": task.metric,
            "prompt": prompt,
            "manual": optimizer.evaluate(data, prompt=[]),
            "learned": optimizer.evaluate(data, prompt=prompt),
        }
