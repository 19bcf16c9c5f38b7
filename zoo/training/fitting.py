"""`fit`: resumable training into a run directory, with seeding (`set_seed`), data fed by
`zoo.training.feeding`, the callbacks of `zoo.training.callbacks` (checkpoints, non-finite
guard, progress) and the chief/worker protocol of `zoo.training.chief`."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from zoo import runs
from zoo.data import DataError, Splits
from zoo.training.callbacks import (
    EpochCheckpoint,
    EpochSeeds,
    Progress,
    StopOnNonFiniteLoss,
    _build,
    read_history,
)
from zoo.training.chief import finish_run, open_run
from zoo.training.distribution import _distribution, _reduce_nests
from zoo.training.feeding import adapt_preprocessing, check_labels, epoch_batches, steps_per_epoch
from zoo.training.writing import HistoryLogger

__all__ = ["fit", "set_seed"]


def set_seed(seed: int) -> None:
    """Seeds Python, NumPy, TensorFlow and Keras so that runs repeat exactly on one machine."""
    keras.utils.set_random_seed(seed)


def _learning_rate_schedule(
    model: keras.Model, kind: str, epochs: int
) -> list[keras.callbacks.Callback]:
    if kind == "constant":
        return []
    if kind != "cosine":
        raise ValueError(f"learning_rate_schedule must be 'constant' or 'cosine', got {kind!r}")
    # Read now: a restored checkpoint would bring the optimizer's last, decayed rate.
    rate = model.optimizer.learning_rate
    rate = getattr(rate, "value", rate)  # a strategy's variable (MirroredVariable) has no float()
    initial = float(rate.numpy() if hasattr(rate, "numpy") else rate)
    return [
        keras.callbacks.LearningRateScheduler(
            lambda epoch: initial * (1 + math.cos(math.pi * epoch / epochs)) / 2
        )
    ]


def fit(
    model: keras.Model,
    splits: Splits,
    run_dir: str | Path,
    *,
    epochs: int,
    batch_size: int,
    batches_per_step: int = 1,
    early_stopping_patience: int | None = None,
    learning_rate_schedule: str = "constant",
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: str | int = "auto",
    record: Mapping[str, Any] | None = None,
    figures: Callable[[keras.Model, dict[str, list[float]]], Sequence[Path]] | None = None,
    overwrite: bool = False,
) -> dict[str, list[float]]:
    """Trains `model` on `splits` into the run directory `run_dir`, resumably.

    The run directory is `zoo.runs.RunDirectory`'s: `fit` claims it (an existing folder must be
    empty or zoo's), holds its lock while training, records the run's settings before the
    first epoch, checkpoints every epoch to `.zoo-checkpoints/`, logs `history.csv`, and when
    training ends writes `model.keras`, the `figures`, the finished record and only then
    removes the checkpoints. Killed at any instant, calling `fit` again with the same arguments
    resumes from the last finished epoch (or completes an interrupted finish); called again on
    a finished run with the same settings, it loads the trained weights into `model` and
    returns the recorded history. Normalization layers without fixed statistics are first
    fitted to the training inputs (`adapt_preprocessing`). The data is fed from memory by
    `epoch_batches`: a new order every epoch, drawn from the global seed and the epoch's
    number (so a resumed run sees the batches an uninterrupted one would), without tf.data's
    autotuning (`untuned`); likewise every random generator of the model (augmentation,
    dropout) starts each epoch from its seed and the epoch's number (`EpochSeeds`), so a run
    killed after epoch k and resumed ends exactly as an uninterrupted run.

    Under a `tf.distribute` strategy (build and compile `model` in `zoo.strategies.make_strategy(...).scope()`,
    call `fit` outside it): `batch_size` is the global batch, split evenly across the replicas
    (it must be a multiple of their number); with several replicas each step takes one full
    mini-batch (`epoch_batches(drop_remainder=True)`; `batches_per_step` becomes 1, XLA is
    off), and the run record holds the strategy. Under `MultiWorkerMirroredStrategy` every
    worker calls `fit` with the same arguments; only the chief (`is_chief`) claims, locks and
    writes `run_dir`, the others write to a temporary folder and resume from the chief's
    checkpoint, so `run_dir` must be the same path on shared storage for every worker. A worker
    that dies stops the job (its peers wait in a collective): restart every worker with the
    same command and all resume from the chief's last epoch. (The protocol: `zoo.training.chief`.)

    Args:
        model: a compiled model.
        splits: training and validation data.
        run_dir: the run directory.
        epochs: total number of epochs, counting those before an interruption.
        batch_size: mini-batch size.
        batches_per_step: when > 1, each training step receives a stack of this many shuffled
            mini-batches, `(batches_per_step, batch_size, ...)`, for models whose `train_step`
            takes one gradient step per mini-batch of a stack in one compiled loop (see
            `SparseAutoencoder.train_step`). Each epoch then skips the last
            `len(x_train) % batch_size` examples of its shuffled order.
        early_stopping_patience: when set, stop once the validation loss has not improved for
            this many epochs and keep the weights of its best epoch. (A resumed run starts
            counting afresh.)
        learning_rate_schedule: "constant", or "cosine": each epoch's learning rate is the
            optimizer's initial one times (1 + cos(pi * epoch / epochs)) / 2, so training ends
            with small, averaging steps rather than wherever the last large step landed.
        callbacks: extra Keras callbacks.
        verbose: "auto" logs a line now and then (`Progress`: at most every 10 seconds,
            and the last epoch, with the time left; INFO on this module's logger, which the
            `zoo` command shows); otherwise Keras' own setting (0 silent,
            1 a progress bar per epoch, 2 a line per epoch). The full per-epoch record is
            `history.csv` either way.
        record: what the run record holds besides the fit settings (entry name, preset,
            hyperparameters, seed, data); a resumed run must match it.
        figures: `figures(model, history) -> [paths]` draws the run's figures into `run_dir`
            before the run is recorded as finished.
        overwrite: start afresh over an earlier run in `run_dir` (zoo's own files only).

    Returns:
        The full history, all epochs of this run including those before a resume.

    Raises:
        zoo.runs.RunError: `run_dir` is not zoo's, is in use by another process, or holds a
            run with other settings (and `overwrite` is false).
        DataError: the labels do not fit the model.
        NonFiniteLossError: the loss became NaN or infinite (the last checkpoint is kept).
    """
    if verbose == "auto":
        callbacks, verbose = [*callbacks, Progress()], 0
    # Drawn first from the global seed (`set_seed`), so that a resumed run draws the same seed
    # of the epochs' orders, whatever else draws later only on a fresh start.
    order_seed = int(np.random.randint(2**31 - 1))
    check_labels(model, splits.y_train)  # before any file is written
    several_replicas = model.distribute_strategy.num_replicas_in_sync > 1
    if (batches_per_step > 1 or several_replicas) and len(splits.x_train) < batch_size:
        # Checked here too, not only by `epoch_batches`: by then `overwrite` has cleared
        # the finished run this call was to replace.
        raise DataError(
            f"batch_size {batch_size} is larger than the {len(splits.x_train)} training examples"
        )
    validation = None
    if len(splits.x_val):
        # Keras' own feeding, which a strategy shards and reduces right (fed as a dataset, a
        # two-worker job's val_loss came out half the single process's). Evaluation is short.
        validation = (splits.x_val,) if splits.y_val is None else (splits.x_val, splits.y_val)
    elif early_stopping_patience is not None:
        raise DataError("early stopping needs validation data, and the validation split is empty")
    distribution = _distribution(model, batch_size)
    if distribution is not None and distribution["replicas"] > 1:
        # A strategy splits each batch's first axis across its replicas; in a stack that axis
        # counts steps (see SparseAutoencoder.train_step), so a step takes one mini-batch.
        batches_per_step = 1
        # XLA compiles a step for one device; a step spread over several must run as a graph.
        model.jit_compile = False
    settings = {
        **(record or {}),
        "fit": {"epochs": epochs, "batch_size": batch_size, "batches_per_step": batches_per_step,
                "early_stopping_patience": early_stopping_patience,
                "learning_rate_schedule": learning_rate_schedule},
        **({"distribution": distribution} if distribution is not None else {}),
    }
    run = runs.RunDirectory(run_dir)
    strategy = model.distribute_strategy
    _reduce_nests(strategy)
    with open_run(run, settings, strategy, overwrite=overwrite) as files:
        # Only the chief writes `run_dir`; the other workers keep their files apart (chief.py).
        state, checkpoint, history_path = files.state, files.checkpoint, files.history_path
        if state == runs.FINISHED:
            _build(model, splits.x_train[:1])
            model.load_weights(run.model_path)
            return read_history(run.history_path)
        schedule = _learning_rate_schedule(model, learning_rate_schedule, epochs)  # before a restore
        with strategy.scope() if distribution is not None else contextlib.nullcontext():
            if distribution is not None:
                # Weights and optimizer state are created now, as the strategy's variables,
                # not by a first step on distributed data, which a subclassed model cannot
                # build from.
                _build(model, splits.x_train[:1])
            initial_epoch = checkpoint.restore(model, splits.x_train[:1])
        if initial_epoch == 0:
            adapt_preprocessing(model, splits.x_train)  # a restored checkpoint holds its statistics
        if not checkpoint.training_ended:
            _train(model, splits, validation, history_path, checkpoint, epochs, initial_epoch,
                   batch_size, batches_per_step, order_seed, early_stopping_patience, schedule,
                   callbacks, verbose)
        return finish_run(files, model, figures)


def _train(
    model: keras.Model,
    splits: Splits,
    validation: tuple[np.ndarray, ...] | None,
    history_path: Path,
    checkpoint: EpochCheckpoint,
    epochs: int,
    initial_epoch: int,
    batch_size: int,
    batches_per_step: int,
    order_seed: int,
    early_stopping_patience: int | None,
    schedule: list[keras.callbacks.Callback],
    callbacks: Sequence[keras.callbacks.Callback],
    verbose: str | int,
) -> None:
    """`model.fit` with `fit`'s data feeding and callbacks."""
    # Full batches where a strategy splits them across its replicas or a step takes a stack.
    full = batches_per_step > 1 or model.distribute_strategy.num_replicas_in_sync > 1
    stack = batches_per_step if batches_per_step > 1 else None
    train = epoch_batches(splits.x_train, splits.y_train, batch_size, seed=order_seed,
                          epochs=epochs, first_epoch=initial_epoch, drop_remainder=full, stack=stack)
    stopping = []
    if early_stopping_patience is not None:
        stopping.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss", patience=early_stopping_patience, restore_best_weights=True
            )
        )
    model.fit(
        train,
        steps_per_epoch=steps_per_epoch(len(splits.x_train), batch_size, full, stack),
        validation_data=validation,
        validation_batch_size=max(batch_size, 256),
        epochs=epochs,
        initial_epoch=initial_epoch,
        shuffle=False,  # the batches come shuffled
        verbose=verbose,
        callbacks=[
            EpochSeeds(),  # first: each epoch's random draws are set before any other callback
            StopOnNonFiniteLoss(),
            # Log before checkpointing: a kill between the two repeats a logged epoch (which
            # read_history resolves) instead of losing one from the history.
            HistoryLogger(str(history_path), append=True),
            *stopping,
            # After early stopping, so that its end-of-training checkpoint holds the weights
            # early stopping restored.
            checkpoint,
            *schedule,
            *callbacks,
        ],
    )
