"""Hyperparameter searches over registry entries: keras-tuner's tuners, made resumable,
reproducible and distributable, with results written for people.

A search lives in `DIRECTORY/NAME/`:

    search.json             the settings; a restart must match them
    oracle.json, tuner0.json, trial_NN/trial.json     keras-tuner's state
    trial_NN/run/           each trial's run directory (`zoo.runs`): history.csv, model.keras
    trials.csv, trials.md   every trial: hyperparameters, metrics, status, seconds
    objective_vs_<hp>.png   the objective against each searched hyperparameter
    best.md, best.json      the best trial, the search's settings and how to export
    best/                   the best configuration's run (run.json, model.keras, figures), which
                            `zoo export NAME --run-dir DIRECTORY/NAME/best` exports
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent import futures
from pathlib import Path
from typing import Any

import keras
import keras_tuner as kt
import numpy as np
import tensorflow as tf
from keras_tuner.src import utils as kt_utils
from keras_tuner.src.distribute import utils as kt_distribute

import zoo
from zoo import peers, runs, summaries, training
from zoo.data import Splits
from zoo.files import atomic_path
from zoo.registry import Choice, Float, Int, Objective
from zoo.tuning import TUNERS, report  # TUNERS: in the package, for the command line
from zoo.tuning.hypermodel import EntryHyperModel, TuningError

# Progress lines at INFO: the `zoo` command shows them; Python shows only warnings by default.
_log = logging.getLogger(__name__)

__all__ = ["BEST_RUN_DIR", "SearchResult", "TUNERS", "search"]

SETTINGS_FILE = "search.json"
SUMMARY_FILE = "best.md"
BEST_FILE = "best.json"
BEST_RUN_DIR = "best"
TRIAL_RUN_DIR = "run"
ORACLE_ADDRESS = ("KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")
TUNER_ID = "KERASTUNER_TUNER_ID"
FINISHED = ("COMPLETED", "FAILED")


# --- the search's settings, and resuming -------------------------------------------------------


def _settings(
    hm: EntryHyperModel, tuner: str, seed: int, data: str | Path | None
) -> dict[str, Any]:
    """What makes a search the same search: a restart with other values would mix two searches
    in one oracle. (`max_trials` may grow on a restart, to extend a finished search.)"""
    settings = {
        "name": hm.entry.name,
        "tuner": tuner,
        "objective": hm.objective.describe(),
        "space": {
            name: {"kind": type(space).__name__.lower(), **dataclasses.asdict(space)}
            for name, space in hm.space.items()
        },
        "fixed": hm.fixed,
        "preset": hm.preset,
        "fit": hm.fit_settings,
        "seed": seed,
        "grid_points": hm.grid_points,
        "data": None if data is None else str(Path(data).resolve()),
    }
    return json.loads(json.dumps(settings, default=str))  # as it reads back from the file


def _check_settings(
    project_dir: Path, settings: Mapping[str, Any], ignore: tuple[str, ...] = ()
) -> bool:
    """Whether `project_dir` holds a search; raises `TuningError` if it is another search (the
    settings in `ignore` aside)."""
    path = project_dir / SETTINGS_FILE
    if not path.is_file():
        return False
    earlier = json.loads(path.read_text())
    differences = [key for key in sorted({*earlier, *settings} - set(ignore))
                   if earlier.get(key) != settings.get(key)]
    if differences:
        details = "; ".join(
            f"{key}: {json.dumps(earlier.get(key))} there, {json.dumps(settings.get(key))} now"
            for key in differences
        )
        raise TuningError(
            f"{project_dir} holds a search with other settings ({details}); run the same command "
            "to resume it, or start afresh with another --directory or --overwrite"
        )
    return True


@contextlib.contextmanager
def _searching(role: str, project_dir: Path) -> Iterator[None]:
    """Where the chief or a single process searches: `project_dir` claimed as zoo's (a foreign
    folder is refused before anything is written in it) and locked, so that a second search
    into it is refused at once rather than marking this one's trials failed. Workers write
    their trials under the chief's lock."""
    if role == "worker":
        yield
        return
    runs.claim_directory(project_dir, "search directory", "choose another --directory")
    with runs.locked(project_dir, "search directory"):
        yield


def _claim(project_dir: Path, settings: Mapping[str, Any], overwrite: bool) -> None:
    """Starts a search in `project_dir` (removing an earlier one if `overwrite`), or checks that
    the search there is this one, to be resumed. The folder must be zoo's (`runs.claim_directory`:
    empty, new, or marked): a foreign folder is refused, never overwritten or removed."""
    if overwrite:  # the earlier search's files, all zoo's; the marker and the lock stay
        for path in project_dir.iterdir():
            if path.name not in (runs.MARKER_FILE, runs.LOCK_FILE):
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    if not _check_settings(project_dir, settings):
        with atomic_path(project_dir / SETTINGS_FILE) as temporary:
            temporary.write_text(json.dumps(settings, indent=2) + "\n")


@contextlib.contextmanager
def _atomic_state_files() -> Iterator[None]:
    """Routes keras-tuner's JSON state writes through `zoo.files.atomic_path` for a search.

    keras-tuner writes `oracle.json`, `tuner0.json` and each `trial.json` in place; a search
    killed during a write would leave a truncated file that no restart can read.
    """
    original = kt_utils.save_json

    def save_json(path: str, content: Any) -> str:
        text = json.dumps(content)
        with atomic_path(path) as temporary:
            temporary.write_text(text)
        return text

    kt_utils.save_json = save_json
    try:
        yield
    finally:
        kt_utils.save_json = original


def _reconcile(oracle: kt.Oracle) -> None:
    """Makes a reloaded oracle agree with the trial files of a search killed mid-way.

    keras-tuner saves a trial's file and then its own state, so a kill in between leaves:
    - a trial created but missing from the oracle's start order: it is removed, and the oracle,
      whose saved state predates it, creates it again with the same id and values;
    - a trial finished but still listed as running (the oracle saves before it lets go of a
      finished trial): keras-tuner would run it again; it is taken off the retry queue.
    Trials killed while training stay queued for retry and resume from their last epoch.
    """
    changed = False
    for trial_id in sorted(set(oracle.trials) - set(oracle.start_order)):
        del oracle.trials[trial_id]
        shutil.rmtree(Path(oracle._project_dir) / f"trial_{trial_id}", ignore_errors=True)
        changed = True
    for trial_id in list(oracle._retry_queue):
        if oracle.trials[trial_id].status in FINISHED:
            oracle._retry_queue.remove(trial_id)
            if trial_id not in oracle.end_order:
                oracle.end_order.append(trial_id)
            changed = True
    if changed:
        oracle.save()


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


def _describe(values: Mapping[str, Any]) -> str:
    return ", ".join(
        f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}"
        for name, value in values.items()
    )


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
        _log.info("[%s] trial %s: %s", self.tuner_id, trial.trial_id, _describe(values))
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
        if kt_distribute.is_chief_oracle():
            self.save()
            _serve(self.oracle)
            return
        super().search(*fit_args, **fit_kwargs)


def _serve(oracle: kt.Oracle, poll_seconds: float = 0.2) -> None:
    """Serves `oracle` to the workers over gRPC until the search is over.

    keras-tuner's own chief (`oracle_chief.start_server`) checks only every 20 seconds whether
    the last worker has finished, and never stops its server; this is the same service with a
    short poll and a clean stop.
    """
    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief

    address = ":".join(os.environ[variable] for variable in ORACLE_ADDRESS)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = oracle_chief.OracleServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as error:  # newer grpc raises where older returned 0
        raise TuningError(f"the chief cannot listen on {address}: {error}") from None
    if not bound:
        raise TuningError(f"the chief cannot listen on {address} (in use?)")
    server.start()
    _log.info("[chief] serving the search on %s", address)
    try:
        while not (servicer.stop_triggered and oracle_chief.exit_chief(oracle)):
            time.sleep(poll_seconds)
    finally:
        server.stop(grace=1.0)


def _role(distributed: bool) -> str:
    """The part this process plays, "single", "chief" or "worker", from keras-tuner's
    environment variables; raises `TuningError` where they and `distributed` disagree."""
    if not distributed:
        present = [variable for variable in ORACLE_ADDRESS if variable in os.environ]
        if present:
            raise TuningError(
                f"{' and '.join(present)} set, which makes keras-tuner run a distributed search: "
                "pass --distributed (distributed=True) to join it, or unset them"
            )
        return "single"
    missing = [variable for variable in (TUNER_ID, *ORACLE_ADDRESS) if variable not in os.environ]
    if missing:
        raise TuningError(
            f"a distributed search needs {', '.join(missing)} in the environment: "
            f"{TUNER_ID}=chief on the process that serves the search, worker0, worker1, ... on "
            f"the others, and on all of them the chief's address in {' and '.join(ORACLE_ADDRESS)}"
        )
    return "chief" if kt_distribute.is_chief_oracle() else "worker"


# --- results -----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """A finished search (on a worker, `search` returns `None`: the chief holds the results).

    Args:
        name: the entry.
        project_dir: the search's directory, `DIRECTORY/NAME`.
        objective: what was optimised.
        records: every trial.
        best: the best completed trial, or `None` if none completed.
        best_hyperparameters: the best trial's full hyperparameters (searched and not).
        run_dir: the best configuration's run, for `zoo export --run-dir`.
        files: the tables, plots and summaries written.
    """

    name: str
    project_dir: Path
    objective: Objective
    records: list[report.TrialRecord]
    best: report.TrialRecord | None
    best_hyperparameters: dict[str, Any] | None
    run_dir: Path | None
    files: list[Path]

    def summary(self) -> str:
        """A few lines for the terminal: the best trial and where everything is."""
        completed = sum(r.status == report.COMPLETED for r in self.records)
        lines = [f"{completed} of {len(self.records)} trials completed"]
        if self.best is not None:
            lines += [
                f"best: trial {self.best.trial_id}, {self.objective.name} "
                f"{self.best.metrics[self.objective.name]:.5g}",
                f"best hyperparameters: {_describe(self.best_hyperparameters)}",
                f"export it: zoo export {self.name} --run-dir {self.run_dir}",
            ]
        lines.append(f"results in {self.project_dir}/: " + ", ".join(
            str(path.relative_to(self.project_dir)) for path in self.files
        ))
        return "\n".join(lines)


def _best_run(
    hm: EntryHyperModel,
    best: report.TrialRecord,
    trials: int,
    splits: Splits,
    project_dir: Path,
    settings: Mapping[str, Any],
    retrain: bool,
    trial_run: Callable[[str], runs.RunDirectory],
) -> Path:
    """Writes the best configuration's run to `project_dir/best/`: the best trial's model, or
    with `retrain` the same configuration trained for the entry's full epochs. Its `run.json`
    names the search and trial, which `zoo export` copies into the model card."""
    run = runs.RunDirectory(project_dir / BEST_RUN_DIR)
    search_record = {
        "directory": str(project_dir.resolve()),
        "tuner": settings["tuner"],
        "seed": settings["seed"],
        "trial_id": best.trial_id,
        "objective": hm.objective.name,
        "score": best.metrics[hm.objective.name],
        "trials": trials,
        "retrained": retrain,
    }
    if run.status() == runs.FINISHED and run.record().get("search") == search_record:
        return run.path  # written by an earlier run of the same command
    hp = kt.HyperParameters()
    hp.values = dict(best.values)
    if retrain:
        epochs = hm.entry.fit_settings(hm.preset)["epochs"]
        _log.info("retraining trial %s's configuration for %d epochs in %s",
                  best.trial_id, epochs, run.path)
        hm.fit(hp, hm.build(hp), splits, run_dir=run.path, epochs=epochs, verbose="auto",
               record={"search": search_record}, figures=True, overwrite=True)
        return run.path
    trained = trial_run(best.trial_id)
    trial_record = trained.finished_record(hm.entry.name)
    settings_record = {key: value for key, value in trial_record.items()
                       if key in runs.RESUME_KEYS}
    settings_record["search"] = search_record
    run.claim()
    with run.lock():
        run.start(settings_record, overwrite=True)
        for source, target in ((trained.model_path, run.model_path),
                               (trained.history_path, run.history_path)):
            with atomic_path(target) as temporary:
                shutil.copyfile(source, temporary)
        model = run.load_model()
        history = training.read_history(run.history_path)
        files = runs.draw_figures(hm.entry.task, model, splits, history, run.path,
                                  f"{hm.entry.name}: trial {best.trial_id}, best of the search")
        # hyperband continues earlier trials' models: count their epochs too
        earlier_epochs = best.values.get("tuner/initial_epoch", 0)
        run.finish(settings_record, history, files,
                   epochs_trained=earlier_epochs + len(next(iter(history.values()))))
    return run.path


def _summaries(
    hm: EntryHyperModel,
    records: list[report.TrialRecord],
    best: report.TrialRecord | None,
    settings: Mapping[str, Any],
    max_trials: int,
    run_dir: Path | None,
    plot_files: list[Path],
    project_dir: Path,
) -> list[Path]:
    """`best.json` (for machines) and `best.md` (for people)."""
    counts = {status: sum(r.status == status for r in records) for status in
              sorted({r.status for r in records})}
    best_hyperparameters = None if best is None else hm.resolve(best.values)
    content = {
        "search": settings,
        "max_trials": max_trials,
        "trials": counts,
        "best": None if best is None else {
            "trial_id": best.trial_id,
            hm.objective.name: best.metrics[hm.objective.name],
            "searched": {name: best.values[name] for name in hm.space},
            "hyperparameters": best_hyperparameters,
            "metrics": best.metrics,
            "run_dir": str(run_dir),
        },
    }
    json_path = project_dir / BEST_FILE
    with atomic_path(json_path) as temporary:
        temporary.write_text(json.dumps(content, indent=2, default=str) + "\n")

    objective = hm.objective
    fit = settings["fit"]
    lines = [
        f"# Hyperparameter search: {hm.entry.name}",
        "",
        f"- tuner: {settings['tuner']}, seed {settings['seed']}, {len(records)} of at most "
        f"{max_trials} trials: "
        + ", ".join(f"{n} {status.lower()}" for status, n in counts.items()),
        f"- objective: `{objective.name}`, {objective.direction}imised: {objective.description}",
        f"- each trial: epochs {fit['epochs']}, batch size {fit['batch_size']}, "
        f"preset {settings['preset'] or 'none'}, fixed {settings['fixed'] or 'nothing'}",
        "- searched: " + ", ".join(
            f"{name} {_range(space)}" for name, space in hm.space.items()
        ),
        "",
    ]
    if best is None:
        lines.append("No trial has completed.")
    else:
        lines += [
            f"## Best: trial {best.trial_id}",
            "",
            f"`{objective.name}` = {best.metrics[objective.name]:.5g}, trained in "
            f"{best.seconds:.0f} s.",
            "",
            "| hyperparameter | value | |",
            "|---|---|---|",
        ]
        lines += [
            f"| {name} | {report.format_value(value)} | "
            f"{'searched' if name in hm.space else 'fixed'} |"
            for name, value in best_hyperparameters.items()
        ]
        run = runs.RunDirectory(run_dir).record()
        how = (f"this configuration retrained for {run['epochs_trained']} epochs"
               if run["search"]["retrained"] else "the trial's model")
        lines += [
            "",
            "Validation metrics: " + ", ".join(
                f"{name} {value:.4g}" for name, value in best.metrics.items()
                if name.startswith("val_")
            ),
            "",
            f"`{run_dir}` holds {how}; export it (the model card names this search and trial):",
            "",
            f"    zoo export {hm.entry.name} --run-dir {run_dir}",
        ]
    lines += [
        "",
        f"All trials: [{report.MARKDOWN_FILE}]({report.MARKDOWN_FILE}), "
        f"[{report.CSV_FILE}]({report.CSV_FILE}).",
        "",
        "## Objective against each hyperparameter",
        "",
    ]
    lines += [f"![{path.stem}]({path.name})" for path in plot_files]
    markdown_path = project_dir / SUMMARY_FILE
    with atomic_path(markdown_path) as temporary:
        temporary.write_text("\n".join(lines) + "\n")
    return [json_path, markdown_path]


def _range(space: Float | Int | Choice) -> str:
    if isinstance(space, Choice):
        return "{" + ", ".join(map(str, space.values)) + "}"
    return f"[{space.low:g}, {space.high:g}]" + (" log" if space.log else "")


def _finish(
    oracle: kt.Oracle,
    hm: EntryHyperModel,
    splits: Splits,
    project_dir: Path,
    settings: Mapping[str, Any],
    max_trials: int,
    retrain: bool,
    trial_run: Callable[[str], runs.RunDirectory],
) -> SearchResult:
    records = report.trial_records(oracle.trials.values())
    files = report.write_tables(records, hm.objective, project_dir)
    plot_files = report.plot_objective(
        records, hm.objective, hm.space, project_dir,
        title=f"{hm.entry.name}, {settings['tuner']} search",
        help_texts={name: hm.entry.hparams[name].help for name in hm.space},
    )
    best = report.best_trial(records, hm.objective)
    run_dir = None if best is None else _best_run(
        hm, best, len(records), splits, project_dir, settings, retrain, trial_run
    )
    files += plot_files
    files += _summaries(hm, records, best, settings, max_trials, run_dir, plot_files, project_dir)
    return SearchResult(
        name=hm.entry.name,
        project_dir=project_dir,
        objective=hm.objective,
        records=records,
        best=best,
        best_hyperparameters=None if best is None else hm.resolve(best.values),
        run_dir=run_dir,
        files=files,
    )


# --- the search --------------------------------------------------------------------------------


def search(
    name: str,
    *,
    tuner: str = "random",
    max_trials: int = 10,
    directory: str | Path = "runs/tuning",
    data: str | Path | None = None,
    preset: str | None = None,
    fixed: Mapping[str, Any] | None = None,
    space: Mapping[str, Float | Int | Choice] | None = None,
    objective: Objective | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    grid_points: int = 3,
    strategy: tf.distribute.Strategy | None = None,
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
        space: the search space; default the entry's.
        objective: what to optimise; default the entry's `task.tuning_objective`.
        epochs: epochs per trial (hyperband's most); default the entry's.
        batch_size: batch size; default the entry's.
        seed: seeds the tuner, the data split and every trial's training; >= 0.
        grid_points: values per numeric range for the grid tuner, evenly spaced (>= 2).
        strategy: a `tf.distribute` strategy each trial trains under, such as
            `tf.distribute.MirroredStrategy()` over a machine's GPUs.
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
        zoo.UnknownModelError, zoo.HyperparameterError: an unknown entry or hyperparameter.
    """
    if tuner not in TUNERS:
        close = difflib.get_close_matches(tuner, TUNERS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise TuningError(f"unknown tuner {tuner!r}{hint} (tuners: {', '.join(TUNERS)})")
    for label, value, least in (("max_trials", max_trials, 1), ("seed", seed, 0),
                                ("grid_points", grid_points, 2)):
        if not (isinstance(value, int) and value >= least):
            raise TuningError(f"{label} must be an integer >= {least}, got {value!r}")
    role = _role(distributed)
    entry = zoo.get_entry(name)
    fit = {key: value for key, value in (("epochs", epochs), ("batch_size", batch_size))
           if value is not None}
    hm = EntryHyperModel(
        entry, preset=preset, fixed=fixed, space=space, objective=objective, fit=fit, seed=seed,
        grid_points=grid_points if tuner == "grid" else None,
    )
    splits = entry.task.load(data, seed=seed)  # bad data fails here, before anything is written
    project_dir = Path(directory) / entry.name
    settings = _settings(hm, tuner, seed, data)
    with _searching(role, project_dir):
        if role == "worker":
            # keras-tuner's client waits for the chief in C++, forever: wait here, with a deadline
            chief = ":".join(os.environ[variable] for variable in ORACLE_ADDRESS)
            peers.wait_until_reachable([chief], "the search's chief")
            # On another machine the same data may well live at another path.
            _check_settings(project_dir, settings, ignore=("data",))
        else:
            _claim(project_dir, settings, overwrite)
        oracle = _oracle(
            tuner, hm.objective, max_trials, seed, hm.fit_settings["epochs"], len(hm.space)
        )

        def tables() -> None:
            report.write_tables(report.trial_records(oracle.trials.values()), hm.objective,
                                project_dir)

        with _atomic_state_files():
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
                _reconcile(oracle)
                oracle.verbose = 0  # the tuner logs a line a trial, not keras-tuner's tables
            # keras-tuner's own route: a TensorBoard callback in the search's callbacks gets a
            # log dir per trial and the HParams callback (see _Tuner._trial_callbacks).
            callbacks = [summaries.scalars(tensorboard)] if tensorboard else []
            kt_tuner.search(splits, callbacks=callbacks)
        if role == "worker":
            return None
        return _finish(oracle, hm, splits, project_dir, settings, max_trials, retrain,
                       kt_tuner.trial_run)
