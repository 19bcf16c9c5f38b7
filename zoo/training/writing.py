"""What training writes into a run directory, written so that a failed write (a full disk, a
file-size limit, a permission) ends in one `RunWriteError` and leaves the run resumable.

Weight files are made in memory and only then written to disk (`save_weights`): HDF5 writing to
a file that stops growing crashed the process (a segmentation fault inside `H5Fclose` when the
first checkpoint hit `ulimit -f`), while a write from Python fails with a plain `OSError`.
Every file is written to a temporary name and renamed (`zoo.files.atomic_path`), so a failed
write leaves the file before it, never a half-written one that looks valid. `HistoryLogger` is
Keras' `CSVLogger` with the same failure (a row cut short is trimmed on resume:
`zoo.training.callbacks.trim_torn_row`).
"""

from __future__ import annotations

import contextlib
import errno
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keras

from zoo.errors import UserError
from zoo.files import atomic_path

__all__ = ["HistoryLogger", "RunWriteError", "save_weights", "writing"]


class RunWriteError(UserError, OSError):
    """A file of a run could not be written (disk full, file too large, no permission): training
    stopped, and the run resumes from what was written before."""


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Turns an `OSError` raised in the block, while writing `path`, into a `RunWriteError`
    that names the file and the cause and says how to go on.

    Raises:
        RunWriteError: the block raised an `OSError`.
    """
    try:
        yield
    except RunWriteError:
        raise
    except OSError as error:
        code = errno.errorcode.get(error.errno or 0)
        cause = f"{error.strerror or error}{f' ({code})' if code else ''}"
        raise RunWriteError(
            f"could not write {path}: {cause}; the run keeps what it wrote before: make room "
            "(or lift the file-size limit) and run the same command again to resume"
        ) from error


class _WeightsBuffer(io.BytesIO):
    """An in-memory `.weights.h5` for `keras.Model.save_weights`, which checks the name's
    suffix (`str(filepath)`) and writes HDF5 into any `io.BytesIO`."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def __str__(self) -> str:
        return self.name


def save_weights(model: keras.Model, path: str | Path) -> None:
    """Writes `model.save_weights`' file (weights and optimizer state) to `path` atomically,
    made in memory first, so that a write that fails raises instead of crashing HDF5.

    Raises:
        RunWriteError: the file could not be written; anything at `path` before is intact.
    """
    path = Path(path)
    buffer = _WeightsBuffer(path.name)
    model.save_weights(buffer)
    with writing(path), atomic_path(path) as temporary:
        temporary.write_bytes(buffer.getvalue())


class HistoryLogger(keras.callbacks.CSVLogger):
    """Keras' `CSVLogger` whose failed write raises `RunWriteError` naming the file (the
    `OSError` of a failed flush names none) and closes the file, so that its unwritten row is
    not tried again when the process ends."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        with writing(self.filename):
            try:
                super().on_epoch_end(epoch, logs)
            except OSError:
                with contextlib.suppress(OSError):
                    self.csv_file.close()  # closes the file even when its last flush fails
                raise
