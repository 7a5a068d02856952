"""Where bdpl keeps files on disk: one cache root for query caches and converted models."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """The cache root: ``$BDPL_CACHE_DIR``, else ``$XDG_CACHE_HOME/bdpl``, else ``~/.cache/bdpl``.

    Query caches live in ``<root>/queries`` and converted models in ``<root>/models``.
    """
    env = os.environ.get("BDPL_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "bdpl"


def models_dir() -> Path:
    """Where converted models are kept: ``$BDPL_MODEL_DIR``, else ``cache_root() / "models"``."""
    env = os.environ.get("BDPL_MODEL_DIR")
    return Path(env).expanduser() if env else cache_root() / "models"
