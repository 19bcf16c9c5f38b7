"""Recurrent cells written from their equations, and the layer that loops one over time.

A cell computes one time step, in two parts: `project_inputs` applies the input weights and
`step` the recurrent update. `Recurrent` runs the steps in a symbolic `tf.while_loop`, so a
150-step sequence costs one small graph instead of 150 unrolled copies.

Under a mixed dtype policy ("mixed_bfloat16") the states, the cell state `c` of the LSTM
included, are carried in the compute dtype, bfloat16. Measured (untrained `lstm`, course
preset, 150 steps, 256 windows, same weights): the last hidden state differs from float32 by
at most 0.0081 with a bfloat16 `c`, 0.0045 with a float32 `c`, both about one bfloat16 step
(2^-8) of |h| <= 1, with no drift over the steps (the forget gate contracts the error); the
class probabilities by 0.0011 and 0.0007. Not worth a second dtype in the loop.

The weights have the shapes and order of Keras' built-in layers (`kernel`, `recurrent_kernel`,
`bias`; gates in Keras' order), so `set_weights(keras_layer.get_weights())` copies them either way.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

__all__ = ["GRUCell", "LSTMCell", "RNNCell", "Recurrent", "RecurrentCell", "seeded_initializer"]


def seeded_initializer(initializer: Any, seed: int | None) -> keras.initializers.Initializer:
    """`initializer` as an object, re-created with `seed` when one is given."""
    initializer = keras.initializers.get(initializer)
    if seed is not None and "seed" in initializer.get_config():
        initializer = initializer.__class__.from_config({**initializer.get_config(), "seed": seed})
    return initializer


class RecurrentCell(keras.layers.Layer):
    """Base class of the cells: weights, the input projection and the per-step update.

    Subclasses set `gates` (how many blocks of `units` the kernels hold) and implement `step`.

    Args:
        units: size of the hidden state.
        kernel_initializer: initializer of the input weights `kernel`, `(input_dim, gates*units)`.
        recurrent_initializer: initializer of `recurrent_kernel`, `(units, gates*units)`.
        bias_initializer: initializer of `bias`.
        seed: seed of the initializers, for reproducible weights.

    Call arguments:
        inputs: one time step, `(batch, input_dim)`.
        states: the list of state tensors, each `(batch, units)`.

    Returns:
        `(output, new_states)`.
    """

    gates = 1

    def __init__(
        self,
        units: int,
        kernel_initializer: str | keras.initializers.Initializer = "glorot_uniform",
        recurrent_initializer: str | keras.initializers.Initializer = "orthogonal",
        bias_initializer: str | keras.initializers.Initializer = "zeros",
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not (isinstance(units, int) and units > 0):
            raise ValueError(f"units must be a positive integer, got {units!r}")
        self.units = units
        self.seed = seed
        self.kernel_initializer = seeded_initializer(kernel_initializer, seed)
        self.recurrent_initializer = seeded_initializer(recurrent_initializer, None if seed is None else seed + 1)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    @property
    def state_size(self) -> list[int]:
        return [self.units]

    def bias_shape(self) -> tuple[int, ...]:
        return (self.gates * self.units,)

    def build(self, input_shape: Any) -> None:
        width = self.gates * self.units
        self.kernel = self.add_weight(
            shape=(input_shape[-1], width), initializer=self.kernel_initializer, name="kernel"
        )
        self.recurrent_kernel = self.add_weight(
            shape=(self.units, width), initializer=self.recurrent_initializer,
            name="recurrent_kernel",
        )
        self.bias = self.add_weight(
            shape=self.bias_shape(), initializer=self.initial_bias, name="bias"
        )

    def initial_bias(self, shape: Any, dtype: Any = None) -> Any:
        return self.bias_initializer(shape, dtype=dtype)

    def project_inputs(self, inputs: Any) -> Any:
        """`inputs @ kernel + bias`, the input's share of every gate, for any leading shape."""
        return tf.matmul(inputs, self.kernel) + self.bias

    def step(self, projected: Any, states: list[Any]) -> tuple[Any, list[Any]]:
        """One time step from the projected input `(batch, gates*units)` and the states."""
        raise NotImplementedError

    def call(self, inputs: Any, states: list[Any]) -> tuple[Any, list[Any]]:
        return self.step(self.project_inputs(inputs), list(states))

    def get_initial_state(self, batch_size: Any) -> list[Any]:
        return [tf.zeros((batch_size, size), self.compute_dtype) for size in self.state_size]

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "units": self.units,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            "seed": self.seed,
        }


@keras.saving.register_keras_serializable(package="zoo")
class RNNCell(RecurrentCell):
    """Vanilla (Elman) recurrent cell: `h_t = tanh(x_t W + h_{t-1} U + b)`.

    Same math and weight layout as `keras.layers.SimpleRNNCell`.

    Example:

    >>> layer = Recurrent(RNNCell(32))
    >>> last_state = layer(np.zeros((8, 150, 3), "float32"))
    >>> last_state.shape
    TensorShape([8, 32])
    """

    def step(self, projected: Any, states: list[Any]) -> tuple[Any, list[Any]]:
        hidden = tf.tanh(projected + tf.matmul(states[0], self.recurrent_kernel))
        return hidden, [hidden]


@keras.saving.register_keras_serializable(package="zoo")
class LSTMCell(RecurrentCell):
    """Long short-term memory cell (Hochreiter & Schmidhuber), gates in Keras' order i, f, c, o:

        i = sigmoid(x W_i + h U_i + b_i)      input gate
        f = sigmoid(x W_f + h U_f + b_f)      forget gate
        g = tanh(x W_c + h U_c + b_c)         candidate cell
        o = sigmoid(x W_o + h U_o + b_o)      output gate
        c' = f * c + i * g,   h' = o * tanh(c')

    Same math and weight layout as `keras.layers.LSTMCell`.

    Args:
        units: size of the hidden and cell states.
        unit_forget_bias: start the forget-gate bias at 1, so the cell remembers by default
            (Jozefowicz et al. 2015), as Keras does.
        **kwargs: see `RecurrentCell`.
    """

    gates = 4

    def __init__(self, units: int, unit_forget_bias: bool = True, **kwargs: Any) -> None:
        super().__init__(units, **kwargs)
        self.unit_forget_bias = unit_forget_bias

    @property
    def state_size(self) -> list[int]:
        return [self.units, self.units]

    def initial_bias(self, shape: Any, dtype: Any = None) -> Any:
        if not self.unit_forget_bias:
            return self.bias_initializer(shape, dtype=dtype)
        units = self.units
        return tf.concat(
            [
                self.bias_initializer((units,), dtype=dtype),
                tf.ones((units,), dtype=dtype),  # the forget gate's block
                self.bias_initializer((2 * units,), dtype=dtype),
            ],
            axis=0,
        )

    def step(self, projected: Any, states: list[Any]) -> tuple[Any, list[Any]]:
        hidden, cell = states
        z = projected + tf.matmul(hidden, self.recurrent_kernel)
        z_input, z_forget, z_candidate, z_output = tf.split(z, 4, axis=-1)
        cell = tf.sigmoid(z_forget) * cell + tf.sigmoid(z_input) * tf.tanh(z_candidate)
        hidden = tf.sigmoid(z_output) * tf.tanh(cell)
        return hidden, [hidden, cell]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}


@keras.saving.register_keras_serializable(package="zoo")
class GRUCell(RecurrentCell):
    """Gated recurrent unit (Cho et al. 2014), gates in Keras' order z, r, h:

        z = sigmoid(x W_z + h U_z + b_z)      update gate
        r = sigmoid(x W_r + h U_r + b_r)      reset gate
        reset_after=True  (Keras' default, cuDNN's):  n = tanh(x W_h + b_h + r * (h U_h + b'_h))
        reset_after=False (the original paper's):     n = tanh(x W_h + (r * h) U_h + b_h)
        h' = z * h + (1 - z) * n

    Same math and weight layout as `keras.layers.GRUCell`; with `reset_after=True` the bias is
    `(2, 3*units)`: input biases in row 0, recurrent biases in row 1.

    Args:
        units: size of the hidden state.
        reset_after: where the reset gate applies (see above).
        **kwargs: see `RecurrentCell`.
    """

    gates = 3

    def __init__(self, units: int, reset_after: bool = True, **kwargs: Any) -> None:
        super().__init__(units, **kwargs)
        self.reset_after = reset_after

    def bias_shape(self) -> tuple[int, ...]:
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def project_inputs(self, inputs: Any) -> Any:
        bias = self.bias[0] if self.reset_after else self.bias
        return tf.matmul(inputs, self.kernel) + bias

    def step(self, projected: Any, states: list[Any]) -> tuple[Any, list[Any]]:
        hidden = states[0]
        x_update, x_reset, x_candidate = tf.split(projected, 3, axis=-1)
        if self.reset_after:
            inner = tf.matmul(hidden, self.recurrent_kernel) + self.bias[1]
            h_update, h_reset, h_candidate = tf.split(inner, 3, axis=-1)
            update, reset = tf.sigmoid(x_update + h_update), tf.sigmoid(x_reset + h_reset)
            candidate = tf.tanh(x_candidate + reset * h_candidate)
        else:
            gate_kernel = self.recurrent_kernel[:, : 2 * self.units]
            h_update, h_reset = tf.split(tf.matmul(hidden, gate_kernel), 2, axis=-1)
            update, reset = tf.sigmoid(x_update + h_update), tf.sigmoid(x_reset + h_reset)
            candidate_kernel = self.recurrent_kernel[:, 2 * self.units :]
            candidate = tf.tanh(x_candidate + tf.matmul(reset * hidden, candidate_kernel))
        hidden = update * hidden + (1.0 - update) * candidate
        return hidden, [hidden]

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "reset_after": self.reset_after}


@keras.saving.register_keras_serializable(package="zoo")
class Recurrent(keras.layers.Layer):
    """Runs a cell over a sequence in a `tf.while_loop`, like `keras.layers.RNN`.

    The loop reads the time steps through a `tf.TensorArray` (indexing a tensor inside the loop
    would make the backward pass quadratic in the sequence length) and projects each step's
    input inside the loop: projecting the whole sequence before it was 1.4x slower per training
    step here, because its gradient must then be gathered step by step into a TensorArray.

    Truncated backpropagation through time: with `truncate_steps=k`, the sequence is cut into
    chunks of `k` steps counted back from the last step; the state flows forward across a cut,
    the gradient does not. A loss on the last output then reaches only the last `k` steps' inputs.

    Args:
        cell: a `RecurrentCell`.
        return_sequences: return the outputs of all steps `(batch, steps, units)` rather than
            the last one `(batch, units)`.
        go_backwards: process the sequence from its last step to its first (the outputs of
            `return_sequences` are then in reversed order, as in Keras).
        truncate_steps: `k` for truncated BPTT; `None` backpropagates through all steps.

    Call arguments:
        inputs: `(batch, steps, features)`.
        initial_state: optional list of state tensors `(batch, units)`; zeros by default.

    It works inside `keras.layers.Bidirectional`, and compiles under XLA (`jit_compile=True`).

    Example:

    >>> layer = Recurrent(LSTMCell(128), truncate_steps=50)
    >>> last = layer(np.zeros((32, 150, 3), "float32"))
    >>> last.shape
    TensorShape([32, 128])
    """

    # Attributes `keras.layers.Bidirectional` expects of the layer it wraps.
    stateful = False
    return_state = False

    def __init__(
        self,
        cell: RecurrentCell,
        return_sequences: bool = False,
        go_backwards: bool = False,
        truncate_steps: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if truncate_steps is not None and not (isinstance(truncate_steps, int) and truncate_steps > 0):
            raise ValueError(f"truncate_steps must be a positive integer or None, got {truncate_steps!r}")
        self.cell = cell
        self.return_sequences = return_sequences
        self.go_backwards = go_backwards
        self.truncate_steps = truncate_steps

    def build(self, input_shape: Any) -> None:
        if len(input_shape) != 3:
            raise ValueError(f"{self.name} expects (batch, steps, features), got shape {input_shape}")
        self.cell.build(input_shape)

    def call(self, inputs: Any, initial_state: list[Any] | None = None) -> Any:
        if self.go_backwards:
            inputs = tf.reverse(inputs, axis=[1])
        steps = inputs.shape[1] if inputs.shape[1] is not None else tf.shape(inputs)[1]
        batch = tf.shape(inputs)[0]
        time_major = tf.TensorArray(inputs.dtype, size=steps).unstack(tf.transpose(inputs, [1, 0, 2]))
        # No array at all unless asked for: XLA refuses an unused one (an uninitialized list).
        outputs = [tf.TensorArray(self.compute_dtype, size=steps)] if self.return_sequences else []

        def body(t: Any, states: list[Any], outputs: list[tf.TensorArray]) -> tuple[Any, ...]:
            if self.truncate_steps is not None:
                # 1 where the gradient may flow into the state, 0 at a chunk boundary. The
                # arithmetic keeps the forward value bit-exact: s + 1*(s - s) = s + 0*(...) = s.
                flow = tf.cast(tf.math.floormod(steps - t, self.truncate_steps) != 0, states[0].dtype)
                states = [tf.stop_gradient(s) + flow * (s - tf.stop_gradient(s)) for s in states]
            # The cell's parts directly: Layer.__call__ would wrap every step in its bookkeeping.
            output, states = self.cell.step(self.cell.project_inputs(time_major.read(t)), states)
            return t + 1, states, [array.write(t, output) for array in outputs]

        _, states, outputs = tf.while_loop(
            lambda t, *_: t < steps,
            body,
            (
                tf.constant(0),
                list(initial_state) if initial_state is not None else self.cell.get_initial_state(batch),
                outputs,
            ),
            # As keras.layers.RNN. XLA, tf2onnx and LiteRT need `maximum_iterations` (lists of
            # fixed size); it cost nothing in a plain graph when measured on 2026-11-30.
            maximum_iterations=steps,
            parallel_iterations=32,
            swap_memory=True,
        )
        if self.return_sequences:
            return tf.transpose(outputs[0].stack(), [1, 0, 2])
        return states[0]  # every cell's output is its (first) hidden state

    def compute_output_shape(self, input_shape: Any) -> tuple[Any, ...]:
        if self.return_sequences:
            return (input_shape[0], input_shape[1], self.cell.units)
        return (input_shape[0], self.cell.units)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "cell": keras.saving.serialize_keras_object(self.cell),
            "return_sequences": self.return_sequences,
            "go_backwards": self.go_backwards,
            "truncate_steps": self.truncate_steps,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Recurrent":
        config = dict(config)
        config["cell"] = keras.saving.deserialize_keras_object(config["cell"])
        return cls(**config)
