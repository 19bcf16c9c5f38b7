"""What a finished search writes for people and for `zoo export`: the best configuration's
run, `best.json` and `best.md`, and the `SearchResult` that `zoo.tuning.search` returns.

    trials.csv, trials.md   every trial (`zoo.tuning.report`)
    objective_vs_<hp>.png   the objective against each searched hyperparameter
    best.md, best.json      the best trial, the search's settings and how to export
    best/                   the best configuration's run (run.json, model.keras, figures), which
                            `zoo export NAME --run-dir DIRECTORY/NAME/best` exports
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import keras_tuner as kt

from zoo import runs, training
from zoo.data import Splits
from zoo.files import atomic_path
from zoo.registry import Choice, Float, Int, Objective
from zoo.tuning import report
from zoo.tuning.hypermodel import EntryHyperModel

_log = logging.getLogger(__name__)

__all__ = ["BEST_RUN_DIR", "SearchResult", "describe_values", "finish"]

SUMMARY_FILE = "best.md"
BEST_FILE = "best.json"
BEST_RUN_DIR = "best"


def describe_values(values: Mapping[str, Any]) -> str:
    """Hyperparameter values on one line, floats to 4 significant digits."""
    return ", ".join(
        f"{name}={value:.4g}" if isinstance(value, float) else f"{name}={value}"
        for name, value in values.items()
    )


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
                f"best hyperparameters: {describe_values(self.best_hyperparameters)}",
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


def finish(
    oracle: kt.Oracle,
    hm: EntryHyperModel,
    splits: Splits,
    project_dir: Path,
    settings: Mapping[str, Any],
    max_trials: int,
    retrain: bool,
    trial_run: Callable[[str], runs.RunDirectory],
) -> SearchResult:
    """Writes a search's results into `project_dir`: the trials' tables and plots, the best
    configuration's run (`best/`) and `best.json`, `best.md`.

    Args:
        oracle: the search's oracle, every trial in it.
        hm: the search's hypermodel.
        splits: the data, for the best run's figures (and its retraining).
        project_dir: `DIRECTORY/NAME`.
        settings: the search's settings (`zoo.tuning.directory.settings`).
        max_trials: the search's budget, for the summary.
        retrain: train the best configuration again for the entry's full epochs.
        trial_run: a trial's run directory from its id.

    Returns:
        The `SearchResult`.
    """
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

