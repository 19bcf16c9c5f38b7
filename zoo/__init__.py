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
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TensorFlow's start-up log lines

from zoo.registry import (  # noqa: E402
    HyperparameterError,
    UnknownModelError,
    describe,
    families,
    get,
    get_entry,
    load_model,
    register,
)
from zoo.registry import list_models as list  # noqa: E402,A001

# Importing a family registers its entries.
from zoo import autoencoder, recurrent  # noqa: E402,F401
from zoo import convnets  # noqa: E402,F401
from zoo import _lazy, registry  # noqa: E402


def _keras_object_names() -> tuple[str, ...]:
    """The registered names ("zoo>AirbenchNet") of zoo's Keras classes."""
    return tuple(f"zoo>{name}" for name in sorted(registry.keras_objects()))


_lazy.defer_keras_objects(_keras_object_names, registry.import_keras_objects)

__all__ = [
    "HyperparameterError",
    "UnknownModelError",
    "describe",
    "families",
    "get",
    "get_entry",
    "list",
    "load_model",
    "register",
]
__version__ = "0.1.0"
