"""What a hyperparameter search optimises: an `Objective`, computed when a trial's training ends.

By default an entry is tuned on its task's headline metric (`Task.metric`, e.g. `val_accuracy`).
A family whose headline metric would be won by switching its regularisers off registers a better
objective here, keyed by its task's name, so that `zoo tune` and the family's script in `tuning/`
agree: the sparse autoencoder's is `sparse_code` (see its docstring and
`tuning/sparse_autoencoder.py`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from zoo.autoencoder import PATCH_RECONSTRUCTION
from zoo.data import Splits
from zoo.registry import Entry, Metric

__all__ = ["Objective", "for_entry", "from_metric", "sparse_code"]


@dataclasses.dataclass(frozen=True)
class Objective:
    """What a search minimises or maximises.

    Args:
        name: the value's name in trial tables and keras-tuner's records, e.g. "val_accuracy".
        direction: "min" or "max".
        description: what the value means, for reports and model cards.
        compute: `compute(metrics, hyperparameters, model, splits) -> {name: value, ...}` from a
            trained trial: its final metrics as Keras logs them (validation ones measured on the
            trained model), its full hyperparameters, the model and the data. It returns the
            objective under `name` and any other numbers worth a column in the trial table.
            `None` reads the objective from the metrics.
    """

    name: str
    direction: str
    description: str = ""
    compute: Callable[..., Mapping[str, float]] | None = None

    def __post_init__(self) -> None:
        if self.direction not in ("min", "max"):
            raise ValueError(f"direction must be 'min' or 'max', got {self.direction!r}")

    def evaluate(
        self,
        metrics: Mapping[str, float],
        hyperparameters: Mapping[str, Any],
        model: Any,
        splits: Splits,
    ) -> dict[str, float]:
        """The objective and any extra values for one trained trial (see `compute`).

        Raises:
            KeyError: the objective is a metric the model does not log.
        """
        if self.compute is None:
            if self.name not in metrics:
                raise KeyError(
                    f"the objective {self.name!r} is not among the trained model's metrics "
                    f"({', '.join(sorted(metrics))})"
                )
            return {self.name: float(metrics[self.name])}
        values = {key: float(value) for key, value in self.compute(
            metrics, hyperparameters, model, splits
        ).items()}
        if self.name not in values:
            raise KeyError(f"objective {self.name!r}: compute() returned only {sorted(values)}")
        return values

    def describe(self) -> dict[str, str]:
        return {"name": self.name, "direction": self.direction, "description": self.description}


def from_metric(metric: Metric) -> Objective:
    """An objective that is a metric the model logs, such as a task's headline metric."""
    return Objective(metric.name, metric.direction, metric.description)


def mean_patch_error(patches: np.ndarray) -> float:
    """1/(2N) sum ||x - mean patch||^2, the reconstruction error of a model blind to its input."""
    patches = np.asarray(patches, dtype=np.float64)
    return float(0.5 * np.mean(np.sum((patches - patches.mean(axis=0)) ** 2, axis=1)))


SPARSE_CODE_ACTIVE_UNITS = 4.0


def sparse_code(active_units: float = SPARSE_CODE_ACTIVE_UNITS) -> Objective:
    """The sparse autoencoder's objective: validation reconstruction error of a sparse code.

    The reconstruction error alone is won by switching sparsity and weight decay off
    (beta = lambda = 0 lets the hidden layer become a dense code that reconstructs best), so
    the code's size enters the objective. A model's code size is the expected number of
    active hidden units per patch, `hidden_units x mean validation activation` (a sigmoid
    unit's activation is its firing probability). A code within the budget `active_units`
    is judged on its reconstruction error alone; a code over the budget by a fraction f of it
    adds f times the error of reconstructing nothing at all (predicting the mean patch):

        objective = val_reconstruction + E_mean * max(0, code_size / active_units - 1)

    Lower is better. Hidden size and rho then trade off (many units firing rarely against few
    firing often), beta must be strong enough to hold the code to its target, and lambda is
    judged by how well the code reconstructs patches it was not trained on.

    Args:
        active_units: the code budget, in active hidden units per patch. The entry's defaults
            (64 units at rho 0.02, about 1.3 active units) learn edge detectors; the course's
            values (100 units firing 30% of the time) learn blobs.
    """
    if not (isinstance(active_units, (int, float)) and math.isfinite(active_units)
            and active_units > 0):
        raise ValueError(f"active_units must be a positive number, got {active_units!r}")

    def compute(
        metrics: Mapping[str, float], hyperparameters: Mapping[str, Any], model: Any, splits: Splits
    ) -> dict[str, float]:
        code_size = hyperparameters["hidden_units"] * metrics["val_mean_activation"]
        excess = max(0.0, code_size / active_units - 1.0)
        return {
            "val_sparse_reconstruction": metrics["val_reconstruction"]
            + mean_patch_error(splits.x_val) * excess,
            "val_active_units": code_size,
        }

    return Objective(
        "val_sparse_reconstruction",
        "min",
        f"validation reconstruction error of a code of at most {active_units:g} active hidden "
        "units per patch; a code over that budget by a fraction f of it adds f times the error "
        "of predicting the mean patch",
        compute,
    )


# Task name -> the objective its entries are tuned on when the headline metric is not enough.
_TASK_OBJECTIVES: dict[str, Callable[[], Objective]] = {PATCH_RECONSTRUCTION.name: sparse_code}


def for_entry(entry: Entry) -> Objective:
    """The objective `zoo tune` uses for `entry`: its family's, else its task's headline metric."""
    factory = _TASK_OBJECTIVES.get(entry.task.name)
    return factory() if factory is not None else from_metric(entry.task.metric)
