"""zoo's Keras classes and Keras' saving: which classes there are, importing them (which
registers them with Keras), and loading a zoo `.keras` file.

`import zoo` does not import a family's Keras classes (it needs no TensorFlow), and Keras can
load a zoo `.keras` file only once they are registered (`@keras.saving.register_keras_serializable
(package="zoo")`). Everything that loads one goes through `load_model` here: `zoo.load_model`,
`zoo.runs.RunDirectory.load_model`, and Keras' own `keras.saving.load_model` through the
stand-ins `zoo._lazy.defer_keras_objects` puts in Keras' registry. This module sits just above
the registry (it reads the registered families) and below the run directory and the weight
sets, which load models with it.

A `.keras` file is a zip archive (`config.json`, `model.weights.h5`, `metadata.json`). One cut
short (an interrupted copy or download) or damaged is refused here, by `check_model_file`,
wherever zoo reads one: Keras itself calls a truncated file "File not found".
"""

from __future__ import annotations

import importlib
import sys
import zipfile
import zlib
from pathlib import Path
from typing import Any

from zoo.errors import UserError
from zoo.registry import entries

__all__ = ["SHARED_KERAS_OBJECTS", "ModelFileError", "check_model_file", "extract_weights",
           "import_keras_objects", "keras_objects", "load_model"]

#: What a `.keras` archive must hold for zoo to load it: the model's config and its variables.
KERAS_MEMBERS = ("config.json", "model.weights.h5")


class ModelFileError(UserError, zipfile.BadZipFile):
    """A `.keras` file that is missing, cut short or damaged. A `zipfile.BadZipFile` too (what
    Keras raises for a damaged member), not a `ValueError`: `zoo.runs.RunDirectory.load_model`
    words Keras' other refusals itself and lets this one through whole."""

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


def check_model_file(path: str | Path) -> None:
    """Checks that `path` is a whole `.keras` archive: a file, a readable zip archive holding
    `KERAS_MEMBERS`, every member's CRC intact (the whole file is read once).

    Args:
        path: the `.keras` file.

    Raises:
        ModelFileError: "PATH is not a complete Keras model file (why); ...", naming what to do.
    """
    path = Path(path)
    reason = None
    if not path.is_file():
        reason = "not a file" if path.exists() else "no such file"
    else:
        try:
            with zipfile.ZipFile(path) as archive:
                missing = [name for name in KERAS_MEMBERS if name not in archive.namelist()]
                damaged = archive.testzip()
            if missing:
                reason = f"it lacks {', '.join(missing)}"
            elif damaged is not None:
                reason = f"{damaged} is damaged"
        except zipfile.BadZipFile:
            reason = "not a zip archive, or one cut short"
        except (OSError, EOFError, zlib.error, zipfile.LargeZipFile) as error:
            reason = str(error) or type(error).__name__
    if reason is not None:
        raise ModelFileError(
            f"{path} is not a complete Keras model file ({reason}): copy or save it again, "
            "or train its run again (zoo train ... --overwrite)"
        )


def extract_weights(path: str | Path, directory: str | Path) -> Path:
    """Extracts the variables (`model.weights.h5`) of the `.keras` file `path` into
    `directory`, after `check_model_file`.

    Returns:
        The extracted `.weights.h5` file.

    Raises:
        ModelFileError: `path` is not a complete `.keras` file.
        OSError: the copy cannot be written into `directory`.
    """
    check_model_file(path)
    with zipfile.ZipFile(path) as archive:
        return Path(archive.extract("model.weights.h5", directory))


def load_model(path: str | Path, **kwargs: Any) -> Any:
    """A zoo `.keras` file loaded by Keras in safe mode (no arbitrary code), after
    `import_keras_objects` and `check_model_file`: `keras.saving.load_model(path,
    safe_mode=True, **kwargs)`.

    Args:
        path: the `.keras` file.
        **kwargs: more arguments of `keras.saving.load_model` (`compile=False`, ...).

    Returns:
        The loaded model.

    Raises:
        ModelFileError: a `.keras` path that is missing, cut short or damaged.
        ValueError, TypeError, OSError: whatever Keras raises for a file it cannot load.

    Example:

    >>> zoo.get("lstm", preset="tiny").save("lstm.keras")
    >>> zoo.load_model("lstm.keras").units
    8
    """
    if str(path).endswith(".keras"):  # Keras takes other formats by their suffixes
        check_model_file(path)
    import keras

    import_keras_objects()
    return keras.saving.load_model(path, safe_mode=True, **kwargs)
