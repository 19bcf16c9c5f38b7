"""zoo: a Keras 3 model zoo of sparse autoencoders, convolutional nets and recurrent classifiers.

>>> import zoo
>>> zoo.list("*auto*")
['sparse_autoencoder']
>>> model = zoo.get("sparse_autoencoder", hidden_units=100)
>>> model.save("autoencoder.keras")
>>> zoo.load_model("autoencoder.keras").hidden_units
100

`import zoo` imports no Keras or TensorFlow: the registry's entries are plain metadata, and a
family's models and layers are imported when first built or read (`zoo.recurrent.LSTMCell`).
Keras' own `keras.saving.load_model` reads a zoo `.keras` file after `import zoo` too: zoo's
registered names enter Keras' registry when Keras is imported, and import their classes on the
first load that needs them (`zoo._lazy.defer_keras_objects`).

The workflow (`zoo.workflow`) is here too: `zoo.train`, `zoo.evaluate`, `zoo.export`,
`zoo.predict`, `zoo.sweep` and `zoo.tune` do what the `zoo` command's subcommands do and return
their results. `zoo.export` is also the module `zoo/export.py` (`from zoo.export import export`
is the low-level writer); calling it runs the workflow's export.
"""

import os
import sys
import types
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TensorFlow's start-up log lines

from zoo.factory import describe, families, get  # noqa: E402
from zoo.factory import list_models as list  # noqa: E402,A001
from zoo.registry import HyperparameterError, UnknownModelError, get_entry, register  # noqa: E402
from zoo.saving import load_model  # noqa: E402

# Importing a family registers its entries.
from zoo import autoencoder, recurrent  # noqa: E402,F401
from zoo import convnets  # noqa: E402,F401
from zoo import _lazy, saving  # noqa: E402


def _keras_object_names() -> tuple[str, ...]:
    """The registered names ("zoo>AirbenchNet") of zoo's Keras classes."""
    return tuple(f"zoo>{name}" for name in sorted(saving.keras_objects()))


_lazy.defer_keras_objects(_keras_object_names, saving.import_keras_objects)


class _CallableExportModule(types.ModuleType):
    """The module `zoo.export`, callable as `zoo.export(name, ...)`: the workflow's export.

    The import system sets `zoo.export` to the module whenever `zoo.export` is imported, so the
    module itself is made callable: `from zoo.export import export, FORMATS`, `import
    zoo.export` and `zoo.export(...)` all keep working."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from zoo.workflow import export as export_entry

        return export_entry(*args, **kwargs)


from zoo import export  # noqa: E402  (TensorFlow-free: the writer imports it when it runs)

sys.modules["zoo.export"].__class__ = _CallableExportModule

# The workflow's functions, imported when first read (`zoo.train` ...).
_WORKFLOW = ("train", "evaluate", "predict", "sweep", "tune", "Run", "Evaluation", "Sweep")


def __getattr__(name: str) -> Any:
    if name in _WORKFLOW:
        from zoo import workflow

        return getattr(workflow, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> "list[str]":  # (`list` is zoo.list here)
    return sorted({*globals(), *_WORKFLOW})

__all__ = [
    "HyperparameterError",
    "UnknownModelError",
    "describe",
    "evaluate",
    "export",
    "families",
    "get",
    "get_entry",
    "list",
    "load_model",
    "predict",
    "register",
    "sweep",
    "train",
    "tune",
]
__version__ = "0.1.0"
