"""CIFAR-10 for the convolutional family: finding the data, choosing its reader, the held-out
split, and tf.data.

The readers of the three local formats (the python or binary batches, a class-folder tree of
images, an `.npz`) are in `zoo.convnets.readers`; their public names are importable from here
too. A class-folder tree may be `ROOT/<class>/*.jpg` (the shared layout), or `ROOT/train/<class>`
with an optional `ROOT/test/<class>`.

Images stay uint8 `(N, 32, 32, 3)`: the models scale them themselves, so a SavedModel takes
camera-ready pixels. Labels become one-hot float32 rows (label smoothing needs them), one column
per class of the data (`Splits.info["classes"]` names them in order).

TensorFlow is imported by the functions that decode images or build `tf.data` pipelines, not
with this module: the registry's task reads `load` and `example` without it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.convnets.readers import (
    CLASS_NAMES,
    IMAGE_SHAPE,
    IMAGE_SUFFIXES,
    TRAIN_BATCHES,
    ImageFiles,
    fit_image,
    folder_classes,
    list_image_folder,
    read_binary_batches,
    read_image_folder,
    read_npz,
    read_python_batches,
    to_channels_last,
)
from zoo.data import DataError, Splits, check_classes

if TYPE_CHECKING:
    import tensorflow as tf

__all__ = [
    "CLASS_NAMES",
    "IMAGE_SHAPE",
    "IMAGE_SUFFIXES",
    "dataset",
    "default_locations",
    "example",
    "fit_image",
    "folder_classes",
    "load",
    "read_binary_batches",
    "read_image_folder",
    "read_npz",
    "read_python_batches",
    "split_indices",
    "to_channels_last",
]

VALIDATION_SIZE = 1000  # cs231n held out 1,000 of the 50,000 training images

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
) -> tuple[dict[str, tuple[np.ndarray | ImageFiles, np.ndarray]], tuple[str, ...]]:
    """Reads whatever CIFAR-10 format `path` is: its splits and the classes its labels index
    (`classes` when given; else a folder tree's own, or CIFAR-10's for the batches and .npz).
    A folder tree's images are listed, not decoded: `_take` decodes the ones a split takes."""
    if path.is_file():
        if path.suffix != ".npz":
            raise DataError(f"{path} is a file but not an .npz. {_HOW_TO_GET}")
        names = classes or CLASS_NAMES
        return read_npz(path, len(names)), names
    if all((path / name).is_file() for name in TRAIN_BATCHES):
        return read_python_batches(path), classes or CLASS_NAMES
    if all((path / f"{name}.bin").is_file() for name in TRAIN_BATCHES):
        return read_binary_batches(path), classes or CLASS_NAMES
    root = path / "train" if (path / "train").is_dir() else path
    names = classes or folder_classes(root)
    splits = {"train": list_image_folder(root, names)}
    if root != path and (path / "test").is_dir():  # the training folders' classes, or some
        splits["test"] = list_image_folder(path / "test", names)
    return splits, names


def _take(images: np.ndarray | ImageFiles, indices: np.ndarray | None = None) -> np.ndarray:
    """The images at `indices` (all by default), decoding listed files only now."""
    if isinstance(images, ImageFiles):
        return images.decode(indices)
    return images if indices is None else images[indices]


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


def split_indices(count: int, validation_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`load`'s split of `count` training images: (training indices, held-out indices), the
    held-out ones `validation_size` drawn with `seed`. A set's card records both, so other
    experiments can keep off the images it never trained on (bench/finetune.py)."""
    order = np.random.default_rng(seed).permutation(count)
    return order[validation_size:], order[:validation_size]


def load(
    path: str | Path | None = None,
    seed: int = 0,
    validation_size: int | None = None,
    classes: Sequence[str] | str | None = None,
    splits: Sequence[str] | None = None,
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
        splits: the splits the caller uses, among "train", "val" and "test" (`None`: all);
            the others come back empty, and a folder tree's images of them are not decoded
            (`zoo evaluate --splits test` reads no training image).

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
    wanted = {"train", "val", "test"} if splits is None else set(splits)
    unknown = wanted - {"train", "val", "test"}
    if unknown:
        raise DataError(f"splits must be among train, val and test, got {sorted(unknown)}")
    found, names = _read(path, _class_option(classes))
    images, labels = found["train"]
    check_classes(labels, names, str(path))
    if validation_size is None:  # at least one: check_classes leaves two images or more
        validation_size = max(1, min(VALIDATION_SIZE, len(images) // 10))
    if not 0 <= validation_size < len(images):
        raise DataError(
            f"validation_size must be in [0, {len(images)}) for {len(images)} training images, "
            f"got {validation_size}"
        )
    train, val = split_indices(len(images), validation_size, seed)
    train, val = (train if "train" in wanted else train[:0]), (val if "val" in wanted else val[:0])
    test_images, test_labels = found.get("test", (None, None))
    if test_images is not None and "test" not in wanted:
        test_images, test_labels = None, None
    return Splits(
        x_train=_take(images, train),
        y_train=_one_hot(labels[train], len(names)),
        x_val=_take(images, val),
        y_val=_one_hot(labels[val], len(names)),
        x_test=None if test_images is None else _take(test_images),
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
            `zoo.convnets.layers.RandomCropFlip(4)` (called with `training=True`).

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
