"""Registry entries as keras-tuner hypermodels: the entry's search space in, its training out."""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt
import tensorflow as tf

from zoo import training
from zoo.data import Splits
from zoo.errors import UsageError
from zoo.registry import (Choice, Entry, Float, HyperparameterError, Int, Objective,
                          get_entry)
from zoo.workflow import fitting

__all__ = ["EntryHyperModel", "TuningError", "chosen_space", "declare", "hypermodel"]

Space = Float | Int | Choice


class TuningError(ValueError, UsageError):
    """Raised for search settings that cannot work: an unknown tuner, no trials, a clash with an
    earlier search in the same directory, a distributed role without its environment (a
    `zoo.errors.UsageError`: the command line tells it in one line and exits 2)."""


def _grid_step(space: Float | Int, points: int) -> float | int:
    """The step that puts `points` values on `space`, evenly (on a log scale if it is one)."""
    if space.log:
        ratio = (space.high / space.low) ** (1.0 / (points - 1))
        return max(2, round(ratio)) if isinstance(space, Int) else ratio
    width = (space.high - space.low) / (points - 1)
    if isinstance(space, Int):
        return max(1, int(width))
    # keras-tuner counts a linear grid's values by floor division, which rounding could leave
    # one short; a step a hair shorter keeps all of them.
    return width * (1 - 1e-9)


def declare(
    hp: kt.HyperParameters,
    space: Mapping[str, Space],
    defaults: Mapping[str, Any],
    grid_points: int | None = None,
) -> dict[str, Any]:
    """Declares `space` in keras-tuner's `hp` and returns the values `hp` holds for it.

    Args:
        hp: the trial's hyperparameters (or an empty `kt.HyperParameters` for the defaults).
        space: name -> `Float`, `Int` or `Choice`, as entries declare them.
        defaults: each name's value when `hp` has none (the entry's default where the space
            includes it).
        grid_points: for grid search, the number of values each `Float` or `Int` takes (evenly
            spaced, on a log scale for log ranges); `None` samples the ranges continuously.
    """
    values = {}
    for name, searched in space.items():
        default = defaults.get(name)
        if isinstance(searched, Choice) and set(searched.values) == {False, True}:
            # keras-tuner's Choice keeps booleans as 0 and 1; its Boolean keeps them booleans.
            values[name] = hp.Boolean(name, default=bool(default))
            continue
        if isinstance(searched, Choice):
            values[name] = hp.Choice(
                name, list(searched.values), default=default if default in searched.values else None
            )
            continue
        inside = default is not None and searched.low <= default <= searched.high
        options = {
            "sampling": "log" if searched.log else "linear",
            # A grid starts at its lowest values; a default off the grid would add a value.
            "default": default if inside and grid_points is None else None,
            "step": None if grid_points is None else _grid_step(searched, grid_points),
        }
        declared = hp.Int if isinstance(searched, Int) else hp.Float
        values[name] = declared(name, searched.low, searched.high, **options)
    return values


def chosen_space(entry: Entry, names: Sequence[str]) -> dict[str, Space]:
    """The part of the entry's search space that `names` name (`zoo tune --search KEY,KEY`).

    Args:
        entry: the registry entry.
        names: hyperparameters the entry has a search space for.

    Returns:
        `{name: space}`, in the order of `names`.

    Raises:
        HyperparameterError: a name the entry has no search space for.
    """
    space = entry.search_space()
    unsearchable = [name for name in names if name not in space]
    if unsearchable:
        raise HyperparameterError(
            f"{entry.name} has no search space for {', '.join(map(repr, unsearchable))}; "
            f"searchable: {', '.join(space)}"
        )
    return {name: space[name] for name in names}


class EntryHyperModel(kt.HyperModel):
    """A registry entry as a keras-tuner `HyperModel`.

    `build` declares the entry's search space and builds the entry with the trial's values (the
    rest from its defaults, preset and `fixed`); `fit` trains it with `zoo.training.fit`, the
    entry's own resumable training (custom `train_step`s included), so a tuned model is exactly
    the model `zoo train` gives. `fit` returns the trial's final metrics: the training ones as
    `train_<name>`, the validation ones (`val_<name>`) measured on the trained model, the
    objective with any extra values it computes, and `seconds`, the trial's wall time.

    Args:
        entry: the registry entry.
        preset: one of the entry's presets, applied under the searched values.
        fixed: hyperparameters held at these values (and so not searched).
        space: the search space; default `entry.search_space()`. Ranges must lie within each
            hyperparameter's valid range.
        objective: what the search optimises; default the entry's `task.tuning_objective`.
        fit: overrides of the entry's fit settings (`epochs`, `batch_size`) for each trial.
        seed: seeds every trial's weights and data order (`zoo.training.set_seed`), so trials
            differ only by their hyperparameters.
        grid_points: values per numeric range for grid search (see `declare`).
    """

    def __init__(
        self,
        entry: Entry,
        *,
        preset: str | None = None,
        fixed: Mapping[str, Any] | None = None,
        space: Mapping[str, Space] | None = None,
        objective: Objective | None = None,
        fit: Mapping[str, Any] | None = None,
        seed: int = 0,
        grid_points: int | None = None,
    ) -> None:
        super().__init__(name=entry.name)
        self.entry = entry
        self.preset = preset
        self.fixed = dict(fixed or {})
        self.defaults = entry.resolve(preset, **self.fixed)  # checks names, values and preset
        space = entry.search_space() if space is None else dict(space)
        for name, searched in space.items():
            if name not in entry.hparams:
                raise HyperparameterError(
                    f"{entry.name} has no hyperparameter {name!r} to search; valid keys are: "
                    f"{', '.join(entry.hparams)}"
                )
            if not isinstance(searched, (Float, Int, Choice)):
                raise TypeError(
                    f"{name}: a search space is a Float, Int or Choice, got {searched!r}"
                )
            if isinstance(searched, Choice):
                bounds = searched.values
            else:
                bounds = (searched.low, searched.high)
            for bound in bounds:
                entry.hparams[name].check(name, bound)
        self.space = {name: searched for name, searched in space.items() if name not in self.fixed}
        if not self.space:
            raise TuningError(
                f"nothing to search: every searched hyperparameter of {entry.name} is fixed"
            )
        self.objective = objective or entry.task.tuning_objective
        self.fit_settings = {**entry.fit_settings(preset), **(fit or {})}
        for option in ("epochs", "batch_size"):
            value = self.fit_settings.get(option)
            if not (isinstance(value, int) and value >= 1):
                raise TuningError(f"{option} must be a positive integer, got {value!r}")
        self.seed = seed
        self.grid_points = grid_points

    def resolve(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """The full, checked hyperparameters of a trial from its searched `values` (other keys,
        such as hyperband's `tuner/epochs`, are ignored)."""
        searched = {name: value for name, value in values.items() if name in self.space}
        return self.entry.resolve(self.preset, **{**self.fixed, **searched})

    def hyperparameters(self, hp: kt.HyperParameters) -> dict[str, Any]:
        """Declares the search space in `hp` and returns the trial's full hyperparameters."""
        return self.resolve(declare(hp, self.space, self.defaults, self.grid_points))

    def build(self, hp: kt.HyperParameters) -> keras.Model:
        hyperparameters = self.hyperparameters(hp)
        training.set_seed(self.seed)
        model = self.entry.build(hyperparameters)
        if tf.distribute.get_strategy().num_replicas_in_sync > 1:
            # XLA compiles a step for one device; a step spread over a strategy's devices must
            # run as an ordinary graph.
            model.jit_compile = False
        return model

    def fit(
        self,
        hp: kt.HyperParameters,
        model: keras.Model,
        splits: Splits,
        *,
        run_dir: str | Path | None = None,
        epochs: int | None = None,
        initial_epoch: int = 0,
        callbacks: Sequence[keras.callbacks.Callback] = (),
        verbose: str | int = 0,
        record: Mapping[str, Any] | None = None,
        figures: bool = False,
        overwrite: bool = False,
    ) -> dict[str, float]:
        """Trains `model` (built by `build(hp)`) on `splits` and returns the trial's results.

        Args:
            hp: the trial's hyperparameters.
            model: the model `build(hp)` returned.
            splits: the entry's data.
            run_dir: where `zoo.training.fit` keeps its checkpoint, history and model, so that a
                trial killed mid-way resumes from its last epoch; `None` uses a temporary
                directory.
            epochs: the trial's epochs (hyperband sets them); default the fit settings'.
            initial_epoch: epochs `model` has already been trained (hyperband continues an
                earlier trial's model); it trains for `epochs - initial_epoch` more.
            callbacks: extra Keras callbacks (keras-tuner passes its own).
            verbose: Keras' progress output during training.
            record: more for the run record (the search a best run comes from, say).
            figures: draw the learning curves and the family's figures into `run_dir`.
            overwrite: train afresh over an earlier run in `run_dir`.

        Raises:
            keras_tuner.errors.FailedTrialError: the loss became NaN or infinite, so the trial
                failed for its hyperparameters (a learning rate too large, say).
        """
        start = time.perf_counter()
        settings = dict(self.fit_settings)
        settings["epochs"] = (epochs or settings["epochs"]) - initial_epoch
        if settings["epochs"] < 1:
            raise ValueError(f"nothing to train: epochs {epochs} <= initial_epoch {initial_epoch}")
        # Under a strategy with several replicas, `training.fit` trains one mini-batch a step
        # (stacked batches would be split by step; see SparseAutoencoder.train_step).
        strategy = model.distribute_strategy
        if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
            # The cluster's workers train in step: one resuming from a checkpoint that the
            # others lack would wait for them forever, so a multi-worker trial starts afresh,
            # and only the chief writes the trial's files.
            overwrite = True
            if not strategy.extended.should_checkpoint:
                run_dir = None
        hyperparameters = self.hyperparameters(hp)
        # The record `zoo train` writes (`zoo.workflow.fitting.run_record`), and its training.
        full_record = fitting.run_record(self.entry, self.preset, hyperparameters, self.seed,
                                         splits.info, **(record or {}))
        with contextlib.ExitStack() as stack:
            if run_dir is None:
                run_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="zoo-trial-"))
            try:
                history = fitting.fit_into(
                    self.entry, model, splits, run_dir, full_record,
                    title=f"{self.entry.name}: tuned", figures=figures, callbacks=callbacks,
                    verbose=verbose, overwrite=overwrite, **settings
                )
            except training.NonFiniteLossError as error:
                raise kt.errors.FailedTrialError(str(error)) from error
        metrics = {
            name: values[-1] for name, values in history.items() if not name.startswith("val_")
        }
        if len(splits.x_val):
            # Measured on the model as trained and saved (early stopping may have restored an
            # earlier epoch's weights), not read from the last epoch's log.
            evaluated = model.evaluate(
                splits.x_val, splits.y_val, batch_size=max(settings["batch_size"], 256),
                verbose=0, return_dict=True,
            )
            metrics.update((f"val_{name}", float(value)) for name, value in evaluated.items())
        results = self.objective.evaluate(metrics, model, splits)
        # Training metrics as train_<name>, so that none is mistaken for a hyperparameter
        # (the autoencoder logs a "weight_decay" term and has a "weight_decay" lambda).
        reported = {
            name if name.startswith("val_") else f"train_{name}": float(value)
            for name, value in metrics.items()
        }
        return {**reported, **results, "seconds": time.perf_counter() - start}


def hypermodel(name: str, **options: Any) -> EntryHyperModel:
    """The keras-tuner `HyperModel` of the registered entry `name`.

    Args:
        name: a registered name (see `zoo.list()`).
        **options: `EntryHyperModel`'s keyword arguments (preset, fixed, space, objective, fit,
            seed, grid_points).

    Example:

    >>> import keras_tuner
    >>> tuner = keras_tuner.RandomSearch(
    ...     zoo.tuning.hypermodel("sparse_autoencoder", preset="tiny", fit={"epochs": 2}),
    ...     objective=keras_tuner.Objective("val_sparse_reconstruction", "min"), max_trials=2)
    >>> patch_file = zoo.autoencoder.data.example(".")  # a tiny stand-in for your patches
    >>> tuner.search(zoo.autoencoder.data.load(patch_file), verbose=0)
    >>> sorted(tuner.get_best_hyperparameters()[0].values)
    ['hidden_units', 'learning_rate', 'sparsity_target', 'sparsity_weight', 'weight_decay']
    """
    return EntryHyperModel(get_entry(name), **options)
