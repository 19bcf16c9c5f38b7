"""The sequence classifier's sensor layers: fixed preprocessing (a zero-phase low-pass filter
that separates gravity from motion, the magnitude over the axes) and training-time augmentation
(rotation, scaling, change of pace, shift in time, noise) of multi-axis sensor windows.

`zoo.recurrent.model.SequenceClassifier` builds them from its arguments; each is also a Keras
layer of its own, registered as "zoo>LowPass", "zoo>Magnitude" and "zoo>SensorAugmentation".
"""

from __future__ import annotations

import math
from typing import Any

import keras
import tensorflow as tf
from keras import ops

__all__ = ["LowPass", "Magnitude", "SensorAugmentation"]


@keras.saving.register_keras_serializable(package="zoo")
class LowPass(keras.layers.Layer):
    """A fixed, zero-phase low-pass filter along time: a centred raised-cosine (Hann) moving
    average of `width` steps, applied to each channel separately.

    For an accelerometer its output is the slowly changing gravity component (the posture) and
    `inputs - output` the body's motion. The window's ends are extended with their first and
    last values, so a constant passes unchanged; frequencies above `2 / width` cycles per step
    (1 Hz for the default 41 steps at 20 Hz, below walking's ~2 Hz) are damped to a few percent.
    Nothing is trained.

    Args:
        width: kernel length in time steps, an odd integer >= 3.

    Call arguments:
        inputs: `(batch, steps, channels)`.

    Example:

    >>> gravity = LowPass(41)(windows)
    >>> body = windows - gravity
    >>> body.shape
    TensorShape([8, 150, 3])
    """

    def __init__(self, width: int = 41, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not (isinstance(width, int) and not isinstance(width, bool) and width >= 3 and width % 2):
            raise ValueError(f"width must be an odd integer >= 3, got {width!r}")
        self.width = width
        kernel = [math.sin(math.pi * (i + 1) / (width + 1)) ** 2 for i in range(width)]
        self.kernel = [k / sum(kernel) for k in kernel]

    def call(self, inputs: Any) -> Any:
        half = self.width // 2
        steps, channels = ops.shape(inputs)[1], ops.shape(inputs)[2]
        padded = ops.concatenate([ops.repeat(inputs[:, :1], half, axis=1), inputs,
                                  ops.repeat(inputs[:, -1:], half, axis=1)], axis=1)
        # Every channel as its own sequence, convolved with the one fixed kernel.
        series = ops.reshape(ops.transpose(padded, (0, 2, 1)), (-1, steps + 2 * half, 1))
        kernel = ops.reshape(ops.convert_to_tensor(self.kernel, dtype=inputs.dtype), (self.width, 1, 1))
        smoothed = ops.conv(series, kernel, padding="valid")
        return ops.transpose(ops.reshape(smoothed, (-1, channels, steps)), (0, 2, 1))

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "width": self.width}


@keras.saving.register_keras_serializable(package="zoo")
class Magnitude(keras.layers.Layer):
    """The Euclidean norm over the channels of each time step, `(batch, steps, 1)`: for an
    accelerometer's axes, the magnitude of the acceleration, which does not depend on how the
    sensor is turned.

    Args:
        epsilon: added under the square root, so that the gradient at zero is finite; >= 0.

    Call arguments:
        inputs: `(batch, steps, channels)`.

    Example:

    >>> with_magnitude = keras.ops.concatenate([windows, Magnitude()(windows)], axis=-1)
    >>> with_magnitude.shape
    TensorShape([8, 150, 4])
    """

    def __init__(self, epsilon: float = 1e-6, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not epsilon >= 0.0:
            raise ValueError(f"epsilon must be >= 0, got {epsilon!r}")
        self.epsilon = epsilon

    def call(self, inputs: Any) -> Any:
        return ops.sqrt(ops.sum(ops.square(inputs), axis=-1, keepdims=True) + self.epsilon)

    def compute_output_shape(self, input_shape: Any) -> Any:
        return (*tuple(input_shape)[:-1], 1)

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="zoo")
class SensorAugmentation(keras.layers.Layer):
    """Random, label-preserving changes to multi-axis sensor windows, applied only in training.

    Each window gets its own draw of: a rotation of the axes by up to `rotation` degrees about
    a random axis (the sensor sits a little differently on every person), a scaling of the
    magnitude by a factor in `[1 - scaling, 1 + scaling]`, a change of pace by a factor in
    `[1 - time_warp, 1 + time_warp]` (people walk at different cadences; resampled linearly,
    wrapping around the window's end), a circular shift in time by up to `time_shift` steps
    (a window starts at an arbitrary moment of the activity), and Gaussian noise of standard
    deviation `jitter`. Zero turns a change off.

    A rotation of the whole window also turns gravity, and with it the posture: on a hip-worn
    sensor sitting and standing differ by a tilt of 10-50 degrees. With `gravity_rotation` set
    apart from `rotation`, the window is split into its slow part (`LowPass(gravity_width)`:
    gravity, the posture) and the rest (the body's motion); the motion turns by up to
    `rotation` degrees and gravity, about an axis of its own, by up to `gravity_rotation`.

    Args:
        rotation: largest rotation angle in degrees, in [0, 180]; needs 3 axes.
        gravity_rotation: largest rotation of the gravity part in degrees, in [0, 180]; `None`
            (the default) turns the whole window by one rotation of up to `rotation`.
        gravity_width: the low-pass kernel's length in steps (odd) that finds the gravity part,
            when `gravity_rotation` is set apart from `rotation`.
        scaling: largest relative change of magnitude, in [0, 1).
        time_shift: largest shift in time steps, >= 0.
        time_warp: largest relative change of pace, in [0, 1).
        jitter: standard deviation of the added noise, in input units, >= 0.
        seed: seed of the random draws.

    Call arguments:
        inputs: `(batch, steps, axes)`.
        training: augment when true; otherwise return `inputs` unchanged.

    Example:

    >>> augment = SensorAugmentation(rotation=10, scaling=0.1, time_shift=20, jitter=0.05)
    >>> augmented = augment(windows, training=True)
    >>> augmented.shape
    TensorShape([8, 150, 3])

    Motion turned by up to 25 degrees, the posture by up to 5:

    >>> augment = SensorAugmentation(rotation=25, gravity_rotation=5)
    """

    def __init__(
        self,
        rotation: float = 0.0,
        gravity_rotation: float | None = None,
        gravity_width: int = 41,
        scaling: float = 0.0,
        time_shift: int = 0,
        time_warp: float = 0.0,
        jitter: float = 0.0,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= rotation <= 180.0:
            raise ValueError(f"rotation must be in [0, 180] degrees, got {rotation!r}")
        if gravity_rotation is not None and not 0.0 <= gravity_rotation <= 180.0:
            raise ValueError(
                f"gravity_rotation must be in [0, 180] degrees or None, got {gravity_rotation!r}")
        if not 0.0 <= scaling < 1.0:
            raise ValueError(f"scaling must be in [0, 1), got {scaling!r}")
        if not (isinstance(time_shift, int) and time_shift >= 0):
            raise ValueError(f"time_shift must be a non-negative integer, got {time_shift!r}")
        if not 0.0 <= time_warp < 1.0:
            raise ValueError(f"time_warp must be in [0, 1), got {time_warp!r}")
        if not jitter >= 0.0:
            raise ValueError(f"jitter must be >= 0, got {jitter!r}")
        self.rotation, self.scaling, self.jitter = rotation, scaling, jitter
        self.gravity_rotation, self.gravity_width = gravity_rotation, gravity_width
        # Split only where the two parts turn differently: otherwise one rotation, as before.
        self.lowpass = (LowPass(gravity_width, dtype=self.dtype_policy)
                        if gravity_rotation is not None and gravity_rotation != rotation else None)
        self.time_shift, self.time_warp = time_shift, time_warp
        self.seed = seed
        self.generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape: Any) -> None:
        if (self.rotation or self.gravity_rotation) and input_shape[-1] != 3:
            raise ValueError(f"rotation needs 3 sensor axes, got input shape {input_shape}")

    def _rotations(self, batch: Any, degrees: float) -> Any:
        """Random rotation matrices `(batch, 3, 3)` by Rodrigues' formula, each by up to
        `degrees` about a random axis."""
        axis = keras.random.normal((batch, 3), seed=self.generator)
        axis = axis / tf.norm(axis, axis=-1, keepdims=True)
        limit = math.radians(degrees)
        angle = keras.random.uniform((batch, 1, 1), -limit, limit, seed=self.generator)
        x, y, z = tf.unstack(axis, axis=-1)
        zero = tf.zeros_like(x)
        cross = tf.reshape(tf.stack([zero, -z, y, z, zero, -x, -y, x, zero], -1), (-1, 3, 3))
        return tf.eye(3) + tf.sin(angle) * cross + (1.0 - tf.cos(angle)) * (cross @ cross)

    def _resample(self, inputs: Any, batch: Any) -> Any:
        """Reads each window at times `pace * t - shift` (mod its length), interpolating linearly."""
        steps = tf.shape(inputs)[1]
        pace = keras.random.uniform((batch, 1), 1.0 - self.time_warp, 1.0 + self.time_warp,
                                    seed=self.generator) if self.time_warp else tf.ones((batch, 1))
        shift = tf.cast(keras.random.randint(
            (batch, 1), -self.time_shift, self.time_shift + 1, seed=self.generator
        ), tf.float32) if self.time_shift else tf.zeros((batch, 1))
        times = pace * tf.range(steps, dtype=tf.float32)[None, :] - shift
        before = tf.math.floor(times)
        weight = (times - before)[:, :, None]
        before = tf.math.floormod(tf.cast(before, tf.int32), steps)
        after = tf.math.floormod(before + 1, steps)
        # With pace 1 the weight is exactly 0: a pure shift is an exact roll of the window.
        return ((1.0 - weight) * tf.gather(inputs, before, batch_dims=1)
                + weight * tf.gather(inputs, after, batch_dims=1))

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        if not training:
            return inputs
        batch = tf.shape(inputs)[0]
        if self.lowpass is not None:
            gravity = self.lowpass(inputs)
            inputs = (gravity @ tf.transpose(self._rotations(batch, self.gravity_rotation), [0, 2, 1])
                      + (inputs - gravity) @ tf.transpose(self._rotations(batch, self.rotation),
                                                          [0, 2, 1]))
        elif self.rotation:
            inputs = inputs @ tf.transpose(self._rotations(batch, self.rotation), [0, 2, 1])
        if self.scaling:
            inputs = inputs * keras.random.uniform(
                (batch, 1, 1), 1.0 - self.scaling, 1.0 + self.scaling, seed=self.generator
            )
        if self.time_shift or self.time_warp:
            inputs = self._resample(inputs, batch)
        if self.jitter:
            inputs = inputs + self.jitter * keras.random.normal(tf.shape(inputs), seed=self.generator)
        return inputs

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "rotation": self.rotation,
            "gravity_rotation": self.gravity_rotation,
            "gravity_width": self.gravity_width,
            "scaling": self.scaling,
            "time_shift": self.time_shift,
            "time_warp": self.time_warp,
            "jitter": self.jitter,
            "seed": self.seed,
        }
