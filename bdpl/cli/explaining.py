"""``bdpl explain RUN``: what each position of a run's learned prompt holds and is worth."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from bdpl.cli.config import read_config
from bdpl.cli.runs import build_meter, find_prompt_file, load_data
from bdpl.errors import ConfigError
from bdpl.optimizer import Optimizer


def explain_run(run: Path, *, split: str, top: int, cache: str | None) -> dict[str, Any]:
    """Explain the run's learned prompt on its ``split`` and save ``explanation.json`` there.

    When the run kept the manual prompt (nothing beat it clearly), the learned prompt it was
    compared with is explained: the argmax of its best distribution.

    Raises:
        ConfigError: not a finished run folder, or an unknown split.
    """
    prompt_file = find_prompt_file(run)
    config_file = prompt_file.parent / "config.toml"
    if not config_file.is_file():
        raise ConfigError(f"{prompt_file.parent} has no config.toml: is it a bdpl run folder?")
    if split not in ("train", "dev", "test"):
        raise ConfigError(f"unknown split {split!r}; use train, dev or test")
    config = read_config(config_file)
    data = getattr(load_data(config), split)
    if data is None:
        raise ConfigError(
            f"the {split} split is not available (`bdpl data` says where it comes from: "
            "$BDPL_DATA_DIR, or the Hugging Face Hub with pip install 'bdpl[datasets]')"
        )
    with build_meter(config, ledger=None, cache=cache) as meter:
        optimizer = Optimizer.load(prompt_file, meter=meter)
        prompt = optimizer.best_prompt
        kept_manual = not prompt
        if kept_manual:
            assert optimizer.best_state is not None
            best = np.argmax(optimizer.estimator.probs(optimizer.best_state), axis=1)
            prompt = optimizer.phrases(best)
        explanation = optimizer.explain(data, top=top, prompt=prompt)
    result: dict[str, Any] = {"split": split, "kept_manual": kept_manual, **explanation.to_json()}
    (prompt_file.parent / "explanation.json").write_text(
        json.dumps(result, indent=1), encoding="utf-8"
    )
    return result


def format_explanation(result: dict[str, Any]) -> str:
    """The explanation as lines a person reads."""
    lines = [
        f"prompt {result['prompt']!r} on {result['split']}: {result['metric']} "
        f"{result['score']:.4f} (template alone {result['manual_score']:.4f})"
    ]
    if result["kept_manual"]:
        lines.append("(the run kept the manual prompt; this is the learned one it rejected)")
    for p in result["positions"]:
        tops = ", ".join(f"{c} {w:.2f}" for c, w in p["top"])
        lines.append(
            f"  {p['position']}: {p['phrase']!r} p={p['probability']:.2f}  removed "
            f"{p['removed_change']:+.4f}  -> {p['replacement']!r} {p['replaced_change']:+.4f}"
            f"  [top: {tops}]"
        )
    return "\n".join(lines)
