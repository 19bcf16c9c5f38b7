"""Training machinery shared by every family: seeding, resumable `fit`, and a non-finite guard."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from zoo.data import DataError, Splits
from zoo.files import atomic_path

__all__ = [
    "NonFiniteLossError",
    "StopOnNonFiniteLoss",
    "fit",
    "read_history",
    "set_seed",
    "stacked_batches",
]

MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"
BACKUP_DIR = "backup"


class NonFiniteLossError(FloatingPointError):
    """Raised when the training loss becomes NaN or infinite."""


def set_seed(seed: int) -> None:
    """Seeds Python, NumPy, TensorFlow and Keras so that runs repeat exactly on one machine."""
    keras.utils.set_random_seed(seed)


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops training with `NonFiniteLossError` as soon as the loss is NaN or infinite.

    Unlike `keras.callbacks.TerminateOnNaN`, which stops quietly and lets the caller save a
    broken model, this raises, so nothing downstream treats the run as finished.
    """

    def __init__(self) -> None:
        super().__init__()
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise NonFiniteLossError(
                f"training loss became {float(loss)} in epoch {self._epoch + 1} (batch {batch + 1}); "
                "training stopped. Lower the learning rate, add gradient clipping, or check the "
                "data for NaN/inf values. The last finished epoch's checkpoint is kept for resuming."
            )


def read_history(path: str | Path) -> dict[str, list[float]]:
    """Reads a `history.csv` written by `fit`, one list per metric, one value per epoch.

    A run resumed after an interruption may have logged an epoch twice; the later row wins.
    Columns Keras logged as "NA" (validation metrics of a run without validation data) are
    left out.
    """
    rows: dict[int, dict[str, str]] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            rows[int(row.pop("epoch"))] = row
    history: dict[str, list[float]] = {}
    for epoch in sorted(rows):
        for metric, value in rows[epoch].items():
            if value not in ("NA", ""):
                history.setdefault(metric, []).append(float(value))
    return history


def stacked_batches(
    x: np.ndarray, y: np.ndarray | None, batch_size: int, batches_per_step: int
) -> tf.data.Dataset:
    """Mini-batches of a fresh permutation each epoch, stacked `batches_per_step` at a time.

    Shuffles indices and gathers whole stacks from in-memory tensors: shuffling the examples
    themselves through tf.data costs more per epoch than a small model's training does.
    """
    arrays = tuple(tf.constant(array) for array in (x, y) if array is not None)
    batches = len(x) // batch_size
    if batches == 0:
        raise DataError(f"batch_size {batch_size} is larger than the {len(x)} training examples")

    def gather(indices: Any) -> Any:
        gathered = tuple(tf.gather(array, indices) for array in arrays)
        return gathered if len(gathered) > 1 else gathered[0]

    return (
        tf.data.Dataset.range(len(x))
        # A new order every epoch, also under a global seed (Keras re-iterates the dataset).
        .shuffle(len(x), reshuffle_each_iteration=True)
        .batch(batch_size, drop_remainder=True)
        .batch(batches_per_step)
        .map(gather)
        .prefetch(tf.data.AUTOTUNE)
    )


def fit(
    model: keras.Model,
    splits: Splits,
    run_dir: str | Path,
    *,
    epochs: int,
    batch_size: int,
    batches_per_step: int = 1,
    callbacks: Sequence[keras.callbacks.Callback] = (),
    verbose: str | int = "auto",
) -> dict[str, list[float]]:
    """Trains `model` on `splits`, resumably, and saves it to `run_dir/model.keras`.

    Each epoch ends with a checkpoint in `run_dir/backup/`; if the process is killed, calling
    `fit` again with the same arguments restores it and continues from the next epoch
    (`keras.callbacks.BackupAndRestore`), so at most one epoch is lost. A finished run removes
    its checkpoint, and the next call starts afresh. Metrics go to `run_dir/history.csv`.

    Args:
        model: a compiled model.
        splits: training and validation data.
        run_dir: directory for the checkpoint, history and final model.
        epochs: total number of epochs, counting those before an interruption.
        batch_size: mini-batch size.
        batches_per_step: when > 1, each training step receives a stack of this many shuffled
            mini-batches, `(batches_per_step, batch_size, ...)`, for models whose `train_step`
            takes one gradient step per mini-batch of a stack in one compiled loop (see
            `SparseAutoencoder.train_step`). Each epoch then skips the last
            `len(x_train) % batch_size` examples of its shuffled order.
        callbacks: extra Keras callbacks (early stopping, say).
        verbose: Keras' progress output setting.

    Returns:
        The full history, all epochs of this run including those before a resume.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    history_path = run_dir / HISTORY_FILE
    resuming = (run_dir / BACKUP_DIR).is_dir() and any((run_dir / BACKUP_DIR).iterdir())
    if not resuming and history_path.exists():
        history_path.unlink()  # a stale history from a finished earlier run
    validation = None
    if len(splits.x_val):
        validation = (splits.x_val,) if splits.y_val is None else (splits.x_val, splits.y_val)
    if batches_per_step > 1:
        train = stacked_batches(splits.x_train, splits.y_train, batch_size, batches_per_step)
        inputs, targets, fit_batch_size = train, None, None
    else:
        inputs, targets, fit_batch_size = splits.x_train, splits.y_train, batch_size
    model.fit(
        inputs,
        targets,
        validation_data=validation,
        validation_batch_size=max(batch_size, 256),
        epochs=epochs,
        batch_size=fit_batch_size,
        shuffle=batches_per_step == 1,  # stacked batches come shuffled
        verbose=verbose,
        callbacks=[
            StopOnNonFiniteLoss(),
            # Log before checkpointing: a kill between the two repeats a logged epoch (which
            # read_history resolves) instead of losing one from the history.
            keras.callbacks.CSVLogger(str(history_path), append=True),
            # Two checkpoints, so a kill while one is written still leaves the other to resume.
            keras.callbacks.BackupAndRestore(str(run_dir / BACKUP_DIR), double_checkpoint=True),
            *callbacks,
        ],
    )
    with atomic_path(run_dir / MODEL_FILE) as temporary:
        model.save(temporary)  # the temporary name keeps the .keras suffix Keras requires
    return read_history(history_path)
