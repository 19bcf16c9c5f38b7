"""The sequence classifier trained by backpropagation through time; its sensor preprocessing and
augmentation layers are in `zoo.recurrent.layers`."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from zoo.precision import keeps_dtype_policy
from zoo.recurrent.cells import GRUCell, LSTMCell, Recurrent, RNNCell, seeded_initializer
from zoo.recurrent.layers import LowPass, Magnitude, SensorAugmentation

__all__ = ["CELLS", "GRAVITY_FILTERS", "SequenceClassifier"]

# Hand-written cells and the Keras built-in layers with the same math and weight layout.
CELLS = {
    "rnn": (RNNCell, keras.layers.SimpleRNN),
    "lstm": (LSTMCell, keras.layers.LSTM),
    "gru": (GRUCell, keras.layers.GRU),
}
GRAVITY_FILTERS = ("window_mean", "lowpass")


@keras.saving.register_keras_serializable(package="zoo")
@keeps_dtype_policy
class SequenceClassifier(keras.Model):
    """Recurrent classifier of fixed-length sequences, trained by backpropagation through time.

    inputs -> [augmentation, training only] -> [per-channel normalisation] -> [split into
    gravity (window mean or low-pass) and motion] -> [magnitude channels] -> [average pooling
    over time] -> recurrent layers (optionally
    bidirectional, stacked) -> `head_layers` ReLU dense layers -> softmax.

    The training step is written out: a `tf.GradientTape` records the forward pass, whose
    recurrent layers loop over the time steps in a `tf.while_loop`; the gradient is clipped
    (elementwise by value, then by global norm, when asked) and applied.

    Args:
        cell: "rnn", "lstm" or "gru".
        units: hidden units of each recurrent layer.
        num_layers: stacked recurrent layers.
        num_classes: classes of the softmax output.
        implementation: "zoo" for the hand-written cells (`zoo.recurrent.cells`), "keras" for
            `keras.layers.SimpleRNN` / `LSTM` / `GRU`.
        bidirectional: run each recurrent layer both ways and concatenate.
        head_layers: ReLU dense layers between the recurrent part and the softmax.
        head_units: units of each head layer.
        dropout: dropout rate before each head layer and the softmax.
        normalize: standardise each input channel with statistics fitted on training data (a
            `keras.layers.Normalization` that `zoo.training.fit` adapts; saved in the model).
        augmentation: `SensorAugmentation` arguments, or `None` for none; applied to the raw
            inputs, so that rotations are rotations of the sensor.
        separate_gravity: feed each channel twice: its mean over the window (for an
            accelerometer, gravity: the posture) and its deviation from that mean (the motion).
            A sensor worn at a slightly different angle then shifts only the first half.
        gravity_filter: how `separate_gravity` finds gravity: "window_mean" (the mean over the
            window, constant in time) or "lowpass" (`LowPass(gravity_width)`, which follows
            posture changes within the window; the field's usual body/gravity split).
        gravity_width: the low-pass kernel's length in steps (odd), for "lowpass".
        magnitude: append the Euclidean norm of the channels (`Magnitude`), after
            normalisation: of the motion and of the gravity part each with `separate_gravity`,
            else of the channels; one extra channel per part.
        pool_steps: average every this many time steps before the recurrent layers (1: none);
            shorter sequences train faster and are easier for a vanilla RNN to carry.
        clip_value: clip each gradient element to `[-clip_value, clip_value]`.
        clip_norm: rescale the gradient to at most this global norm.
        truncate_steps: truncated BPTT chunk length (see `Recurrent`); zoo cells only.
        reset_after: GRU variant (see `GRUCell`).
        kernel_initializer: initializer of the recurrent layers' input weights.
        seed: seed of weights and augmentation.
        input_shape: `(steps, features)` to build the model for at once, as
            `keras.applications` do; needed with `normalize` unless the model is first called
            eagerly (Keras would otherwise build the normalisation inside a traced function).

    Example:

    Under a mixed dtype policy (`dtype="mixed_bfloat16"`) the recurrent layers and the head
    compute in bfloat16 with float32 weights; the augmentation, the input normalisation and
    the softmax classifier stay float32 (`dtype="float32"`), so the probabilities, the loss and
    the metrics are float32.

    >>> model = SequenceClassifier("lstm", units=64, num_classes=6)
    >>> model.compile(optimizer="adam", loss="categorical_crossentropy")
    >>> _ = model.fit(windows, one_hot_labels, epochs=2, verbose=0)
    >>> model.predict(windows, verbose=0).shape
    (8, 6)
    """

    def __init__(
        self,
        cell: str = "lstm",
        units: int = 128,
        num_layers: int = 1,
        num_classes: int = 6,
        implementation: str = "zoo",
        bidirectional: bool = False,
        head_layers: int = 1,
        head_units: int = 128,
        dropout: float = 0.0,
        normalize: bool = False,
        augmentation: dict[str, Any] | None = None,
        separate_gravity: bool = False,
        gravity_filter: str = "window_mean",
        gravity_width: int = 41,
        magnitude: bool = False,
        pool_steps: int = 1,
        clip_value: float | None = None,
        clip_norm: float | None = None,
        truncate_steps: int | None = None,
        reset_after: bool = True,
        kernel_initializer: str = "glorot_uniform",
        seed: int | None = None,
        input_shape: tuple[int | None, int] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {list(CELLS)}, got {cell!r}")
        if implementation not in ("zoo", "keras"):
            raise ValueError(f"implementation must be 'zoo' or 'keras', got {implementation!r}")
        for name, value in (("units", units), ("num_layers", num_layers), ("num_classes", num_classes)):
            if not (isinstance(value, int) and value > 0):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(pool_steps, int) and pool_steps > 0):
            raise ValueError(f"pool_steps must be a positive integer, got {pool_steps!r}")
        if not (isinstance(head_layers, int) and head_layers >= 0):
            raise ValueError(f"head_layers must be a non-negative integer, got {head_layers!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        for name, value in (("clip_value", clip_value), ("clip_norm", clip_norm)):
            if value is not None and not value > 0:
                raise ValueError(f"{name} must be positive or None, got {value!r}")
        if gravity_filter not in GRAVITY_FILTERS:
            raise ValueError(f"gravity_filter must be one of {list(GRAVITY_FILTERS)}, got {gravity_filter!r}")
        if truncate_steps is not None and implementation == "keras":
            raise ValueError("truncate_steps needs implementation='zoo': Keras' layers backpropagate "
                             "through every step")
        self.cell, self.units, self.num_layers = cell, units, num_layers
        self.num_classes, self.implementation, self.bidirectional = num_classes, implementation, bidirectional
        self.head_layers, self.head_units, self.dropout = head_layers, head_units, dropout
        self.normalize, self.augmentation = normalize, dict(augmentation) if augmentation else None
        self.separate_gravity, self.pool_steps = separate_gravity, pool_steps
        self.gravity_filter, self.gravity_width, self.magnitude = gravity_filter, gravity_width, magnitude
        # Full precision, as the normalised windows they filter: fixed preprocessing.
        self.lowpass = (LowPass(gravity_width, dtype=self.variable_dtype)
                        if separate_gravity and gravity_filter == "lowpass" else None)
        self.magnitudes = Magnitude(dtype=self.variable_dtype) if magnitude else None
        self.clip_value, self.clip_norm, self.truncate_steps = clip_value, clip_norm, truncate_steps
        self.reset_after, self.kernel_initializer, self.seed = reset_after, kernel_initializer, seed

        # float32 under any policy: raw sensor values standardised in bfloat16 would lose
        # their small motions to the gravity offset, and the augmentation's rotations and
        # resampling weights are float32 arithmetic.
        self.normalization = keras.layers.Normalization(axis=-1, dtype=self.variable_dtype) if normalize else None
        self.augment = (SensorAugmentation(**self.augmentation, seed=seed, dtype=self.variable_dtype)
                        if self.augmentation else None)
        self.pooling = keras.layers.AveragePooling1D(pool_steps) if pool_steps > 1 else None
        self.recurrent_layers = [
            self._recurrent_layer(last=index == num_layers - 1, seed=None if seed is None else seed + 10 * index)
            for index in range(num_layers)
        ]
        dense_seeds = [None if seed is None else seed + 1000 + index for index in range(head_layers + 1)]
        self.head = []
        for index in range(head_layers):
            if dropout:
                self.head.append(keras.layers.Dropout(dropout, seed=dense_seeds[index]))
            self.head.append(keras.layers.Dense(
                head_units, activation="relu",
                kernel_initializer=keras.initializers.GlorotUniform(dense_seeds[index]),
            ))
        if dropout:
            self.head.append(keras.layers.Dropout(dropout, seed=dense_seeds[-1]))
        self.classifier = keras.layers.Dense(  # float32: the softmax and the loss after it
            num_classes, activation="softmax", dtype=self.variable_dtype,
            kernel_initializer=keras.initializers.GlorotUniform(dense_seeds[-1]),
        )
        self.sequence_shape = tuple(input_shape) if input_shape is not None else None
        if input_shape is not None:
            self.build((None, *input_shape))

    def _recurrent_layer(self, last: bool, seed: int | None) -> keras.layers.Layer:
        hand_written, built_in = CELLS[self.cell]
        options = {"reset_after": self.reset_after} if self.cell == "gru" else {}
        kernel = seeded_initializer(self.kernel_initializer, seed)
        recurrent = keras.initializers.Orthogonal(seed=None if seed is None else seed + 1)

        def layer(go_backwards: bool = False) -> keras.layers.Layer:
            if self.implementation == "zoo":
                return Recurrent(
                    hand_written(self.units, kernel_initializer=kernel,
                                 recurrent_initializer=recurrent, **options),
                    return_sequences=not last,
                    go_backwards=go_backwards,
                    truncate_steps=self.truncate_steps,
                )
            return built_in(self.units, kernel_initializer=kernel, recurrent_initializer=recurrent,
                            return_sequences=not last, go_backwards=go_backwards, **options)

        if not self.bidirectional:
            return layer()
        return keras.layers.Bidirectional(layer(), backward_layer=layer(go_backwards=True))

    def build(self, input_shape: Any) -> None:
        # Built here, eagerly, rather than by a trial call in a scratch graph: Normalization
        # computes its statistics tensors when it is built.
        shape = tuple(input_shape)
        for layer in [self.augment, self.normalization]:
            if layer is not None and not layer.built:  # an adapted Normalization is built already
                layer.build(shape)
        parts = 2 if self.separate_gravity else 1
        shape = (*shape[:-1], parts * shape[-1] + (parts if self.magnitude else 0))
        for layer in [self.pooling, *self.recurrent_layers, *self.head, self.classifier]:
            if layer is not None:
                layer.build(shape)
                shape = layer.compute_output_shape(shape)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        x = inputs
        if self.augment is not None:
            x = self.augment(x, training=training)
        if self.normalization is not None:
            x = self.normalization(x)
        if self.separate_gravity:
            if self.lowpass is not None:
                gravity = self.lowpass(x)
            else:
                gravity = tf.broadcast_to(tf.reduce_mean(x, axis=1, keepdims=True), tf.shape(x))
            parts = [gravity, x - gravity]
        else:
            parts = [x]
        if self.magnitudes is not None:
            parts += [self.magnitudes(part) for part in parts]
        x = tf.concat(parts, axis=-1) if len(parts) > 1 else x
        if self.pooling is not None:
            x = self.pooling(x)
        for layer in self.recurrent_layers:
            x = layer(x)
        for layer in self.head:
            x = layer(x, training=training)
        return self.classifier(x)

    def clip_gradients(self, gradients: list[Any]) -> list[Any]:
        """Elementwise clipping by value, then rescaling to the global norm limit, as set."""
        if self.clip_value is not None:
            gradients = [tf.clip_by_value(g, -self.clip_value, self.clip_value) for g in gradients]
        if self.clip_norm is not None:
            gradients, _ = tf.clip_by_global_norm(gradients, self.clip_norm)
        return gradients

    def train_step(self, data: Any) -> dict[str, Any]:
        """One step of backpropagation through time on a mini-batch.

        Under a `tf.distribute` strategy each replica's loss is its slice's mean divided by the
        number of replicas (Keras' compiled losses and its `model.losses` term do that), so with
        equal slices (`zoo.training.fit` feeds full global batches that split evenly) the
        replicas' gradients sum to the global batch's. Clipping is not linear: clipping each
        replica's share by value or by global norm is not clipping the global gradient (the
        shares' norms differ from the sum's, so steps would differ from one device's). With
        clipping on, the replicas' gradients are therefore all-reduced first, clipped as the
        global gradient on every replica, and handed to the optimizer as 1/replicas shares,
        whose own sum over the replicas gives back the clipped global gradient. That costs a
        second all-reduce of the gradients per step; without clipping there is none.
        """
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            predictions = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=predictions, sample_weight=sample_weight)
        gradients = tape.gradient(loss, self.trainable_variables)
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        context = tf.distribute.get_replica_context()
        clipping = self.clip_value is not None or self.clip_norm is not None
        if clipping and replicas > 1 and context is not None:
            present = [index for index, gradient in enumerate(gradients) if gradient is not None]
            summed = context.all_reduce(tf.distribute.ReduceOp.SUM,
                                        [gradients[index] for index in present])
            clipped = self.clip_gradients(summed)
            gradients = list(gradients)
            for index, gradient in zip(present, clipped):
                gradients[index] = gradient / tf.cast(replicas, gradient.dtype)
            self.optimizer.apply(gradients, self.trainable_variables)
        else:
            self.optimizer.apply(self.clip_gradients(gradients), self.trainable_variables)
        for metric in self.metrics:
            if metric.name == "loss":
                metric.update_state(loss * replicas, sample_weight=tf.shape(x)[0])
            else:
                metric.update_state(y, predictions, sample_weight)
        return {metric.name: metric.result() for metric in self.metrics}

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "cell": self.cell,
            "units": self.units,
            "num_layers": self.num_layers,
            "num_classes": self.num_classes,
            "implementation": self.implementation,
            "bidirectional": self.bidirectional,
            "head_layers": self.head_layers,
            "head_units": self.head_units,
            "dropout": self.dropout,
            "normalize": self.normalize,
            "augmentation": self.augmentation,
            "separate_gravity": self.separate_gravity,
            "gravity_filter": self.gravity_filter,
            "gravity_width": self.gravity_width,
            "magnitude": self.magnitude,
            "pool_steps": self.pool_steps,
            "clip_value": self.clip_value,
            "clip_norm": self.clip_norm,
            "truncate_steps": self.truncate_steps,
            "reset_after": self.reset_after,
            "kernel_initializer": self.kernel_initializer,
            "seed": self.seed,
            "input_shape": self.sequence_shape,
        }
