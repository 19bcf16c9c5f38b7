"""Hyperparameter search with keras-tuner for every registry entry.

An entry's `HParam`s carry its search space; `hypermodel(name)` turns it into a keras-tuner
`HyperModel` whose `fit` is the entry's own training (`zoo.training.fit`, custom train steps
included), and `search(name, ...)` runs a resumable, seeded search with readable results, alone
or as the chief or a worker of a distributed search. `zoo tune` and the scripts in `tuning/` are
thin layers over `search`.

>>> from zoo import tuning
>>> result = tuning.search("sparse_autoencoder", tuner="bayesian", max_trials=20, epochs=100)
>>> print(result.summary())

The package imports keras-tuner and TensorFlow when one of its names is first read (`zoo._lazy`),
so that the `zoo` command can name the tuners without them.
"""

from zoo._lazy import lazy_exports

#: The search algorithms `search(..., tuner=...)` takes.
TUNERS = ("random", "bayesian", "hyperband", "grid")

LAZY_EXPORTS = {
    **dict.fromkeys(("EntryHyperModel", "TuningError", "declare", "hypermodel"),
                    "zoo.tuning.hypermodel"),
    "TrialRecord": "zoo.tuning.report",
    **dict.fromkeys(("BEST_RUN_DIR", "SearchResult", "search"), "zoo.tuning.search"),
}
__getattr__, __dir__ = lazy_exports(__name__, LAZY_EXPORTS)

__all__ = [
    "BEST_RUN_DIR",
    "EntryHyperModel",
    "SearchResult",
    "TUNERS",
    "TrialRecord",
    "TuningError",
    "declare",
    "hypermodel",
    "search",
]
