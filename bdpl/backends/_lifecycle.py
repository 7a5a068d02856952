"""Closing a backend: once, as a context manager, with a clear error for a call after it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bdpl.errors import ConfigError

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self needs Python 3.11


class Closing:
    """``close()`` (idempotent), ``with`` support and :meth:`_check_open` for a backend.

    Subclasses implement :meth:`_release` (what closing frees) and call :meth:`_check_open`
    at the top of every call that needs what was released. Closing while another thread is
    in a call is not supported, as for a file.
    """

    _closed: bool = False

    def close(self) -> None:
        """Release what the backend holds; a second call does nothing."""
        if self._closed:
            return
        self._closed = True
        self._release()

    def _release(self) -> None:
        """Free what the backend holds (called once, by :meth:`close`)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        """Raise a clear error on a closed backend instead of a foreign one later."""
        if self._closed:
            raise ConfigError(f"{type(self).__name__} was closed; build a new one to score")
