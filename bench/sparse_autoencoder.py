"""Seconds per training epoch: zoo's sparse autoencoder against a vectorised NumPy one.

Same 10,240 embedded patches, same cost and gradient, plain mini-batch gradient descent
(SGD, learning rate 0.01), batch sizes 16 and 128. Variants run interleaved, round after
round, so machine noise hits them alike; the table gives medians, ratios to NumPy, and the
achieved GFLOP/s (the six matrix products of a step, 2 x multiply-adds) against this machine's
peak, measured in the same run as the median rate of NumPy's and TensorFlow's 2048^2 float32
matmul. Each variant runs `EPOCHS_PER_CALL` epochs a round, zoo's in one `fit` call as
`zoo train` runs its epochs back to back; the table's seconds per epoch are the median of the
epochs after each call's first, and the first epochs (where `fit` starts its iterator) get a
column of their own. It prints which BLAS NumPy runs (threadpoolctl: library, kernel
architecture, threads), so that a slowed reference (OPENBLAS_CORETYPE set, one thread) is
visible.

    python bench/sparse_autoencoder.py [--rounds 7] [--batches-per-step 0 64]
        zoo variants: mini-batches per compiled step (0: the whole epoch in one step)
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
import tensorflow as tf  # noqa: E402
import threadpoolctl  # noqa: E402  (scikit-learn's dependency, so installed with zoo)

import zoo  # noqa: E402
from zoo.autoencoder import data, reference  # noqa: E402
from zoo.training import epoch_batches, steps_per_epoch  # noqa: E402

HYPERPARAMETERS = {"weight_decay": 5e-4, "sparsity_weight": 0.01, "sparsity_target": 0.2}
LEARNING_RATE = 0.01
EPOCHS_PER_CALL = 5


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)


def keras_variant(x, batch_size, batches_per_step=None):
    """A runner of `EPOCHS_PER_CALL` epochs of zoo's model in one `fit` call: plain `fit`
    (`batches_per_step` None), or zoo's stacked batches under XLA, `batches_per_step` per step
    (0: all)."""
    model = zoo.get("sparse_autoencoder", preset="course", learning_rate=LEARNING_RATE)
    # Fed as zoo.training.fit feeds it: shuffled batches from memory, one iterator for the call.
    if batches_per_step is not None:
        feeding = {"drop_remainder": True, "stack": batches_per_step or len(x) // batch_size}
    else:
        model.compile(optimizer=keras.optimizers.SGD(LEARNING_RATE))  # no XLA, one step per call
        feeding = {}
    inputs = epoch_batches(x, None, batch_size, seed=0, epochs=EPOCHS_PER_CALL, **feeding)
    steps = steps_per_epoch(len(x), batch_size, **feeding)
    timer = EpochTimer()

    def epochs():
        model.fit(inputs, epochs=EPOCHS_PER_CALL, steps_per_epoch=steps, shuffle=False,  # shuffled
                  verbose=0, callbacks=[timer])
        return timer.seconds

    epochs()  # compile
    return epochs


def numpy_variant(x, batch_size, dtype, initial):
    params = {name: value.astype(dtype) for name, value in initial.items()}
    x = x.astype(dtype)
    rng = np.random.default_rng(0)

    def epochs():
        seconds = []
        for _ in range(EPOCHS_PER_CALL):
            start = time.perf_counter()
            reference.sgd_epoch(params, x, batch_size, LEARNING_RATE, rng, **HYPERPARAMETERS)
            seconds.append(time.perf_counter() - start)
        return seconds

    return epochs


def matmul_rate(multiply, a) -> float:
    """FLOP/s of one 2048^2 matmul by `multiply`, the median of 5 after a warm-up."""
    multiply(a, a)
    rates = []
    for _ in range(5):
        start = time.perf_counter()
        multiply(a, a)
        rates.append(2 * 2048**3 / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batches-per-step", type=int, nargs="+", default=[0],
                        help="zoo variants: mini-batches per compiled step (0: the whole epoch, "
                             "as `zoo train`'s default of 1024 for these patches)")
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    x = data.load(validation_fraction=0.0).x_train
    model = zoo.get("sparse_autoencoder")
    initial = dict(zip(["w1", "b1", "w2", "b2"], (w.astype(np.float64) for w in model.get_weights())))
    print(f"{len(x)} patches; {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    for library in threadpoolctl.threadpool_info():
        print(f"NumPy's {library['user_api']}: {library['internal_api']} {library.get('version')}, "
              f"kernel {library.get('architecture')}, {library['num_threads']} threads; "
              f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}")
    square = np.random.default_rng(0).normal(size=(2048, 2048)).astype("float32")
    peaks = {"NumPy": [], "TensorFlow": []}
    # Six products per step: encode, decode, and each one's weight and input gradients.
    flops = 3 * 2 * 2 * x.shape[1] * model.hidden_units * len(x)
    rows = []
    for batch_size in (16, 128):
        variants = {
            "NumPy float64": numpy_variant(x, batch_size, np.float64, initial),
            "NumPy float32": numpy_variant(x, batch_size, np.float32, initial),
            "Keras fit, one step per call": keras_variant(x, batch_size),
            **{f"zoo: {n or 'all'} batches per step, XLA": keras_variant(x, batch_size, n)
               for n in args.batches_per_step},
        }
        firsts = {name: [] for name in variants}
        laters = {name: [] for name in variants}
        for _ in range(args.rounds):
            peaks["NumPy"].append(matmul_rate(np.matmul, square))
            peaks["TensorFlow"].append(matmul_rate(lambda a, b: tf.matmul(a, b).numpy(), square))
            for name, epochs in variants.items():
                first, *later = epochs()
                firsts[name].append(first)
                laters[name] += later
        medians = {name: statistics.median(values) for name, values in laters.items()}
        for name, median in medians.items():
            rows.append(
                f"| {batch_size} | {name} | {median:.3f} | {statistics.median(firsts[name]):.3f} | "
                f"{median / medians['NumPy float64']:.2f} | {median / medians['NumPy float32']:.2f} | "
                f"{flops / median / 1e9:.1f} |"
            )
    peak = {library: statistics.median(rates) / 1e9 for library, rates in peaks.items()}
    print(f"{flops / 1e9:.2f} GFLOP per epoch; float32 peak (2048^2 matmul, median): "
          + ", ".join(f"{library} {rate:.0f} GFLOP/s" for library, rate in peak.items()))
    print(f"| batch | variant | s/epoch (median, epochs 2-{EPOCHS_PER_CALL} of each call) | "
          "s/epoch (median, first of each call) | x NumPy float64 | x NumPy float32 | GFLOP/s |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
