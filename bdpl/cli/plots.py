"""``bdpl plot RUN``: PNG figures of a run folder's history (needs matplotlib: ``bdpl[plot]``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from bdpl.errors import ConfigError

__all__ = ["plot_run"]


def _history(run: Path) -> list[dict[str, Any]]:
    path = run / "history.jsonl"
    if not path.is_file():
        raise ConfigError(f"{run} has no history.jsonl: is it a bdpl run folder?")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def plot_run(run: Path, out: Path | None = None, *, top: int = 8) -> list[Path]:
    """Draw the run's curves and its positions' distributions; return the files written.

    - ``curves.png``: training loss and dev metric against paid queries.
    - ``positions.png``: for each prompt position, a heat map over epochs of the
      probabilities of the ``top`` candidates most probable at the end.

    Raises:
        ConfigError: no history, or matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError(
            "bdpl plot needs matplotlib: pip install 'bdpl[plot]' (or matplotlib)"
        ) from None
    history = _history(run)
    out = out or run
    out.mkdir(parents=True, exist_ok=True)
    steps = [h for h in history if h["kind"] == "step"]
    epochs = [h for h in history if h["kind"] == "epoch"]
    if not steps:
        raise ConfigError(f"{run}/history.jsonl holds no step yet")
    written: list[Path] = []

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([s["paid_queries"] for s in steps], [s["loss"] for s in steps], label="train loss")
    ax.set_xlabel("paid queries")
    ax.set_ylabel("mean sampled loss")
    # The dev metric is measured at the end of each epoch: place it at that epoch's last step.
    ends = _epoch_ends(history)
    scored = [(q, e["dev_metric"]) for q, e in zip(ends, epochs, strict=False) if e["dev_metric"]]
    if scored:
        twin = ax.twinx()
        twin.plot(*zip(*scored, strict=True), "o-", color="tab:orange", label="dev metric")
        twin.set_ylabel("dev metric")
        twin.legend(loc="upper right")
    ax.legend(loc="upper left")
    ax.set_title(f"{run.name}: loss and dev metric against paid queries")
    fig.tight_layout()
    written.append(out / "curves.png")
    fig.savefig(written[-1], dpi=120)
    plt.close(fig)

    candidates = _candidates(run)
    dists = np.array([e["distribution"] for e in epochs], dtype=np.float64)  # E x L x N
    if dists.size:
        positions = dists.shape[1]
        fig, axes = plt.subplots(
            positions, 1, figsize=(7, 1.2 + 1.6 * positions), squeeze=False, sharex=True
        )
        shown = [np.argsort(-dists[-1, p])[:top] for p in range(positions)]
        # One colour scale for all positions, up to the largest probability shown (with a
        # large vocabulary, probabilities stay far below 1).
        vmax = max(float(dists[:, p, best].max()) for p, best in enumerate(shown))
        for p, ax in enumerate(axes[:, 0]):
            best = shown[p]
            image = ax.imshow(
                dists[:, p, best].T, aspect="auto", interpolation="nearest", vmin=0, vmax=vmax
            )
            ax.set_yticks(range(len(best)))
            ax.set_yticklabels([candidates[i] if candidates else str(i) for i in best], fontsize=7)
            ax.set_ylabel(f"position {p}", fontsize=8)
        axes[-1, 0].set_xlabel("epoch")
        fig.colorbar(image, ax=list(axes[:, 0]), label="probability")
        fig.suptitle(f"each position's top {top} candidates over training")
        written.append(out / "positions.png")
        fig.savefig(written[-1], dpi=120)
        plt.close(fig)
    return written


def _candidates(run: Path) -> list[str]:
    """The run's prompt vocabulary, from its checkpoint or prompt file."""
    for name in ("prompt.json", "checkpoint.json"):
        path = run / name
        if path.is_file():
            return [str(c) for c in json.loads(path.read_text(encoding="utf-8"))["candidates"]]
    return []


def _epoch_ends(history: list[dict[str, Any]]) -> list[int]:
    """Paid queries at the last step before each epoch line."""
    ends, last = [], 0
    for h in history:
        if h["kind"] == "step":
            last = h["paid_queries"]
        elif h["kind"] == "epoch":
            ends.append(last)
    return ends
