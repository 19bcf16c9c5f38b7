"""Hyperparameter search for the CIFAR-10 convolutional nets: filters, hidden size,
regularisation and learning rate.

    python tuning/convnet.py --data ../shared/data/cifar10          # three_layer_convnet
    python tuning/convnet.py --model cifar_small --max-trials 8 --epochs 3

`--model` is `three_layer_convnet` (cs231n's conv-relu-pool-affine-relu-affine), `cifar_small`
or `cifar_airbench`. The data is CIFAR-10 in any of the layouts `zoo describe three_layer_convnet`
lists; nothing is downloaded. Results go to `runs/tuning/MODEL/` (see `zoo.tuning.search`), the
best configuration's run to `runs/tuning/MODEL/best/`, which `zoo export MODEL --run-dir ...`
exports. Killed, the same command resumes the search.

The objective is the task's headline metric, validation accuracy (maximised), measured on each
trial's trained model. For the three-layer net the search covers the number of filters
{8, 16, 32, 64, 128}, the hidden units [32, 1024] (log scale), the L2 regularisation strength
[1e-5, 0.1] and the learning rate [1e-4, 1e-2] (log scale); filter size and normalisation keep
their defaults. The other models search what they have of these (`filters`, `width`,
`weight_decay`, `learning_rate`). Each trial trains 5 epochs, half the entries' 10.
"""

from zoo.tuning import script

MODELS = ("three_layer_convnet", "cifar_small", "cifar_airbench")
SEARCHED = ("num_filters", "filters", "width", "hidden_dim", "reg", "weight_decay", "learning_rate")

if __name__ == "__main__":
    options = script.parser(__doc__, tuner="bayesian", max_trials=12, epochs=5, models=MODELS)
    args = options.parse_args()
    script.run(args.model, args, SEARCHED)
