"""Search results a person can read: every trial as CSV and Markdown, and the objective plotted
against each hyperparameter."""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import ticker

from zoo import plots
from zoo.files import atomic_path
from zoo.registry import Choice, Float, Int, Objective

__all__ = [
    "TrialRecord", "best_trial", "format_value", "plot_objective", "trial_records", "write_tables",
]

CSV_FILE = "trials.csv"
MARKDOWN_FILE = "trials.md"
COMPLETED = "COMPLETED"


@dataclasses.dataclass(frozen=True)
class TrialRecord:
    """One trial of a search, as keras-tuner's oracle holds it.

    Args:
        trial_id: keras-tuner's id ("00", "01", ...), in the order trials were created.
        status: COMPLETED, FAILED, RUNNING (started, not finished: the search was stopped),
            INVALID (failed, to be retried).
        values: the hyperparameter values the tuner chose (hyperband adds `tuner/...` keys).
        metrics: what the trial reported (see `EntryHyperModel.fit`); empty unless completed.
        message: the error of a failed trial.
    """

    trial_id: str
    status: str
    values: dict[str, Any]
    metrics: dict[str, float]
    message: str = ""

    @classmethod
    def from_keras_tuner(cls, trial: Any) -> TrialRecord:
        metrics = {
            name: float(trial.metrics.get_last_value(name)) for name in trial.metrics.metrics
        }
        return cls(
            trial.trial_id, str(trial.status), dict(trial.hyperparameters.values), metrics,
            trial.message or "",
        )

    @property
    def seconds(self) -> float | None:
        return self.metrics.get("seconds")


def trial_records(trials: Iterable[Any]) -> list[TrialRecord]:
    """Records of keras-tuner `Trial`s, in the order they were created."""
    records = (TrialRecord.from_keras_tuner(trial) for trial in trials)
    return sorted(records, key=lambda record: record.trial_id)


def best_trial(records: Sequence[TrialRecord], objective: Objective) -> TrialRecord | None:
    """The completed trial with the best objective, the earliest among equals; `None` if none."""
    completed = [r for r in records if r.status == COMPLETED and objective.name in r.metrics]
    if not completed:
        return None
    sign = 1.0 if objective.direction == "min" else -1.0
    return min(completed, key=lambda r: sign * r.metrics[objective.name])


def format_value(value: Any) -> str:
    """A table cell: floats to 4 significant digits, None as nothing."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def _columns(records: Sequence[TrialRecord], objective: Objective) -> tuple[list[str], list[str]]:
    """Hyperparameter columns, in the order first seen, and metric columns: the objective's
    extra values and validation metrics first, then training metrics."""
    values: dict[str, None] = {}
    metrics: dict[str, None] = {}
    for record in records:
        values.update(dict.fromkeys(record.values))
        metrics.update(dict.fromkeys(record.metrics))
    metrics.pop(objective.name, None)
    metrics.pop("seconds", None)
    ordered = sorted(metrics, key=lambda name: (name.startswith("train_"), name))
    return list(values), ordered


def write_tables(
    records: Sequence[TrialRecord], objective: Objective, directory: str | Path
) -> list[Path]:
    """Writes every trial to `trials.csv` (trial order, full precision) and `trials.md` (best
    first, 4 significant digits, failures and their errors last)."""
    directory = Path(directory)
    names, metrics = _columns(records, objective)
    header = ["trial", "status", "seconds", objective.name, *names, *metrics, "message"]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for record in records:
        writer.writerow([
            record.trial_id, record.status, record.seconds, record.metrics.get(objective.name),
            *(record.values.get(name) for name in names),
            *(record.metrics.get(name) for name in metrics),
            record.message.strip().splitlines()[-1] if record.message.strip() else "",
        ])
    csv_path = directory / CSV_FILE
    with atomic_path(csv_path) as temporary:
        temporary.write_text(buffer.getvalue())

    best = best_trial(records, objective)
    sign = 1.0 if objective.direction == "min" else -1.0
    completed = sorted(
        (r for r in records if r.status == COMPLETED and objective.name in r.metrics),
        key=lambda r: (sign * r.metrics[objective.name], r.trial_id),
    )
    others = [r for r in records if r not in completed]
    validation = [name for name in metrics if not name.startswith("train_")]
    columns = ["rank", "trial", "status", "seconds", objective.name, *names, *validation]
    lines = [
        f"# Trials: {objective.name} ({objective.direction}imise)",
        "",
        objective.description,
        "",
        f"{len(completed)} of {len(records)} trials completed"
        + (f"; best: trial {best.trial_id}" if best else "")
        + f". All columns, training metrics included, are in {CSV_FILE}.",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    for rank, record in enumerate([*completed, *others], start=1):
        cells = [
            str(rank) if record in completed else "",
            record.trial_id, record.status, format_value(record.seconds),
            format_value(record.metrics.get(objective.name)),
            *(format_value(record.values.get(name)) for name in names),
            *(format_value(record.metrics.get(name)) for name in validation),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    failures = [r for r in others if r.message.strip()]
    if failures:
        lines += ["", "## Errors", ""]
        lines += [f"- trial {r.trial_id}: {r.message.strip().splitlines()[-1]}" for r in failures]
    markdown_path = directory / MARKDOWN_FILE
    with atomic_path(markdown_path) as temporary:
        temporary.write_text("\n".join(lines) + "\n")
    return [csv_path, markdown_path]


def plot_objective(
    records: Sequence[TrialRecord],
    objective: Objective,
    space: Mapping[str, Float | Int | Choice],
    directory: str | Path,
    title: str,
    help_texts: Mapping[str, str] | None = None,
) -> list[Path]:
    """One PNG per searched hyperparameter, `objective_vs_<name>.png`: each completed trial's
    objective against its value, coloured by trial order, the best trial starred.

    Args:
        records: the search's trials.
        objective: the search's objective.
        space: the searched hyperparameters and their ranges (log ranges get a log axis).
        directory: where the PNGs go.
        title: the first line of each title (the entry and search, say).
        help_texts: a few words on each hyperparameter, for the x-axis labels.
    """
    completed = [r for r in records if r.status == COMPLETED and objective.name in r.metrics]
    best = best_trial(records, objective)
    order = np.arange(len(completed))
    scores = np.array([r.metrics[objective.name] for r in completed])
    paths = []
    for name, searched in space.items():
        figure, axis = plots.subplots(figsize=(6.4, 4.4))  # no pyplot: see zoo.plots
        if completed:
            if isinstance(searched, Choice):
                categories = list(searched.values)
                positions = np.array([categories.index(r.values[name]) for r in completed], float)
                # Spread trials that share a category so that each stays visible.
                positions += np.linspace(-0.15, 0.15, len(completed)) if len(completed) > 1 else 0
                axis.set_xticks(range(len(categories)), [str(c) for c in categories])
            else:
                positions = np.array([r.values[name] for r in completed], float)
                if searched.log:
                    axis.set_xscale("log")
                    # Plain numbers (16, 64, 0.001) rather than 1.6 x 10^1 at every minor tick.
                    axis.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
                    axis.xaxis.set_minor_formatter(ticker.NullFormatter())
            points = axis.scatter(positions, scores, c=order, cmap="viridis", s=36, zorder=2)
            if len(completed) > 1:
                colorbar = figure.colorbar(points, ax=axis, label="completed trials, in order")
                colorbar.locator = ticker.MaxNLocator(integer=True)
                colorbar.update_ticks()
            if best is not None:
                index = completed.index(best)
                axis.scatter(positions[index], scores[index], marker="*", s=260,
                             facecolor="none", edgecolor="red", linewidth=1.5, zorder=3,
                             label=f"best: trial {best.trial_id}")
                axis.legend(loc="best")
            if scores.min() > 0 and scores.max() > 20 * scores.min():
                axis.set_yscale("log")  # penalised trials would flatten the good ones
                axis.yaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
                axis.yaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
                axis.yaxis.set_minor_formatter(ticker.NullFormatter())
        else:
            axis.text(0.5, 0.5, "no completed trials yet", ha="center", va="center",
                      transform=axis.transAxes)
        if not isinstance(searched, Choice):
            axis.set_xlim(*_padded(searched))
        help_text = (help_texts or {}).get(name)
        axis.set_xlabel(f"{name}: {help_text}" if help_text else name)
        better = "lower" if objective.direction == "min" else "higher"
        axis.set_ylabel(f"{objective.name} ({better} is better)")
        failed = len(records) - len(completed)
        axis.set_title(
            f"{title}\n{objective.name} against {name}: {len(completed)} completed trials"
            + (f", {failed} not" if failed else ""),
            fontsize=10,
        )
        axis.grid(alpha=0.3)
        paths.append(plots.save(figure, Path(directory) / f"objective_vs_{name}.png"))
    return paths


def _padded(searched: Float | Int) -> tuple[float, float]:
    """The searched range with a margin, so that trials at its ends stay visible."""
    if searched.log:
        factor = (searched.high / searched.low) ** 0.04
        return searched.low / factor, searched.high * factor
    margin = 0.04 * (searched.high - searched.low)
    return searched.low - margin, searched.high + margin
