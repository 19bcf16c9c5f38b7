"""Convolutional nets for CIFAR-10: cs231n's ThreeLayerConvNet, the course's challenge net and a
small residual net built for accuracy within 10 epochs on two CPU cores.

Every model takes channels-last images with pixel values in [0, 255] (uint8 or float) and scales
them itself with a `keras.layers.Normalization` fitted to the training images
(`zoo.training.adapt_preprocessing`, which `zoo.training.fit` calls), so an exported model takes
raw pixels. Every model ends in a softmax over the 10 classes.

Normalisation of feature maps uses Keras' own layers: spatial batch normalisation is
`BatchNormalization` over the channel axis (batch statistics in training, running averages at
inference), group normalisation is `GroupNormalization(groups)`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

__all__ = [
    "NORMALIZATIONS",
    "CifarResNet",
    "CifarSmallNet",
    "OneCycle",
    "RandomCropFlip",
    "ThreeLayerConvNet",
    "ScheduledModel",
    "normalization_layer",
]

NORMALIZATIONS = ("none", "batch", "group")


def normalization_layer(
    kind: str, groups: int = 4, channels: int | None = None, dtype: Any = None, **kwargs: Any
) -> keras.layers.Layer | None:
    """Keras' layer for feature-map normalisation `kind` ("none", "batch" or "group").

    Args:
        kind: "none" (returns `None`), "batch" (spatial batch normalisation) or "group".
        groups: number of channel groups G for "group"; must divide `channels`.
        channels: the number of channels normalised, to check `groups` early.
        dtype: the layer's dtype policy.
        **kwargs: passed to the Keras layer (`momentum`, `scale`, ...).
    """
    if kind not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {list(NORMALIZATIONS)}, got {kind!r}")
    if kind == "batch":
        return keras.layers.BatchNormalization(axis=-1, dtype=dtype, **kwargs)
    if kind == "group":
        if groups < 1 or (channels is not None and channels % groups):
            raise ValueError(f"groups must be a positive divisor of {channels} channels, got {groups}")
        return keras.layers.GroupNormalization(groups=groups, axis=-1, dtype=dtype, **kwargs)
    return None


def _channels_last(x: Any, channels: int) -> Any:
    """`(N, H, W, C)` from channels-last or channels-first `(N, C, H, W)` images."""
    if x.shape[-1] == channels:
        return x
    if len(x.shape) == 4 and x.shape[1] == channels:
        return ops.transpose(x, (0, 2, 3, 1))  # the course stores (N, 3, 32, 32)
    raise ValueError(
        f"expected images (N, H, W, {channels}) or (N, {channels}, H, W), got shape {tuple(x.shape)}"
    )


def _pixel_scaling(channels: int, dtype: Any = None) -> keras.layers.Normalization:
    """A per-channel `Normalization` for pixels, built at once: built lazily inside Keras' first
    traced call, its constants would belong to a graph that is gone by the next call."""
    layer = keras.layers.Normalization(axis=-1, dtype=dtype)
    layer.build((None, None, None, channels))
    return layer


@keras.saving.register_keras_serializable(package="zoo")
class ThreeLayerConvNet(keras.Model):
    """cs231n's three-layer convolutional net, with its initialisation and L2 convention.

    conv (`num_filters` `filter_size`x`filter_size`, stride 1, size-preserving padding)
    - [batch/group norm] - ReLU - 2x2 max pool stride 2 - affine (`hidden_dim`) - ReLU
    - affine (`num_classes`) - softmax. Weights are drawn from N(0, `weight_scale`^2), biases are
    zero, and the loss carries 0.5 * `reg` * sum W^2 over the three weight matrices (not the
    biases), as in the course. Inputs may be channels-last or channels-first `(N, C, H, W)`.

    Args:
        num_filters: convolution filters.
        filter_size: side of the square filters.
        hidden_dim: units of the hidden affine layer.
        num_classes: classes.
        weight_scale: standard deviation of the initial weights.
        reg: L2 strength; the loss adds 0.5 * reg * sum W^2.
        normalization: "none", "batch" (spatial batch norm) or "group" after the convolution.
        groups: channel groups for "group".
        channels: input channels, to recognise channels-first input.
        seed: seeds the initial weights.

    Call arguments:
        inputs: images `(N, H, W, C)` or `(N, C, H, W)`, pixel values in [0, 255].
        training: whether batch norm uses batch statistics (and updates its running averages).

    Example:

    >>> model = ThreeLayerConvNet(hidden_dim=500, reg=1e-3)
    >>> model.compile("adam", "categorical_crossentropy")
    >>> probabilities = model(np.zeros((2, 3, 32, 32), "uint8"))  # channels-first, as the course
    """

    def __init__(
        self,
        num_filters: int = 32,
        filter_size: int = 7,
        hidden_dim: int = 100,
        num_classes: int = 10,
        weight_scale: float = 1e-3,
        reg: float = 0.0,
        normalization: str = "none",
        groups: int = 4,
        channels: int = 3,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for name, value in (("num_filters", num_filters), ("filter_size", filter_size),
                            ("hidden_dim", hidden_dim), ("num_classes", num_classes)):
            if value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if not weight_scale > 0:
            raise ValueError(f"weight_scale must be positive, got {weight_scale}")
        if reg < 0:
            raise ValueError(f"reg must be non-negative, got {reg}")
        self.num_filters, self.filter_size, self.hidden_dim = num_filters, filter_size, hidden_dim
        self.num_classes, self.weight_scale, self.reg = num_classes, weight_scale, reg
        self.normalization, self.groups, self.channels, self.seed = (
            normalization, groups, channels, seed
        )
        seeds = [None if seed is None else seed + i for i in range(3)]
        # Keras' L2(l) adds l * sum W^2; the course's convention is 0.5 * reg * sum W^2.
        regularizer = keras.regularizers.L2(0.5 * reg) if reg > 0 else None
        dense_options = dict(bias_initializer="zeros", kernel_regularizer=regularizer,
                             dtype=self.dtype_policy)
        self.scale = _pixel_scaling(channels, self.dtype_policy)
        self.conv = keras.layers.Conv2D(
            num_filters, filter_size, padding="same",
            kernel_initializer=keras.initializers.RandomNormal(0.0, weight_scale, seeds[0]),
            **dense_options,
        )
        self.norm = normalization_layer(normalization, groups, num_filters, dtype=self.dtype_policy)
        self.pool = keras.layers.MaxPooling2D(2, 2, dtype=self.dtype_policy)
        self.flatten = keras.layers.Flatten(dtype=self.dtype_policy)
        self.hidden = keras.layers.Dense(
            hidden_dim, kernel_initializer=keras.initializers.RandomNormal(0.0, weight_scale, seeds[1]),
            **dense_options,
        )
        self.scores = keras.layers.Dense(
            num_classes, kernel_initializer=keras.initializers.RandomNormal(0.0, weight_scale, seeds[2]),
            **dense_options,
        )

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        x = self.scale(ops.cast(_channels_last(inputs, self.channels), self.compute_dtype))
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x, training=training)
        x = self.pool(ops.relu(x))
        x = ops.relu(self.hidden(self.flatten(x)))
        return ops.softmax(self.scores(x))

    def first_filters(self) -> Any:
        """The first-layer filters as images, `(num_filters, filter_size, filter_size, channels)`."""
        return ops.transpose(self.conv.kernel, (3, 0, 1, 2))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "num_filters": self.num_filters,
            "filter_size": self.filter_size,
            "hidden_dim": self.hidden_dim,
            "num_classes": self.num_classes,
            "weight_scale": self.weight_scale,
            "reg": self.reg,
            "normalization": self.normalization,
            "groups": self.groups,
            "channels": self.channels,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="zoo")
class RandomCropFlip(keras.layers.Layer):
    """Training-time augmentation: a random translation by up to `padding` pixels (zero-padded,
    i.e. a random crop of the padded image) and a horizontal flip with probability 1/2.

    Each image of a batch gets its own shift and flip. At inference the layer passes images
    through unchanged.

    Args:
        padding: the largest shift in pixels, each way.
        seed: seeds the shifts and flips.

    Call arguments:
        inputs: images `(N, H, W, C)`.
        training: augment only when true.

    Example:

    >>> augmented = RandomCropFlip(4, seed=0)(images, training=True)
    """

    def __init__(self, padding: int = 4, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if padding < 0:
            raise ValueError(f"padding must be a non-negative integer, got {padding}")
        self.padding, self.seed = padding, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        if not training:
            return inputs
        pad = self.padding
        shape = ops.shape(inputs)
        batch, height, width = shape[0], shape[1], shape[2]
        flip = keras.random.uniform((batch, 1, 1, 1), seed=self.seed_generator) < 0.5
        x = ops.where(flip, ops.flip(inputs, axis=2), inputs)
        if pad == 0:
            return x
        x = ops.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
        offsets = keras.random.randint((batch, 2), 0, 2 * pad + 1, seed=self.seed_generator)
        # Gather rows, then columns, at each image's own offset: one crop per image, no loop.
        rows = offsets[:, :1] + ops.arange(height)[None, :]
        x = ops.take_along_axis(x, rows[:, :, None, None], axis=1)
        columns = offsets[:, 1:] + ops.arange(width)[None, :]
        return ops.take_along_axis(x, columns[:, None, :, None], axis=2)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "padding": self.padding, "seed": self.seed}


@keras.saving.register_keras_serializable(package="zoo")
class OneCycle(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from `peak / 10` to `peak` over the first `warmup` share of training, then
    linear decay to zero: the one-cycle shape of fast CIFAR-10 recipes.

    The length, `total_steps`, is a variable so that a model can set it once it knows its data
    and epochs (`CifarResNet.plan_training`) without retracing.

    Args:
        peak: the highest learning rate.
        warmup: share of the steps spent warming up, in (0, 1).
        total_steps: steps of the whole run.
    """

    def __init__(self, peak: float, warmup: float = 0.2, total_steps: int = 1) -> None:
        if not peak > 0 or not 0 < warmup < 1:
            raise ValueError(f"need peak > 0 and 0 < warmup < 1, got {peak}, {warmup}")
        self.peak, self.warmup = peak, warmup
        self.total_steps = keras.Variable(float(total_steps), trainable=False, name="total_steps")

    def __call__(self, step: Any) -> Any:
        progress = ops.cast(step, "float32") / ops.maximum(self.total_steps, 1.0)
        rising = 0.1 + 0.9 * progress / self.warmup
        falling = (1.0 - progress) / (1.0 - self.warmup)
        return self.peak * ops.clip(ops.minimum(rising, falling), 0.0, 1.0)

    def get_config(self) -> dict[str, Any]:
        return {"peak": self.peak, "warmup": self.warmup,
                "total_steps": int(self.total_steps.numpy())}


class ScheduledModel(keras.Model):
    """A model whose `fit` first sets a `OneCycle` learning-rate schedule to the run's length.

    A schedule that decays to zero at the end of training must know how many steps training
    takes, which depends on the data and the epochs of each `fit` call, not on the model.
    """

    def plan_training(self, total_steps: int) -> None:
        """Sets the one-cycle schedule's length (if the optimizer has one) to `total_steps`."""
        schedule = getattr(self.optimizer, "_learning_rate", None)
        if isinstance(schedule, OneCycle):
            schedule.total_steps.assign(float(total_steps))

    def fit(self, x: Any = None, y: Any = None, batch_size: int | None = None,
            epochs: int = 1, **kwargs: Any) -> Any:
        """`keras.Model.fit`, after fitting the learning-rate schedule to this run's length."""
        steps_per_epoch = kwargs.get("steps_per_epoch")
        if steps_per_epoch is None and hasattr(x, "element_spec"):
            steps_per_epoch = int(x.cardinality())
            if steps_per_epoch < 0:
                raise ValueError("a dataset of unknown length needs steps_per_epoch")
        elif steps_per_epoch is None:
            steps_per_epoch = math.ceil(len(x) / (batch_size or 32))
        self.plan_training(steps_per_epoch * epochs)
        return super().fit(x, y, batch_size=batch_size, epochs=epochs, **kwargs)


@keras.saving.register_keras_serializable(package="zoo")
class CifarSmallNet(ScheduledModel):
    """The course's CIFAR-10 challenge net: (conv - norm - ReLU - 2x2 max pool) x 3, dense.

    Args:
        filters: filters of the three convolutions (size-preserving padding).
        kernel_sizes: their square kernel sides.
        normalization: "batch" (the course's), "group" or "none".
        groups: channel groups for "group".
        crop_padding: when > 0, training augments with `RandomCropFlip(crop_padding)`.
        num_classes: classes.

    Call arguments:
        inputs: images `(N, 32, 32, 3)`, pixel values in [0, 255].
        training: augment, and use batch statistics.

    Example:

    >>> model = CifarSmallNet(filters=(16, 32, 64), kernel_sizes=(5, 3, 3))
    """

    def __init__(
        self,
        filters: Sequence[int] = (16, 32, 64),
        kernel_sizes: Sequence[int] = (5, 3, 3),
        normalization: str = "batch",
        groups: int = 4,
        crop_padding: int = 0,
        num_classes: int = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if len(filters) != len(kernel_sizes):
            raise ValueError(f"one kernel size per convolution: {filters} vs {kernel_sizes}")
        self.filters_, self.kernel_sizes = tuple(filters), tuple(kernel_sizes)
        self.normalization, self.groups = normalization, groups
        self.crop_padding, self.num_classes = crop_padding, num_classes
        self.augment = RandomCropFlip(crop_padding) if crop_padding else None
        self.scale = _pixel_scaling(3)
        self.convs = [keras.layers.Conv2D(count, size, padding="same")
                      for count, size in zip(filters, kernel_sizes)]
        self.norms = [normalization_layer(normalization, groups, count) for count in filters]
        self.pool = keras.layers.MaxPooling2D(2, 2)
        self.flatten = keras.layers.Flatten()
        self.scores = keras.layers.Dense(num_classes)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        x = ops.cast(inputs, self.compute_dtype)
        if self.augment is not None:
            x = self.augment(x, training=training)
        x = self.scale(x)
        for conv, norm in zip(self.convs, self.norms):
            x = conv(x)
            if norm is not None:
                x = norm(x, training=training)
            x = self.pool(ops.relu(x))
        return ops.softmax(self.scores(self.flatten(x)))

    def first_filters(self) -> Any:
        """The first convolution's filters as images, `(filters, size, size, 3)`."""
        return ops.transpose(self.convs[0].kernel, (3, 0, 1, 2))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "filters": list(self.filters_),
            "kernel_sizes": list(self.kernel_sizes),
            "normalization": self.normalization,
            "groups": self.groups,
            "crop_padding": self.crop_padding,
            "num_classes": self.num_classes,
        }


@keras.saving.register_keras_serializable(package="zoo")
class CifarResNet(ScheduledModel):
    """A small residual net for CIFAR-10 in the style of the fast recipes (Page's ResNet-9,
    Jordan's airbench): few wide stages, pooling early, batch norm and GELU, label smoothing.

    Stem conv 3x3 (`width` // 2 filters) - BN - GELU, then three stages each
    conv 3x3 - 2x2 max pool - BN - GELU - residual [conv 3x3 - BN - GELU] with
    `width`, 2 `width`, 4 `width` filters (32x32 -> 16 -> 8 -> 4), global max pool, a bias-free
    dense layer whose logits are scaled by 1/8 (stable with label smoothing), softmax.
    Training augments with `RandomCropFlip(crop_padding)`; inference averages the predictions of
    each image and its mirror image when `flip_test` (test-time augmentation).

    Args:
        width: filters of the first stage.
        crop_padding: largest random translation in training, in pixels.
        flip_test: average over horizontal flips at inference.
        weight_decay: L2 strength on the kernels; the loss adds 0.5 * weight_decay * sum W^2,
            so the gradient gains weight_decay * W (PyTorch's `weight_decay`).
        num_classes: classes.

    Call arguments:
        inputs: images `(N, 32, 32, 3)`, pixel values in [0, 255].
        training: augment and use batch statistics.

    Example:

    >>> model = CifarResNet(width=32)
    >>> probabilities = model(images)  # flip-averaged at inference
    """

    def __init__(
        self,
        width: int = 32,
        crop_padding: int = 2,
        flip_test: bool = True,
        weight_decay: float = 5e-4,
        num_classes: int = 10,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if width < 2:
            raise ValueError(f"width must be an integer >= 2, got {width}")
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be non-negative, got {weight_decay}")
        self.width, self.crop_padding, self.flip_test = width, crop_padding, flip_test
        self.weight_decay, self.num_classes = weight_decay, num_classes
        regularizer = keras.regularizers.L2(0.5 * weight_decay) if weight_decay > 0 else None

        def conv(filters: int) -> keras.layers.Conv2D:
            return keras.layers.Conv2D(
                filters, 3, padding="same", use_bias=False, kernel_regularizer=regularizer
            )

        def norm() -> keras.layers.BatchNormalization:
            return keras.layers.BatchNormalization(momentum=0.9)

        self.augment = RandomCropFlip(crop_padding)
        self.scale = _pixel_scaling(3)
        self.stem = [conv(width // 2), norm()]
        self.stages = [
            [conv(filters), norm(), conv(filters), norm()]
            for filters in (width, 2 * width, 4 * width)
        ]
        self.pool = keras.layers.MaxPooling2D(2, 2)
        self.head = keras.layers.Dense(num_classes, use_bias=False, kernel_regularizer=regularizer)

    def _logits(self, x: Any, training: bool | None) -> Any:
        conv, bn = self.stem
        x = ops.gelu(bn(conv(self.scale(x)), training=training))
        for first, first_norm, second, second_norm in self.stages:
            x = ops.gelu(first_norm(self.pool(first(x)), training=training))
            x = x + ops.gelu(second_norm(second(x), training=training))
        return self.head(ops.max(x, axis=(1, 2))) / 8.0

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        x = ops.cast(inputs, self.compute_dtype)
        if training:
            return ops.softmax(self._logits(self.augment(x, training=True), True))
        probabilities = ops.softmax(self._logits(x, training))
        if not self.flip_test:
            return probabilities
        return 0.5 * (probabilities + ops.softmax(self._logits(ops.flip(x, axis=2), training)))

    def first_filters(self) -> Any:
        """The stem's filters as images, `(filters, 3, 3, 3)`."""
        return ops.transpose(self.stem[0].kernel, (3, 0, 1, 2))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "width": self.width,
            "crop_padding": self.crop_padding,
            "flip_test": self.flip_test,
            "weight_decay": self.weight_decay,
            "num_classes": self.num_classes,
        }
