"""Training into run directories: `train` (one run) and `sweep` (a grid of runs, one figure).

Both build the run record with `run_record` and train with `fit_into`, the path `zoo tune`'s
trials take too (`zoo.tuning.hypermodel.EntryHyperModel.fit`), so that a run made from Python,
by `zoo train` or by a search records the same fields. An overwrite of a run builds the new one
beside it (`zoo.workflow.replacing`); an interrupt (Ctrl-C) ends as `Interrupted`, saying what
the same command does with the run it left. TensorFlow is imported when one trains.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo import runs, strategies, summaries, weights as weight_sets
from zoo.data import fingerprint
from zoo.errors import UsageError
from zoo.files import atomic_path
from zoo.hparams import to_bool
from zoo.registry import DTYPE_POLICY, Entry, HyperparameterError, get_entry
from zoo.workflow.replacing import replacing
from zoo.workflow.using import text_reports

logger = logging.getLogger(__name__)

__all__ = ["Interrupted", "Run", "Sweep", "fit_into", "run_record", "sweep", "train"]


class Interrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C (or SIGTERM, which the `zoo` command turns into the same),
    its run directory left for a rerun to take up: the message says where and what the same
    command does there. A `KeyboardInterrupt`, so that callers' handlers of one still catch it."""


@dataclasses.dataclass(frozen=True)
class Run:
    """A finished training run.

    Attributes:
        name: the entry's name.
        path: the run directory.
        model: the trained Keras model.
        history: every epoch's metrics, `{metric: [value per epoch]}`.
        metrics: the final epoch's metrics (empty on a multi-worker job's non-chief worker,
            which writes nothing).
        record: the run record, `run.json` (empty on a non-chief worker).
        files: the model and the figures the run wrote, in the run directory.
    """

    name: str
    path: Path
    model: Any
    history: dict[str, list[float]]
    metrics: dict[str, float]
    record: dict[str, Any]
    files: tuple[Path, ...]

    def summary(self) -> str:
        """What `zoo train` prints: the task's text reports (a confusion matrix, say), the
        headline metric, the final epoch's metrics and the files written; empty on a
        multi-worker job's non-chief worker, which writes nothing."""
        if not self.record:
            return ""
        lines = text_reports(self.files)
        headline = get_entry(self.name).task.metric.name
        if headline in self.metrics:  # absent when there is no validation split
            lines.append(f"{headline}: {self.metrics[headline]:.6g}")
        lines.append("final epoch: " + ", ".join(f"{metric} {value:.4g}"
                                                 for metric, value in self.metrics.items()))
        lines.append(f"model and figures in {self.path}/: " + ", ".join(self.record["files"]))
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A trained grid of two hyperparameters.

    Attributes:
        path: the sweep's directory (each cell a run of its own inside it).
        grid: `{hyperparameter: [values]}`, the rows' first, then the columns'.
        results: one `{"hyperparameters": {...}, "metrics": {final epoch's}}` per cell.
        figure: the grid's figure, `sweep.png`.
    """

    path: Path
    grid: dict[str, list[Any]]
    results: list[dict[str, Any]]
    figure: Path


def is_number(value: Any) -> bool:
    """Whether `value` is an int or float (not a bool): what a numeric loader option takes."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def load_options(entry: Entry, preset: str | None, load: Mapping[str, Any] | None) -> dict[str, Any]:
    """The task loader's options for training: the entry's, its preset's, then `load`'s.

    Raises:
        UsageError: `load` names an option the loader lacks, or gives a number's or a
            boolean's place something else (a boolean is `zoo.hparams.to_bool`'s).
    """
    options = entry.load_settings(preset)
    for key, value in (load or {}).items():
        if key not in options:
            raise UsageError(f"the {entry.task.name} loader has no option {key!r}; it takes "
                             f"{', '.join(options) or 'none'}")
        if isinstance(options[key], bool):
            value = to_bool(f"loader option {key}", value)  # "maybe" is no boolean
        elif is_number(options[key]) and not is_number(value):
            raise UsageError(f"loader option {key} expects a number like its default "
                             f"{options[key]!r}, got {value!r}")
        options[key] = value
    return options


def fit_settings(entry: Entry, preset: str | None, **given: int | None) -> dict[str, Any]:
    """The entry's fit settings, then its preset's, then those `given` that are not `None`."""
    fit = entry.fit_settings(preset)
    fit.update((option, value) for option, value in given.items() if value is not None)
    return fit


def run_record(entry: Entry, preset: str | None, hyperparameters: Mapping[str, Any], seed: int,
               data: Mapping[str, Any], **more: Any) -> dict[str, Any]:
    """What a run records besides its fit settings (a resumed run must match it): the entry,
    preset, hyperparameters, seed, data, which dtype policy and why, and `more`."""
    choice = entry.dtype_policy_choice()
    return {"name": entry.name, "preset": preset, "hyperparameters": dict(hyperparameters),
            "seed": seed, "data": data,
            # Which policy, and why: a bfloat16 recipe trains in float32 where it is emulated.
            "dtype_policy": choice["why"] if hyperparameters[DTYPE_POLICY] == choice["default"]
            else "given",
            **more}


def fit_into(entry: Entry, model: Any, splits: Any, run_dir: str | Path, record: Mapping[str, Any],
             *, title: str, figures: bool = True, **options: Any) -> dict[str, list[float]]:
    """Trains `model` into `run_dir` with `zoo.training.fit`, drawing the run's figures
    (`zoo.runs.draw_figures`, titled `title`) unless `figures` is false; `options` are `fit`'s
    (fit settings, callbacks, verbose, overwrite). Returns the history."""
    from zoo import training

    def draw(trained: Any, history: dict[str, list[float]]) -> list[Path]:
        return runs.draw_figures(entry.task, trained, splits, history, run_dir, title)

    return training.fit(model, splits, run_dir, record=record,
                        figures=draw if figures else None, **options)


def _strategy(strategy: Any) -> Any:
    """A `tf.distribute` strategy from its name (see `zoo.strategies.make_strategy`), or the
    strategy given, or `None`."""
    if strategy is None or not isinstance(strategy, str):
        return strategy
    made = strategies.make_strategy(strategy)
    replicas = made.num_replicas_in_sync
    role = "" if strategies.is_chief(made) else ", not the chief"
    logger.info("strategy: %s (%d replica%s%s)", strategy, replicas, "s" if replicas > 1 else "",
                role)
    return made


def _build(entry: Entry, hyperparameters: dict[str, Any], source: str | None,
           strategy: Any) -> tuple[Any, dict[str, Any]]:
    """The model to train, under the strategy's scope (its variables are the strategy's):
    built afresh, or from the weights `source` (fine-tuning; a head of another size is
    re-initialised). Returns it and what the record says of its weights."""
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        if not source:
            return entry.build(hyperparameters), {}
        notes: list[str] = []
        model = weight_sets.load(entry.name, source, replace_head=True, report=notes,
                                 **hyperparameters)
    for note in notes:
        logger.info("%s", note)
    return model, {"weights": {"source": source, "replaced_head": model.zoo_weights["replaced"]}}


@contextlib.contextmanager
def _interruptible(run_dir: Path, replacing_it: bool) -> Iterator[None]:
    """Turns a `KeyboardInterrupt` (Ctrl-C; SIGTERM under the `zoo` command) inside the block
    into `Interrupted`, telling what the same command does with the run left in `run_dir`; a
    plain one where no run was started there yet."""
    try:
        yield
    except KeyboardInterrupt as stop:
        if replacing_it:  # `replacing` removed the new run; the old one was never touched
            raise Interrupted(f"{run_dir} holds its earlier run as it was; the same command "
                              "trains it again") from stop
        if not (run_dir / runs.RECORD_FILE).is_file():
            raise
        raise Interrupted(f"the run in {run_dir} resumes with the same command") from stop


def _train_one(entry: Entry, hyperparameters: dict[str, Any], splits: Any, run_dir: Path, *,
               preset: str | None, seed: int, fit: Mapping[str, Any], source: str | None = None,
               strategy: Any = None, tensorboard: str | Path | None = None,
               images_every: int = summaries.DEFAULT_EVERY,
               overwrite: bool = False) -> tuple[Any, dict[str, list[float]]]:
    """Builds and trains one model into `run_dir`; returns it and its history. Overwriting a
    run there, the chief trains beside it and swaps the new run in when finished
    (`zoo.workflow.replacing`); the other workers of a multi-worker job write nothing."""
    from zoo import training

    training.set_seed(seed)
    model, weights_record = _build(entry, hyperparameters, source, strategy)
    record = run_record(entry, preset, hyperparameters, seed, splits.info, **weights_record)
    # `fit` runs outside the strategy's scope and reads the strategy from the model.
    logged = summaries.callbacks(tensorboard, entry.task.images, images_every)
    replace = (overwrite and runs.RunDirectory(run_dir).record() is not None
               and strategies.is_chief(strategy))
    into = replacing(run_dir) if replace else contextlib.nullcontext(run_dir)
    with _interruptible(run_dir, replace), into as target:
        history = fit_into(entry, model, splits, target, record,
                           title=f"{entry.name}: training", overwrite=overwrite and not replace,
                           callbacks=logged, **fit)
    return model, history


def _recorded(entry: Entry, source: str) -> dict[str, Any]:
    """The hyperparameters a weight set or run records (empty for bare weight files)."""
    model = weight_sets.load(entry.name, source, replace_head=True)
    return model.zoo_weights["hyperparameters"] if model.zoo_weights["card"] else {}


def train(name: str, data: str | Path | None = None, *, preset: str | None = None,
          run_dir: str | Path | None = None, weights: str | Path | None = None,
          epochs: int | None = None, batch_size: int | None = None, seed: int = 0,
          strategy: Any = None, tensorboard: str | Path | None = None,
          images_every: int = summaries.DEFAULT_EVERY, overwrite: bool = False,
          load: Mapping[str, Any] | None = None, **hparams: Any) -> Run:
    """Trains the entry `name` into a run directory, resumably (`zoo train`'s work).

    Args:
        name: a registered name (see `zoo.list()`).
        data: a data file or folder; `None` for the entry's embedded data.
        preset: one of the entry's presets (hyperparameters and fit settings).
        run_dir: the run directory; default `runs/NAME`. An interrupted run there resumes.
        weights: start from this weight set tag, run, `.keras`, `.weights.h5` or export
            (fine-tuning); its recorded hyperparameters are the defaults under `hparams`.
        epochs: overrides the entry's (or preset's) epochs.
        batch_size: overrides the batch size.
        seed: seeds the data split, the weights and the batches' order.
        strategy: a `tf.distribute` strategy or its name (`zoo.strategies.STRATEGIES`).
        tensorboard: a log folder for TensorBoard scalars and the task's pictures.
        images_every: epochs between TensorBoard pictures.
        overwrite: train again over a finished (or different) run in `run_dir`.
        load: options of the task's data loader (see `zoo.describe(name)["load"]`).
        **hparams: hyperparameters over the defaults and the preset.

    Returns:
        The finished `Run`.

    Raises:
        zoo.errors.UserError: an unknown entry, hyperparameter, preset or loader option, bad
            data, or `run_dir` holds a finished run and `overwrite` is false (`runs.RunError`).
    """
    # First: a multi-worker strategy must exist before TensorFlow runs anything else.
    strategy = _strategy(strategy)
    entry = get_entry(name)
    hyperparameters = entry.resolve(preset, **hparams)
    if weights is not None:  # "" is refused by weights.load, not taken for "no weights"
        recorded = _recorded(entry, str(weights))
        hyperparameters = entry.resolve(None if recorded else preset, **{**recorded, **hparams})
    run_dir = Path(run_dir or Path("runs") / entry.name)
    run = runs.RunDirectory(run_dir)
    if run.status() == runs.FINISHED and not overwrite:
        run.remove_checkpoints()  # a finish killed after its record, before this last step
        raise runs.RunError(
            f"{run_dir} holds a finished run of {run.record().get('name')}: see it with "
            f"zoo evaluate {run.record().get('name')} --run-dir {run_dir}; pass --overwrite to "
            "train it again, or choose another --run-dir"
        )
    options = load_options(entry, preset, load)
    splits = entry.task.load(data, seed=seed, **options)
    splits.info["load_options"] = options  # recorded, so that evaluation holds out the same
    # Recorded, so that a resume refuses other data at the same path (and takes the same data
    # by another path).
    splits.info["fingerprint"] = fingerprint(splits)
    logger.info("training %s on %s (%d training, %d validation examples)", entry.name,
                splits.info.get("source"), len(splits.x_train), len(splits.x_val))
    validation = splits.info.get("validation")
    if isinstance(validation, dict) and validation.get("subjects"):
        logger.info("validation: subjects %s held out whole (%s windows)",
                    validation["subjects"], validation.get("windows"))
    logger.info("hyperparameters: %s", hyperparameters)
    model, history = _train_one(
        entry, hyperparameters, splits, run_dir, preset=preset, seed=seed,
        fit=fit_settings(entry, preset, epochs=epochs, batch_size=batch_size),
        source=str(weights) if weights else None, strategy=strategy, tensorboard=tensorboard,
        images_every=images_every, overwrite=overwrite)
    if not strategies.is_chief(strategy):
        logger.info("worker done: the chief writes the run to %s/", run_dir)
        return Run(entry.name, run_dir, model, history, {}, {}, ())
    record = run.record() or {}
    return Run(entry.name, run_dir, model, history, dict(record.get("metrics", {})), record,
               tuple(run_dir / file for file in record.get("files", ())))


def _write_json(path: Path, content: Mapping[str, Any]) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(content, indent=2, default=str) + "\n")


def sweep(name: str, grid: Mapping[str, Sequence[Any]] | None = None,
          data: str | Path | None = None, *, preset: str | None = None,
          run_dir: str | Path | None = None, seed: int = 0, epochs: int | None = None,
          batch_size: int | None = None, overwrite: bool = False) -> Sweep:
    """Trains a grid of two hyperparameters and draws the task's panel of each model in one
    figure (`zoo sweep`'s work).

    Args:
        name: a registered name whose task draws a sweep panel.
        grid: `{row hyperparameter: [values], column hyperparameter: [values]}`; default the
            entry's own sweep.
        data: a data file or folder; `None` for the entry's embedded data.
        preset: one of the entry's presets, under the swept values.
        run_dir: where the cells' runs, `sweep.json` and `sweep.png` go; default
            `runs/NAME-sweep`.
        seed: seeds the data and every cell's training.
        epochs: overrides the entry's epochs.
        batch_size: overrides the batch size.
        overwrite: train each cell again over a finished run.

    Returns:
        The `Sweep`: per-cell final metrics and the figure's path.

    Raises:
        zoo.registry.HyperparameterError: the task draws no panel, or the grid does not hold
            exactly two hyperparameters (or the entry has no default sweep).
    """
    entry = get_entry(name)
    if entry.task.panel is None:
        raise HyperparameterError(f"{entry.name}'s task draws no sweep panel")
    if grid is None:
        if not entry.sweep:
            raise HyperparameterError(f"{entry.name} has no default sweep; give --grid KEY=V1,V2")
        grid = entry.sweep
    grid = {key: list(values) for key, values in grid.items()}
    if len(grid) != 2:
        raise HyperparameterError(f"a sweep needs exactly two hyperparameters, got {list(grid)}")
    (row_key, row_values), (column_key, column_values) = grid.items()
    splits = entry.task.load(data, seed=seed)
    run_dir = Path(run_dir or Path("runs") / f"{entry.name}-sweep")
    runs.RunDirectory(run_dir).claim()  # each cell is a run of its own inside it
    fit = fit_settings(entry, preset, epochs=epochs, batch_size=batch_size)
    models, results = {}, []
    cells = list(itertools.product(row_values, column_values))
    for index, (row_value, column_value) in enumerate(cells, start=1):
        swept = {row_key: row_value, column_key: column_value}
        logger.info("[%d/%d] %s=%s %s=%s", index, len(cells), row_key, row_value, column_key,
                    column_value)
        model, history = _train_one(
            entry, entry.resolve(preset, **swept), splits,
            run_dir / f"{row_key}={row_value},{column_key}={column_value}", preset=preset,
            seed=seed, fit=fit, overwrite=overwrite)
        models[row_value, column_value] = model
        results.append({"hyperparameters": swept,
                        "metrics": {metric: values[-1] for metric, values in history.items()}})

    def draw(axis: Any, row: int, column: int) -> None:
        entry.task.panel(models[row_values[row], column_values[column]], axis)

    from zoo import plots

    figure = plots.panel_grid([f"{row_key}={value}" for value in row_values],
                              [f"{column_key}={value}" for value in column_values],
                              draw, run_dir / "sweep.png", f"{entry.name}: {row_key} x {column_key}")
    _write_json(run_dir / "sweep.json", {"grid": grid, "results": results})
    return Sweep(run_dir, grid, results, Path(figure))
