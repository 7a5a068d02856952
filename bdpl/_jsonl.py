"""Durable JSON-lines appends, shared by the ledger and the test doubles' call log.

One record is one ``os.write`` on a descriptor opened with ``O_APPEND``, so concurrent writers
(threads or processes) never interleave, followed by ``fsync``. A short write (a full disk) is an
``OSError``, never a silently truncated line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

__all__ = ["dumps_line", "open_append", "write_line"]


def dumps_line(record: Mapping[str, object]) -> bytes:
    """One compact JSON line, UTF-8 encoded (lone surrogates kept), newline included."""
    text = json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"
    return text.encode("utf-8", "surrogatepass")


def open_append(path: str | Path) -> int:
    """Open ``path`` for appending (created with mode 0644), returning the descriptor."""
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def write_line(fd: int, line: bytes, *, fsync: bool = True, name: object = "file") -> None:
    """Write ``line`` with one ``write`` and (by default) ``fsync`` it.

    Raises:
        OSError: the write was short (the line is not complete on disk) or failed.
    """
    written = os.write(fd, line)
    if written != len(line):
        raise OSError(f"{name}: short write ({written} of {len(line)} bytes)")
    if fsync:
        os.fsync(fd)
