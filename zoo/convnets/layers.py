"""Layers, an initializer and a regularizer of the CIFAR-10 nets: training-time crops and flips,
airbench's patch whitening, identity-initialised convolutions, batch norm with a fast shift, and
the course's L2 convention."""

from __future__ import annotations

import math
from typing import Any

import keras
import numpy as np
from keras import ops

__all__ = ["FastShiftBatchNorm", "PartialIdentity", "PatchWhitening", "RandomCropFlip", "course_l2"]


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
    >>> augmented.shape
    TensorShape([8, 32, 32, 3])
    """

    def __init__(self, padding: int = 4, seed: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if padding < 0:
            raise ValueError(f"padding must be a non-negative integer, got {padding}")
        self.padding, self.seed = padding, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        import tensorflow as tf

        if not training:
            return inputs
        pad = self.padding
        shape = ops.shape(inputs)
        batch, height, width = shape[0], shape[1], shape[2]
        flip = keras.random.uniform((batch, 1), seed=self.seed_generator) < 0.5
        x = ops.pad(inputs, [[0, 0], [pad, pad], [pad, pad], [0, 0]], mode="reflect")
        offsets = (keras.random.randint((batch, 2), 0, 2 * pad + 1, seed=self.seed_generator)
                   if pad else ops.zeros((batch, 2), "int32"))
        rows = offsets[:, :1] + ops.arange(height)[None, :]
        columns = offsets[:, 1:] + ops.arange(width)[None, :]
        # Reflect padding commutes with the flip, so a flipped image's crop is the padded
        # image's columns read backwards: the flip costs no pass of its own.
        columns = ops.where(flip, width + 2 * pad - 1 - columns, columns)
        # One batched gather per axis, each image at its own offsets: 5x faster than
        # `ops.take_along_axis`, whose broadcast indices cost 6% of a cifar_airbench step.
        x = tf.gather(x, rows, axis=1, batch_dims=1)
        return tf.gather(x, columns, axis=2, batch_dims=1)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "padding": self.padding, "seed": self.seed}


@keras.saving.register_keras_serializable(package="zoo")
class PatchWhitening(keras.layers.Layer):
    """A convolution that whitens `size`x`size` image patches: frozen, fitted to training images.

    `adapt(images)` standardises each colour channel, estimates the (uncentred) covariance of all
    `size`x`size`xC patches and sets the kernel to its eigenvectors divided by
    sqrt(eigenvalue + `epsilon`), each with both signs: 2·size²·C outputs, decorrelated and of
    unit variance (up to `epsilon`) on the training images. The kernel stays fixed; a bias is
    trained. Starting from whitened patches is the largest single saving of airbench's fast
    CIFAR-10 training (Jordan, 2024): the first layer needs no training to see edges and colour.

    `AirbenchNet` keeps it float32 (`dtype="float32"`) under a mixed policy: its filters have
    gains up to 1/sqrt(`epsilon`) on raw-scale inputs.

    Args:
        size: patch side; the output is `size - 1` pixels smaller (no padding).
        epsilon: added to each eigenvalue, limiting the gain of near-constant directions.
        sample: how many images `adapt` reads (the first ones).

    Call arguments:
        inputs: images `(N, H, W, C)`, raw pixel values.

    Example:

    >>> whitening = PatchWhitening(2)
    >>> whitening.adapt(train_images)  # uint8 (N, 32, 32, 3)
    >>> whitening(train_images[:8]).shape
    TensorShape([8, 31, 31, 24])
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
    >>> conv(images.astype("float32")).shape
    TensorShape([8, 32, 32, 64])
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
    effective learning rate. The math is Keras' `BatchNormalization(scale=False)` with
    beta = sqrt(m) * shift, running statistics included (biased batch variance, `momentum` the
    share kept).

    In float32 and bfloat16 it runs as TensorFlow's fused batch norm, one kernel forward and one
    backward (oneDNN's on CPU): separate moments, casts and normalisation ops cost a tenth of a
    `cifar_airbench` training step in bfloat16. Under a mixed policy the statistics, running
    averages and shift stay float32 inside that kernel; only the feature maps are bfloat16.
    Other dtypes (float64, for gradient checks) take the same math as separate ops.

    Args:
        momentum: of the running mean and variance (Keras' convention: the share kept).
        epsilon: added to the variance.
        shift_learning_rate: m, the learning-rate multiplier of the shift.

    Call arguments:
        inputs: feature maps `(N, H, W, C)`.
        training: normalise with the batch's statistics (and update the running ones).

    Example:

    >>> norm = FastShiftBatchNorm()
    >>> norm(np.ones((2, 4, 4, 8), "float32"), training=True).shape
    TensorShape([2, 4, 4, 8])
    """

    def __init__(self, momentum: float = 0.6, epsilon: float = 1e-5,
                 shift_learning_rate: float = 64.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0 <= momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if not shift_learning_rate > 0:
            raise ValueError(f"shift_learning_rate must be positive, got {shift_learning_rate}")
        self.momentum, self.epsilon, self.shift_learning_rate = momentum, epsilon, shift_learning_rate

    def build(self, input_shape: Any) -> None:
        channels = (input_shape[-1],)
        self.moving_mean = self.add_weight(shape=channels, name="moving_mean", initializer="zeros",
                                           trainable=False, autocast=False)
        self.moving_variance = self.add_weight(shape=channels, name="moving_variance",
                                               initializer="ones", trainable=False, autocast=False)
        self.shift = self.add_weight(shape=channels, name="shift", initializer="zeros", autocast=False)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        import tensorflow as tf

        offset = math.sqrt(self.shift_learning_rate) * self.shift
        if inputs.dtype not in (tf.float32, tf.bfloat16):
            return self._unfused(inputs, offset, training)
        scale = tf.ones_like(offset)
        if not training:
            outputs, *_ = tf.compat.v1.nn.fused_batch_norm(
                inputs, scale, offset, self.moving_mean, self.moving_variance,
                epsilon=self.epsilon, is_training=False)
            return outputs
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            inputs, scale, offset, epsilon=self.epsilon, is_training=True)
        # The kernel's variance has Bessel's correction; Keras' running variance does not.
        count = float(np.prod(inputs.shape[:-1])) if inputs.shape[:-1].is_fully_defined() else \
            tf.cast(tf.reduce_prod(tf.shape(inputs)[:-1]), tf.float32)
        self._update_running(mean, variance * (count - 1) / count)
        return outputs

    def _unfused(self, inputs: Any, offset: Any, training: bool | None) -> Any:
        if training:
            mean, variance = ops.moments(inputs, axes=(0, 1, 2))
            self._update_running(mean, variance)
        else:
            mean, variance = self.moving_mean, self.moving_variance
        mean, variance, offset = (ops.cast(v, inputs.dtype) for v in (mean, variance, offset))
        return (inputs - mean) * ops.rsqrt(variance + self.epsilon) + offset

    def _update_running(self, mean: Any, variance: Any) -> None:
        for average, value in ((self.moving_mean, mean), (self.moving_variance, variance)):
            value = ops.cast(ops.stop_gradient(value), average.dtype)
            average.assign(self.momentum * average + (1 - self.momentum) * value)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "momentum": self.momentum, "epsilon": self.epsilon,
                "shift_learning_rate": self.shift_learning_rate}


def course_l2(reg: float) -> keras.regularizers.Regularizer | None:
    """The course's L2 penalty, 0.5 * `reg` * sum W^2, as a Keras regularizer (`None` for 0).

    Keras' `L2(l)` adds l * sum W^2, hence the half: the gradient then gains `reg` * W
    (PyTorch's `weight_decay`).

    Args:
        reg: the L2 strength, >= 0.

    Returns:
        `keras.regularizers.L2(0.5 * reg)`, or `None` when `reg` is 0.
    """
    return keras.regularizers.L2(0.5 * reg) if reg > 0 else None
