"""Atomic file and directory writes: an interrupted write never leaves output that looks valid,
and no write ever removes a directory or replaces something that is not a regular file."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from zoo.errors import UserError

__all__ = ["OutputError", "atomic_path", "exchange", "is_temporary", "remove_temporaries"]

# The name `atomic_path` gives its temporary: `.tmp-`, 8 hex digits, `-`, the final name. Only
# names of exactly this shape are taken for a killed write's leftovers (`remove_temporaries`).
TEMPORARY_NAME = re.compile(r"\.tmp-[0-9a-f]{8}-.+")


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
    temporary = path.with_name(f".tmp-{uuid.uuid4().hex[:8]}-{path.name}")  # TEMPORARY_NAME
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


def is_temporary(name: str) -> bool:
    """Whether `name` is one `atomic_path` gives its temporaries (`.tmp-` + 8 hex digits + `-` +
    the final name): what a write killed before its rename leaves behind."""
    return TEMPORARY_NAME.fullmatch(name) is not None


def remove_temporaries(directory: str | Path) -> list[str]:
    """Removes the temporaries that killed `atomic_path` writes left in `directory` (not below it).

    Only for a folder zoo owns and no other process writes into meanwhile (a run directory
    whose lock the caller holds): there, a `.tmp-` entry of `atomic_path`'s exact shape is a
    write that can no longer finish. Entries of any other name are left alone.

    Args:
        directory: the folder; a missing one holds nothing.

    Returns:
        The names removed.
    """
    removed = []
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        for entry in sorted(Path(directory).iterdir()):
            if not is_temporary(entry.name):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                with contextlib.suppress(FileNotFoundError):
                    entry.unlink()
            removed.append(entry.name)
    return removed


# renameat2(2)'s flag that swaps two paths in one step (Linux 3.15+, glibc 2.28+).
_RENAME_EXCHANGE, _AT_FDCWD = 2, -100


def exchange(first: str | Path, second: str | Path) -> None:
    """Swaps two existing paths, so that each name holds what the other held.

    On Linux this is one atomic step (`renameat2` with `RENAME_EXCHANGE`): at every instant each
    name holds one of the two. Where that is missing (another system, a file system without
    it) it is three renames through a third name, with an instant in which `first` is missing.

    Args:
        first: a file or folder.
        second: a file or folder on the same file system.

    Raises:
        OSError: either is missing, or they are on different file systems.
    """
    first, second = os.fsencode(first), os.fsencode(second)
    try:
        import ctypes

        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError, ImportError):
        renameat2 = None
    if renameat2 is not None:
        if renameat2(_AT_FDCWD, first, _AT_FDCWD, second, _RENAME_EXCHANGE) == 0:
            return
        number = ctypes.get_errno()
        if number not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
            raise OSError(number, os.strerror(number), os.fsdecode(first))
    middle = first + b".exchange-" + uuid.uuid4().hex[:8].encode()
    os.rename(first, middle)
    os.rename(second, first)
    os.rename(middle, second)
