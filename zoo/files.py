"""Atomic file and directory writes: an interrupted write never leaves output that looks valid,
and no write ever removes a directory or replaces something that is not a regular file."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from zoo.errors import UserError

__all__ = ["OutputError", "atomic_path"]


class OutputError(UserError, ValueError):
    """An output path zoo will not write to: an existing directory, a device, a FIFO, or another
    file zoo did not write."""


def _refuse_existing(path: Path) -> None:
    """Raises `OutputError` when `path` exists as anything but a regular file (or a link to one):
    a directory is never removed to make room, a device or FIFO never replaced."""
    if path.exists() and not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file"
        raise OutputError(
            f"{path} is {kind}; zoo writes only new files or its own earlier files there: "
            "give a file path that is free"
        )


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary sibling of `path` to write a file or directory to; renames it on success.

    The temporary name starts with `.tmp-`, so an interrupted write leaves only a hidden, obviously
    unfinished entry, and on any exception it is removed. An existing regular file at `path` is
    replaced; an existing directory, device or FIFO is never removed or replaced, and a directory
    written to the temporary never replaces anything.

    Example:

    >>> import matplotlib.pyplot as plt
    >>> figure, axes = plt.subplots()
    >>> with atomic_path("figures/loss.png") as tmp:
    ...     figure.savefig(tmp, format="png")
    >>> plt.close(figure)
    >>> sorted(path.name for path in Path("figures").iterdir())  # no temporary file left
    ['loss.png']

    Raises:
        OutputError: `path` is an existing directory or not a regular file (before anything is
            written), or the temporary is a directory and `path` exists.
    """
    path = Path(path)
    _refuse_existing(path)  # before the caller spends any work on the content
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{path.name}")
    try:
        yield temporary
        _refuse_existing(path)  # something may have appeared there meanwhile
        if temporary.is_dir() and os.path.lexists(path):
            raise OutputError(f"{path} exists; zoo writes a directory only where nothing is")
        os.replace(temporary, path)
    finally:
        if temporary.is_dir() and not temporary.is_symlink():
            shutil.rmtree(temporary, ignore_errors=True)
        elif os.path.lexists(temporary):
            temporary.unlink()
