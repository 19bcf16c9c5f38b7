"""Data containers and input checks shared by every family's data module."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "DataError",
    "Splits",
    "check_array",
    "check_classes",
    "check_split",
    "decode_image",
    "fewest_for_split",
    "open_hdf5",
]


class DataError(ValueError):
    """Raised for data that is missing, malformed or not what a model expects."""


@dataclasses.dataclass
class Splits:
    """Arrays for training, validation and (optionally) testing, plus where they came from.

    `y_*` are `None` for unsupervised tasks (the autoencoder's target is its input).
    `info` describes the source and the preprocessing, and is copied into model cards.
    """

    x_train: np.ndarray
    x_val: np.ndarray
    y_train: np.ndarray | None = None
    y_val: np.ndarray | None = None
    x_test: np.ndarray | None = None
    y_test: np.ndarray | None = None
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


def check_array(
    array: Any,
    name: str,
    shape: Sequence[int | None],
    *,
    source: str = "input",
) -> np.ndarray:
    """Checks a numeric array's shape, dtype and finiteness; returns it as a NumPy array.

    Args:
        array: the data.
        name: what the array is, for messages (e.g. "patches").
        shape: expected shape; `None` matches any size along that axis.
        source: where the array came from (a file path, say), for messages.
    """
    array = np.asarray(array)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise DataError(f"{name} in {source} must be numeric, got dtype {array.dtype}")
    expected = "(" + ", ".join("N" if size is None else str(size) for size in shape) + ")"
    if array.ndim != len(shape) or any(
        size is not None and actual != size for actual, size in zip(array.shape, shape)
    ):
        raise DataError(f"{name} in {source} must have shape {expected}, got {array.shape}")
    if array.size == 0:
        raise DataError(f"{name} in {source} is empty")
    if np.issubdtype(array.dtype, np.floating):
        bad = ~np.isfinite(array)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise DataError(
                f"{name} in {source} has {int(bad.sum())} NaN/inf values (first at index {first})"
            )
    return array


def check_classes(labels: np.ndarray, class_names: Sequence[str], source: str) -> None:
    """Refuses training labels that hold fewer than two classes.

    A classifier trained on one class learns nothing, yet scores a perfect validation accuracy.

    Args:
        labels: class indices into `class_names`, one per training example.
        class_names: the task's classes, for the message.
        source: where the labels came from (a file path, say), for messages.
    """
    present = np.unique(labels)
    if len(present) < 2:
        names = ", ".join(class_names[int(index)] for index in present) or "none"
        raise DataError(
            f"{source}: the training data has examples of only {len(present)} class ({names}); "
            "a classifier needs at least two classes with examples: add examples of the others"
        )


def check_split(count: int, validation: int, *, what: str, source: str, fix: str) -> None:
    """Refuses a held-out split that leaves no validation example or no training example.

    Called by loaders that were asked for a validation split, before any training starts.

    Args:
        count: examples before the split.
        validation: how many of them the split holds out.
        what: the examples, plural, for messages (e.g. "training windows").
        source: where they came from (a file path, say), for messages.
        fix: how to get a usable split (e.g. "give at least 6 windows"), for messages.
    """
    if not 1 <= validation < count:
        raise DataError(
            f"{source}: {count} {what} leave {validation} for validation and "
            f"{count - validation} for training; a validation split needs at least one of each: "
            f"{fix}"
        )


def fewest_for_split(fraction: float) -> int:
    """The fewest examples `n` of which holding out `round(fraction * n)` leaves at least one
    for validation and one for training; `fraction` in (0, 1)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction!r}")
    count = 2
    while not 1 <= round(fraction * count) < count:
        count += 1
    return count


def open_hdf5(path: str | Path, required: Sequence[str]):
    """Opens an HDF5 file for reading and checks that it has the `required` datasets.

    Returns the open `h5py.File`; use it as a context manager.
    """
    import h5py  # imported here: only HDF5 readers need it

    path = Path(path)
    if not path.is_file():
        raise DataError(f"no such HDF5 file: {path}")
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        raise DataError(f"{path} is not a readable HDF5 file ({error})") from None
    missing = [key for key in required if key not in handle]
    if missing:
        found = ", ".join(sorted(handle.keys())) or "(nothing)"
        handle.close()
        raise DataError(
            f"{path} has no dataset {', '.join(map(repr, missing))}; expected "
            f"{', '.join(map(repr, required))}, found {found}"
        )
    return handle


def decode_image(path: str | Path) -> np.ndarray:
    """Decodes an image file (JPEG, PNG, BMP, or a GIF's first frame) to uint8 RGB `(H, W, 3)`.

    Raises:
        DataError: naming the file, when it cannot be read or is not an image.
    """
    import tensorflow as tf  # decoding only; keeps `zoo list` free of the TensorFlow import

    try:
        return tf.io.decode_image(
            tf.io.read_file(str(path)), channels=3, expand_animations=False
        ).numpy()
    except tf.errors.OpError as error:
        raise DataError(
            f"cannot decode image {path}: {_op_message(error)}; replace or remove the file"
        ) from None


def _op_message(error: Exception) -> str:
    """A TensorFlow op error's message on one line, without its graph-node decorations."""
    message = re.sub(r"\{\{.*?\}\}", "", getattr(error, "message", str(error)))
    message = re.sub(r"\[\[.*?\]\]|\[Op:.*", "", message, flags=re.DOTALL)
    return " ".join(message.split()).rstrip(".")
