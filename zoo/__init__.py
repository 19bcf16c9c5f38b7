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
