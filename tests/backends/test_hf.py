"""The helpers both local backends share (no model needed)."""

from __future__ import annotations

import pytest

from bdpl.backends._hf import check_sizes
from bdpl.errors import ConfigError


@pytest.mark.parametrize(
    ("sizes", "match"),
    [
        ((0, None, None), "batch_size must be an integer >= 1, got 0"),
        ((True, None, None), "batch_size must be an integer >= 1, got True"),
        ((8, 2.5, None), r"max_batch_size must be an integer >= 1, got 2\.5"),
        ((8, 16, 0), "max_input_tokens must be an integer >= 1, got 0"),
    ],
)
def test_check_sizes_names_the_bad_size(sizes: tuple[object, object, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        check_sizes(*sizes)  # type: ignore[arg-type]


def test_check_sizes_takes_none_for_the_optional_sizes() -> None:
    check_sizes(1, None, None)
    check_sizes(32, 256, 400)
