"""CIFAR-10 for the convolutional family: three local readers, the held-out split, and tf.data.

Readers, all local (nothing is downloaded):
- the standard python batches, `cifar-10-batches-py` (where `keras.datasets.cifar10` caches
  them), read with a restricted unpickler that admits only the dicts, lists, bytes and NumPy
  arrays those files hold; or the binary batches, `cifar-10-batches-bin`;
- a class-folder tree of images, `ROOT/<class>/*.jpg` (the shared layout), or `ROOT/train/<class>`
  with an optional `ROOT/test/<class>`; any image size, resized to 32x32; any class names (a
  cat/dog folder is a two-class problem), sorted, CIFAR-10's ten in their canonical order;
- an `.npz` with `x_train`, `y_train` (and optionally `x_test`, `y_test`), or `x`, `y`.

Images stay uint8 `(N, 32, 32, 3)`: the models scale them themselves, so a SavedModel takes
camera-ready pixels. Labels become one-hot float32 rows (label smoothing needs them), one column
per class of the data (`Splits.info["classes"]` names them in order).

TensorFlow is imported by the functions that decode images or build `tf.data` pipelines, not
with this module: the registry's task reads `load` and `example` without it.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.data import (
    DataError, Splits, check_array, check_classes, check_image_file, decode_image,
)

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "CLASS_NAMES",
    "IMAGE_SHAPE",
    "IMAGE_SUFFIXES",
    "dataset",
    "default_locations",
    "folder_classes",
    "example",
    "load",
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
VALIDATION_SIZE = 1000  # cs231n held out 1,000 of the 50,000 training images

_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
_HOW_TO_GET = (
    "Provide CIFAR-10 with --data PATH as a class-folder tree of images (PATH/<class>/*.jpg, or "
    "PATH/train/<class> and PATH/test/<class>), the python batches directory "
    "'cifar-10-batches-py' (from https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz, or "
    "where keras.datasets.cifar10.load_data() caches it), the binary batches "
    "'cifar-10-batches-bin', or an .npz with x_train, y_train [x_test, y_test]"
)


def default_locations() -> list[Path]:
    """Where `load(None)` looks, in order: `$ZOO_CIFAR10`, Keras' cache, then `data/cifar10`
    and `../shared/data/cifar10` under the working directory."""
    locations = [Path(os.environ["ZOO_CIFAR10"])] if os.environ.get("ZOO_CIFAR10") else []
    keras_cache = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "datasets"
    locations += [
        keras_cache / "cifar-10-batches-py",
        keras_cache / "cifar-10-batches-bin",
        Path("data/cifar10"),
        Path("../shared/data/cifar10"),
    ]
    return locations


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
    names = [f"{name}{suffix}" for name in _TRAIN_BATCHES]
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


def read_image_folder(
    root: str | Path, class_names: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Reads `root/<class>/*` images, decoded in parallel, as uint8 `(N, 32, 32, 3)` and int64
    labels, indices into `class_names`: by default the folder's own (`folder_classes`); when
    given, every subfolder must be one of them (a subset is fine: a test folder with some of
    the training classes). Images of another size are resized to 32x32, greyscale ones
    repeated to RGB.

    Raises:
        DataError: a folder not among `class_names`, one without images, or an undecodable image.
    """
    import tensorflow as tf

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
    for path in paths:  # refused by name before anything decodes: devices, huge files or headers
        check_image_file(path)
    decoded = tf.data.Dataset.from_tensor_slices(paths).map(
        _decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    try:
        images = np.concatenate(list(decoded.batch(4096).as_numpy_iterator()))
    except tf.errors.OpError as error:
        for path in paths:  # the parallel pipeline does not say which file: find it
            decode_image(path)
        first_line = error.message.splitlines()[0]
        raise DataError(f"an image under {root} could not be read ({first_line})") from None
    return images, np.asarray(labels, np.int64)


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


# --- choosing a reader, splitting ---


def _class_option(classes: Sequence[str] | str | None) -> tuple[str, ...] | None:
    """`load`'s `classes`: `None`, "cifar10", comma-separated names, or a sequence of names."""
    if classes is None:
        return None
    if isinstance(classes, str):
        classes = CLASS_NAMES if classes == "cifar10" else classes.split(",")
    names = tuple(str(name).strip() for name in classes)
    if len(names) < 2 or len(set(names)) != len(names) or not all(names):
        raise DataError(
            f"classes must name two or more distinct classes (or be 'cifar10'), got {list(names)}"
        )
    return names


def _read(
    path: Path, classes: tuple[str, ...] | None
) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], tuple[str, ...]]:
    """Reads whatever CIFAR-10 format `path` is: its splits and the classes its labels index
    (`classes` when given; else a folder tree's own, or CIFAR-10's for the batches and .npz)."""
    if path.is_file():
        if path.suffix != ".npz":
            raise DataError(f"{path} is a file but not an .npz. {_HOW_TO_GET}")
        names = classes or CLASS_NAMES
        return read_npz(path, len(names)), names
    if all((path / name).is_file() for name in _TRAIN_BATCHES):
        return read_python_batches(path), classes or CLASS_NAMES
    if all((path / f"{name}.bin").is_file() for name in _TRAIN_BATCHES):
        return read_binary_batches(path), classes or CLASS_NAMES
    root = path / "train" if (path / "train").is_dir() else path
    names = classes or folder_classes(root)
    splits = {"train": read_image_folder(root, names)}
    if root != path and (path / "test").is_dir():  # the training folders' classes, or some
        splits["test"] = read_image_folder(path / "test", names)
    return splits, names


def example(directory: str | Path, seed: int = 0, per_class: int = 10) -> Path:
    """Writes a small CIFAR-10-like `.npz`, `directory/example_cifar10.npz` (x_train uint8
    `(10 * per_class, 32, 32, 3)`, y_train class indices, and a test set of 2 images a class),
    seeded, and returns its path for `load`. Each class has its own colour, plus noise.

    For smoke tests and tests/test_contract.py; every class is present, and the default split
    holds out a tenth.
    """
    rng = np.random.default_rng(seed)
    colours = rng.uniform(40, 215, (len(CLASS_NAMES), 1, 1, 3))

    def images(count: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.permutation(np.repeat(np.arange(len(CLASS_NAMES)), count))
        pixels = colours[labels] + rng.normal(0.0, 30.0, (len(labels), *IMAGE_SHAPE))
        return np.clip(np.round(pixels), 0, 255).astype(np.uint8), labels.astype(np.int64)

    (x_train, y_train), (x_test, y_test) = images(per_class), images(2)
    path = Path(directory) / "example_cifar10.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def _one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    return np.eye(classes, dtype=np.float32)[labels]


def load(
    path: str | Path | None = None,
    seed: int = 0,
    validation_size: int | None = None,
    classes: Sequence[str] | str | None = None,
) -> Splits:
    """CIFAR-10, or any class-folder tree, as `Splits`: uint8 images, one-hot labels;
    validation held out of training.

    The labels have one column per class of the data, named in order by
    `splits.info["classes"]`: a class-folder tree's own folder names, sorted (CIFAR-10's ten in
    the canonical order), or CIFAR-10's ten for the batches and an .npz. A model trained on
    them needs `num_classes` equal to that count (`zoo train NAME --set num_classes=K`).

    `validation_size` training images, drawn with `seed`, are held out; by default 1,000 as in
    cs231n (49,000 train), or a tenth of a set smaller than 10,000 (at least one image, so a
    tiny set still has a validation split). A test split (the python batches' `test_batch`, a
    `test/` folder next to `train/`, or `x_test` in an .npz) becomes `x_test`/`y_test`.

    Args:
        path: a class-folder tree, a `cifar-10-batches-py`/`-bin` directory or an `.npz`;
            `None` tries `default_locations()`.
        seed: seeds the choice of held-out images.
        validation_size: how many training images to hold out, in [0, N); `None`: the default.
        classes: the classes the labels index, instead of the data's own: names (a list, or
            comma-separated), or "cifar10" (to score a CIFAR-10 model on a folder of some of
            its classes). Every class folder must be one of them.

    Raises:
        DataError: nothing found (listing where it looked and how to provide the data),
            malformed data, a folder or label outside `classes`, or training images of fewer
            than two classes.
    """
    if path is None:
        looked = default_locations()
        found = next((p for p in looked if p.exists()), None)
        if found is None:
            raise DataError(
                "no CIFAR-10 data found; looked in "
                + ", ".join(str(p.absolute()) for p in looked)
                + f". {_HOW_TO_GET}"
            )
        path = found
    path = Path(path)
    if not path.exists():
        raise DataError(f"no such file or folder: {path}. {_HOW_TO_GET}")
    splits, names = _read(path, _class_option(classes))
    images, labels = splits["train"]
    check_classes(labels, names, str(path))
    if validation_size is None:  # at least one: check_classes leaves two images or more
        validation_size = max(1, min(VALIDATION_SIZE, len(images) // 10))
    if not 0 <= validation_size < len(images):
        raise DataError(
            f"validation_size must be in [0, {len(images)}) for {len(images)} training images, "
            f"got {validation_size}"
        )
    order = np.random.default_rng(seed).permutation(len(images))
    train, val = order[validation_size:], order[:validation_size]
    test_images, test_labels = splits.get("test", (None, None))
    return Splits(
        x_train=images[train],
        y_train=_one_hot(labels[train], len(names)),
        x_val=images[val],
        y_val=_one_hot(labels[val], len(names)),
        x_test=test_images,
        y_test=None if test_labels is None else _one_hot(test_labels, len(names)),
        info={
            "source": str(Path(path).resolve()),  # the same file by any path is the same data
            "classes": list(names),
            "validation": f"{validation_size} training images held out (seed {seed})",
            "preprocessing": "uint8 RGB 32x32; scaling to zero mean and unit variance per "
            "channel is inside the model (training-set statistics)",
        },
    )


# --- tf.data ---


def dataset(
    images: np.ndarray,
    labels: np.ndarray | None,
    batch_size: int,
    *,
    shuffle_seed: int | None = None,
    augment: Any = None,
) -> tf.data.Dataset:
    """A `tf.data` pipeline over in-memory images: cache, shuffle, batch, augment, prefetch.

    Args:
        images: uint8 `(N, 32, 32, 3)`.
        labels: one-hot `(N, classes)`, or `None` for prediction.
        batch_size: images per batch.
        shuffle_seed: when given, a new seeded order every epoch; `None` keeps the order.
        augment: an optional callable applied to each batch of images, e.g.
            `zoo.convnets.model.RandomCropFlip(4)` (called with `training=True`).

    Example:

    >>> from zoo.convnets.layers import RandomCropFlip
    >>> train = dataset(splits.x_train, splits.y_train, 32, shuffle_seed=0,
    ...                 augment=RandomCropFlip(4))
    >>> images, labels = next(iter(train))
    >>> images.shape, labels.shape
    (TensorShape([32, 32, 32, 3]), TensorShape([32, 10]))
    """
    import tensorflow as tf

    tensors = images if labels is None else (images, labels)
    pipeline = tf.data.Dataset.from_tensor_slices(tensors).cache()
    if shuffle_seed is not None:
        pipeline = pipeline.shuffle(len(images), seed=shuffle_seed, reshuffle_each_iteration=True)
    pipeline = pipeline.batch(batch_size)
    if augment is not None:

        def apply(*batch: tf.Tensor) -> Any:
            augmented = augment(batch[0], training=True)
            return augmented if labels is None else (augmented, batch[1])

        pipeline = pipeline.map(apply, num_parallel_calls=tf.data.AUTOTUNE)
    return pipeline.prefetch(tf.data.AUTOTUNE)
