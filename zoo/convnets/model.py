"""The course's nets for CIFAR-10: the fully-connected baseline (TwoLayerNet), cs231n's
ThreeLayerConvNet and the course's challenge net (CifarSmallNet), built for accuracy within 10
epochs on two CPU cores. airbench's fast net is `zoo.convnets.airbench.AirbenchNet`.

Every model takes channels-last images with pixel values in [0, 255] (uint8 or float) and scales
them itself with a `keras.layers.Normalization` fitted to the training images
(`zoo.training.adapt_preprocessing`, which `zoo.training.fit` calls), so an exported model takes
raw pixels. Every model ends in a softmax over the 10 classes.

Normalisation of feature maps uses Keras' own layers: spatial batch normalisation is
`BatchNormalization` over the channel axis (batch statistics in training, running averages at
inference), group normalisation is `GroupNormalization(groups)`.

Under a mixed dtype policy (`dtype="mixed_bfloat16"`, see `zoo.precision`) the convolutions and
dense layers compute in bfloat16 with float32 weights. Pixels stay float32 through the
augmentation and the input `Normalization`; the last dense layer (the logits) and the softmax
are float32, so probabilities and losses are float32; batch norm computes its statistics in
float32 (Keras' `BatchNormalization` does under any policy).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from zoo.convnets.layers import RandomCropFlip, course_l2
from zoo.convnets.options import INITIALIZATIONS, NORMALIZATIONS
from zoo.precision import keeps_dtype_policy
from zoo.schedules import ScheduledModel

__all__ = [
    "INITIALIZATIONS",
    "NORMALIZATIONS",
    "CifarSmallNet",
    "ThreeLayerConvNet",
    "TwoLayerNet",
    "normalization_layer",
]


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


def _pixel_scaling(channels: int, dtype: Any) -> keras.layers.Normalization:
    """A per-channel `Normalization` for pixels, built at once: built lazily inside Keras' first
    traced call, its constants would belong to a graph that is gone by the next call.

    float32 under any policy: (pixel - mean) / std of pixels up to 255 in bfloat16 would be
    off by up to 2^-8 * 255 / std, a few hundredths of a unit."""
    layer = keras.layers.Normalization(axis=-1, dtype=dtype)
    layer.build((None, None, None, channels))
    return layer


@keras.saving.register_keras_serializable(package="zoo")
@keeps_dtype_policy
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
    >>> probabilities.shape
    TensorShape([2, 10])
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
        dense_options = dict(bias_initializer="zeros", kernel_regularizer=course_l2(reg),
                             dtype=self.dtype_policy)
        self.scale = _pixel_scaling(channels, self.variable_dtype)
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
        self.scores = keras.layers.Dense(  # float32 logits for the softmax
            num_classes, kernel_initializer=keras.initializers.RandomNormal(0.0, weight_scale, seeds[2]),
            **{**dense_options, "dtype": self.variable_dtype},
        )

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        x = self.scale(ops.cast(_channels_last(inputs, self.channels), self.variable_dtype))
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
@keeps_dtype_policy
class TwoLayerNet(keras.Model):
    """The course's fully-connected baseline: flatten - affine (`hidden_dim`) - ReLU - affine
    (`num_classes`) - softmax.

    Biases start at zero. The weights are drawn from N(0, `weight_scale`^2) (`init="normal"`,
    cs231n's TwoLayerNet) or from He's N(0, 2 / fan_in) (`init="kaiming"`, the course's
    notebooks, whose `two_layer_fc` reached 40% and more in one epoch of plain SGD). The loss
    carries 0.5 * `reg` * sum W^2 over both weight matrices (not the biases), as
    `ThreeLayerConvNet`. Inputs may be channels-last or channels-first `(N, C, H, W)`.

    Args:
        hidden_dim: units of the hidden affine layer.
        num_classes: classes.
        weight_scale: standard deviation of the initial weights for `init="normal"`.
        init: "normal" (N(0, `weight_scale`^2)) or "kaiming" (N(0, 2 / fan_in); ignores
            `weight_scale`).
        reg: L2 strength; the loss adds 0.5 * reg * sum W^2.
        channels: input channels, to recognise channels-first input.
        seed: seeds the initial weights.

    Call arguments:
        inputs: images `(N, H, W, C)` or `(N, C, H, W)`, pixel values in [0, 255].
        training: unused (nothing behaves differently in training); accepted as by every model.

    Example:

    >>> model = TwoLayerNet(hidden_dim=4000, init="kaiming")
    >>> model.compile(keras.optimizers.SGD(1e-2), "categorical_crossentropy")
    >>> probabilities = model(np.zeros((2, 32, 32, 3), "uint8"))
    >>> probabilities.shape
    TensorShape([2, 10])
    """

    def __init__(
        self,
        hidden_dim: int = 4000,
        num_classes: int = 10,
        weight_scale: float = 1e-3,
        init: str = "normal",
        reg: float = 0.0,
        channels: int = 3,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for name, value in (("hidden_dim", hidden_dim), ("num_classes", num_classes),
                            ("channels", channels)):
            if value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value}")
        if not weight_scale > 0:
            raise ValueError(f"weight_scale must be positive, got {weight_scale}")
        if init not in INITIALIZATIONS:
            raise ValueError(f"init must be one of {list(INITIALIZATIONS)}, got {init!r}")
        if reg < 0:
            raise ValueError(f"reg must be non-negative, got {reg}")
        self.hidden_dim, self.num_classes, self.weight_scale = hidden_dim, num_classes, weight_scale
        self.init, self.reg, self.channels, self.seed = init, reg, channels, seed

        def initializer(offset: int) -> keras.initializers.Initializer:
            layer_seed = None if seed is None else seed + offset
            if init == "kaiming":
                # He et al.'s N(0, 2 / fan_in), untruncated as the course's torch.randn draws.
                return keras.initializers.VarianceScaling(2.0, "fan_in", "untruncated_normal",
                                                          layer_seed)
            return keras.initializers.RandomNormal(0.0, weight_scale, layer_seed)

        dense_options = dict(bias_initializer="zeros", kernel_regularizer=course_l2(reg),
                             dtype=self.dtype_policy)
        self.scale = _pixel_scaling(channels, self.variable_dtype)
        self.flatten = keras.layers.Flatten(dtype=self.dtype_policy)
        self.hidden = keras.layers.Dense(hidden_dim, kernel_initializer=initializer(0), **dense_options)
        self.scores = keras.layers.Dense(num_classes, kernel_initializer=initializer(1),  # float32 logits
                                         **{**dense_options, "dtype": self.variable_dtype})

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        x = self.scale(ops.cast(_channels_last(inputs, self.channels), self.variable_dtype))
        x = ops.relu(self.hidden(self.flatten(x)))
        return ops.softmax(self.scores(x))

    def first_filters(self, count: int = 100) -> Any:
        """The first `count` hidden units' weights as images, `(min(count, hidden_dim), H, W, C)`.

        Only the first 100 by default: a mosaic of all 4,000 units of the course's net would be
        too fine to read. Needs a built model (square H = W inputs).
        """
        kernel = self.hidden.kernel  # (H * W * C, hidden_dim), rows in channels-last order
        side = math.isqrt(kernel.shape[0] // self.channels)
        if side * side * self.channels != kernel.shape[0]:
            raise ValueError(f"first_filters needs square images; the first layer has "
                             f"{kernel.shape[0]} inputs of {self.channels} channels")
        return ops.reshape(ops.transpose(kernel[:, :count]), (-1, side, side, self.channels))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "hidden_dim": self.hidden_dim,
            "num_classes": self.num_classes,
            "weight_scale": self.weight_scale,
            "init": self.init,
            "reg": self.reg,
            "channels": self.channels,
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="zoo")
@keeps_dtype_policy
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
    >>> model(images).shape
    TensorShape([8, 10])
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
        self.augment = RandomCropFlip(crop_padding, dtype=self.variable_dtype) if crop_padding else None
        self.scale = _pixel_scaling(3, self.variable_dtype)
        self.convs = [keras.layers.Conv2D(count, size, padding="same")
                      for count, size in zip(filters, kernel_sizes)]
        self.norms = [normalization_layer(normalization, groups, count) for count in filters]
        self.pool = keras.layers.MaxPooling2D(2, 2)
        self.flatten = keras.layers.Flatten()
        self.scores = keras.layers.Dense(num_classes, dtype=self.variable_dtype)  # float32 logits

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        x = ops.cast(inputs, self.variable_dtype)  # pixels: full precision until normalised
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
