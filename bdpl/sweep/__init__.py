"""Many fits at once: a grid of ``bdpl fit`` runs on local processes or a Dask cluster.

See :mod:`bdpl.sweep.grid` for the sweep file and the budget split, and
:mod:`bdpl.sweep.runner` for where cells run and what a dead worker costs.
"""

from bdpl.sweep.grid import Cell, Sweep, read_sweep
from bdpl.sweep.results import ResultsTable
from bdpl.sweep.runner import SweepReport, run_cell, run_sweep

__all__ = ["Cell", "ResultsTable", "Sweep", "SweepReport", "read_sweep", "run_cell", "run_sweep"]
