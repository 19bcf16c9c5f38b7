"""Training machinery shared by every family: seeding, resumable `fit`, a non-finite guard, and
`train_loop`, the same training written out as a `tf.GradientTape` loop."""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from zoo import hooks, runs
from zoo.data import DataError, Splits
from zoo.errors import UserError
from zoo.files import atomic_path
from zoo.strategies import is_chief

# The package's logger, which the docs name (`Progress`, `train_loop`): users set its level.
_log = logging.getLogger("zoo.training")

__all__ = [
    "EpochCheckpoint",
    "NonFiniteLossError",
    "Progress",
    "StopOnNonFiniteLoss",
    "adapt_preprocessing",
    "check_labels",
    "epoch_batches",
    "fit",
    "read_history",
    "set_seed",
    "steps_per_epoch",
    "train_loop",
    "untuned",
]



class NonFiniteLossError(FloatingPointError, UserError):
    """Raised when the training loss becomes NaN or infinite (a `zoo.errors.UserError`: the
    command line tells it in one line)."""


def set_seed(seed: int) -> None:
    """Seeds Python, NumPy, TensorFlow and Keras so that runs repeat exactly on one machine."""
    keras.utils.set_random_seed(seed)


def _distribution(model: keras.Model, batch_size: int) -> dict[str, Any] | None:
    """The model's strategy, for the run record (`None` without one); checks the batch splits
    evenly across the replicas."""
    strategy = model.distribute_strategy
    if strategy is tf.distribute.get_strategy() and not tf.distribute.has_strategy():
        return None  # built outside any strategy's scope
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        # Keras divides each replica's mean loss by the replica count: that is the mean over the
        # global batch only when every replica holds as many examples.
        raise DataError(
            f"batch_size {batch_size} does not split evenly across {replicas} replicas; "
            f"give a multiple of {replicas}"
        )
    kinds = ((tf.distribute.MultiWorkerMirroredStrategy, "multi_worker"),
             (tf.distribute.MirroredStrategy, "mirrored"),
             (tf.distribute.OneDeviceStrategy, "one_device"))
    kind = next((kind for cls, kind in kinds if isinstance(strategy, cls)), type(strategy).__name__)
    return {"strategy": kind, "replicas": replicas}


def _reduce_nests(strategy: tf.distribute.Strategy) -> None:
    """Lets `strategy.reduce` take a nest of values, as Keras' `fit` asks of it.

    Keras 3.15's `fit` under `MultiWorkerMirroredStrategy` asks two things of
    `strategy.reduce` that it cannot do: to reduce the first distributed batch, an `(x, y)`
    tuple, in one call ("Attempt to convert a value (PerReplica...) to a Tensor"), and to
    average each step's scalar metrics "along axis 0" ("Invalid reduction dimension 0 for
    input with 0 dimensions"). This answers a nest (only the build batch, of which Keras uses
    the shapes and dtypes) with this worker's slice, and reduces a scalar across the replicas
    (an all-reduce that every worker joins). Set once on the strategy object; other strategies
    are left alone.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    if getattr(strategy, "_zoo_reduces_nests", False):
        return
    reduce = strategy.reduce

    def reduce_nest(reduce_op: Any, value: Any, axis: Any = None) -> Any:
        if axis is None and tf.nest.is_nested(value):
            # Keras' build batch: it needs only its shapes and dtypes, which every replica's
            # slice has (an all-reduce would also refuse integer images).
            return tf.nest.map_structure(
                lambda item: strategy.experimental_local_results(item)[0], value)
        local = strategy.experimental_local_results(value)
        if axis is not None and local and getattr(local[0], "shape", None) is not None and (
            local[0].shape.rank == 0
        ):
            axis = None  # a scalar (a step's metric) has no axis 0: reduce across replicas
        return reduce(reduce_op, value, axis=axis)

    strategy.reduce = reduce_nest
    strategy._zoo_reduces_nests = True


def untuned(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """`dataset` with tf.data's autotuning off.

    On 2 cores, the autotuner's background thread took compute from the training steps it fed:
    cifar_airbench's steps ran at 1.03 s instead of 0.65 s in most `fit` calls whose pipeline
    was autotuned (Keras' own for NumPy arrays included), and never without
    (`python bench/convnets.py pipeline`, bench/RESULTS.md). Batches gathered from memory need
    no tuning.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.with_options(options)


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


class EpochCheckpoint(keras.callbacks.Callback):
    """Saves the weights and optimizer state after every epoch, for resuming a killed run, and
    the final weights when training ends.

    Each checkpoint is written atomically as `epoch-NNNN.weights.h5` and replaces the one
    before, so a kill at any moment leaves either the previous or the new checkpoint, never a
    broken one. (`keras.callbacks.BackupAndRestore` writes in place: a kill during its first
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
        with atomic_path(self.directory / name) as temporary:
            self.model.save_weights(temporary)  # the temporary name keeps Keras' suffix

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
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)  # its state is in the checkpoint
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
    """Creates the weights of a model not built yet by calling it on `sample`, so that saved
    weights can be loaded into it (Keras refuses to load into an unbuilt model)."""
    if not model.built and sample is not None:
        model(sample)


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


def epoch_batches(
    x: np.ndarray,
    y: np.ndarray | None,
    batch_size: int,
    *,
    seed: int | None = None,
    epochs: int = 1,
    first_epoch: int = 0,
    drop_remainder: bool = False,
    stack: int | None = None,
) -> tf.data.Dataset:
    """Mini-batches of epochs `first_epoch` to `epochs - 1`, one after the other, gathered by
    index from in-memory tensors, prefetched, without tf.data's autotuning (`untuned`).

    Each epoch's order is a permutation drawn from `(seed, epoch)` alone, so a run resumed at
    epoch k is fed exactly the batches an uninterrupted run would have had (and every worker
    of a job, seeded alike, the same global batches). `seed=None` keeps the examples in order.
    What `fit` feeds: `model.fit(dataset, steps_per_epoch=...)` keeps one iterator across the
    epochs. (Keras' own feeding of NumPy arrays under a global seed repeats one permutation
    every epoch.)

    Args:
        x, y: the examples and their targets (`y` may be `None`).
        batch_size: examples per mini-batch.
        seed: the permutations' seed; `None` for no shuffling.
        epochs: the epoch after the last one to yield.
        first_epoch: the first epoch to yield (a resumed run's).
        drop_remainder: skip each epoch's last `len(x) % batch_size` examples, so that every
            batch is full (a strategy splits it across replicas; stacks need equal shapes).
        stack: when given, yield stacks of this many mini-batches,
            `(stack, batch_size, ...)` (`SparseAutoencoder.train_step` takes them), the last
            stack of an epoch shorter.

    Example:

    >>> batches = epoch_batches(np.arange(10.0), None, 4, seed=0, epochs=2)
    >>> [len(batch) for batch in batches]
    [4, 4, 2, 4, 4, 2]
    """
    arrays = tuple(tf.constant(array) for array in (x, y) if array is not None)
    if drop_remainder and len(x) < batch_size:
        raise DataError(f"batch_size {batch_size} is larger than the {len(x)} training examples")

    def epoch(number: tf.Tensor) -> tf.data.Dataset:
        order = tf.range(len(x), dtype=tf.int64)
        if seed is not None:
            order = tf.random.experimental.stateless_shuffle(
                order, seed=tf.stack([tf.constant(seed, tf.int64), number]))
        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size, drop_remainder)
        return batches if stack is None else batches.batch(stack)

    def gather(indices: tf.Tensor) -> Any:
        gathered = tuple(tf.gather(array, indices) for array in arrays)
        return gathered if len(gathered) > 1 else gathered[0]

    dataset = tf.data.Dataset.range(first_epoch, epochs).flat_map(epoch)
    # flat_map hides the length, which Keras reads as one epoch's steps when not told.
    length = steps_per_epoch(len(x), batch_size, drop_remainder, stack) * (epochs - first_epoch)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(length))
    return untuned(dataset.map(gather).prefetch(2))


def steps_per_epoch(examples: int, batch_size: int, drop_remainder: bool = False,
                    stack: int | None = None) -> int:
    """The elements of one epoch of `epoch_batches` with these settings."""
    batches = examples // batch_size if drop_remainder else math.ceil(examples / batch_size)
    return batches if stack is None else math.ceil(batches / stack)


def adapt_preprocessing(model: keras.Model, x: np.ndarray) -> list[str]:
    """Fits every `keras.layers.Normalization` in `model` that has no fixed mean to `x`, and
    every other `zoo.hooks.Adaptable` layer whose `is_adapted` is false
    (`zoo.convnets.PatchWhitening`, say).

    Statistics fitted on training data only live inside the model, so they are saved, exported
    and applied at inference with it. Returns the names of the layers adapted.
    """
    adapted = []
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.Normalization):
            needs_fitting = layer.input_mean is None
        else:
            needs_fitting = isinstance(layer, hooks.Adaptable) and not layer.is_adapted
        if needs_fitting:
            layer.adapt(x)
            adapted.append(layer.name)
    return adapted


def check_labels(model: keras.Model, labels: np.ndarray | None) -> None:
    """Checks the labels of a classifier `model` (one with `num_classes`) before training.

    Labels may be one-hot rows `(N, C)` or class indices `(N,)` or `(N, 1)` (Keras' sparse
    labels; the classifiers' compiled loss and metrics take both, see `zoo.classification`).

    Raises:
        DataError: one-hot rows have another class count than the model outputs, or an index is
            not a whole number in [0, num_classes).
    """
    if not isinstance(model, hooks.Classifier) or labels is None:
        return
    if np.ndim(labels) == 1 or (np.ndim(labels) == 2 and np.shape(labels)[-1] == 1
                                and model.num_classes != 1):
        indices = np.asarray(labels).reshape(-1)
        if not np.issubdtype(indices.dtype, np.number):
            raise DataError(f"labels of dtype {indices.dtype} are neither class indices nor "
                            f"one-hot rows")
        bad = indices[(indices != np.round(indices)) | (indices < 0)
                      | (indices >= model.num_classes)] if indices.size else indices
        if bad.size:
            raise DataError(
                f"class index {bad[0].item()!r} is not a whole number in [0, {model.num_classes}): the "
                f"labels must be class indices or one-hot rows of the model's "
                f"{model.num_classes} classes"
            )
        return
    if np.ndim(labels) == 2:
        if np.shape(labels)[-1] != model.num_classes:
            raise DataError(
                f"the labels have {np.shape(labels)[-1]} classes but the model outputs "
                f"{model.num_classes}; build it with num_classes={np.shape(labels)[-1]} "
                f"(zoo train: --set num_classes={np.shape(labels)[-1]})"
            )


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
    autotuning (`untuned`).

    Under a `tf.distribute` strategy (build and compile `model` in `zoo.strategies.make_strategy(...).scope()`,
    call `fit` outside it): `batch_size` is the global batch, split evenly across the replicas
    (it must be a multiple of their number); with several replicas each step takes one full
    mini-batch (`epoch_batches(drop_remainder=True)`; `batches_per_step` becomes 1, XLA is
    off), and the run record holds the strategy. Under `MultiWorkerMirroredStrategy` every
    worker calls `fit` with the same arguments; only the chief (`is_chief`) claims, locks and
    writes `run_dir`, the others write to a temporary folder and resume from the chief's
    checkpoint, so `run_dir` must be the same path on shared storage for every worker. A worker
    that dies stops the job (its peers wait in a collective): restart every worker with the
    same command and all resume from the chief's last epoch.

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
    chief = is_chief(strategy)
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    with contextlib.ExitStack() as stack:
        if chief:
            run.claim()
            stack.enter_context(run.lock())
            state = run.start(settings, overwrite=overwrite)
            checkpoint = EpochCheckpoint(run.checkpoint_dir)
            history_path = run.history_path
            trim_torn_row(history_path)  # a kill mid-append; its epoch is trained again
        else:
            # A non-chief worker of a multi-worker job trains in step with the chief but writes
            # nothing of the run: its files go to a scratch folder, and it resumes from the
            # chief's checkpoint (the same one the chief restores; hence --run-dir on shared
            # storage across machines). It takes no lock: the chief holds it.
            state = run.check(settings, overwrite=overwrite)
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="zoo-worker-")))
            checkpoint = EpochCheckpoint(scratch / runs.CHECKPOINT_DIR, restore_from=(
                run.checkpoint_dir if state == runs.RESUMED else None))
            history_path = scratch / runs.HISTORY_FILE
            if state == runs.RESUMED and run.history_path.is_file():
                shutil.copyfile(run.history_path, history_path)
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
                if model.optimizer is not None and not model.optimizer.built:
                    model.optimizer.build(model.trainable_variables)
            initial_epoch = checkpoint.restore(model, splits.x_train[:1])
        if initial_epoch == 0:
            adapt_preprocessing(model, splits.x_train)  # a restored checkpoint holds its statistics
        if not checkpoint.training_ended:
            _train(model, splits, validation, history_path, checkpoint, epochs, initial_epoch,
                   batch_size, batches_per_step, order_seed, early_stopping_patience, schedule,
                   callbacks, verbose)
        if not chief:
            return read_history(history_path)
        runs.kill_point("trained")
        with atomic_path(run.model_path) as temporary:
            model.save(temporary)  # the temporary name keeps the .keras suffix Keras requires
        history = read_history(run.history_path)
        drawn = []
        if figures is not None:
            # A multi-worker model's predict is a collective step the other workers would have
            # to join; the chief draws with a local copy of the trained model instead.
            drawn = list(figures(run.load_model() if multi_worker else model, history))
        runs.kill_point("figures")
        run.finish(settings, history, drawn)
    return history


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
            StopOnNonFiniteLoss(),
            # Log before checkpointing: a kill between the two repeats a logged epoch (which
            # read_history resolves) instead of losing one from the history.
            keras.callbacks.CSVLogger(str(history_path), append=True),
            *stopping,
            # After early stopping, so that its end-of-training checkpoint holds the weights
            # early stopping restored.
            checkpoint,
            *schedule,
            *callbacks,
        ],
    )


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
