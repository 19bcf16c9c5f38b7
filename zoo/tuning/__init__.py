"""Hyperparameter search with keras-tuner for every registry entry.

An entry's `HParam`s carry its search space; `hypermodel(name)` turns it into a keras-tuner
`HyperModel` whose `fit` is the entry's own training (`zoo.training.fit`, custom train steps
included), and `search(name, ...)` runs a resumable, seeded search with readable results, alone
or as the chief or a worker of a distributed search. `zoo tune` and the scripts in `tuning/` are
thin layers over `search`.

>>> from zoo import tuning
>>> data = zoo.get_entry("sparse_autoencoder").task.example(".", 0)  # a tiny patch file
>>> result = tuning.search("sparse_autoencoder", tuner="bayesian", max_trials=2, epochs=2,
...                        data=data, preset="tiny", verbose=0)
>>> print(result.summary())
2 of 2 trials completed
best: trial ..., val_sparse_reconstruction ...
best hyperparameters: hidden_units=..., learning_rate=..., dtype_policy=float32
export it: zoo export sparse_autoencoder --run-dir runs/tuning/sparse_autoencoder/best
results in runs/tuning/sparse_autoencoder/: trials.csv, trials.md, ..., best.json, best.md

A line as each trial starts and ends (`[tuner0] trial 0: hidden_units=...`, `[tuner0] trial 0
COMPLETED: val_sparse_reconstruction ...`) goes to the `zoo.tuning.search` logger at INFO: the
`zoo` command shows it; in Python, `logging.basicConfig(level=logging.INFO)` does.

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
    **dict.fromkeys(("BEST_RUN_DIR", "SearchResult"), "zoo.tuning.results"),
    "search": "zoo.tuning.search",
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
