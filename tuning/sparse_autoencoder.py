"""Hyperparameter search for the sparse autoencoder: beta, rho, lambda and the hidden size.

    python tuning/sparse_autoencoder.py                      # 24 trials, about 20 min on 2 cores
    python tuning/sparse_autoencoder.py --max-trials 6 --epochs 40     # a quick look

This is `zoo tune sparse_autoencoder` with this family's defaults: Bayesian optimisation
(keras-tuner's `BayesianOptimization` oracle over the entry's `zoo.tuning.hypermodel`), 24
trials of 100 epochs each (a quarter of the entry's 400) with the same seed, so trials differ
only by their hyperparameters. Every `zoo tune` option works here and wins over these defaults
(`python tuning/sparse_autoencoder.py --help`).

Patches come from the embedded photographs unless `--data` names the course's HDF5 patch file
or a folder of images. Results go to `runs/tuning/sparse_autoencoder/`: `trials.csv` and
`trials.md` (every trial), `best.md`, `objective_vs_<hyperparameter>.png`, and `best/`, the best
configuration's run, which `zoo export sparse_autoencoder --run-dir
runs/tuning/sparse_autoencoder/best` exports with a model card naming this search and trial.
Killed, the same command resumes the search where it stopped.

The objective is the entry's own (`zoo describe sparse_autoencoder`), not the validation
reconstruction error, which is won by beta = lambda = 0: nothing then keeps the hidden layer
sparse and it becomes a dense code (after 100 epochs with beta 1e-3 and lambda 1e-6, 64 units
each active a third of the time reconstruct validation patches 17 times better than the entry's
sparse defaults: 0.063 against 1.07). The search minimises the reconstruction error *of a sparse
code* (`zoo.autoencoder.sparse_code`): within a budget of 4 active hidden units per patch the
objective is the validation reconstruction error, and a code over the budget by a fraction f of
it adds f times the error of predicting the mean patch:

    val_sparse_reconstruction = val_reconstruction + E_mean x max(0, code size / 4 - 1)

The hidden size and rho then share the budget (many units firing rarely, or few firing often),
beta must be strong enough to hold the mean activation to rho, and lambda is judged on how well
the features reconstruct patches they were not trained on. The learning rate stays at the
entry's (Adam, 3e-3), the recipe its defaults were set with. From Python, another budget is
`zoo.tuning.search("sparse_autoencoder", objective=zoo.autoencoder.sparse_code(8), ...)`.
"""

import sys

from zoo import cli

DEFAULTS = [
    "--tuner", "bayesian", "--max-trials", "24", "--epochs", "100",
    "--search", "hidden_units,sparsity_weight,sparsity_target,weight_decay",
]

if __name__ == "__main__":
    sys.exit(cli.main(["tune", "sparse_autoencoder", *DEFAULTS, *sys.argv[1:]]))
