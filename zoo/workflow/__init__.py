"""The workflow: train, evaluate, export, predict, sweep and tune a registry entry.

One path shared by Python users (`zoo.train(...)`, ...), the `zoo` command (whose subcommands
turn their options into these functions' arguments and print what they return) and tuning (whose
trials train through `fitting.fit_into` with the same run record). Each function returns its
results and tells its progress through `logging` (INFO on the `zoo` loggers: the `zoo` command
shows them (`zoo.workflow.console`); in Python, `logging.basicConfig(level=logging.INFO)` or
`with zoo.workflow.console.console_logging():` does).

    train     one run into a run directory (default `runs/NAME`), resumably -> `Run`
    evaluate  a finished run (or a weight set) scored on its data, with figures -> `Evaluation`
    export    a finished run (or a weight set) as a versioned SavedModel/ONNX/LiteRT -> its Path
    predict   input files through a finished run (or a weight set) -> [`Prediction`]
    sweep     a grid of two hyperparameters, one figure -> `Sweep`
    tune      a keras-tuner search (`zoo.tuning.search`) -> `SearchResult`

Nothing here imports TensorFlow until a function runs.

Example:

>>> import zoo
>>> data = zoo.get_entry("lstm").task.example("har", seed=0)  # tiny stand-in HAR windows
>>> run = zoo.train("lstm", data, preset="tiny", run_dir="runs/lstm", seed=0)
>>> run.path, sorted(run.metrics)
(PosixPath('runs/lstm'), ['accuracy', 'loss', 'macro_f1'])
>>> evaluation = zoo.evaluate("lstm", data, run_dir="runs/lstm")
>>> sorted(evaluation.metrics), evaluation.path
(['test'], PosixPath('runs/lstm/evaluation'))
>>> zoo.export("lstm", run_dir="runs/lstm", root="exports")
PosixPath('exports/lstm/1')
>>> predictions = zoo.predict("lstm", [data], run_dir="runs/lstm")  # the file's test windows
>>> [prediction.error for prediction in predictions[:2]]
[None, None]
"""

from __future__ import annotations

from typing import Any

from zoo.workflow.fitting import Run, Sweep, sweep, train
from zoo.workflow.using import Evaluation, evaluate, export, predict

__all__ = ["Evaluation", "Run", "Sweep", "evaluate", "export", "predict", "sweep", "train",
           "tune"]


def __getattr__(name: str) -> Any:
    if name == "tune":  # keras-tuner and TensorFlow load with it: only when asked for
        from zoo.tuning import search

        return search
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
