"""`--overwrite` of a finished run: the new run is built beside the old one and swapped in only
once it is finished, so that a failure or an interrupt leaves the old run as it was.

    runs/.lstm.overwrite-1a2b3c4d/   the new run, trained here (a run directory like any other)
    runs/lstm/                       the old run, locked, untouched until the new one is finished
    runs/.lstm.trash-5e6f7a8b/       the old run for an instant after the swap, then removed

A kill at any instant leaves the complete old or the complete new run at the path, beside at
most one of these siblings; the next overwrite of the path retires it (`replacing`). Nothing
here imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from zoo.files import exchange, is_temporary
from zoo.runs import FINISHED, RunDirectory, RunError, kill_point, locked

logger = logging.getLogger(__name__)

__all__ = ["OVERWRITE_INFIX", "TRASH_INFIX", "replacing"]

# The siblings `replacing` builds a new run in and moves the old one to before removing it.
OVERWRITE_INFIX, TRASH_INFIX = ".overwrite-", ".trash-"


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """Builds the run that replaces the one at `path` beside it, and swaps it in only once the
    new run is finished: what `--overwrite` does to a run directory holding a run.

    Holding the lock of `path` throughout (no one resumes the old run meanwhile), it retires
    what an overwrite killed midway left, then yields a new claimed sibling
    `.NAME.overwrite-XXXXXXXX` to train into. Once the new run is finished the two folders are
    exchanged (atomically on Linux, `zoo.files.exchange`), the old one renamed
    `.NAME.trash-XXXXXXXX`, what zoo did not write in it moved into the new run, and removed.
    When the block raises (Ctrl-C too) the new folder is removed, `path` as it was. A kill
    leaves the complete old or new run at `path`, beside a sibling the next overwrite retires.

    Args:
        path: a run directory zoo owns.

    Yields:
        The folder to build the new run in.

    Raises:
        RunError: `path` is not zoo's, or is in use by another process, or the block ended
            without a finished run in the new folder (`path` is then unchanged).
    """
    old = RunDirectory(path)
    old.claim()  # the owner check: a folder zoo did not make is never replaced
    base = Path(os.path.abspath(old.path))  # "." and "runs/x/.." have a name and a parent too

    def sibling(infix: str) -> Path:
        return base.with_name(f".{base.name}{infix}{uuid.uuid4().hex[:8]}")

    with old.lock():
        _retire_leftovers(base)
        new = RunDirectory(sibling(OVERWRITE_INFIX))
        try:
            new.claim()
            yield new.path
            if new.status() != FINISHED:
                raise RunError(f"the run that was to replace {old.path} did not finish; "
                               f"{old.path} is unchanged")
        except BaseException:
            shutil.rmtree(new.path, ignore_errors=True)
            raise
        exchange(old.path, new.path)  # `path` holds the new run now, `new.path` the old one
        kill_point("exchanged")
        trash = sibling(TRASH_INFIX)
        os.rename(new.path, trash)
        _retire(RunDirectory(trash), base)


def _retire(run: RunDirectory, successor: Path) -> None:
    """Removes a replaced (or half-built) run after moving what zoo did not write in it into
    `successor`; where `successor` has that name already, the run is kept, with a warning."""
    written = run.written_names()
    kept = []
    for entry in sorted(run.path.iterdir()):
        if entry.name in written or is_temporary(entry.name):
            continue
        if os.path.lexists(successor / entry.name):
            kept.append(entry.name)
        else:
            os.rename(entry, successor / entry.name)
    if kept:
        logger.warning("kept %s: it holds %s, which zoo did not write and %s has too",
                       run.path, ", ".join(kept), successor)
        return
    shutil.rmtree(run.path, ignore_errors=True)


def _retire_leftovers(path: Path) -> None:
    """Retires the siblings an overwrite of `path` killed midway left (see `replacing`): zoo's
    (owner marker), not in use, of the exact names `replacing` gives."""
    name = re.compile(rf"\.{re.escape(path.name)}"
                      rf"({re.escape(OVERWRITE_INFIX)}|{re.escape(TRASH_INFIX)})[0-9a-f]{{8}}")
    for entry in sorted(path.parent.iterdir()):
        leftover = RunDirectory(entry)
        if not (name.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink()
                and leftover.is_owned()):
            continue
        try:
            with locked(entry, "run directory"):
                _retire(leftover, path)
        except RunError as error:  # in use, or a record damaged by hand: left as it is
            logger.warning("left %s: %s", entry, error)
