"""What every script in `tuning/` shares: its command-line options and running its search."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import zoo
from zoo.data import DataError
from zoo.tuning.hypermodel import TuningError
from zoo.tuning.objectives import Objective
from zoo.tuning.search import TUNERS, search

__all__ = ["parser", "run"]


def parser(
    description: str,
    *,
    tuner: str,
    max_trials: int,
    epochs: int | None,
    models: Sequence[str] | None = None,
) -> argparse.ArgumentParser:
    """The options of a family's tuning script, with the family's defaults.

    Args:
        description: the script's docstring (shown by --help).
        tuner: the default tuner.
        max_trials: the default number of trials.
        epochs: the default epochs per trial; `None` for the entry's.
        models: the entries the script can tune (`--model`, the first by default); `None` for
            a script of one entry.
    """
    options = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    if models:
        options.add_argument("--model", choices=models, default=models[0],
                             help="the entry to tune (default %(default)s)")
    options.add_argument("--tuner", default=tuner,
                         help=f"{', '.join(TUNERS)} (default %(default)s)")
    options.add_argument("--max-trials", type=int, default=max_trials,
                         help="trials to run at most (default %(default)s)")
    options.add_argument("--epochs", type=int, default=epochs,
                         help="epochs per trial (default: %(default)s)")
    options.add_argument("--directory", default="runs/tuning",
                         help="where searches live (default %(default)s)")
    options.add_argument("--data", help="the family's data (see zoo describe MODEL)")
    options.add_argument("--preset", help="one of the entry's presets, under the searched values")
    options.add_argument("--seed", type=int, default=0)
    options.add_argument("--retrain", action="store_true",
                         help="retrain the best configuration for the entry's full epochs")
    options.add_argument("--distributed", action="store_true",
                         help="join a distributed search (KERASTUNER_* environment variables)")
    options.add_argument("--overwrite", action="store_true",
                         help="delete an earlier search of the same model and start afresh")
    return options


def run(
    name: str,
    args: argparse.Namespace,
    searched: Sequence[str],
    objective: Objective | None = None,
) -> None:
    """Runs the search `args` describe over the `searched` hyperparameters of entry `name` (the
    entry's ranges; those it does not have are skipped) and prints where the results are.

    Bad input ends the script with a one-line `zoo: error:` message, as `zoo tune` does.
    """
    try:
        space = zoo.get_entry(name).search_space()
        result = search(
            name,
            tuner=args.tuner,
            max_trials=args.max_trials,
            directory=args.directory,
            data=args.data,
            preset=args.preset,
            space={key: space[key] for key in searched if key in space},
            objective=objective,
            epochs=args.epochs,
            seed=args.seed,
            distributed=args.distributed,
            retrain=args.retrain,
            overwrite=args.overwrite,
        )
    except (zoo.UnknownModelError, zoo.HyperparameterError, TuningError, DataError) as error:
        raise SystemExit(f"zoo: error: {error}") from None
    print("worker done; the chief writes the search's results" if result is None
          else result.summary())
