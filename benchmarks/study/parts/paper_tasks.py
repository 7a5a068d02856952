"""The BDPL paper's other five tasks at the reduced comparison's scale (``paper_tasks.toml``):
content-free calibration, the default estimator, the template alone, random search and bdpl;
the goal is counted over these and the reduced run's tasks together. ``--tiny`` keeps one
task and two seeds (so a std exists)."""

from __future__ import annotations

import compare

TITLE = "The other paper tasks at the reduced scale"
SWEEP = "paper_tasks.toml"
tiny, report = compare.hooks("paper_tasks", TITLE, tasks=1, seeds=2, also=("reduced",))
