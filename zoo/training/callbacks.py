"""The callbacks `fit` trains with, and the per-epoch records they leave in a run directory.

`StopOnNonFiniteLoss` is the non-finite guard (`NonFiniteLossError`, which `train_loop` raises
too); `EpochSeeds` draws each epoch's random numbers from the epoch's number, so that a resumed
run repeats them; `EpochCheckpoint` checkpoints every epoch atomically and restores the latest;
`Progress` logs a line now and then. `zoo.training.writing.HistoryLogger` (Keras' `CSVLogger`)
writes `history.csv`: `trim_torn_row` mends a row a kill cut short and `read_history` reads the
file back.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import time
import weakref
from pathlib import Path
from typing import Any

import keras
import numpy as np

from zoo import runs
from zoo.errors import UserError
from zoo.training.writing import save_weights

# The package's logger, which the docs name (`Progress`, `train_loop`): users set its level.
_log = logging.getLogger("zoo.training")

__all__ = [
    "EpochCheckpoint",
    "EpochSeeds",
    "NonFiniteLossError",
    "Progress",
    "StopOnNonFiniteLoss",
    "epoch_seed_state",
    "read_history",
    "trim_torn_row",
]


class NonFiniteLossError(FloatingPointError, UserError):
    """Raised when the training loss becomes NaN or infinite (a `zoo.errors.UserError`: the
    command line tells it in one line)."""


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


# Each random generator's own seed, read when it is first seen: `EpochSeeds` overwrites the
# generator's state, so a model trained again in the same process would otherwise derive its
# epochs' states from the last one's.
_SEEDS: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


class EpochSeeds(keras.callbacks.Callback):
    """Sets every random generator of the model (each `keras.random.SeedGenerator`: the
    augmentation's and dropout's draws) at the start of each epoch to a state drawn from the
    generator's own seed and the epoch's number alone.

    A generator's state is a variable that advances with each draw, and checkpoints do not hold
    it (nor could they without changing the weight files' layout): a run resumed at epoch k
    would draw again what epochs 0.. had drawn. Derived from `(seed, epoch)`, epoch k draws the
    same numbers whether the run got there uninterrupted or resumed, as `epoch_batches` does for
    the batches' order; distinct seeds or epochs give unrelated streams (`numpy.random.SeedSequence`).
    """

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._generators = [
            (generator, _SEEDS.setdefault(generator, int(generator.state.numpy()[0])))
            for layer in self.model._flatten_layers(include_self=True)
            for generator in layer._seed_generators
        ]

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        for generator, seed in self._generators:
            generator.state.assign(epoch_seed_state(seed, epoch, generator.state.dtype))


def epoch_seed_state(seed: int, epoch: int, dtype: Any = "int64") -> np.ndarray:
    """The state `EpochSeeds` gives a random generator of seed `seed` at the start of `epoch`:
    `[mixed, 0]`, `mixed` a 31-bit number drawn from both (valid for every seed dtype)."""
    mixed = np.random.SeedSequence([seed % 2**64, epoch]).generate_state(1)[0] >> 1
    return np.array([mixed, 0], dtype=keras.backend.standardize_dtype(dtype))


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the weights and optimizer state after every epoch, for resuming a killed run, and
    the final weights when training ends.

    Each checkpoint is written atomically as `epoch-NNNN.weights.h5` and replaces the one
    before, so a kill at any moment leaves either the previous or the new checkpoint, never a
    broken one; a write that fails (disk full) raises `zoo.training.writing.RunWriteError`
    and keeps the previous one. (`keras.callbacks.BackupAndRestore` writes in place: a kill during its first
    write leaves a file nothing can resume from.) When training ends, `final.weights.h5` holds
    the weights as training left them (early stopping may have restored an earlier epoch's), so
    a run killed before its model file was written finishes from them without training more.
    The checkpoints stay until the run is finished (`zoo.runs.RunDirectory.finish`).

    Args:
        directory: where checkpoints live.
        restore_from: where `restore` and `training_ended` look instead of `directory` (a
            multi-worker job's non-chief workers write their checkpoints to a scratch folder
            but resume from the chief's, so that every worker restores the same weights).
    """

    FINAL = "final.weights.h5"

    def __init__(self, directory: str | Path, restore_from: str | Path | None = None) -> None:
        super().__init__()
        self.directory = Path(directory)
        self.restore_from = Path(restore_from) if restore_from is not None else self.directory

    def _checkpoints(self, directory: Path | None = None) -> list[Path]:
        return sorted((directory or self.directory).glob("epoch-*.weights.h5"))

    def _save(self, name: str) -> None:
        save_weights(self.model, self.directory / name)  # atomic; a failed write raises

    @property
    def training_ended(self) -> bool:
        """Whether an earlier training in `directory` ran to its end."""
        return (self.restore_from / self.FINAL).is_file()

    def restore(self, model: keras.Model, sample: Any = None) -> int:
        """Loads the final or else the latest epoch's checkpoint into `model`; returns the
        epochs it had finished (0 if there is none). A model not built yet (a subclassed
        model builds in its first step) is first called on `sample`, a batch of inputs."""
        checkpoints = self._checkpoints(self.restore_from)
        if not checkpoints:
            return 0
        _build(model, sample)
        model.load_weights(self.restore_from / self.FINAL if self.training_ended else checkpoints[-1])
        return int(checkpoints[-1].name.split(".")[0].removeprefix("epoch-"))

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        previous = self._checkpoints()
        self._save(f"epoch-{epoch + 1:04d}.weights.h5")
        for checkpoint in previous:
            checkpoint.unlink()
        runs.kill_point(f"epoch-{epoch + 1}")  # a kill between epochs, for tests

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self._save(self.FINAL)


class Progress(keras.callbacks.Callback):
    """Training progress for people: a line at most every `interval` seconds, and at the last
    epoch, with the epoch, the logged metrics and the time left.

    Keras' per-epoch lines repeat near-identical text hundreds of times for a short-epoch,
    long run (the autoencoder's 400 epochs); the full record is the run's `history.csv`.

    The lines go to the `zoo.training` logger at INFO: the `zoo` command shows them; in Python,
    `logging.basicConfig(level=logging.INFO)` does (Python shows only warnings by default).

    Args:
        interval: seconds between lines at least.
        stream: a file to write the lines to instead of the logger.
    """

    def __init__(self, interval: float = 10.0, stream: Any = None) -> None:
        super().__init__()
        if not interval >= 0:
            raise ValueError(f"interval must be >= 0 seconds, got {interval!r}")
        self.interval, self.stream = interval, stream

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._start = self._last = time.monotonic()
        self._first_epoch: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self._first_epoch is None:
            self._first_epoch = epoch  # a resumed run starts past 0
        now, epochs = time.monotonic(), self.params.get("epochs", epoch + 1)
        if now - self._last < self.interval and epoch + 1 < epochs:
            return
        self._last = now
        done = epoch + 1 - self._first_epoch
        left = (now - self._start) / done * (epochs - epoch - 1)
        metrics = ", ".join(f"{name} {value:.4g}" for name, value in (logs or {}).items())
        line = (f"epoch {epoch + 1}/{epochs}: {metrics} ({_duration(now - self._start)} elapsed, "
                f"{_duration(left)} left)")
        if self.stream is None:
            _log.info("%s", line)
        else:
            self.stream.write(line + "\n")
            self.stream.flush()


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes}:{seconds:02d}" if minutes < 60 else f"{minutes // 60}:{minutes % 60:02d}:{seconds:02d}"


def _build(model: keras.Model, sample: Any) -> None:
    """Creates the weights of a model not built yet by calling it on `sample`, and its
    optimizer's state, so that saved weights and state can be loaded into them (Keras refuses
    to load into an unbuilt model, and warns that it skips an unbuilt optimizer's state)."""
    if not model.built and sample is not None:
        model(sample)
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


def trim_torn_row(path: str | Path) -> None:
    """Cuts a last row that a kill left half-written (no line end) from a `history.csv`, so
    that the next row is not appended to its fragment. Its epoch has no checkpoint yet (the row
    is logged first), so a resumed run trains it again."""
    path = Path(path)
    if not path.is_file():
        return
    content = path.read_bytes()
    if content and not content.endswith(b"\n"):
        with open(path, "r+b") as handle:
            handle.truncate(content.rfind(b"\n") + 1)


def read_history(path: str | Path) -> dict[str, list[float]]:
    """Reads a `history.csv` written by `fit`, one list per metric, one value per epoch.

    A run resumed after an interruption may have logged an epoch twice; the later row wins. A
    half-written last row (a kill mid-append: no line end) is not read. Columns Keras logged as
    "NA" (validation metrics of a run without validation data) are left out.
    """
    rows: dict[int, dict[str, str]] = {}
    text = Path(path).read_text()
    complete = text[: text.rfind("\n") + 1]
    for row in csv.DictReader(io.StringIO(complete, newline="")):
        rows[int(row.pop("epoch"))] = row
    history: dict[str, list[float]] = {}
    for epoch in sorted(rows):
        for metric, value in rows[epoch].items():
            if value not in ("NA", ""):
                history.setdefault(metric, []).append(float(value))
    return history
