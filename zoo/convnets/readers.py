"""CIFAR-10's three local formats, read into uint8 images and int64 class indices (nothing is
downloaded):

- the standard python batches, `cifar-10-batches-py` (where `keras.datasets.cifar10` caches
  them), read with a restricted unpickler that admits only the dicts, lists, bytes and NumPy
  arrays those files hold; or the binary batches, `cifar-10-batches-bin`;
- a class-folder tree of images, `ROOT/<class>/*.jpg`; any image size, resized to 32x32; any
  class names (a cat/dog folder is a two-class problem), sorted, CIFAR-10's ten in their
  canonical order;
- an `.npz` with `x_train`, `y_train` (and optionally `x_test`, `y_test`), or `x`, `y`.

`zoo.convnets.data` chooses the reader for a path, holds out the validation split and builds the
`tf.data` pipeline. TensorFlow is imported by the functions that decode images, not with this
module.
"""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.data import DataError, check_array, check_image_file, decode_image

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "CLASS_NAMES",
    "IMAGE_SHAPE",
    "IMAGE_SUFFIXES",
    "ImageFiles",
    "TRAIN_BATCHES",
    "fit_image",
    "folder_classes",
    "list_image_folder",
    "read_binary_batches",
    "read_image_folder",
    "read_npz",
    "read_python_batches",
    "to_channels_last",
]

CLASS_NAMES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
IMAGE_SHAPE = (32, 32, 3)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
#: The five training batches' file names (plus a suffix, ".bin", for the binary batches).
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))


def to_channels_last(images: np.ndarray, source: str = "input") -> np.ndarray:
    """`(N, 32, 32, 3)` from `(N, 32, 32, 3)`, `(N, 3, 32, 32)` (the course's layout) or
    `(N, 3072)` rows in CIFAR's channel-major order."""
    images = np.asarray(images)
    if images.ndim == 2 and images.shape[1] == 3072:
        images = images.reshape(-1, 3, 32, 32)
    if images.ndim == 4 and images.shape[1:] == (3, 32, 32):
        images = images.transpose(0, 2, 3, 1)
    return check_array(images, "images", (None, *IMAGE_SHAPE), source=source)


def _as_uint8(images: np.ndarray, source: str) -> np.ndarray:
    if images.dtype == np.uint8:
        return images
    low, high = float(images.min()), float(images.max())
    if low < 0 or high > 255:
        raise DataError(f"images in {source} must be pixel values in [0, 255], got [{low}, {high}]")
    if np.issubdtype(images.dtype, np.floating) and high <= 1.0:
        raise DataError(
            f"images in {source} look scaled to [0, 1]; give raw pixel values in [0, 255]"
        )
    return np.round(images).astype(np.uint8)


def _labels(labels: Any, count: int, source: str, classes: int = len(CLASS_NAMES)) -> np.ndarray:
    labels = check_array(np.asarray(labels).reshape(-1), "labels", (count,), source=source)
    if not np.issubdtype(labels.dtype, np.integer):
        if not np.all(labels == np.round(labels)):
            raise DataError(f"labels in {source} must be whole class indices 0-{classes - 1}")
        labels = labels.astype(np.int64)
    bad = (labels < 0) | (labels >= classes)
    if bad.any():
        raise DataError(
            f"labels in {source} must be class indices in [0, {classes - 1}], "
            f"got {labels[bad][0]} (at index {int(np.argmax(bad))})"
        )
    return labels.astype(np.int64)


# --- (a) the python and binary batches ---


class _BatchUnpickler(pickle.Unpickler):
    """Admits only what a CIFAR batch holds: dicts, lists, strings, bytes and NumPy arrays.

    `pickle.load` would run any callable a file names; a downloaded file should not get that.
    """

    _ALLOWED = {
        ("_codecs", "encode"),  # how Python 3 writes bytes at protocol 2: str -> bytes only
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            content = _BatchUnpickler(handle, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise DataError(f"{path} is not a CIFAR python batch ({error})") from None
    if not isinstance(content, dict):
        raise DataError(f"{path} must hold a dict, got {type(content).__name__}")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in content.items()}


def _python_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    content = _unpickle(path)
    missing = [key for key in ("data", "labels") if key not in content]
    if missing:
        raise DataError(f"{path} has no {', '.join(map(repr, missing))}; found {sorted(content)}")
    images = to_channels_last(content["data"], str(path))
    return _as_uint8(images, str(path)), _labels(content["labels"], len(images), str(path))


def _batches(
    directory: str | Path, suffix: str, read: Any, kind: str
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The five training batches (and `test_batch` if present) of `directory`, each `read`."""
    directory = Path(directory)
    names = [f"{name}{suffix}" for name in TRAIN_BATCHES]
    missing = [name for name in names if not (directory / name).is_file()]
    if missing:
        raise DataError(f"{directory} lacks the {kind} batches {', '.join(missing)}")
    parts = [read(directory / name) for name in names]
    splits = {"train": tuple(np.concatenate(arrays) for arrays in zip(*parts))}
    if (directory / f"test_batch{suffix}").is_file():
        splits["test"] = read(directory / f"test_batch{suffix}")
    return splits


def read_python_batches(directory: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Reads `cifar-10-batches-py`: `{"train": (images, labels), "test": ...}` (test if present).

    Images are uint8 `(N, 32, 32, 3)`, labels int64 class indices.
    """
    return _batches(directory, "", _python_batch, "python")


def _binary_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, np.uint8)
    if raw.size == 0 or raw.size % 3073:
        raise DataError(f"{path} is not a CIFAR-10 binary batch (records of 1 + 3072 bytes)")
    records = raw.reshape(-1, 3073)
    return to_channels_last(records[:, 1:], str(path)), _labels(records[:, 0], len(records), str(path))


def read_binary_batches(directory: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Reads `cifar-10-batches-bin` (records of a label byte and 3,072 pixel bytes), as
    `read_python_batches` does the python batches."""
    return _batches(directory, ".bin", _binary_batch, "binary")


# --- (b) a class-folder tree of images ---


def _decode(path: tf.Tensor) -> tf.Tensor:
    import tensorflow as tf

    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    return fit_image(image)


def fit_image(image: tf.Tensor) -> tf.Tensor:
    """A decoded uint8 RGB image `(H, W, 3)` at 32x32, resized as class-folder images are."""
    import tensorflow as tf

    image = tf.convert_to_tensor(image)
    image.set_shape([None, None, 3])

    def resized() -> tf.Tensor:
        smaller = tf.image.resize(image, IMAGE_SHAPE[:2], antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(smaller), 0, 255), tf.uint8)

    same_size = tf.reduce_all(tf.shape(image)[:2] == IMAGE_SHAPE[:2])
    return tf.ensure_shape(tf.cond(same_size, lambda: image, resized), IMAGE_SHAPE)


def _class_folders(root: Path) -> list[Path]:
    # Hidden folders (.ipynb_checkpoints, say) are not classes.
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def folder_classes(root: str | Path) -> tuple[str, ...]:
    """The classes of a class-folder tree: its subfolders' names, sorted (CIFAR-10's ten sort
    into `CLASS_NAMES`' order; a cat/dog folder is a problem of two classes).

    Raises:
        DataError: `root` has no class folders.
    """
    names = tuple(p.name for p in _class_folders(Path(root)))
    if not names:
        raise DataError(f"{root} has no class folders; expected {root}/<class>/*.jpg")
    return CLASS_NAMES if set(names) == set(CLASS_NAMES) else names


class ImageFiles:
    """The image files of a class-folder tree, listed and checked but not yet decoded: a split
    decodes only the files it takes (`decode`), so evaluating a test folder does not decode the
    50,000 training images beside it."""

    def __init__(self, paths: Sequence[str], root: Path) -> None:
        self.paths = np.asarray(paths, dtype=str)
        self.root = root

    def __len__(self) -> int:
        return len(self.paths)

    def decode(self, indices: np.ndarray | None = None) -> np.ndarray:
        """uint8 `(len(indices), 32, 32, 3)` images of the files at `indices` (all by default),
        in that order, decoded in parallel.

        Raises:
            DataError: naming the first file refused by `zoo.data.check_image_file` (a device,
                a huge file or image: refused before anything decodes) or not decodable.
        """
        import tensorflow as tf

        paths = self.paths if indices is None else self.paths[np.asarray(indices, np.int64)]
        if not len(paths):
            return np.zeros((0, *IMAGE_SHAPE), np.uint8)
        for path in paths:
            check_image_file(path)
        decoded = tf.data.Dataset.from_tensor_slices(paths).map(
            _decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        )
        try:
            return np.concatenate(list(decoded.batch(4096).as_numpy_iterator()))
        except tf.errors.OpError as error:
            for path in paths:  # the parallel pipeline does not say which file: find it
                decode_image(path)
            first_line = error.message.splitlines()[0]
            raise DataError(f"an image under {self.root} could not be read ({first_line})") from None


def list_image_folder(
    root: str | Path, class_names: Sequence[str] | None = None
) -> tuple[ImageFiles, np.ndarray]:
    """The images of `root/<class>/*`, listed and checked (not decoded), and their int64 labels,
    indices into `class_names`: by default the folder's own (`folder_classes`); when given,
    every subfolder must be one of them (a subset is fine: a test folder with some of the
    training classes).

    Raises:
        DataError: a folder not among `class_names`, or one without images.
    """
    root = Path(root)
    class_names = folder_classes(root) if class_names is None else tuple(class_names)
    folders = _class_folders(root)
    unknown = [p.name for p in folders if p.name not in class_names]
    if unknown:
        raise DataError(
            f"{root} has class folders {unknown} that are not classes of the data "
            f"{list(class_names)}; rename or remove them, or give classes that include them"
        )
    paths, labels, empty = [], [], []
    for folder in folders:
        files = sorted(
            p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        paths += [str(p) for p in files]
        labels += [class_names.index(folder.name)] * len(files)
        empty += [] if files else [str(folder)]
    if not paths:
        raise DataError(
            f"no images ({', '.join(IMAGE_SUFFIXES)}) in class folders under {root}; "
            f"expected {root}/<class>/*.jpg with classes from {list(class_names)}"
        )
    if empty:
        raise DataError(
            f"class folder{'s' if len(empty) > 1 else ''} {', '.join(empty)} "
            f"{'have' if len(empty) > 1 else 'has'} no images ({', '.join(IMAGE_SUFFIXES)}); "
            "add the class's images or remove the folder"
        )
    return ImageFiles(paths, root), np.asarray(labels, np.int64)


def read_image_folder(
    root: str | Path, class_names: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Reads `root/<class>/*` images (`list_image_folder`), decoded in parallel, as uint8
    `(N, 32, 32, 3)` and int64 labels. Images of another size are resized to 32x32, greyscale
    ones repeated to RGB.

    Raises:
        DataError: a folder not among `class_names`, one without images, or an undecodable image.
    """
    files, labels = list_image_folder(root, class_names)
    return files.decode(), labels


# --- (c) an .npz ---


_NPZ_LAYOUT = "expected an .npz archive with x_train, y_train [, x_test, y_test] or x, y"


def read_npz(
    path: str | Path, num_classes: int = len(CLASS_NAMES)
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Reads an `.npz` with `x_train`, `y_train` (optionally `x_test`, `y_test`) or `x`, `y`.

    Images may be `(N, 32, 32, 3)`, `(N, 3, 32, 32)` or `(N, 3072)`, pixel values in [0, 255];
    labels class indices in [0, `num_classes`).
    """
    path = Path(path)
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty (0 bytes); {_NPZ_LAYOUT}")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"{path} is not a readable .npz ({error}); {_NPZ_LAYOUT}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(
            f"{path} is a single array (.npy), not an .npz archive; {_NPZ_LAYOUT}, "
            "e.g. np.savez(path, x=images, y=labels)"
        )
    with archive:
        keys = set(archive.files)
        prefixes = {"train": "_train", "test": "_test"} if "x_train" in keys else {"train": ""}
        splits = {}
        for split, suffix in prefixes.items():
            needed = [f"x{suffix}", f"y{suffix}"]
            if split == "test" and not set(needed) <= keys:
                continue
            missing = [key for key in needed if key not in keys]
            if missing:
                raise DataError(
                    f"{path} has no {', '.join(missing)}; expected x_train, y_train "
                    f"[, x_test, y_test] or x, y; found {sorted(keys)}"
                )
            x, y = (_member(archive, key, path) for key in needed)
            source = f"{path}[{needed[0]}]"
            images = _as_uint8(to_channels_last(x, source), source)
            splits[split] = (images, _labels(y, len(images), f"{path}[{needed[1]}]", num_classes))
    return splits


def _member(archive: np.lib.npyio.NpzFile, key: str, path: Path) -> np.ndarray:
    """`archive[key]`, refusing object arrays (loading them would mean unpickling the file)."""
    try:
        return archive[key]
    except ValueError as error:
        if "allow_pickle" not in str(error):
            raise DataError(f"{key} in {path} cannot be read ({error})") from None
        raise DataError(
            f"{key} in {path} holds Python objects (dtype object), which only pickle can load "
            "and zoo never unpickles an .npz; save it as a numeric array (uint8 images, integer "
            "labels)"
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile) as error:
        raise DataError(f"{key} in {path} cannot be read ({error}); the .npz is damaged") from None
