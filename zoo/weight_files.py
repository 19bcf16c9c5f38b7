"""Keras weight files (`.weights.h5`) against models, knowing no entry: load one into a model
after checking every variable's shape, save a model's variables without optimizer state
(optionally as float16), copy variables from one model to another.

`zoo.weights` finds the files (shipped sets, runs, exports) and builds the entries they belong
to; this module is the file format underneath. A file that does not fit is refused naming the
first variable that differs, before anything is loaded.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from zoo.errors import UserError
from zoo.files import atomic_path

__all__ = ["WeightsError", "copy_weights", "load_file", "save_file"]


class WeightsError(UserError, ValueError):
    """A weight set or file that is missing, damaged, or does not fit the entry."""


def _layout(path: Path, named: str | Path | None = None) -> dict[str, tuple[tuple[int, ...], str]]:
    """`{dataset path: (shape, layer name)}` of a Keras `.weights.h5`'s model variables
    (the optimizer's are left out); errors name the file `named` (default `path`)."""
    import h5py

    layout: dict[str, tuple[tuple[int, ...], str]] = {}

    def visit(key: str, item: Any) -> None:
        if isinstance(item, h5py.Dataset) and not key.startswith("optimizer/"):
            layer = item.parent.attrs.get("name", "")
            layout[key] = (tuple(item.shape), str(layer))

    try:
        with h5py.File(path, "r") as handle:
            handle.visititems(visit)
    except OSError as error:
        raise WeightsError(f"{named or path} is not a readable weight file ({error})") from None
    return layout


def _variable_names(model: Any) -> dict[tuple[str, int], str]:
    """`{(layer name, index): variable path}`, to name a dataset in messages."""
    names = {}
    try:
        for layer in model._flatten_layers(include_self=True, recursive=True):
            variables = list(layer._trainable_variables) + list(layer._non_trainable_variables)
            for index, variable in enumerate(variables):
                names[layer.name, index] = variable.path
    except AttributeError:  # private Keras attributes: only the messages lose detail
        pass
    return names


@contextlib.contextmanager
def _model_file(model: Any) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="zoo-weights-") as directory:
        path = Path(directory) / "model.weights.h5"
        model.save_weights(path)
        yield path


def _label(model: Any, key: str, layer: str) -> str:
    index = key.rsplit("/", 1)[-1]
    name = _variable_names(model).get((layer, int(index))) if index.isdigit() else None
    return f"{name} ({key})" if name else key


def load_file(model: Any, path: str | Path, *, replace_head: bool = False,
              named: str | Path | None = None) -> list[str]:
    """Loads a `.weights.h5` into `model` (built), after checking every variable's shape.

    Args:
        model: the built model.
        path: a Keras weights file (float16 values are cast to the model's dtypes).
        replace_head: variables whose shapes differ only in the last axis (the classifier's
            class dimension) keep their fresh values instead of being refused.
        named: what messages call the file (default `path`): a `.keras`'s weights are read
            from a temporary copy, which the user never saw.

    Returns:
        The variables left at their fresh values (the head), empty when none.

    Raises:
        WeightsError: the file lacks a variable of the model, has one the model lacks, or a
            shape differs: the first such variable and both shapes are named.
    """
    import h5py

    path = Path(path)
    named = named or path
    stored = _layout(path, named)
    kept: list[str] = []
    with _model_file(model) as own_path:
        own = _layout(own_path)
        for key, (shape, layer) in own.items():
            if key not in stored:
                raise WeightsError(
                    f"{named} has no variable {_label(model, key, layer)} of shape {shape}: it "
                    "holds another model's weights"
                )
            if stored[key][0] != shape:
                theirs = stored[key][0]
                head = (replace_head and len(theirs) == len(shape) >= 1
                        and theirs[:-1] == shape[:-1])
                if not head:
                    raise WeightsError(
                        f"{named} does not fit {model.name}: variable {_label(model, key, layer)} "
                        f"has shape {theirs} in the file, {shape} in the model"
                    )
                kept.append(_label(model, key, layer))
        extra = sorted(set(stored) - set(own))
        if extra:
            raise WeightsError(
                f"{named} holds variables {model.name} does not have (first: {extra[0]} of shape "
                f"{stored[extra[0]][0]}): it holds another model's weights"
            )
        # Write the file's values into a copy of the model's own file (same structure, optimizer
        # included), then load that: nothing is skipped, dtypes are the model's.
        with h5py.File(path, "r") as source, h5py.File(own_path, "r+") as target:
            for key, (shape, _) in own.items():
                if stored[key][0] == shape:
                    target[key][...] = np.asarray(source[key][()]).astype(target[key].dtype)
        model.load_weights(own_path)
    return kept


def copy_weights(source: Any, target: Any) -> None:
    """`target.set_weights(source.get_weights())`, then what Keras' own loading does after
    reading a layer's variables: stateful preprocessing layers (`keras.layers.Normalization`)
    recompute the state they derive from them (`finalize_state`). `set_weights` alone leaves
    an adapted Normalization's mean and variance at their unadapted values."""
    target.set_weights(source.get_weights())
    for layer in target._flatten_layers(include_self=False, recursive=True):
        if layer.built and callable(getattr(layer, "finalize_state", None)):
            layer.finalize_state()


def save_file(model: Any, path: str | Path, *, float16: bool = False) -> None:
    """Writes `model`'s variables (built) to the `.weights.h5` file `path`, atomically, without
    the optimizer's state: a weight set holds what was learned, not how training would go on.

    Args:
        model: the built model.
        path: the file to write.
        float16: store floating-point variables as float16 (`load_file` casts them back).
    """
    import h5py

    with _model_file(model) as full, atomic_path(Path(path)) as temporary:
        with h5py.File(full, "r") as source, h5py.File(temporary, "w") as target:
            def copy(key: str, item: Any) -> None:
                if key.startswith("optimizer"):
                    return
                if isinstance(item, h5py.Group):
                    target.require_group(key).attrs.update(dict(item.attrs))
                    return
                values = item[()]
                if float16 and np.issubdtype(values.dtype, np.floating):
                    values = np.asarray(values, np.float16)
                target.create_dataset(key, data=values)
            target.attrs.update(dict(source.attrs))
            source.visititems(copy)
