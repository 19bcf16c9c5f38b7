"""What goes into training: mini-batches fed from memory in an order that a resumed run repeats
(`epoch_batches`, `steps_per_epoch`, `untuned`), normalization statistics fitted to the
training inputs (`adapt_preprocessing`) and labels checked against the model (`check_labels`).
"""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from zoo import hooks
from zoo.data import DataError

__all__ = ["adapt_preprocessing", "check_labels", "epoch_batches", "steps_per_epoch", "untuned"]


def untuned(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with tf.data's autotuning off.

    On 2 cores, the autotuner's background thread took compute from the training steps it fed:
    cifar_airbench's steps ran at 1.03 s instead of 0.65 s in most `fit` calls whose pipeline
    was autotuned (Keras' own for NumPy arrays included), and never without
    (`python bench/convnets.py pipeline`, bench/RESULTS.md). Batches gathered from memory need
    no tuning.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


def epoch_batches(
    x: np.ndarray,
    y: np.ndarray | None,
    batch_size: int,
    *,
    seed: int | None = None,
    epochs: int = 1,
    first_epoch: int = 0,
    drop_remainder: bool = False,
    stack: int | None = None,
) -> tf.data.Dataset:
    """Mini-batches of epochs `first_epoch` to `epochs - 1`, one after the other, gathered by
    index from in-memory tensors, prefetched, without tf.data's autotuning (`untuned`).

    Each epoch's order is a permutation drawn from `(seed, epoch)` alone, so a run resumed at
    epoch k is fed exactly the batches an uninterrupted run would have had (and every worker
    of a job, seeded alike, the same global batches). `seed=None` keeps the examples in order.
    What `fit` feeds: `model.fit(dataset, steps_per_epoch=...)` keeps one iterator across the
    epochs. (Keras' own feeding of NumPy arrays under a global seed repeats one permutation
    every epoch.)

    Args:
        x, y: the examples and their targets (`y` may be `None`).
        batch_size: examples per mini-batch.
        seed: the permutations' seed; `None` for no shuffling.
        epochs: the epoch after the last one to yield.
        first_epoch: the first epoch to yield (a resumed run's).
        drop_remainder: skip each epoch's last `len(x) % batch_size` examples, so that every
            batch is full (a strategy splits it across replicas; stacks need equal shapes).
        stack: when given, yield stacks of this many mini-batches,
            `(stack, batch_size, ...)` (`SparseAutoencoder.train_step` takes them), the last
            stack of an epoch shorter.

    Example:

    >>> batches = epoch_batches(np.arange(10.0), None, 4, seed=0, epochs=2)
    >>> [len(batch) for batch in batches]
    [4, 4, 2, 4, 4, 2]
    """
    arrays = tuple(tf.constant(array) for array in (x, y) if array is not None)
    if drop_remainder and len(x) < batch_size:
        raise DataError(f"batch_size {batch_size} is larger than the {len(x)} training examples")

    def epoch(number: tf.Tensor) -> tf.data.Dataset:
        order = tf.range(len(x), dtype=tf.int64)
        if seed is not None:
            order = tf.random.experimental.stateless_shuffle(
                order, seed=tf.stack([tf.constant(seed, tf.int64), number]))
        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size, drop_remainder)
        return batches if stack is None else batches.batch(stack)

    def gather(indices: tf.Tensor) -> Any:
        gathered = tuple(tf.gather(array, indices) for array in arrays)
        return gathered if len(gathered) > 1 else gathered[0]

    dataset = tf.data.Dataset.range(first_epoch, epochs).flat_map(epoch)
    # flat_map hides the length, which Keras reads as one epoch's steps when not told.
    length = steps_per_epoch(len(x), batch_size, drop_remainder, stack) * (epochs - first_epoch)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(length))
    return untuned(dataset.map(gather).prefetch(2))


def steps_per_epoch(examples: int, batch_size: int, drop_remainder: bool = False,
                    stack: int | None = None) -> int:
    """The elements of one epoch of `epoch_batches` with these settings."""
    batches = examples // batch_size if drop_remainder else math.ceil(examples / batch_size)
    return batches if stack is None else math.ceil(batches / stack)


def adapt_preprocessing(model: keras.Model, x: np.ndarray) -> list[str]:
    """Fits every `keras.layers.Normalization` in `model` that has no fixed mean to `x`, and
    every other `zoo.hooks.Adaptable` layer whose `is_adapted` is false
    (`zoo.convnets.PatchWhitening`, say).

    Statistics fitted on training data only live inside the model, so they are saved, exported
    and applied at inference with it. Returns the names of the layers adapted.
    """
    adapted = []
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.Normalization):
            needs_fitting = layer.input_mean is None
        else:
            needs_fitting = isinstance(layer, hooks.Adaptable) and not layer.is_adapted
        if needs_fitting:
            layer.adapt(x)
            adapted.append(layer.name)
    return adapted


def check_labels(model: keras.Model, labels: np.ndarray | None) -> None:
    """Checks the labels of a classifier `model` (one with `num_classes`) before training.

    Labels may be one-hot rows `(N, C)` or class indices `(N,)` or `(N, 1)` (Keras' sparse
    labels; the classifiers' compiled loss and metrics take both, see `zoo.classification`).

    Raises:
        DataError: one-hot rows have another class count than the model outputs, or an index is
            not a whole number in [0, num_classes).
    """
    if not isinstance(model, hooks.Classifier) or labels is None:
        return
    if np.ndim(labels) == 1 or (np.ndim(labels) == 2 and np.shape(labels)[-1] == 1
                                and model.num_classes != 1):
        indices = np.asarray(labels).reshape(-1)
        if not np.issubdtype(indices.dtype, np.number):
            raise DataError(f"labels of dtype {indices.dtype} are neither class indices nor "
                            f"one-hot rows")
        bad = indices[(indices != np.round(indices)) | (indices < 0)
                      | (indices >= model.num_classes)] if indices.size else indices
        if bad.size:
            raise DataError(
                f"class index {bad[0].item()!r} is not a whole number in [0, {model.num_classes}): the "
                f"labels must be class indices or one-hot rows of the model's "
                f"{model.num_classes} classes"
            )
        return
    if np.ndim(labels) == 2:
        if np.shape(labels)[-1] != model.num_classes:
            raise DataError(
                f"the labels have {np.shape(labels)[-1]} classes but the model outputs "
                f"{model.num_classes}; build it with num_classes={np.shape(labels)[-1]} "
                f"(zoo train: --set num_classes={np.shape(labels)[-1]})"
            )
