"""Hyperparameter search for the CIFAR-10 nets: filters, hidden size, regularisation and
learning rate.

    python tuning/convnet.py --data ../shared/data/cifar10          # three_layer_convnet
    python tuning/convnet.py cifar_small --data ../shared/data/cifar10 --max-trials 8 --epochs 3

This is `zoo tune MODEL` (default `three_layer_convnet`) with this family's defaults: Bayesian
optimisation (keras-tuner's `BayesianOptimization` oracle over the entry's
`zoo.tuning.hypermodel`), 12 trials of 5 epochs each, half the entries' 10. `MODEL` is any entry
of the family (`zoo list --family convnets`); every `zoo tune` option works here and wins over
these defaults (`python tuning/convnet.py --help`).

The data is CIFAR-10 in any of the layouts `zoo describe three_layer_convnet` lists; nothing is
downloaded. Results go to `runs/tuning/MODEL/`, the best configuration's run to
`runs/tuning/MODEL/best/`, which `zoo export MODEL --run-dir ...` exports. Killed, the same
command resumes the search.

The objective is the task's headline metric, validation accuracy (maximised), measured on each
trial's trained model. Without `--search` a search covers the entry's whole search space
(`zoo describe MODEL` lists it): for the three-layer net the filters {8, 16, 32, 64, 128}, their
size {3, 5, 7}, the hidden units [32, 1024] (log scale), the L2 strength [1e-5, 0.1], the
normalisation and the learning rate [1e-4, 1e-2] (log scale).
"""

import sys

from zoo import cli

DEFAULTS = ["--tuner", "bayesian", "--max-trials", "12", "--epochs", "5"]

if __name__ == "__main__":
    model, options = ("three_layer_convnet", sys.argv[1:])
    if options and not options[0].startswith("-"):
        model, options = options[0], options[1:]
    sys.exit(cli.main(["tune", model, *DEFAULTS, *options]))
