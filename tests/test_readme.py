"""README's offline quickstart runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_quickstart_recovers_the_planted_prompt() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Quickstart") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "the quickstart section lost its python block"
    namespace: dict[str, object] = {}
    exec(compile(code.group(1), "README.md", "exec"), namespace)  # asserts inside the snippet
    assert namespace["result"].prompt == namespace["planted"].best_prompt  # type: ignore[attr-defined]
