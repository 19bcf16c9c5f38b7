"""Atomic file and directory writes: an interrupted write never leaves output that looks valid."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path"]


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields a temporary sibling of `path` to write a file or directory to; renames it on success.

    The temporary name starts with `.tmp-`, so an interrupted write leaves only a hidden, obviously
    unfinished entry, and on any exception it is removed. An existing `path` is replaced.

    Example:

    >>> import matplotlib.pyplot as plt
    >>> figure, axes = plt.subplots()
    >>> with atomic_path("figures/loss.png") as tmp:
    ...     figure.savefig(tmp, format="png")
    >>> plt.close(figure)
    >>> sorted(path.name for path in Path("figures").iterdir())  # no temporary file left
    ['loss.png']
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{path.name}")
    try:
        yield temporary
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(temporary, path)
    finally:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        elif temporary.exists():
            temporary.unlink()
