"""The progress bar of long commands: live loss, paid queries and dollars, on a terminal only."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any


class StepBar:
    """A tqdm bar over optimizer steps, drawn only when enabled and stderr is a terminal.

    Args:
        enabled: ``False`` (``--quiet``) draws nothing.
        total: steps expected, when known.
    """

    def __init__(self, *, enabled: bool, total: int | None = None) -> None:
        self._bar: Any = None
        if enabled and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc="bdpl fit", unit="step", file=sys.stderr)

    def update(self, record: dict[str, Any]) -> None:
        """Advance one step, showing the step's loss, paid queries and dollars."""
        if self._bar is None:
            return
        self._bar.update(1)
        self._bar.set_postfix(
            loss=f"{record['loss']:.4f}",
            paid=f"{record['paid_queries']:,}",
            cost=f"${record['dollars']:.4f}",
        )

    def __enter__(self) -> StepBar:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.close()
