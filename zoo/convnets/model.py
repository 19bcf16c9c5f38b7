"""Nets for CIFAR-10: the course's fully-connected baseline (TwoLayerNet), cs231n's
ThreeLayerConvNet, the course's challenge net and a small residual net built for accuracy within
10 epochs on two CPU cores.

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
import numpy as np
from keras import ops

__all__ = [
    "INITIALIZATIONS",
    "NORMALIZATIONS",
    "TEST_AUGMENTATIONS",
    "AirbenchNet",
    "CifarSmallNet",
    "FastShiftBatchNorm",
    "Lookahead",
    "OneCycle",
    "PartialIdentity",
    "PatchWhitening",
    "RandomCropFlip",
    "ThreeLayerConvNet",
    "TwoLayerNet",
    "ScheduledModel",
    "normalization_layer",
]

NORMALIZATIONS = ("none", "batch", "group")
INITIALIZATIONS = ("normal", "kaiming")


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


def _course_l2(reg: float) -> keras.regularizers.Regularizer | None:
    """The course's L2 penalty, 0.5 * `reg` * sum W^2, as a Keras regularizer (`None` for 0).

    Keras' `L2(l)` adds l * sum W^2, hence the half: the gradient then gains `reg` * W.
    """
    return keras.regularizers.L2(0.5 * reg) if reg > 0 else None


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
        dense_options = dict(bias_initializer="zeros", kernel_regularizer=_course_l2(reg),
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

        dense_options = dict(bias_initializer="zeros", kernel_regularizer=_course_l2(reg),
                             dtype=self.dtype_policy)
        self.scale = _pixel_scaling(channels, self.dtype_policy)
        self.flatten = keras.layers.Flatten(dtype=self.dtype_policy)
        self.hidden = keras.layers.Dense(hidden_dim, kernel_initializer=initializer(0), **dense_options)
        self.scores = keras.layers.Dense(num_classes, kernel_initializer=initializer(1), **dense_options)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        x = self.scale(ops.cast(_channels_last(inputs, self.channels), self.compute_dtype))
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
class RandomCropFlip(keras.layers.Layer):
    """Training-time augmentation: a random translation by up to `padding` pixels (a random crop
    of the image padded with its mirror image, which keeps edge statistics, unlike zeros) and a
    horizontal flip with probability 1/2.

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
        x = ops.pad(x, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="reflect")
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
    """Linear warm-up from `initial` · `peak` to `peak` over the first `warmup` share of training,
    then linear decay to `final` · `peak`: the one-cycle shape of fast CIFAR-10 recipes.

    The length, `total_steps`, is a variable so that a model can set it once it knows its data
    and epochs (`ScheduledModel.plan_training`) without retracing.

    Args:
        peak: the highest learning rate.
        warmup: share of the steps spent warming up, in (0, 1).
        total_steps: steps of the whole run.
        initial: the first rate, as a share of `peak`, in [0, 1].
        final: the last rate, as a share of `peak`, in [0, 1].
    """

    def __init__(self, peak: float, warmup: float = 0.2, total_steps: int = 1,
                 initial: float = 0.1, final: float = 0.0) -> None:
        if not peak > 0 or not 0 < warmup < 1:
            raise ValueError(f"need peak > 0 and 0 < warmup < 1, got {peak}, {warmup}")
        if not (0 <= initial <= 1 and 0 <= final <= 1):
            raise ValueError(f"initial and final must be shares of peak in [0, 1], got {initial}, {final}")
        self.peak, self.warmup, self.initial, self.final = peak, warmup, initial, final
        self.total_steps = keras.Variable(float(total_steps), trainable=False, name="total_steps")

    def __call__(self, step: Any) -> Any:
        progress = ops.clip(ops.cast(step, "float32") / ops.maximum(self.total_steps, 1.0), 0.0, 1.0)
        rising = self.initial + (1.0 - self.initial) * progress / self.warmup
        falling = self.final + (1.0 - self.final) * (1.0 - progress) / (1.0 - self.warmup)
        return self.peak * ops.minimum(rising, falling)

    def get_config(self) -> dict[str, Any]:
        return {"peak": self.peak, "warmup": self.warmup, "initial": self.initial,
                "final": self.final, "total_steps": int(self.total_steps.numpy())}


class Lookahead(keras.callbacks.Callback):
    """Lookahead with an average that strengthens over training (hlb-CIFAR10, airbench).

    After the first `start` share of the planned steps, every `every` steps the slow weights
    move toward the trained ones, slow <- slow + (1 - rho) (fast - slow), and training continues
    from them (fast <- slow), with rho = decay^every * progress^3: little averaging early, strong
    at the end. Each epoch's last step updates too, so that evaluation, checkpoints and the final
    model see the slow weights.
    Every floating-point weight takes part, batch-norm statistics included.

    Args:
        every: steps between updates.
        decay: per-step decay of the average at the end of training.
        start: share of training before the first update.

    Example:

    >>> model.fit(x, y, epochs=10, callbacks=[Lookahead()])  # model.planned_steps set first
    """

    def __init__(self, every: int = 5, decay: float = 0.95, start: float = 0.3) -> None:
        super().__init__()
        if every < 1 or not 0 < decay < 1 or not 0 <= start < 1:
            raise ValueError(f"need every >= 1, 0 < decay < 1, 0 <= start < 1; got {every}, {decay}, {start}")
        self.every, self.decay, self.start = every, decay, start

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.slow: list[Any] | None = None
        # A resumed run (restored from an epoch's checkpoint) continues the average: each
        # epoch's last step past `start` left the weights equal to the slow ones, so they are
        # the average the uninterrupted run would go on from.
        iterations = getattr(self.model.optimizer, "iterations", None)
        step = 0 if iterations is None else int(iterations.numpy())
        if step and self.model.built and step / max(getattr(self.model, "planned_steps", 1), 1) >= self.start:
            self._begin_average()

    def _begin_average(self) -> None:
        # Gathered once the model is built: `fit` builds a subclassed model lazily.
        self.averaged = [w for w in self.model.weights if "float" in str(w.dtype)]
        self.slow = [ops.copy(w.value) for w in self.averaged]

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        step = int(self.model.optimizer.iterations.numpy())
        progress = step / max(getattr(self.model, "planned_steps", 1), 1)
        # Also at each epoch's last step, so that validation and checkpoints see slow weights.
        last_of_epoch = batch + 1 == self.params.get("steps")
        if progress < self.start or (step % self.every and not last_of_epoch):
            return
        if self.slow is None:
            self._begin_average()
            return
        rho = self.decay**self.every * min(progress, 1.0) ** 3
        for i, weight in enumerate(self.averaged):
            self.slow[i] = self.slow[i] + (1.0 - rho) * (weight.value - self.slow[i])
            weight.assign(self.slow[i])


class ScheduledModel(keras.Model):
    """A model whose `fit` first sets a `OneCycle` learning-rate schedule to the run's length and
    adds the model's own training callbacks (`training_callbacks`).

    A schedule that decays to zero at the end of training must know how many steps training
    takes, which depends on the data and the epochs of each `fit` call, not on the model.
    """

    planned_steps = 1

    def plan_training(self, total_steps: int) -> None:
        """Sets the one-cycle schedule's length (if the optimizer has one) to `total_steps`."""
        self.planned_steps = total_steps
        schedule = getattr(self.optimizer, "_learning_rate", None)
        if isinstance(schedule, OneCycle):
            schedule.total_steps.assign(float(total_steps))

    def training_callbacks(self) -> list[keras.callbacks.Callback]:
        """Callbacks that are part of this model's training recipe (none here)."""
        return []

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
        kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), *self.training_callbacks()]
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
class PatchWhitening(keras.layers.Layer):
    """A convolution that whitens `size`x`size` image patches: frozen, fitted to training images.

    `adapt(images)` standardises each colour channel, estimates the (uncentred) covariance of all
    `size`x`size`xC patches and sets the kernel to its eigenvectors divided by
    sqrt(eigenvalue + `epsilon`), each with both signs: 2·size²·C outputs, decorrelated and of
    unit variance (up to `epsilon`) on the training images. The kernel stays fixed; a bias is
    trained. Starting from whitened patches is the largest single saving of airbench's fast
    CIFAR-10 training (Jordan, 2024): the first layer needs no training to see edges and colour.

    Args:
        size: patch side; the output is `size - 1` pixels smaller (no padding).
        epsilon: added to each eigenvalue, limiting the gain of near-constant directions.
        sample: how many images `adapt` reads (the first ones).

    Call arguments:
        inputs: images `(N, H, W, C)`, raw pixel values.

    Example:

    >>> whitening = PatchWhitening(2)
    >>> whitening.adapt(train_images)  # uint8 (N, 32, 32, 3)
    >>> features = whitening(train_images[:8])  # (8, 31, 31, 24)
    """

    def __init__(self, size: int = 2, epsilon: float = 5e-4, sample: int = 5000,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if size < 1:
            raise ValueError(f"size must be a positive integer, got {size}")
        if not epsilon > 0:
            raise ValueError(f"epsilon must be positive, got {epsilon}")
        if sample < 1:
            raise ValueError(f"sample must be a positive integer, got {sample}")
        self.size, self.epsilon, self.sample = size, epsilon, sample

    def build(self, input_shape: Any) -> None:
        channels = input_shape[-1]
        outputs = 2 * self.size * self.size * channels
        frozen = dict(initializer="zeros", trainable=False)
        self.mean = self.add_weight(shape=(channels,), name="mean", **frozen)
        self.std = self.add_weight(shape=(channels,), name="std", initializer="ones", trainable=False)
        self.kernel = self.add_weight(shape=(self.size, self.size, channels, outputs),
                                      name="kernel", **frozen)
        self.bias = self.add_weight(shape=(outputs,), name="bias", initializer="zeros")

    @property
    def is_adapted(self) -> bool:
        """Whether `adapt` has set the kernel (a saved, adapted layer loads adapted)."""
        return self.built and bool(np.any(keras.ops.convert_to_numpy(self.kernel)))

    def adapt(self, images: Any) -> None:
        """Fits the channel statistics and the whitening kernel to the first `sample` images."""
        x = np.asarray(images[: self.sample], dtype="float64")
        if x.ndim != 4 or min(x.shape[1:3]) < self.size or not np.isfinite(x).all():
            raise ValueError(
                f"expected finite images (N, H >= {self.size}, W >= {self.size}, C), "
                f"got shape {x.shape}"
            )
        if not self.built:
            self.build(x.shape)
        mean, std = x.mean(axis=(0, 1, 2)), x.std(axis=(0, 1, 2))
        x = (x - mean) / np.maximum(std, 1e-12)
        covariance, count = 0.0, 0
        for first in range(0, len(x), 500):  # in chunks: every patch of 5,000 images is 1 GB
            windows = np.lib.stride_tricks.sliding_window_view(
                x[first:first + 500], (self.size, self.size), axis=(1, 2)
            )  # (n, H', W', C, size, size)
            patches = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, windows[0, 0, 0].size)
            covariance = covariance + patches.T @ patches
            count += len(patches)
        eigenvalues, eigenvectors = np.linalg.eigh(covariance / count)
        order = np.argsort(eigenvalues)[::-1]  # strongest direction first
        filters = eigenvectors[:, order] / np.sqrt(eigenvalues[order] + self.epsilon)
        filters = filters.reshape(self.size, self.size, x.shape[-1], -1)
        self.mean.assign(mean)
        self.std.assign(std)
        self.kernel.assign(np.concatenate([filters, -filters], axis=-1))

    def call(self, inputs: Any) -> Any:
        x = (ops.cast(inputs, self.compute_dtype) - self.mean) / self.std
        return ops.conv(x, self.kernel, padding="valid") + self.bias

    def compute_output_shape(self, input_shape: Any) -> Any:
        batch, height, width, channels = input_shape
        shrink = self.size - 1
        return (batch, None if height is None else height - shrink,
                None if width is None else width - shrink, 2 * self.size * self.size * channels)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "size": self.size, "epsilon": self.epsilon,
                "sample": self.sample}


@keras.saving.register_keras_serializable(package="zoo")
class PartialIdentity(keras.initializers.Initializer):
    """Convolution kernels whose first min(C_in, C_out) filters pass their input channel through
    unchanged (a 1 at the centre tap, PyTorch's `dirac_`); the other filters are drawn from
    U(±1/sqrt(fan_in)), PyTorch's default. A conv - BN stack so initialised starts close to an
    identity map, an implicit residual connection that speeds early training.

    Args:
        seed: seeds the random filters.

    Example:

    >>> conv = keras.layers.Conv2D(64, 3, padding="same", kernel_initializer=PartialIdentity(0))
    """

    def __init__(self, seed: int | None = None) -> None:
        self.seed = seed
        self.random = keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform", seed)

    def __call__(self, shape: Any, dtype: Any = None) -> Any:
        height, width, inputs, outputs = shape
        passed = min(inputs, outputs)
        identity = np.zeros(shape, dtype="float32")
        identity[height // 2, width // 2, np.arange(passed), np.arange(passed)] = 1.0
        is_identity_filter = np.arange(outputs) < passed
        return ops.where(is_identity_filter, ops.cast(identity, dtype), self.random(shape, dtype))

    def get_config(self) -> dict[str, Any]:
        return {"seed": self.seed}


@keras.saving.register_keras_serializable(package="zoo")
class FastShiftBatchNorm(keras.layers.Layer):
    """Spatial batch normalisation without a learned scale, whose learned shift trains
    `shift_learning_rate`-times faster than the other weights under SGD.

    The shift is stored as beta / sqrt(m) and multiplied by sqrt(m) in the forward pass: its
    gradient grows by sqrt(m) and each step's effect on beta by sqrt(m) again, m in all. That is
    airbench's 64x learning rate for batch-norm biases, without a per-variable optimizer option.
    Without a scale, the convolution before it is scale-invariant and weight decay sets its
    effective learning rate.

    Args:
        momentum: of the running mean and variance (Keras' convention: the share kept).
        epsilon: added to the variance.
        shift_learning_rate: m, the learning-rate multiplier of the shift.

    Call arguments:
        inputs: feature maps `(N, H, W, C)`.
        training: normalise with the batch's statistics (and update the running ones).
    """

    def __init__(self, momentum: float = 0.6, epsilon: float = 1e-5,
                 shift_learning_rate: float = 64.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if not shift_learning_rate > 0:
            raise ValueError(f"shift_learning_rate must be positive, got {shift_learning_rate}")
        self.momentum, self.epsilon, self.shift_learning_rate = momentum, epsilon, shift_learning_rate
        self.normalize = keras.layers.BatchNormalization(
            momentum=momentum, epsilon=epsilon, center=False, scale=False, dtype=self.dtype_policy
        )

    def build(self, input_shape: Any) -> None:
        self.normalize.build(input_shape)
        self.shift = self.add_weight(shape=(input_shape[-1],), name="shift", initializer="zeros")

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        return self.normalize(inputs, training=training) + math.sqrt(self.shift_learning_rate) * self.shift

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon,
                "shift_learning_rate": self.shift_learning_rate}


TEST_AUGMENTATIONS = ("none", "flip", "flip_translate")


@keras.saving.register_keras_serializable(package="zoo")
class AirbenchNet(ScheduledModel):
    """The airbench CIFAR-10 net (Jordan, 2024), sized for two CPU cores.

    `PatchWhitening` (2x2, frozen) - GELU, then three blocks of
    conv 3x3 - 2x2 max pool - BN - GELU - conv 3x3 - BN - GELU, global max pool, a bias-free
    dense layer whose logits are scaled by 1/9, softmax. Convolutions start as partial identities
    (`PartialIdentity`), batch norms have no scale and a fast shift (`FastShiftBatchNorm`).
    Training augments with `RandomCropFlip(crop_padding)`; `fit` adds `Lookahead`. At inference,
    `test_augmentation` averages the logits of each image's mirror ("flip") and of its 1-pixel
    shifts ("flip_translate", 6 passes).

    Args:
        widths: filters of the three blocks.
        crop_padding: largest random translation in training, in pixels (mirrored border).
        test_augmentation: "none", "flip" or "flip_translate".
        weight_decay: L2 strength on the kernels; the loss adds 0.5 * weight_decay * sum W^2,
            so the gradient gains weight_decay * W (PyTorch's `weight_decay`).
        lookahead: pull the weights toward a slow average every 5 steps during `fit`.
        num_classes: classes.
        seed: seeds the initial weights.

    Call arguments:
        inputs: images `(N, 32, 32, 3)`, pixel values in [0, 255].
        training: augment and use batch statistics.

    Example:

    >>> model = AirbenchNet(widths=(64, 128, 128))
    >>> zoo.training.adapt_preprocessing(model, x_train)  # fits the whitening
    >>> probabilities = model(images)  # averaged over mirror and shifts
    """

    def __init__(
        self,
        widths: Sequence[int] = (64, 128, 128),
        crop_padding: int = 2,
        test_augmentation: str = "flip_translate",
        weight_decay: float = 5e-4,
        lookahead: bool = True,
        num_classes: int = 10,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if len(widths) != 3 or min(widths) < 1:
            raise ValueError(f"widths must be three positive integers, got {list(widths)}")
        if test_augmentation not in TEST_AUGMENTATIONS:
            raise ValueError(
                f"test_augmentation must be one of {list(TEST_AUGMENTATIONS)}, got {test_augmentation!r}"
            )
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be non-negative, got {weight_decay}")
        self.widths, self.crop_padding = tuple(widths), crop_padding
        self.test_augmentation, self.weight_decay = test_augmentation, weight_decay
        self.lookahead, self.num_classes, self.seed = lookahead, num_classes, seed
        regularizer = _course_l2(weight_decay)
        seeds = iter(range(seed, seed + 7) if seed is not None else [None] * 7)

        def conv(filters: int) -> keras.layers.Conv2D:
            return keras.layers.Conv2D(
                filters, 3, padding="same", use_bias=False, kernel_regularizer=regularizer,
                kernel_initializer=PartialIdentity(next(seeds)),
            )

        self.augment = RandomCropFlip(crop_padding)
        self.whiten = PatchWhitening(2)
        self.blocks = [[conv(filters), FastShiftBatchNorm(), conv(filters), FastShiftBatchNorm()]
                       for filters in self.widths]
        self.pool = keras.layers.MaxPooling2D(2, 2)
        self.head = keras.layers.Dense(
            num_classes, use_bias=False, kernel_regularizer=regularizer,
            kernel_initializer=keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform", next(seeds)),
        )

    def build(self, input_shape: Any) -> None:
        shape = (None, *input_shape[1:])
        layers = [self.whiten]
        for first, first_norm, second, second_norm in self.blocks:
            layers += [first, self.pool, first_norm, second, second_norm]
        for layer in layers:  # the whitening may already be built, by `adapt`
            if not layer.built:
                layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.head.build((None, self.widths[-1]))

    def _logits(self, x: Any, training: bool | None) -> Any:
        x = ops.gelu(self.whiten(x))
        for first, first_norm, second, second_norm in self.blocks:
            x = ops.gelu(first_norm(self.pool(first(x)), training=training))
            x = ops.gelu(second_norm(second(x), training=training))
        # A small scale keeps the logits in softmax's sensitive range early in training.
        return self.head(ops.max(x, axis=(1, 2))) / 9.0

    def _mirror_logits(self, x: Any) -> Any:
        logits = self._logits(x, False)
        if self.test_augmentation == "none":
            return logits
        return 0.5 * (logits + self._logits(ops.flip(x, axis=2), False))

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        x = ops.cast(inputs, self.compute_dtype)
        if training:
            return ops.softmax(self._logits(self.augment(x, training=True), True))
        logits = self._mirror_logits(x)
        if self.test_augmentation == "flip_translate":
            padded = ops.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="reflect")
            shifted = [padded[:, :-2, :-2], padded[:, 2:, 2:]]  # one pixel up-left, down-right
            logits = 0.5 * logits + 0.25 * sum(self._mirror_logits(s) for s in shifted)
        return ops.softmax(logits)

    def training_callbacks(self) -> list[keras.callbacks.Callback]:
        """`Lookahead` when `lookahead` is set: `fit` and `zoo.training.train_loop` add it."""
        return [Lookahead()] if self.lookahead else []

    def first_filters(self) -> Any:
        """The whitening filters as images, `(24, 2, 2, 3)` (after `adapt`)."""
        return ops.transpose(self.whiten.kernel, (3, 0, 1, 2))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "widths": list(self.widths),
            "crop_padding": self.crop_padding,
            "test_augmentation": self.test_augmentation,
            "weight_decay": self.weight_decay,
            "lookahead": self.lookahead,
            "num_classes": self.num_classes,
            "seed": self.seed,
        }
