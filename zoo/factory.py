"""Models from the registry: build an entry (with a weight set or a run's weights), list the
entries, describe one with its weight sets' cards.

The registry (`zoo.registry`) is data: entries, their hyperparameters and tasks. The weight
sets (`zoo.weights`) know where trained weights live and how they load. This module is above
both, as timm's `_factory.py` is above its `_registry.py`: `zoo.get`, `zoo.list` and
`zoo.describe` are these functions, and nothing below imports them.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import sys
from typing import Any

from zoo import weights as weight_sets
from zoo.precision import DTYPE_POLICIES
from zoo.registry import DTYPE_POLICY, UnknownModelError, entries, get_entry

__all__ = ["describe", "families", "get", "list_models"]


def get(name: str, preset: str | None = None, weights: Any = None, **overrides: Any) -> Any:
    """Builds the registered model `name`, compiled and ready for `fit`.

    Args:
        name: a registered name (see `zoo.list()`).
        preset: an optional named preset of the entry.
        weights: a weight set's tag (`zoo.weights.available(name)`) or a path (run directory,
            `.keras`, `.weights.h5`, export directory) to load; see `zoo.weights.load`.
        **overrides: hyperparameters that replace the defaults (with weights that record their
            hyperparameters, only those that keep every weight's shape, and `num_classes`,
            which re-initialises a classifier's head). Every entry has `dtype_policy`
            ("float32" or "mixed_bfloat16"); without it, Keras' global policy
            (`keras.config.set_dtype_policy`) when that is one of these and not float32, else
            the entry's default (`zoo describe NAME` says which and why).

    Returns:
        A compiled, built `keras.Model`.

    Raises:
        UnknownModelError: `name` is not registered.
        HyperparameterError: an unknown preset or hyperparameter, or a value out of range.
        WeightsError: `weights` names no set or file (an empty one included), or one that does
            not fit the entry.
        zoo.saving.ModelFileError: `weights` is a `.keras` file (or a run's) cut short or damaged.

    Example:

    >>> model = zoo.get("sparse_autoencoder", hidden_units=100)
    """
    global_policy = _keras_global_policy()
    if DTYPE_POLICY not in overrides and global_policy is not None:
        overrides[DTYPE_POLICY] = global_policy
    if weights is not None:
        return weight_sets.load(name, weights, preset, **overrides)
    entry = get_entry(name)
    return entry.build(entry.resolve(preset, **overrides))


def _keras_global_policy() -> str | None:
    """Keras' global dtype policy when a user set one zoo builds with (not float32), else
    `None`; Keras not imported yet means nobody set one."""
    keras = sys.modules.get("keras")
    if keras is None:
        return None
    name = keras.config.dtype_policy().name
    return name if name in DTYPE_POLICIES and name != "float32" else None


def list_models(pattern: str = "*", family: str | None = None, pretrained: bool = False) -> list[str]:
    """Registered names matching the fnmatch-style `pattern` (and `family`, when given; with
    `pretrained`, only those with weight sets to load), sorted.

    Args:
        pattern: an fnmatch pattern over the names ("*lstm*").
        family: only this family's entries.
        pretrained: only entries that have weight sets (`zoo.weights.available`).

    Returns:
        The matching names, sorted.

    Raises:
        UnknownModelError: `family` is not a registered family.
    """
    if family is not None and family not in families():
        raise UnknownModelError(
            f"unknown family {family!r} (families: {', '.join(families())})"
        )
    names = sorted(
        entry.name for entry in entries()
        if fnmatch.fnmatchcase(entry.name, pattern) and family in (None, entry.family)
    )
    if pretrained:
        names = [name for name in names if weight_sets.available(name)]
    return names


def families() -> list[str]:
    """The families that have registered entries, sorted."""
    return sorted({entry.family for entry in entries()})


def describe(name: str) -> dict[str, Any]:
    """Everything a user or a tuner needs to know about entry `name`, as plain data.

    Args:
        name: a registered name.

    Returns:
        Its name, family, description, task, data, headline metric and tuning objective, the
        hyperparameters (default, type, valid range, help; `dtype_policy`'s default is the one
        this machine builds with), search space, presets, fit settings, loader options, the
        dtype policy chosen and why, and `weights`: the cards of its weight sets by tag.

    Raises:
        UnknownModelError: `name` is not registered.
    """
    entry = get_entry(name)
    choice = entry.dtype_policy_choice()
    hyperparameters = {key: hp.describe() for key, hp in entry.hparams.items()}
    hyperparameters[DTYPE_POLICY]["default"] = choice["default"]
    return {
        "name": entry.name,
        "family": entry.family,
        "description": entry.description,
        "task": entry.task.name,
        "data": entry.task.data,
        "metric": entry.task.metric.describe(),
        "tuning_objective": entry.task.tuning_objective.describe(),
        "hyperparameters": hyperparameters,
        "search_space": {
            key: {"kind": type(space).__name__.lower(), **dataclasses.asdict(space)}
            for key, space in entry.search_space().items()
        },
        "presets": {preset: dict(values) for preset, values in entry.presets.items()},
        "fit": dict(entry.fit),
        "load": entry.load_settings(),
        "dtype_policy": choice,
        "weights": weight_sets.available(name),
    }
