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
beta = lambda = 0, where nothing keeps the hidden layer sparse and it becomes a dense code (after
100 epochs with beta 1e-3 and lambda 1e-6, 64 units each active a third of the time reconstruct
validation patches 17 times better than the entry's sparse defaults: 0.063 against 1.07). So
the search minimises the reconstruction error *of a sparse code* (`zoo.tuning.sparse_code`): a
model's code size is the expected number of active hidden units per patch, hidden units x mean
validation activation; within a budget of `--active-units` (default 4) the objective is the
validation reconstruction error, and a code over the budget by a fraction f of it adds f times
the error of predicting the mean patch. A code twice the budget or more therefore loses to
every code within it that does better than the mean patch:

    val_sparse_reconstruction = val_reconstruction + E_mean x max(0, code size / budget - 1)

Each hyperparameter then has something to decide: the hidden size and rho share the budget
(many units firing rarely, or few firing often), beta must be strong enough to hold the mean
activation to rho, and lambda is judged on how well the features reconstruct patches they were
not trained on. The learning rate stays at the entry's (Adam, 3e-3), the recipe its defaults
were set with; `zoo tune sparse_autoencoder` searches it as well.

Each trial trains 100 epochs (a quarter of the entry's 400) with the same seed, so trials
differ only by their hyperparameters; the ranking at 100 epochs is what the search sees.
"""

from __future__ import annotations

import argparse

from zoo import tuning
from zoo.tuning import script

SEARCHED = ("hidden_units", "sparsity_weight", "sparsity_target", "weight_decay")


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


if __name__ == "__main__":
    options = script.parser(__doc__, tuner="bayesian", max_trials=24, epochs=100)
    options.add_argument("--active-units", type=_positive,
                         default=tuning.objectives.SPARSE_CODE_ACTIVE_UNITS,
                         help="the code budget, active hidden units per patch "
                              "(default %(default)g)")
    args = options.parse_args()
    script.run("sparse_autoencoder", args, SEARCHED, tuning.sparse_code(args.active_units))
