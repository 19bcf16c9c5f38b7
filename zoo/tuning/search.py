"""Hyperparameter searches over registry entries: keras-tuner's tuners, made resumable,
reproducible and distributable, with results written for people.

A search lives in `DIRECTORY/NAME/`:

    search.json             the settings; a restart must match them (`zoo.tuning.directory`)
    oracle.json, tuner0.json, trial_NN/trial.json     keras-tuner's state
    trial_NN/run/           each trial's run directory (`zoo.runs`): history.csv, model.keras
    trials.csv, trials.md   every trial: hyperparameters, metrics, status, seconds
    objective_vs_<hp>.png   the objective against each searched hyperparameter
    best.md, best.json      the best trial, the search's settings and how to export
    best/                   the best configuration's run (run.json, model.keras, figures), which
                            `zoo export NAME --run-dir DIRECTORY/NAME/best` exports

This module drives the search: the oracles, the tuner whose trials are the entry's training,
and `search`. The directory's claim, lock and state files are `zoo.tuning.directory`'s, a
distributed search's roles `zoo.tuning.distributed`'s, the results `zoo.tuning.results`'.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt
import numpy as np
import tensorflow as tf

from zoo import runs, strategies, summaries
from zoo.data import Splits
from zoo.registry import Choice, Float, HyperparameterError, Int, Objective, get_entry
from zoo.tuning import TUNERS, directory as search_directory, distributed as roles, report
from zoo.tuning.hypermodel import EntryHyperModel, TuningError, chosen_space
from zoo.tuning.results import BEST_RUN_DIR, SearchResult, describe_values, finish

# Progress lines at INFO: the `zoo` command shows them; Python shows only warnings by default.
_log = logging.getLogger(__name__)

__all__ = ["BEST_RUN_DIR", "SearchResult", "TUNERS", "search"]

TRIAL_RUN_DIR = "run"


# --- oracles and the tuner ---------------------------------------------------------------------


class _BayesianOracle(kt.oracles.BayesianOptimizationOracle):
    """keras-tuner's Bayesian optimisation, with the random state of its acquisition search saved
    with the oracle, so that a resumed search proposes what an uninterrupted one would."""

    def get_state(self) -> dict[str, Any]:
        kind, keys, position, has_gauss, cached = self._random_state.get_state()
        return {**super().get_state(),
                "random_state": [kind, keys.tolist(), position, has_gauss, cached]}

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        kind, keys, position, has_gauss, cached = state["random_state"]
        self._random_state.set_state((kind, np.array(keys, np.uint32), position, has_gauss, cached))


def _oracle(
    kind: str, objective: Objective, max_trials: int, seed: int, epochs: int, dimensions: int
) -> kt.Oracle:
    common = {
        "objective": kt.Objective(objective.name, objective.direction),
        # keras-tuner reads seed 0 as "no seed" and draws one at random.
        "seed": seed + 1,
    }
    if kind == "random":
        return kt.oracles.RandomSearchOracle(max_trials=max_trials, **common)
    if kind == "grid":
        return kt.oracles.GridSearchOracle(max_trials=max_trials, **common)
    if kind == "bayesian":
        # keras-tuner's default, 3 random trials per dimension, would leave little of a small
        # budget to the model: half the trials (at least 2) explore at random.
        initial = max(2, min(3 * dimensions, max_trials // 2))
        return _BayesianOracle(max_trials=max_trials, num_initial_points=initial, **common)
    oracle = kt.oracles.HyperbandOracle(max_epochs=epochs, factor=3, **common)
    oracle.max_trials = max_trials  # hyperband sizes its brackets by epochs; this caps the trials
    return oracle


class _Tuner(kt.Tuner):
    """keras-tuner's `Tuner`, with each trial trained by the hypermodel in the trial's directory.

    A trial's training is `zoo.training.fit` in `trial_NN/`, so a trial killed mid-way resumes
    from its last finished epoch when the search restarts. One line is logged (INFO, this
    module's logger) as each trial starts and one as it ends, on workers too.

    Args:
        oracle: the search algorithm.
        hypermodel: the entry's `EntryHyperModel`.
        after_trial: called after each finished trial (the single-process search rewrites its
            tables).
        verbose: each trial's training output, as `zoo.training.fit`'s ("auto": a progress
            line now and then; 0: none).
        images_every: with a TensorBoard callback, epochs between the task's pictures.
        **kwargs: `keras_tuner.Tuner`'s (directory, project_name, distribution_strategy).
    """

    def __init__(
        self,
        oracle: kt.Oracle,
        hypermodel: EntryHyperModel,
        after_trial: Callable[[], Any] | None = None,
        verbose: str | int = "auto",
        images_every: int = summaries.DEFAULT_EVERY,
        **kwargs: Any,
    ) -> None:
        super().__init__(oracle, hypermodel, **kwargs)
        self._after_trial = after_trial
        self._verbose, self._images_every = verbose, images_every

    def _get_tensorboard_dir(self, logdir: Any, trial_id: str, execution: int) -> str:
        # One execution per trial: LOG_DIR/trial_NN, named like the trial's own folder.
        return os.path.join(str(logdir), f"trial_{trial_id}")

    def _trial_callbacks(
        self, trial: kt.engine.trial.Trial, callbacks: Any
    ) -> list[keras.callbacks.Callback]:
        """The search's callbacks for one trial, as keras-tuner's own `Tuner.run_trial` makes
        them: copies, a TensorBoard callback sent to the trial's log dir with keras-tuner's
        HParams callback beside it; plus the task's pictures into the same log dir."""
        callbacks = self._deepcopy_callbacks(list(callbacks))
        logged = [callback for callback in callbacks
                  if isinstance(callback, keras.callbacks.TensorBoard)]
        if not logged:
            # keras-tuner imports tensorboard there, which TensorFlow no longer installs.
            return callbacks
        self._configure_tensorboard_dir(callbacks, trial)
        images = self.hypermodel.entry.task.images
        if images is not None:
            callbacks += [summaries.ImageSummaries(callback.log_dir, images, self._images_every)
                          for callback in logged]
        return callbacks

    def run_trial(
        self, trial: kt.engine.trial.Trial, splits: Splits, callbacks: Any = ()
    ) -> dict[str, float]:
        values = trial.hyperparameters.values
        _log.info("[%s] trial %s: %s", self.tuner_id, trial.trial_id, describe_values(values))
        model = self._try_build(trial.hyperparameters)  # a fresh session, under the strategy
        continued = values.get("tuner/trial_id")
        if continued is not None:  # hyperband trains an earlier trial's model further
            model.load_weights(self.trial_run(continued).model_path)
        return self.hypermodel.fit(
            trial.hyperparameters,
            model,
            splits,
            run_dir=self.trial_run(trial.trial_id).path,
            epochs=values.get("tuner/epochs"),
            initial_epoch=values.get("tuner/initial_epoch", 0),
            callbacks=self._trial_callbacks(trial, callbacks),
            verbose=self._verbose,
        )

    def trial_run(self, trial_id: str) -> runs.RunDirectory:
        """A trial's run directory, inside keras-tuner's folder for the trial."""
        return runs.RunDirectory(Path(self.get_trial_dir(trial_id)) / TRIAL_RUN_DIR)

    def load_model(self, trial: kt.engine.trial.Trial) -> keras.Model:
        return self.trial_run(trial.trial_id).load_model()

    def on_trial_end(self, trial: kt.engine.trial.Trial) -> None:
        super().on_trial_end(trial)  # reports to the oracle and saves its state
        ended = report.TrialRecord.from_keras_tuner(self.oracle.get_trial(trial.trial_id))
        name = self.oracle.objective.name
        if name in ended.metrics:
            best = self.oracle.get_best_trials(1)[0]
            outcome = (f"{name} {ended.metrics[name]:.5g} in {ended.seconds:.0f} s "
                       f"(best so far: trial {best.trial_id}, {best.score:.5g})")
        else:
            outcome = ended.message.strip().splitlines()[-1] if ended.message.strip() else ""
        _log.info("[%s] trial %s %s: %s", self.tuner_id, trial.trial_id, ended.status, outcome)
        if self._after_trial is not None:
            self._after_trial()

    def search(self, *fit_args: Any, **fit_kwargs: Any) -> None:
        if roles.is_chief():
            self.save()
            roles.serve(self.oracle)
            return
        super().search(*fit_args, **fit_kwargs)


# --- the search --------------------------------------------------------------------------------


def _check_strategy(name: str) -> None:
    """Refuses a strategy name a search cannot train its trials under."""
    if name == "multi_worker":
        # keras-tuner hands each process of a search its own trials; a multi-worker cluster
        # needs every worker on the same trial, which its oracle cannot arrange.
        raise HyperparameterError(
            "zoo tune supports --strategy one_device or mirrored (with or without "
            "--distributed); multi_worker is for zoo train"
        )
    if name not in strategies.STRATEGIES:
        raise TuningError(f"strategy must be one of {', '.join(strategies.STRATEGIES)}, "
                          f"got {name!r}")


def search(
    name: str,
    *,
    tuner: str = "random",
    max_trials: int = 10,
    directory: str | Path = "runs/tuning",
    data: str | Path | None = None,
    preset: str | None = None,
    fixed: Mapping[str, Any] | None = None,
    space: Mapping[str, Float | Int | Choice] | Sequence[str] | None = None,
    objective: Objective | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    grid_points: int = 3,
    strategy: tf.distribute.Strategy | str | None = None,
    distributed: bool = False,
    retrain: bool = False,
    overwrite: bool = False,
    tensorboard: str | Path | None = None,
    images_every: int = summaries.DEFAULT_EVERY,
    verbose: str | int = "auto",
) -> SearchResult | None:
    """Runs, or resumes, a hyperparameter search over the registered entry `name`.

    The search lives in `directory/name/` (see the module docstring). Started again with the
    same arguments after a kill, it continues: finished trials are kept and not run again, the
    trial that was running resumes from its last finished epoch, and the remaining trials are
    the ones an uninterrupted search would have run. The same seed gives the same sequence of
    trials (for Bayesian optimisation, the same as long as trials give the same results).

    Args:
        name: a registered name.
        tuner: "random", "bayesian", "hyperband" or "grid".
        max_trials: how many trials to run at most (grid and hyperband may stop earlier). A
            finished search restarted with a larger value runs the extra trials.
        directory: where searches live.
        data: the entry's data path; `None` for its embedded data.
        preset: one of the entry's presets, under the searched values.
        fixed: hyperparameters held at these values, not searched.
        space: the search space; default the entry's. Names alone (`["units", ...]`) search
            those of the entry's space.
        objective: what to optimise; default the entry's `task.tuning_objective`.
        epochs: epochs per trial (hyperband's most); default the entry's.
        batch_size: batch size; default the entry's.
        seed: seeds the tuner, the data split and every trial's training; >= 0.
        grid_points: values per numeric range for the grid tuner, evenly spaced (>= 2).
        strategy: a `tf.distribute` strategy each trial trains under, such as
            `tf.distribute.MirroredStrategy()` over a machine's GPUs, or its name, "one_device"
            or "mirrored" (`zoo.strategies.make_strategy`; not "multi_worker", whose workers
            must all train the same trial, which keras-tuner's oracle cannot arrange).
        distributed: join a distributed search as the chief or a worker, as keras-tuner's
            environment variables `KERASTUNER_TUNER_ID` ("chief", "worker0", ...),
            `KERASTUNER_ORACLE_IP` and `KERASTUNER_ORACLE_PORT` say. The chief serves the search
            and writes the results; the workers run the trials. `directory` must be one all of
            them reach (shared storage on a cluster).
        retrain: train the best configuration again, for the entry's full epochs, into
            `best/` (rather than keeping the best trial's model).
        overwrite: delete an earlier search in `directory/name/` and start afresh.
        tensorboard: a TensorBoard log directory: each trial logs its epoch scalars, the
            task's pictures (every `images_every` epochs) and its hyperparameters (keras-tuner's
            HParams dashboard) into `tensorboard/trial_NN`.
        images_every: epochs between pictures (see `zoo.summaries.ImageSummaries`).
        verbose: each trial's training output: "auto" logs a progress line at most every
            10 seconds with the time left (`zoo.training.Progress`); 0 is silent. A line as
            each trial starts and ends is logged either way (INFO: the `zoo` command shows
            them; Python shows only warnings unless configured).

    Returns:
        The results, or `None` on a worker (the chief has them).

    Raises:
        TuningError: unusable settings (see `TuningError`).
        zoo.UnknownModelError, zoo.HyperparameterError: an unknown entry or hyperparameter,
            a name in `space` the entry has no search space for, or the "multi_worker" strategy.
    """
    if tuner not in TUNERS:
        close = difflib.get_close_matches(tuner, TUNERS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise TuningError(f"unknown tuner {tuner!r}{hint} (tuners: {', '.join(TUNERS)})")
    for label, value, least in (("max_trials", max_trials, 1), ("seed", seed, 0),
                                ("grid_points", grid_points, 2)):
        if not (isinstance(value, int) and value >= least):
            raise TuningError(f"{label} must be an integer >= {least}, got {value!r}")
    if isinstance(strategy, str):
        _check_strategy(strategy)
    role = roles.role(distributed)
    entry = get_entry(name)
    if space is not None and not isinstance(space, Mapping):
        space = chosen_space(entry, space)
    fit = {key: value for key, value in (("epochs", epochs), ("batch_size", batch_size))
           if value is not None}
    hm = EntryHyperModel(
        entry, preset=preset, fixed=fixed, space=space, objective=objective, fit=fit, seed=seed,
        grid_points=grid_points if tuner == "grid" else None,
    )
    if isinstance(strategy, str):
        strategy = strategies.make_strategy(strategy)
    splits = entry.task.load(data, seed=seed)  # bad data fails here, before anything is written
    project_dir = Path(directory) / entry.name
    settings = search_directory.settings(hm, tuner, seed, data)
    if role == "worker":
        roles.wait_for_chief()
    with search_directory.held(role, project_dir, settings, overwrite):
        oracle = _oracle(
            tuner, hm.objective, max_trials, seed, hm.fit_settings["epochs"], len(hm.space)
        )

        def tables() -> None:
            report.write_tables(report.trial_records(oracle.trials.values()), hm.objective,
                                project_dir)

        with search_directory.atomic_state_files():
            kt_tuner = _Tuner(
                oracle,
                hm,
                after_trial=tables if role == "single" else None,
                verbose=verbose,
                images_every=images_every,
                directory=str(directory),
                project_name=entry.name,
                distribution_strategy=strategy,
            )
            if role != "worker":
                search_directory.reconcile(oracle)
                oracle.verbose = 0  # the tuner logs a line a trial, not keras-tuner's tables
            # keras-tuner's own route: a TensorBoard callback in the search's callbacks gets a
            # log dir per trial and the HParams callback (see _Tuner._trial_callbacks).
            callbacks = [summaries.scalars(tensorboard)] if tensorboard else []
            kt_tuner.search(splits, callbacks=callbacks)
        if role == "worker":
            return None
        return finish(oracle, hm, splits, project_dir, settings, max_trials, retrain,
                       kt_tuner.trial_run)
