"""Hyperparameter search for the recurrent activity classifiers: hidden size, depth, learning
rate, momentum and gradient clipping.

    python tuning/recurrent.py --data ../shared/data/har/usc_had.h5              # lstm
    python tuning/recurrent.py gru --data usc_had.h5 --preset strong --max-trials 8 \
        --search units,num_layers,learning_rate,clip_norm

This is `zoo tune MODEL` (default `lstm`) with this family's defaults: Bayesian optimisation
(keras-tuner's `BayesianOptimization` oracle over the entry's `zoo.tuning.hypermodel`), 16
trials of at most 20 epochs. `MODEL` is one of the six entries, the hand-written `rnn`, `lstm`,
`gru` or Keras' `keras_rnn`, `keras_lstm`, `keras_gru`; every `zoo tune` option works here and
wins over these defaults (`python tuning/recurrent.py --help`).

The data is the course's HDF5 layout (`zoo describe lstm`); there is no embedded default.
Results go to `runs/tuning/MODEL/`, the best configuration's run to `runs/tuning/MODEL/best/`,
which `zoo export MODEL --run-dir ...` exports. Killed, the same command resumes the search.

The objective is the task's headline metric, validation accuracy (maximised), measured on each
trial's trained model. By default the search starts from the course's recipe (`--preset
course`: SGD with momentum, one direction, no augmentation, early stopping keeping the best
epoch), where momentum matters, and searches the entries' own ranges of units per layer
[16, 256] (log scale), layers [1, 3], the learning rate [1e-4, 0.3] (log scale), the momentum
[0.5, 0.99] and the global-norm clipping threshold [0.1, 10] (log scale). Under a preset that
trains with Adam (`strong`, the entries' default) momentum does nothing: leave it out of
`--search`, as in the second example above.
"""

import sys

from zoo import cli

DEFAULTS = [
    "--tuner", "bayesian", "--max-trials", "16", "--epochs", "20", "--preset", "course",
    "--search", "units,num_layers,learning_rate,momentum,clip_norm",
]

if __name__ == "__main__":
    model, options = ("lstm", sys.argv[1:])
    if options and not options[0].startswith("-"):
        model, options = options[0], options[1:]
    sys.exit(cli.main(["tune", model, *DEFAULTS, *options]))
