"""Data containers and input checks shared by every family's data module."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import re
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from zoo.errors import UserError

__all__ = [
    "DataError",
    "Splits",
    "check_array",
    "fingerprint",
    "check_classes",
    "check_image_file",
    "check_input_file",
    "check_split",
    "decode_image",
    "fewest_for_split",
    "open_hdf5",
    "read_image_bytes",
]


class DataError(UserError, ValueError):
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

    SPLITS = ("train", "val", "test")

    def only(self, names: Sequence[str]) -> Splits:
        """A copy holding just the splits `names` (among "train", "val", "test"); the others
        are empty (test: `None`), so that figures drawn from it predict nothing else."""
        unknown = sorted(set(names) - set(self.SPLITS))
        if unknown:
            raise ValueError(f"unknown splits {unknown}; splits are {list(self.SPLITS)}")
        kept = {}
        for split in self.SPLITS:
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if split not in names and x is not None:
                x, y = (None, None) if split == "test" else (x[:0], None if y is None else y[:0])
            kept[f"x_{split}"], kept[f"y_{split}"] = x, y
        return dataclasses.replace(self, **kept)


def fingerprint(splits: Splits) -> str:
    """A SHA-256 of every split's arrays (shape, dtype and bytes): what a run trained on, so
    that a resume refuses other data at the same path and accepts the same data by any path.
    About a second for CIFAR-10's 50,000 images."""
    import hashlib

    digest = hashlib.sha256()
    for split in Splits.SPLITS:
        for array in (getattr(splits, f"x_{split}"), getattr(splits, f"y_{split}")):
            if array is not None:
                array = np.ascontiguousarray(array)
                digest.update(f"{split}{array.shape}{array.dtype.str}".encode())
                if array.size:  # (an empty split has no bytes to view)
                    digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


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
    missing = [key for key in required if not isinstance(handle.get(key), h5py.Dataset)]
    if missing:
        found = ", ".join(f"{key}{'' if isinstance(node, h5py.Dataset) else ' (a group)'}"
                          for key, node in sorted(handle.items())) or "(nothing)"
        handle.close()
        raise DataError(
            f"{path} has no dataset {', '.join(map(repr, missing))}; expected "
            f"{', '.join(map(repr, required))}, found {found}"
        )
    return handle


def read_hdf5_dataset(handle: Any, key: str) -> np.ndarray:
    """All of dataset `key` of an open HDF5 file (from `open_hdf5`).

    Raises:
        DataError: naming the file and key, when `key` is a group, not a dataset, or when its
            bytes cannot be read back (a truncated file, a corrupt compressed chunk).
    """
    import h5py

    node = handle[key]
    if not isinstance(node, h5py.Dataset):
        raise DataError(f"{handle.filename}: {key} is a group, not a dataset of numbers")
    try:
        return node[()]
    except (OSError, RuntimeError) as error:  # h5py's read errors, e.g. a filter failing
        raise DataError(
            f"{handle.filename}: dataset {key} cannot be read ({error}); the file is truncated "
            "or corrupt: copy it again"
        ) from None


# What a reader accepts before it decodes anything: a file over MAX_INPUT_BYTES, or an image
# whose header declares over MAX_IMAGE_PIXELS pixels (8192 x 8192), is refused by name, since
# decoding it could take all memory. Raise them here (`zoo.data.MAX_IMAGE_PIXELS = ...`) for
# larger inputs; every reader looks them up when it is called.
MAX_INPUT_BYTES = 64 * 2**20
MAX_IMAGE_PIXELS = 8192 * 8192


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def check_input_file(path: str | Path, what: str = "input") -> int:
    """Refuses, by name and before anything reads it, an input that is not a regular file (a
    folder, `/dev/zero`, a FIFO, a socket) or is larger than `MAX_INPUT_BYTES`.

    Args:
        path: the file; a symbolic link is followed.
        what: what the file should be, for messages (e.g. "image").

    Returns:
        The file's size in bytes.

    Raises:
        DataError: naming the file and why it is refused.
    """
    try:
        status = Path(path).stat()  # stat never opens: a FIFO cannot block it
    except FileNotFoundError:
        raise DataError(f"no such {what} file: {path}") from None
    except OSError as error:
        raise DataError(f"cannot read {what} file {path}: {error.strerror}") from None
    return _check_status(path, status, what)


def _check_status(path: str | Path, status: os.stat_result, what: str) -> int:
    if not stat.S_ISREG(status.st_mode):
        kind = ("a folder" if stat.S_ISDIR(status.st_mode)
                else "not a regular file (a device, FIFO or socket)")
        raise DataError(f"{path} is {kind}; give a regular {what} file")
    _check_size(path, status.st_size, what)
    return status.st_size


def _check_size(path: str | Path, size: int, what: str) -> None:
    if size > MAX_INPUT_BYTES:
        raise DataError(
            f"{path} has {size:,} bytes or more, over the {_megabytes(MAX_INPUT_BYTES)} limit "
            f"for one {what} file (zoo.data.MAX_INPUT_BYTES); give a smaller file"
        )


@contextlib.contextmanager
def _opened(path: str | Path, what: str) -> Iterator[BinaryIO]:
    """`path` opened for reading after `check_input_file`, and checked again through the open
    descriptor: a file swapped for a FIFO or a device after the first check is refused too, and
    opening without blocking means a FIFO cannot hang the open itself."""
    check_input_file(path, what)
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        raise DataError(f"cannot read {what} file {path}: {error.strerror}") from None
    with os.fdopen(descriptor, "rb") as handle:
        _check_status(path, os.fstat(descriptor), what)
        yield handle


def _check_image_header(path: str | Path, handle: BinaryIO) -> tuple[int, int]:
    """The `(width, height)` an image's header declares, read without decoding the pixels;
    refuses more than `MAX_IMAGE_PIXELS` and anything that is not an image."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    size: tuple[int, int] | None
    try:
        with warnings.catch_warnings():
            # Pillow warns from 89 megapixels on; the limit that matters here is ours.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(handle) as image:  # lazy: reads the header only
                size = image.size
    except Image.DecompressionBombError:  # beyond twice Pillow's own limit
        size = None
    except UnidentifiedImageError:
        raise DataError(f"cannot decode image {path}: Unknown image file format, not a JPEG, "
                        "PNG, GIF or BMP; replace or remove the file") from None
    except (OSError, ValueError, SyntaxError) as error:  # a header Pillow cannot parse
        raise DataError(f"cannot decode image {path}: {error}; replace or remove the file") from None
    if size is None or size[0] * size[1] > MAX_IMAGE_PIXELS:
        declared = "more pixels than Pillow opens" if size is None else f"{size[0]}x{size[1]} pixels"
        raise DataError(
            f"{path} declares {declared}, over the {MAX_IMAGE_PIXELS:,}-pixel limit "
            "(zoo.data.MAX_IMAGE_PIXELS); give a smaller image"
        )
    return size


def check_image_file(path: str | Path) -> tuple[int, int]:
    """Checks an image file as `decode_image` does (a regular file, at most `MAX_INPUT_BYTES`,
    a header that declares at most `MAX_IMAGE_PIXELS`), reading only its header: for loaders
    that decode elsewhere (a `tf.data` pipeline).

    Args:
        path: the image file.

    Returns:
        The declared `(width, height)`.

    Raises:
        DataError: naming the file and why it is refused.
    """
    with _opened(path, "image") as handle:
        return _check_image_header(path, handle)


def read_image_bytes(path: str | Path) -> bytes:
    """An image file's bytes, after the checks of `check_image_file`, for a decoder.

    Args:
        path: the image file.

    Returns:
        The whole file.

    Raises:
        DataError: naming the file and why it is refused.
    """
    with _opened(path, "image") as handle:
        content = handle.read(MAX_INPUT_BYTES + 1)
    _check_size(path, len(content), "image")  # it grew since it was checked
    _check_image_header(path, io.BytesIO(content))
    return content


def decode_image(path: str | Path) -> np.ndarray:
    """Decodes an image file (JPEG, PNG, BMP, or a GIF's first frame) to uint8 RGB `(H, W, 3)`,
    after refusing, without decoding, what `check_image_file` refuses.

    Raises:
        DataError: naming the file, when it is refused, cannot be read or is not an image.
    """
    import tensorflow as tf  # decoding only; keeps `zoo list` free of the TensorFlow import

    content = read_image_bytes(path)
    try:
        return tf.io.decode_image(content, channels=3, expand_animations=False).numpy()
    except tf.errors.OpError as error:
        raise DataError(
            f"cannot decode image {path}: {_op_message(error)}; replace or remove the file"
        ) from None


def _op_message(error: Exception) -> str:
    """A TensorFlow op error's message on one line, without its graph-node decorations."""
    message = re.sub(r"\{\{.*?\}\}", "", getattr(error, "message", str(error)))
    message = re.sub(r"\[\[.*?\]\]|\[Op:.*", "", message, flags=re.DOTALL)
    return " ".join(message.split()).rstrip(".")
