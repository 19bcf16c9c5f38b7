"""Seconds per training epoch: zoo's hand-written RNN/LSTM/GRU against Keras' built-in layers.

The course's workload: windows of 150 steps x 3 axes, 128 hidden units, batch 32, one dense head
layer, SGD; one epoch is 46 mini-batches (1,472 windows, about the USC-HAD training set).
Every entry is built by `zoo.get(name, preset="course")`, so both sides compile the same way.
Variants run interleaved, round after round, so machine noise hits them alike; the table gives
medians and the ratio of each hand-written cell to its built-in twin. The FLOP count of an epoch
(matrix products only, forward + backward = 3x forward) is compared with this machine's peak,
measured in the same run as the median rate of a 2048x2048 float32 matmul.

    python bench/recurrent.py [--rounds 5]
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

import zoo  # noqa: E402

STEPS, AXES, UNITS, BATCH, WINDOWS, CLASSES = 150, 3, 128, 32, 1472, 6
GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def epoch_flops(cell: str) -> float:
    """Multiply-adds x 2 of the matrix products of one training epoch (3x the forward pass)."""
    recurrent = 2 * STEPS * GATES[cell] * UNITS * (AXES + UNITS)
    head = 2 * (UNITS * UNITS + UNITS * CLASSES)
    return 3 * WINDOWS * (recurrent + head)


def peak_flops(repeats: int = 10) -> float:
    a = tf.random.normal((2048, 2048))
    tf.matmul(a, a).numpy()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        tf.matmul(a, a).numpy()
        rates.append(2 * 2048**3 / (time.perf_counter() - start))
    return statistics.median(rates)


def epoch_runner(name: str, x: np.ndarray, y: np.ndarray):
    model = zoo.get(name, preset="course")
    timings = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            timings.append(time.perf_counter() - self.start)

    def epoch() -> float:
        model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[Timer()])
        return timings[-1]

    epoch()  # tracing
    return epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(WINDOWS, STEPS, AXES)).astype("float32")
    y = np.eye(CLASSES, dtype="float32")[rng.integers(0, CLASSES, WINDOWS)]
    names = [f"{prefix}{cell}" for cell in GATES for prefix in ("", "keras_")]
    runners = {name: epoch_runner(name, x, y) for name in names}
    seconds: dict[str, list[float]] = {name: [] for name in names}
    peaks = []
    for round_ in range(args.rounds):
        peaks.append(peak_flops())
        for name in names:
            seconds[name].append(runners[name]())
        print(f"round {round_ + 1}: " + ", ".join(f"{n} {seconds[n][-1]:.2f}s" for n in names), flush=True)
    peak = statistics.median(peaks)
    print(f"\n{platform.processor() or platform.machine()}, TF {tf.__version__}, Keras {keras.__version__}; "
          f"measured peak {peak / 1e9:.0f} GFLOP/s (2048^2 float32 matmul, median)")
    print("| cell | zoo s/epoch | Keras s/epoch | zoo / Keras | GFLOP/epoch | zoo % of peak | Keras % of peak |")
    print("|---|---|---|---|---|---|---|")
    for cell in GATES:
        ours, theirs = statistics.median(seconds[cell]), statistics.median(seconds[f"keras_{cell}"])
        flops = epoch_flops(cell)
        print(f"| {cell} | {ours:.2f} | {theirs:.2f} | {ours / theirs:.2f} | {flops / 1e9:.1f} | "
              f"{100 * flops / ours / peak:.1f} | {100 * flops / theirs / peak:.1f} |")


if __name__ == "__main__":
    main()
