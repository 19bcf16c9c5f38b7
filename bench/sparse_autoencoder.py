"""Seconds per training epoch: zoo's sparse autoencoder against a vectorised NumPy one.

Same 10,240 embedded patches, same cost and gradient, plain mini-batch gradient descent
(SGD, learning rate 0.01), batch sizes 16 and 128. Variants run interleaved, round after
round, so machine noise hits them alike; the table gives medians and ratios to NumPy.

    python bench/sparse_autoencoder.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import zoo  # noqa: E402
from zoo.autoencoder import data, reference  # noqa: E402
from zoo.training import stacked_batches  # noqa: E402

HYPERPARAMETERS = {"weight_decay": 5e-4, "sparsity_weight": 0.01, "sparsity_target": 0.2}
LEARNING_RATE = 0.01


class EpochTimer(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds = time.perf_counter() - self.start


def keras_variant(x, batch_size, stacked):
    """An epoch runner for zoo's model: plain `fit`, or zoo's stacked batches under XLA."""
    model = zoo.get("sparse_autoencoder", preset="course", learning_rate=LEARNING_RATE)
    if stacked:
        inputs, fit_batch_size = stacked_batches(x, None, batch_size, 64), None
    else:
        model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE))  # no XLA, one step per call
        inputs, fit_batch_size = x, batch_size
    timer = EpochTimer()

    def epoch():
        model.fit(
            inputs, batch_size=fit_batch_size, epochs=1, shuffle=not stacked, verbose=0,
            callbacks=[timer],
        )
        return timer.seconds

    epoch()  # compile
    return epoch


def numpy_variant(x, batch_size, dtype, initial):
    params = {name: value.astype(dtype) for name, value in initial.items()}
    x = x.astype(dtype)
    rng = np.random.default_rng(0)

    def epoch():
        start = time.perf_counter()
        reference.sgd_epoch(params, x, batch_size, LEARNING_RATE, rng, **HYPERPARAMETERS)
        return time.perf_counter() - start

    return epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    x = data.load(validation_fraction=0.0).x_train
    model = zoo.get("sparse_autoencoder")
    initial = dict(zip(["w1", "b1", "w2", "b2"], (w.astype(np.float64) for w in model.get_weights())))
    print(f"{len(x)} patches; {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    print("| batch | variant | s/epoch (median) | x NumPy float64 | x NumPy float32 |")
    print("|---|---|---|---|---|")
    for batch_size in (16, 128):
        variants = {
            "NumPy float64": numpy_variant(x, batch_size, np.float64, initial),
            "NumPy float32": numpy_variant(x, batch_size, np.float32, initial),
            "Keras fit, one step per call": keras_variant(x, batch_size, stacked=False),
            "zoo: 64 batches per step, XLA": keras_variant(x, batch_size, stacked=True),
        }
        times = {name: [] for name in variants}
        for _ in range(args.rounds):
            for name, epoch in variants.items():
                times[name].append(epoch())
        medians = {name: statistics.median(values) for name, values in times.items()}
        for name, median in medians.items():
            print(
                f"| {batch_size} | {name} | {median:.3f} | "
                f"{median / medians['NumPy float64']:.2f} | {median / medians['NumPy float32']:.2f} |"
            )


if __name__ == "__main__":
    main()
