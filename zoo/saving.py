"""zoo's Keras classes and Keras' saving: which classes there are, importing them (which
registers them with Keras), and loading a zoo `.keras` file.

`import zoo` does not import a family's Keras classes (it needs no TensorFlow), and Keras can
load a zoo `.keras` file only once they are registered (`@keras.saving.register_keras_serializable
(package="zoo")`). Everything that loads one goes through `load_model` here: `zoo.load_model`,
`zoo.runs.RunDirectory.load_model`, and Keras' own `keras.saving.load_model` through the
stand-ins `zoo._lazy.defer_keras_objects` puts in Keras' registry. This module sits just above
the registry (it reads the registered families) and below the run directory and the weight
sets, which load models with it.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

from zoo.registry import entries

__all__ = ["SHARED_KERAS_OBJECTS", "import_keras_objects", "keras_objects", "load_model"]

#: zoo's Keras classes outside the families (the classifiers' loss and metrics, the one-cycle
#: schedule), by module; all are registered as "zoo>Name".
SHARED_KERAS_OBJECTS = {
    "zoo.classification": ("Accuracy", "Crossentropy", "MacroF1"),
    "zoo.schedules": ("OneCycle",),
}


def keras_objects() -> dict[str, str]:
    """The names of zoo's Keras objects and their modules, without importing them.

    Returns:
        `{class name: module}` of every registered family's `LAZY_EXPORTS` (see `zoo._lazy`)
        and of `SHARED_KERAS_OBJECTS`.
    """
    objects = {name: module for module, names in SHARED_KERAS_OBJECTS.items() for name in names}
    for entry in entries():
        # The builder's package (imported already, with the builder's module).
        package = sys.modules.get(entry.builder.__module__.rpartition(".")[0])
        objects.update(getattr(package, "LAZY_EXPORTS", {}))
    return objects


def import_keras_objects() -> None:
    """Imports the Keras classes of every registered family and the shared ones
    (`keras_objects`), which registers them with Keras (see the module's docstring)."""
    for module in sorted(set(keras_objects().values())):
        importlib.import_module(module)


def load_model(path: str | Path, **kwargs: Any) -> Any:
    """A zoo `.keras` file loaded by Keras in safe mode (no arbitrary code), after
    `import_keras_objects`: `keras.saving.load_model(path, safe_mode=True, **kwargs)`.

    Args:
        path: the `.keras` file.
        **kwargs: more arguments of `keras.saving.load_model` (`compile=False`, ...).

    Returns:
        The loaded model.

    Raises:
        ValueError, TypeError, OSError: whatever Keras raises for a file it cannot load.

    Example:

    >>> zoo.get("lstm", preset="tiny").save("lstm.keras")
    >>> zoo.load_model("lstm.keras").units
    8
    """
    import keras

    import_keras_objects()
    return keras.saving.load_model(path, safe_mode=True, **kwargs)
