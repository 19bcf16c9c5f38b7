"""The sparse autoencoder: a KL sparsity layer and the model trained with a GradientTape step."""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf
from keras import ops

from zoo.precision import keeps_dtype_policy

__all__ = ["KLSparsity", "SparseAutoencoder", "kl_divergence"]


def _replicas() -> int:
    """The number of replicas of the `tf.distribute` strategy running this code (1 without one)."""
    context = tf.distribute.get_replica_context()
    return 1 if context is None else context.num_replicas_in_sync


def _sum_over_replicas(value: Any) -> Any:
    """`value` summed over the replicas of a `tf.distribute` strategy; `value` itself without one.

    Under a strategy each replica holds a slice of the global batch, so a sum over the batch
    must add every replica's slice. The gradient of an all-reduce sum is itself an all-reduce
    sum, so terms built from these sums differentiate correctly on every replica.
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def kl_divergence(target: float, mean_activation: Any) -> Any:
    """KL divergence between Bernoulli(target) and Bernoulli(mean_activation), elementwise.

    KL(rho || rho_hat) = rho log(rho / rho_hat) + (1 - rho) log((1 - rho) / (1 - rho_hat)).
    """
    return target * ops.log(target / mean_activation) + (1.0 - target) * ops.log(
        (1.0 - target) / (1.0 - mean_activation)
    )


@keras.saving.register_keras_serializable(package="zoo")
class KLSparsity(keras.layers.Layer):
    """Identity layer that adds a KL sparsity penalty on the activations passing through it.

    The penalty is `weight * sum_b KL(target || rho_hat_b)`, where `rho_hat_b` is the mean of unit
    `b` over the batch (and any axes other than the last). Place it after any layer whose
    activations lie in (0, 1), such as a sigmoid `Dense`. It is a layer rather than an
    `activity_regularizer` because Keras divides activity penalties by the batch size, which is
    wrong for a penalty on a batch mean. Under a `tf.distribute` strategy `rho_hat_b` is the
    mean over the global batch, all replicas' slices together, so the penalty is the one a
    single device computes.

    Args:
        target: desired mean activation rho, in (0, 1).
        weight: penalty weight beta, >= 0.

    Call arguments:
        inputs: activations, shape `(batch, ..., units)`.

    Returns:
        `inputs`, unchanged; the penalty goes to `layer.losses`.

    Example:

    >>> inputs = keras.Input((256,))
    >>> hidden = keras.layers.Dense(64, activation="sigmoid")(inputs)
    >>> hidden = KLSparsity(target=0.05, weight=3.0)(hidden)
    >>> hidden.shape
    (None, 64)
    """

    def __init__(self, target: float = 0.05, weight: float = 1.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not 0.0 < target < 1.0:
            raise ValueError(f"KLSparsity target (rho) must be in (0, 1), got {target!r}")
        if not weight >= 0.0:
            raise ValueError(f"KLSparsity weight (beta) must be >= 0, got {weight!r}")
        self.target = float(target)
        self.weight = float(weight)

    def penalty(self, activations: Any) -> Any:
        """`weight * sum_b KL(target || rho_hat_b)` for a batch of activations."""
        axes = tuple(range(len(activations.shape) - 1))
        count = tf.cast(tf.reduce_prod(tf.shape(activations)[:-1]), activations.dtype)
        # Sums over the global batch: the KL of a mean is not the mean of replicas' KLs.
        mean = _sum_over_replicas(ops.sum(activations, axis=axes)) / _sum_over_replicas(count)
        # Saturated float32 sigmoids can average to exactly 0 or 1, where the KL is infinite.
        epsilon = keras.config.epsilon()
        mean = ops.clip(mean, epsilon, 1.0 - epsilon)
        return self.weight * ops.sum(kl_divergence(self.target, mean))

    def call(self, inputs: Any) -> Any:
        self.add_loss(self.penalty(inputs))
        return inputs

    def compute_output_shape(self, input_shape: Any) -> Any:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "target": self.target, "weight": self.weight}


@keras.saving.register_keras_serializable(package="zoo")
@keeps_dtype_policy
class SparseAutoencoder(keras.Model):
    """Sparse autoencoder: sigmoid encoder and sigmoid decoder with untied weights.

    Trained on the cost

        J = 1/(2N) sum_m ||x_m - o_m||^2 + lambda/2 (sum W1^2 + sum W2^2)
            + beta sum_b KL(rho || rho_hat_b),

    with `rho_hat_b` the mean activation of hidden unit `b` over the mini-batch. Weights start
    Glorot-uniform (limit sqrt(6 / (fan_in + fan_out))), biases at zero; biases are not decayed.

    Args:
        input_dim: number of inputs (256 for 16x16 patches).
        hidden_units: number of hidden units.
        weight_decay: lambda, the L2 weight decay, >= 0.
        sparsity_weight: beta, the weight of the KL sparsity penalty, >= 0.
        sparsity_target: rho, the desired mean hidden activation, in (0, 1). The defaults
            (beta 3, rho 0.02) give edge detectors on whitened patches; the course used
            beta 0.01, rho 0.2.
        seed: seed for the weight initialisation.

    Call arguments:
        inputs: `(batch, input_dim)` floats, ideally in (0, 1) like the sigmoid outputs.

    Returns:
        Reconstructions, `(batch, input_dim)`.

    Example:

    Under a mixed dtype policy (`dtype="mixed_bfloat16"`) the encoder and decoder compute in
    bfloat16; the cost and all its terms stay float32: the reconstruction error is taken on
    float32 copies of the activations, the KL sparsity term is a float32 layer, the weight
    decay reads the float32 kernels, and `call` and `encode` return float32.

    >>> model = SparseAutoencoder(input_dim=256, hidden_units=64)
    >>> model.compile(optimizer="adam")
    >>> _ = model.fit(patches, epochs=2, batch_size=16, verbose=0)
    >>> model.features().shape  # one input-space image per hidden unit
    TensorShape([64, 256])
    """

    def __init__(
        self,
        input_dim: int = 256,
        hidden_units: int = 64,
        weight_decay: float = 5e-4,
        sparsity_weight: float = 3.0,
        sparsity_target: float = 0.02,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        for label, value in (("input_dim", input_dim), ("hidden_units", hidden_units)):
            if not (isinstance(value, int) and value > 0):
                raise ValueError(f"{label} must be a positive integer, got {value!r}")
        if not weight_decay >= 0.0:
            raise ValueError(f"weight_decay (lambda) must be >= 0, got {weight_decay!r}")
        self.input_dim = input_dim
        self.hidden_units = hidden_units
        self.weight_decay = float(weight_decay)
        self.seed = seed
        self.encoder = keras.layers.Dense(
            hidden_units,
            activation="sigmoid",
            kernel_initializer=keras.initializers.GlorotUniform(seed),
            name="encoder",
        )
        # float32: the KL of a batch mean is a loss term (log near 0 and 1).
        self.sparsity = KLSparsity(sparsity_target, sparsity_weight, name="sparsity",
                                   dtype=self.variable_dtype)
        self.decoder = keras.layers.Dense(
            input_dim,
            activation="sigmoid",
            kernel_initializer=keras.initializers.GlorotUniform(None if seed is None else seed + 1),
            name="decoder",
        )
        self.trackers = {
            term: keras.metrics.Mean(name=term)
            for term in ("loss", "reconstruction", "weight_decay", "sparsity", "mean_activation")
        }
        self.build((None, input_dim))

    @property
    def sparsity_weight(self) -> float:
        return self.sparsity.weight

    @property
    def sparsity_target(self) -> float:
        return self.sparsity.target

    def build(self, input_shape: Any) -> None:
        self.encoder.build(input_shape)
        self.sparsity.build((None, self.hidden_units))
        self.decoder.build((None, self.hidden_units))
        self.built = True

    def encode(self, inputs: Any) -> Any:
        """Hidden activations, `(batch, hidden_units)`, float32."""
        return ops.cast(self.encoder(inputs), self.variable_dtype)

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        # float32 out under any policy: reconstructions are compared with float32 patches.
        return ops.cast(self.decoder(self.sparsity(self.encoder(inputs))), self.variable_dtype)

    def cost(self, inputs: Any) -> dict[str, Any]:
        """The cost J on a batch and its terms, as scalars.

        Under a `tf.distribute` strategy, `inputs` is this replica's slice of the global batch and
        every term is the global batch's (sums over all replicas' slices divided by the global
        batch size), the same on every replica and equal to what one device computes.

        Returns:
            dict with `loss` (J), `reconstruction`, `weight_decay`, `sparsity` and
            `mean_activation` (mean hidden activation over batch and units).
        """
        hidden = self.encoder(inputs)
        # The terms are float32 under any policy: bfloat16 sums of 10^4 squares would lose
        # the small differences training follows. The layers compute in the policy's dtype.
        outputs = ops.cast(self.decoder(hidden), self.variable_dtype)
        hidden = ops.cast(hidden, self.variable_dtype)
        inputs = ops.cast(inputs, self.variable_dtype)
        count = _sum_over_replicas(tf.cast(tf.shape(inputs)[0], hidden.dtype))
        reconstruction = _sum_over_replicas(0.5 * ops.sum(ops.square(inputs - outputs))) / count
        # Written out rather than as keras.regularizers.L2, which rounds lambda to float32;
        # outside the layers' calls the kernels are read as the float32 variables they are.
        weight_decay = (0.5 * self.weight_decay) * (
            ops.sum(ops.square(self.encoder.kernel)) + ops.sum(ops.square(self.decoder.kernel))
        )
        sparsity = self.sparsity.penalty(hidden)
        return {
            "loss": reconstruction + weight_decay + sparsity,
            "reconstruction": reconstruction,
            "weight_decay": weight_decay,
            "sparsity": sparsity,
            "mean_activation": _sum_over_replicas(ops.sum(hidden)) / (count * self.hidden_units),
        }

    def _update_metrics(self, terms: dict[str, Any], steps: Any = 1) -> None:
        """Adds `terms`, each the mean over `steps` mini-batches, to the running means."""
        for term, tracker in self.trackers.items():
            tracker.update_state(terms[term], sample_weight=steps)

    def _descend(self, inputs: Any) -> dict[str, Any]:
        """One gradient step on the cost of one mini-batch; returns the cost's terms."""
        replicas = _replicas()
        with tf.GradientTape() as tape:
            terms = self.cost(inputs)
            # Every replica holds the global batch's J and the optimizer sums the replicas'
            # gradients, so each replica differentiates its 1/replicas share: the sum is the
            # gradient of J on the global batch, as on one device.
            loss = terms["loss"] / replicas if replicas > 1 else terms["loss"]
        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        return terms

    def train_step(self, data: Any) -> dict[str, Any]:
        """One gradient step on a `(batch, input_dim)` mini-batch, or one step per mini-batch of a
        `(steps, batch, input_dim)` stack.

        A stack runs its steps in one compiled loop: with `jit_compile=True` XLA fuses each step,
        and small mini-batches no longer pay TensorFlow's per-op overhead on every step
        (see `zoo.training.fit`'s `batches_per_step`). The math is that of single steps, and
        the metrics are the same running means over mini-batches.

        Under a `tf.distribute` strategy (2-D mini-batches only: a strategy splits the first axis,
        which in a stack counts steps) each step's cost and gradient are those of the global
        batch, as on one device; see `cost` and `_descend`.
        """
        inputs = data[0] if isinstance(data, (tuple, list)) else data
        if len(inputs.shape) != 3:
            self._update_metrics(self._descend(inputs))
            return self.get_metrics_result()
        if _replicas() > 1:
            raise ValueError(
                "stacks of mini-batches cannot be split across the replicas of a tf.distribute "
                "strategy (it would split the steps, not the examples); train with "
                "batches_per_step=1 under a strategy"
            )
        steps = tf.shape(inputs)[0]

        def body(step: Any, sums: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
            terms = self._descend(inputs[step])
            return step + 1, {term: sums[term] + terms[term] for term in sums}

        zeros = {term: tf.zeros((), self.variable_dtype) for term in self.trackers}  # as `cost`'s terms
        _, sums = tf.while_loop(
            lambda step, _: step < steps, body, (0, zeros), maximum_iterations=steps
        )
        count = tf.cast(steps, self.variable_dtype)
        self._update_metrics({term: total / count for term, total in sums.items()}, count)
        return self.get_metrics_result()

    def test_step(self, data: Any) -> dict[str, Any]:
        inputs = data[0] if isinstance(data, (tuple, list)) else data
        self._update_metrics(self.cost(inputs))
        return self.get_metrics_result()

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return list(self.trackers.values())

    def features(self) -> Any:
        """Encoder weights as one input-space vector per hidden unit, `(hidden_units, input_dim)`.

        Row `b` is the input pattern that most excites hidden unit `b` (up to scale), i.e. what the
        course calls the unit's feature.
        """
        return ops.transpose(self.encoder.kernel)

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "hidden_units": self.hidden_units,
            "weight_decay": self.weight_decay,
            "sparsity_weight": self.sparsity_weight,
            "sparsity_target": self.sparsity_target,
            "seed": self.seed,
        }
