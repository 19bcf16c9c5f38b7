"""Training-recipe pieces any family may use: a one-cycle learning rate, Lookahead weight
averaging, freezing a layer after some epochs, and a model base class whose `fit` sizes its
schedule to the run.

They started as parts of the fast CIFAR-10 recipe (`zoo.convnets.AirbenchNet`), but nothing in
them is about images: a model opts in by deriving from `ScheduledModel` and returning its
recipe's callbacks from `training_callbacks` (the hooks `zoo.hooks.TrainingHooks` describes).
"""

from __future__ import annotations

import logging
import math
from typing import Any

import keras
from keras import ops

from zoo.errors import UserError

__all__ = ["FreezeAfter", "Lookahead", "OneCycle", "ScheduledModel", "UnknownLengthError",
           "steps_per_epoch"]

_log = logging.getLogger(__name__)


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


class FreezeAfter(keras.callbacks.Callback):
    """Trains `layer` for the first `epochs` epochs of a run, then freezes it (airbench trains its
    whitening bias for 3 epochs).

    Freezing saves more than the layer's update: when nothing before a layer trains, the
    backward pass stops there. Epochs count from the start of the run, so a run resumed from a
    checkpoint freezes where the uninterrupted run would. At the end of the run the layer is
    trainable again, so that the model saved or fitted next holds its own setting; a layer the
    user froze stays frozen throughout.

    Args:
        layer: the layer to freeze.
        epochs: epochs trained before it freezes, >= 0.

    Example:

    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4), keras.layers.Dense(1)])
    >>> model.compile("sgd", "mse")
    >>> _ = model.fit(x, y, epochs=3, callbacks=[FreezeAfter(model.layers[0], 1)], verbose=0)
    """

    def __init__(self, layer: keras.layers.Layer, epochs: int) -> None:
        super().__init__()
        if epochs < 0:
            raise ValueError(f"epochs must be a non-negative integer, got {epochs}")
        self.layer, self.epochs = layer, epochs

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.applies = self.layer.trainable

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self.applies:
            self._set_trainable(epoch < self.epochs)

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.applies:
            self._set_trainable(True)

    def _set_trainable(self, trainable: bool) -> None:
        if self.layer.trainable != trainable:
            self.layer.trainable = trainable
            # The training step was traced for the old set of trainable variables.
            self.model.make_train_function(force=True)


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

    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(1)])
    >>> model.compile("sgd", "mse")
    >>> model.planned_steps = 2 * 4  # epochs times steps per epoch (32 samples, batches of 8)
    >>> _ = model.fit(x, y, epochs=2, batch_size=8, callbacks=[Lookahead()], verbose=0)
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
        planned = max(getattr(self.model, "planned_steps", 1), 1)
        if step and self.model.built and step / planned >= self.start:
            self._begin_average()

    def _begin_average(self) -> None:
        # Gathered once the model is built: `fit` builds a subclassed model lazily.
        self.averaged = [w for w in self.model.weights if "float" in str(w.dtype)]
        self.slow = [ops.copy(w.value) for w in self.averaged]

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        step = int(self.model.optimizer.iterations.numpy())
        # The run's length, as zoo.hooks.PlannedTraining.planned_steps holds it.
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
        """`keras.Model.fit`, after fitting the learning-rate schedule to this run's length
        (`steps_per_epoch(x, ...)` steps per epoch; a `tf.data.Dataset` of unknown length costs
        one extra pass over it to count its batches, unless `steps_per_epoch` is given)."""
        steps = steps_per_epoch(x, batch_size, kwargs.get("steps_per_epoch"),
                                kwargs.get("validation_split") or 0.0)
        self.plan_training(steps * epochs)
        kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), *self.training_callbacks()]
        return super().fit(x, y, batch_size=batch_size, epochs=epochs, **kwargs)


class UnknownLengthError(ValueError, UserError):
    """Raised when the steps of an epoch cannot be known without `steps_per_epoch`."""


def steps_per_epoch(x: Any, batch_size: int | None = None, given: int | None = None,
                    validation_split: float = 0.0) -> int:
    """The steps of one epoch of `keras.Model.fit(x, ...)`, which a run-length schedule needs
    before training starts.

    In order: `given` (fit's `steps_per_epoch`); a `tf.data.Dataset`'s cardinality when
    TensorFlow knows it; otherwise (after `filter`, say, or a `from_generator` source) its
    batches counted by one pass over it, which reads and transforms every element once more:
    pass `steps_per_epoch` to skip that, or give the dataset its length
    (`dataset.apply(tf.data.experimental.assert_cardinality(batches))`), which also keeps the
    schedule exact: on a dataset of unknown length Keras 3.15 counts one more optimizer
    iteration per epoch than it trains, so the schedule then ends that many steps early. A `keras.utils.PyDataset` gives its `num_batches`;
    arrays (or a dict or tuple of them) their examples, less fit's `validation_split`, in
    batches of `batch_size` (Keras' default 32).

    Args:
        x: what `fit` trains on.
        batch_size: fit's `batch_size`, for arrays.
        given: fit's `steps_per_epoch`, if any.
        validation_split: fit's share of the arrays held out for validation.

    Returns:
        The number of training steps in one epoch.

    Raises:
        UnknownLengthError: `x` is an endless dataset, or a Python generator, and `given` is
            None.
    """
    if given is not None:
        return int(given)
    if hasattr(x, "element_spec"):  # a tf.data.Dataset
        import tensorflow as tf

        count = int(x.cardinality())
        if count == tf.data.INFINITE_CARDINALITY:
            raise UnknownLengthError("the dataset repeats forever: pass steps_per_epoch to fit")
        if count == tf.data.UNKNOWN_CARDINALITY:
            _log.info("counting the batches of a dataset of unknown length (one pass over it); "
                      "pass steps_per_epoch to fit to skip this")
            count = int(x.reduce(tf.constant(0, tf.int64), lambda total, *_: total + 1))
        return count
    if isinstance(x, keras.utils.PyDataset):
        if x.num_batches is None:
            raise UnknownLengthError("the PyDataset has no num_batches: pass steps_per_epoch to fit")
        return x.num_batches
    arrays = keras.tree.flatten(x)
    if not arrays or not hasattr(arrays[0], "shape"):
        raise UnknownLengthError(
            f"cannot tell the length of a {type(x).__name__}: pass steps_per_epoch to fit"
        )
    examples = len(arrays[0])
    if validation_split:
        examples = math.floor(examples * (1.0 - validation_split))  # as Keras splits
    return max(math.ceil(examples / (batch_size or 32)), 1)
