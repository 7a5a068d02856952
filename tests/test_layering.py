"""The package's layering holds: import-linter's contracts (pyproject.toml) and a light import.

Backends know nothing of the metering layer, the optimizer or tasks; the metering layer does
not import the optimizer; ``import bdpl`` pulls in none of the heavy SDKs (nor ``datasets``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "openai", "datasets")


def test_import_contracts_are_kept() -> None:
    lint_imports = Path(sys.executable).with_name("lint-imports")
    assert lint_imports.is_file(), "import-linter is missing: pip install -e '.[dev]'"
    done = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_import_bdpl_loads_no_heavy_sdk() -> None:
    code = (
        "import sys, bdpl, bdpl.backends, bdpl.metering, bdpl.data\n"
        f"print(bdpl.__file__, sorted(m for m in {HEAVY!r} if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    where, loaded = done.stdout.strip().split(" ", 1)
    assert Path(where).is_relative_to(ROOT)  # this checkout's bdpl, not an installed copy
    assert loaded == "[]", done.stdout + done.stderr
