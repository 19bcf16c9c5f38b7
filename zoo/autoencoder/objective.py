"""The sparse autoencoder's tuning objective: the reconstruction error of a sparse code."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from zoo.data import Splits
from zoo.registry import Objective

__all__ = ["SPARSE_CODE_ACTIVE_UNITS", "mean_patch_error", "sparse_code"]

SPARSE_CODE_ACTIVE_UNITS = 4.0


def mean_patch_error(patches: np.ndarray) -> float:
    """1/(2N) sum ||x - mean patch||^2, the reconstruction error of a model blind to its input."""
    patches = np.asarray(patches, dtype=np.float64)
    return float(0.5 * np.mean(np.sum((patches - patches.mean(axis=0)) ** 2, axis=1)))


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

    Example:

    >>> objective = sparse_code(active_units=8)
    >>> objective.name, objective.direction
    ('val_sparse_reconstruction', 'min')
    """
    if not (isinstance(active_units, (int, float)) and math.isfinite(active_units)
            and active_units > 0):
        raise ValueError(f"active_units must be a positive number, got {active_units!r}")

    def compute(metrics: Mapping[str, float], model: Any, splits: Splits) -> dict[str, float]:
        code_size = model.hidden_units * metrics["val_mean_activation"]
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
