"""`zoo predict` for the recurrent family: accelerometer windows from .npy or HDF5 files, the
predicted activity per window, a window with NaN/inf refused alone.

An HDF5 file in the course's layout holds training and test windows: by default the test split
(`tstX`) is read, then a plain `X`, then the training split (`trX`), and the key read is logged.
Predictions are grouped by class, so `zoo predict --output` prints counts per class.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.recurrent import data

if TYPE_CHECKING:
    from zoo.predicting import Prediction
    from zoo.recurrent.model import SequenceClassifier

__all__ = ["DEFAULT_KEYS", "predict", "read_input_windows"]

_log = logging.getLogger(__name__)

# The HDF5 datasets tried, in order, without --key: predicting is for unseen windows.
DEFAULT_KEYS = ("tstX", "X", "trX")
_SPLITS = {"tstX": "the test split", "trX": "the training split"}


def _hdf5_windows(path: Path, key: str | None) -> tuple[np.ndarray, str]:
    from zoo import data as shared
    from zoo.data import DataError, open_hdf5, read_hdf5_dataset

    with open_hdf5(path, []) as handle:
        found = key if key else next((k for k in DEFAULT_KEYS if k in handle), None)
        if found is None or found not in handle:
            present = ", ".join(sorted(handle.keys())) or "nothing"
            raise DataError(f"{path} has no dataset {key or ', '.join(DEFAULT_KEYS)} (it holds "
                            f"{present}); pass --key")
        dataset = handle[found]
        if not hasattr(dataset, "dtype") or dataset.dtype.kind not in "fiu":
            raise DataError(f"{path}: {found} is not a numeric dataset; pass --key")
        nbytes = int(np.prod(dataset.shape, dtype=np.int64)) * dataset.dtype.itemsize
        if nbytes > shared.MAX_INPUT_BYTES:  # checked before reading: it would all be loaded
            raise DataError(
                f"{path}: dataset {found} {dataset.shape} has {nbytes:,} bytes, over the "
                f"{shared.MAX_INPUT_BYTES:,}-byte limit (zoo.data.MAX_INPUT_BYTES); split it"
            )
        return read_hdf5_dataset(handle, found), found


def read_input_windows(path: Path, key: str | None = None) -> tuple[np.ndarray, str | None]:
    """The float32 `(N, 150, 3)` windows of an .npy file, or of an HDF5 file's dataset `key`
    (default the first of `DEFAULT_KEYS` present).

    Args:
        path: an .npy file (a single `(150, 3)` window is one window), or an HDF5 file.
        key: the HDF5 dataset; ignored for .npy files.

    Returns:
        The windows, and the HDF5 dataset read (`None` for .npy).

    Raises:
        DataError: naming the file: not a regular file, too large, no such dataset, or not
            windows.
    """
    from zoo.data import DataError, check_input_file

    found = None
    if path.suffix.lower() == ".npy":
        check_input_file(path, ".npy")
        try:
            windows = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise DataError(f"cannot read {path} as .npy ({error})") from None
    else:
        check_input_file(path, "HDF5")  # a size check on the dataset follows, not on the file
        windows, found = _hdf5_windows(path, key)
    windows = np.asarray(windows)
    if windows.ndim == 2:
        windows = windows[None]
    if windows.ndim != 3 or windows.shape[1:] != (data.STEPS, data.AXES):
        raise DataError(
            f"{path}: windows must have shape (N, {data.STEPS}, {data.AXES}), got {windows.shape}"
        )
    if not np.issubdtype(windows.dtype, np.number):
        raise DataError(f"{path}: windows must be numbers, got dtype {windows.dtype}")
    return windows.astype(np.float32), found


def predict(model: SequenceClassifier, inputs: list[str],
            options: dict[str, Any]) -> list[Prediction]:
    """HDF5 (`options["key"]`, default the first of tstX/X/trX) or .npy files of `(N, 150, 3)`
    windows: the predicted activity and its probabilities per window, grouped by activity for a
    summary. A file that cannot be read, or a window with NaN/inf, fails alone. `Task.predict`
    of the recurrent entries.

    Args:
        model: a trained sequence classifier.
        inputs: .npy or HDF5 files.
        options: `key` (the HDF5 dataset) and `class_names` (default the course's activities).

    Returns:
        One prediction per window (or one refusal per unreadable file).
    """
    from zoo.data import DataError
    from zoo.predicting import Prediction, class_rows

    names = options.get("class_names") or data.COURSE_CLASSES
    results = []
    for text in inputs:
        path = Path(text)
        try:
            windows, key = read_input_windows(path, options.get("key"))
        except DataError as error:
            results.append(Prediction(text, error=str(error)))
            continue
        if key is not None:
            split = f" ({_SPLITS[key]})" if key in _SPLITS else ""
            _log.info("%s: %d windows from dataset %r%s", text, len(windows), key, split)
        finite = np.isfinite(windows).all(axis=(1, 2))
        probabilities = np.zeros((len(windows), model.num_classes), np.float32)
        if finite.any():
            probabilities[finite] = model.predict(windows[finite], batch_size=256, verbose=0)
        for index in range(len(windows)):
            label = f"{text}[{index}]"
            if not finite[index]:
                results.append(Prediction(label, error="the window has NaN or infinite values"))
            else:
                results.append(class_rows(label, probabilities[index], names,
                                          top=len(probabilities[index]), grouped=True))
    return results
