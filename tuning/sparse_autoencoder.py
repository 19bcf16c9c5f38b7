"""Hyperparameter search for the sparse autoencoder: beta, rho, lambda and the hidden size.

    python tuning/sparse_autoencoder.py                      # ~24 trials, about 15 min on 2 cores
    python tuning/sparse_autoencoder.py --max-trials 6 --epochs 40     # a quick look

Patches come from the embedded photographs unless `--data` names the course's HDF5 patch file
or a folder of images. Results go to `runs/tuning/sparse_autoencoder/` (see `zoo.tuning.search`):
`trials.csv` and `trials.md` (every trial), `best.md` (the best trial, the settings),
`objective_vs_<hyperparameter>.png`, and `best/`, the best configuration's run, which
`zoo export sparse_autoencoder --run-dir runs/tuning/sparse_autoencoder/best` exports with a
model card naming this search and trial. `--retrain` trains that configuration again for the
entry's full 400 epochs first. Killed, the same command resumes the search where it stopped.

The objective. The validation reconstruction error alone is the wrong target: it is won by
beta = lambda = 0, where nothing keeps the hidden layer sparse and it becomes a dense code
(64 units, each active a third of the time, reconstruct 15x better than the entry's sparse
defaults). So the search minimises the reconstruction error *of a sparse code*
(`zoo.tuning.sparse_code`): a model's code size is the expected number of active hidden units
per patch, hidden units x mean validation activation; within a budget of `--active-units`
(default 4) the objective is the validation reconstruction error, and every unit over the
budget, as a fraction of it, adds the error of predicting the mean patch, so a dense code
loses to any sparse one:

    val_sparse_reconstruction = val_reconstruction + E_mean x max(0, code size / budget - 1)

Each hyperparameter then has something to decide: the hidden size and rho share the budget
(many units firing rarely, or few firing often), beta must be strong enough to hold the mean
activation to rho, and lambda is judged on how well the features reconstruct patches they were
not trained on. The learning rate stays at the entry's (Adam, 3e-3), which trains every
configuration in this space; `zoo tune sparse_autoencoder` searches it too.

Each trial trains 100 epochs (a quarter of the entry's 400) with the same seed, so trials
differ only by their hyperparameters; the ranking at 100 epochs is what the search sees.
"""

from __future__ import annotations

import argparse

import zoo
from zoo import tuning
from zoo.data import DataError

ENTRY = "sparse_autoencoder"
SEARCHED = ("hidden_units", "sparsity_weight", "sparsity_target", "weight_decay")


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tuner", default="bayesian", help=f"{', '.join(tuning.TUNERS)}")
    parser.add_argument("--max-trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=100, help="epochs per trial")
    parser.add_argument("--active-units", type=_positive, default=tuning.objectives.SPARSE_CODE_ACTIVE_UNITS,
                        help="the code budget: active hidden units per patch (default %(default)g)")
    parser.add_argument("--directory", default="runs/tuning")
    parser.add_argument("--data", help="patch file or image folder (default: embedded photographs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--retrain", action="store_true",
                        help="retrain the best configuration for the entry's full epochs")
    parser.add_argument("--distributed", action="store_true",
                        help="join a distributed search (KERASTUNER_* environment variables)")
    parser.add_argument("--overwrite", action="store_true", help="start afresh")
    args = parser.parse_args()

    space = zoo.get_entry(ENTRY).search_space()
    result = tuning.search(
        ENTRY,
        tuner=args.tuner,
        max_trials=args.max_trials,
        directory=args.directory,
        data=args.data,
        space={name: space[name] for name in SEARCHED},
        objective=tuning.sparse_code(args.active_units),
        epochs=args.epochs,
        seed=args.seed,
        distributed=args.distributed,
        retrain=args.retrain,
        overwrite=args.overwrite,
    )
    print("worker done" if result is None else result.summary())


if __name__ == "__main__":
    try:
        main()
    except (zoo.UnknownModelError, zoo.HyperparameterError, tuning.TuningError, DataError) as error:
        raise SystemExit(f"{ENTRY} tuning: error: {error}") from None
