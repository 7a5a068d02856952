"""The reduced comparison, the README's default: 3 tasks x 3 split seeds x every method
(``reduced.toml``); ``--tiny`` keeps one task and two seeds (so a std exists)."""

from __future__ import annotations

import compare

TITLE = "Reduced comparison (the default run)"
SWEEP = "reduced.toml"
tiny, report = compare.hooks("reduced", TITLE, tasks=1, seeds=2)
