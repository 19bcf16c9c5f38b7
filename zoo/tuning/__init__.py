"""Hyperparameter search with keras-tuner for every registry entry.

An entry's `HParam`s carry its search space; `hypermodel(name)` turns it into a keras-tuner
`HyperModel` whose `fit` is the entry's own training (`zoo.training.fit`, custom train steps
included), and `search(name, ...)` runs a resumable, seeded search with readable results, alone
or as the chief or a worker of a distributed search. `zoo tune` and the scripts in `tuning/` are
thin layers over `search`.

>>> from zoo import tuning
>>> result = tuning.search("sparse_autoencoder", tuner="bayesian", max_trials=20, epochs=100)
>>> print(result.summary())
"""

from zoo.tuning.hypermodel import EntryHyperModel, TuningError, declare, hypermodel
from zoo.tuning.report import TrialRecord
from zoo.tuning.search import BEST_RUN_DIR, TUNERS, SearchResult, search

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
