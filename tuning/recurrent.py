"""Hyperparameter search for the recurrent activity classifiers: hidden size, depth, learning
rate, momentum and gradient clipping.

    python tuning/recurrent.py --data ../shared/data/har/usc_had.h5              # lstm, SGD
    python tuning/recurrent.py --model gru --preset strong --data usc_had.h5 --max-trials 8

`--model` is one of the six entries, the hand-written `rnn`, `lstm`, `gru` or Keras' `keras_rnn`,
`keras_lstm`, `keras_gru`. The data is the course's HDF5 layout (`zoo describe lstm`); there is
no embedded default. Results go to `runs/tuning/MODEL/` (see `zoo.tuning.search`), the best
configuration's run to `runs/tuning/MODEL/best/`, which `zoo export MODEL --run-dir ...` exports.
Killed, the same command resumes the search.

The objective is the task's headline metric, validation accuracy (maximised), measured on each
trial's trained model: early stopping keeps the best epoch's weights, and that model is scored.
The searched ranges are the entries' own: units per layer [16, 256] (log scale) and layers
[1, 3], the learning rate [1e-4, 0.3] (log scale), the momentum [0.5, 0.99] and the
global-norm clipping threshold [0.1, 10] (log scale). By default the search starts from the
course's recipe (`--preset course`: SGD with momentum, one direction, no dropout or
augmentation), where momentum matters; under a preset that trains with Adam (`strong`, the
entries' default) momentum does nothing and is not searched. Each trial trains at most 20
epochs (the recipe's 50 with early stopping, cut for the search's budget).
"""

import zoo
from zoo.tuning import script

MODELS = ("lstm", "gru", "rnn", "keras_lstm", "keras_gru", "keras_rnn")
SEARCHED = ("units", "num_layers", "learning_rate", "momentum", "clip_norm")

if __name__ == "__main__":
    options = script.parser(__doc__, tuner="bayesian", max_trials=16, epochs=20, models=MODELS)
    options.set_defaults(preset="course")
    args = options.parse_args()
    optimizer = zoo.get_entry(args.model).resolve(args.preset)["optimizer"]
    searched = SEARCHED if optimizer == "sgd" else tuple(k for k in SEARCHED if k != "momentum")
    script.run(args.model, args, searched)
