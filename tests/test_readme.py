"""README's offline quickstart runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_quickstart_recovers_the_planted_prompt() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Quickstart") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "the quickstart section lost its python block"
    namespace: dict[str, object] = {}
    exec(compile(code.group(1), "README.md", "exec"), namespace)  # asserts inside the snippet
    assert namespace["result"].prompt == namespace["planted"].best_prompt  # type: ignore[attr-defined]


def test_readme_testing_example_builds_and_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Testing your pipeline") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "the testing section lost its python block"
    namespace: dict[str, object] = {}
    exec(compile(code.group(1), "README.md", "exec"), namespace)
    from bdpl.metering import Meter, RetryPolicy
    from bdpl.types import Query

    backend = namespace["backend"]
    with Meter(backend, cache=False, retry=RetryPolicy(initial_wait=0, jitter=0)) as meter:  # type: ignore[arg-type]
        [answer] = meter.score([Query("It was", ".", (" bad", " good"))])
    assert len(answer.logprobs) == 2 and (tmp_path / "calls.jsonl").exists()
