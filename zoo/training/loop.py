"""`train_loop`: the training `fit` does, written out as a `tf.GradientTape` loop to read and
modify (the course's "barebones" style). `fit` stays the default path."""

from __future__ import annotations

import logging
import math
from typing import Any

import keras
import tensorflow as tf

from zoo import hooks
from zoo.data import DataError, Splits
from zoo.training.callbacks import NonFiniteLossError
from zoo.training.feeding import adapt_preprocessing, untuned

# The package's logger, which the docs name (`Progress`, `train_loop`): users set its level.
_log = logging.getLogger("zoo.training")

__all__ = ["train_loop"]


def train_loop(
    model: keras.Model,
    splits: Splits,
    *,
    epochs: int,
    batch_size: int,
    shuffle_seed: int | None = None,
    verbose: bool = True,
) -> dict[str, list[float]]:
    """Trains a compiled `model` with a written-out `tf.GradientTape` loop, for reading and
    modifying (the course's "barebones" style); `fit` stays the default path.

    Each step is what `model.fit` does: forward pass in training mode, the compiled loss plus
    the layers' own losses (L2 penalties, say), gradients, one optimizer update. With the same
    initial weights and the same data order (`shuffle_seed=None` here and `shuffle=False` in
    `fit`) the trained weights equal `fit`'s up to float rounding. Normalization layers are
    adapted to the training inputs first, models with a run-length learning-rate schedule
    (`plan_training`) are told the run's length, and the model's own `training_callbacks` run,
    as its `fit` does.

    Args:
        model: a compiled model.
        splits: training and (optionally empty) validation data, with targets.
        epochs: passes over the training data.
        batch_size: mini-batch size; the last batch of an epoch may be smaller.
        shuffle_seed: `None` keeps the data order; an integer draws a new order each epoch
            from it.
        verbose: log one line per epoch at INFO (the `zoo.training` logger; Python shows only
            warnings unless told otherwise, e.g. `logging.basicConfig(level=logging.INFO)`).

    Returns:
        Per-epoch `loss`, the compiled metrics, and `val_` versions when there is validation data.

    Example:

    >>> model = zoo.get("cifar_small", preset="tiny")
    >>> history = train_loop(model, splits, epochs=2, batch_size=32, shuffle_seed=0,
    ...                      verbose=False)
    >>> len(history["loss"]), len(history["val_loss"])
    (2, 2)
    """
    if splits.y_train is None:
        raise DataError("train_loop needs targets (splits.y_train)")
    adapt_preprocessing(model, splits.x_train)
    steps_per_epoch = math.ceil(len(splits.x_train) / batch_size)
    planned = isinstance(model, hooks.PlannedTraining)
    if planned:
        model.plan_training(steps_per_epoch * epochs)
    train = tf.data.Dataset.from_tensor_slices((splits.x_train, splits.y_train))
    if shuffle_seed is not None:
        train = train.shuffle(len(splits.x_train), seed=shuffle_seed, reshuffle_each_iteration=True)
    train = untuned(train.batch(batch_size).prefetch(2))
    if not model.built:
        model(splits.x_train[:1])  # creates the weights, as fit does before its first step
    # Building the optimizer's slots before tracing keeps the step function to one trace.
    model.optimizer.build(model.trainable_variables)
    mean_loss = keras.metrics.Mean(name="loss")
    signature = [
        tf.TensorSpec([None, *array.shape[1:]], tf.as_dtype(array.dtype))
        for array in (splits.x_train, splits.y_train)
    ]

    def traced_step() -> Any:
        """The training step, for the variables trainable when it is first called."""

        @tf.function(input_signature=signature)
        def train_step(x: tf.Tensor, y: tf.Tensor) -> None:
            with tf.GradientTape() as tape:
                predictions = model(x, training=True)
                # The compiled loss, averaged over the batch, plus sum(model.losses).
                loss = model.compute_loss(x=x, y=y, y_pred=predictions, training=True)
            gradients = tape.gradient(loss, model.trainable_variables)
            model.optimizer.apply_gradients(zip(gradients, model.trainable_variables))
            mean_loss.update_state(loss, sample_weight=tf.shape(x)[0])
            model.compute_metrics(x, y, predictions, sample_weight=None)

        return train_step

    # Callbacks that belong to the model's recipe (Lookahead, say), as its `fit` would add them.
    recipe = keras.callbacks.CallbackList(
        model.training_callbacks() if planned else [], model=model, epochs=epochs,
        steps=steps_per_epoch,
    )
    recipe.on_train_begin()
    history: dict[str, list[float]] = {}
    train_step, traced_for = None, None
    for epoch in range(epochs):
        recipe.on_epoch_begin(epoch)
        # A recipe may freeze a layer from some epoch on (FreezeAfter): then trace anew.
        if traced_for != (trainable := [v.path for v in model.trainable_variables]):
            train_step, traced_for = traced_step(), trainable
        mean_loss.reset_state()
        model.reset_metrics()
        for step, (x, y) in enumerate(train):
            train_step(x, y)
            recipe.on_train_batch_end(step)
        logs = {"loss": float(mean_loss.result())}
        logs.update(
            (name, float(value))
            for name, value in model.get_metrics_result().items()
            if name != "loss"
        )
        if not math.isfinite(logs["loss"]):
            raise NonFiniteLossError(f"training loss became {logs['loss']} in epoch {epoch + 1}")
        if len(splits.x_val):
            evaluated = model.evaluate(splits.x_val, splits.y_val, batch_size=max(batch_size, 256),
                                       verbose=0, return_dict=True)
            logs.update((f"val_{name}", float(value)) for name, value in evaluated.items())
        for name, value in logs.items():
            history.setdefault(name, []).append(value)
        if verbose:
            _log.info("epoch %d/%d: %s", epoch + 1, epochs,
                      ", ".join(f"{name} {value:.4f}" for name, value in logs.items()))
    recipe.on_train_end()
    return history
