"""The full comparison: 11 tasks x 5 split seeds x every method x both calibrations
(``main.toml``); ``--tiny`` keeps two tasks and one seed, every method still runs."""

from __future__ import annotations

import compare

TITLE = "Main comparison (full run)"
SWEEP = "main.toml"
tiny, report = compare.hooks("main", TITLE, tasks=2, seeds=1)
