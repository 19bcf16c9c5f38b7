"""Seconds per training epoch: zoo's hand-written RNN/LSTM/GRU against Keras' built-in layers.

The course's workload: windows of 150 steps x 3 axes, 128 hidden units, batch 32, one dense head
layer, SGD; one epoch is 46 mini-batches (1,472 windows, about the USC-HAD training set).
Every entry is built by `zoo.get(name, preset="course", dtype_policy=P)`, so both sides
compile the same way, under each Keras dtype policy asked for (`--dtype-policies`).
Variants run interleaved, round after round, so machine noise hits them alike; the table gives
medians, the ratio of each hand-written cell to its built-in twin under the same policy and to
the built-in twin in float32. The FLOP count of an epoch (matrix products only, forward +
backward = 3x forward) is compared with this machine's peak in the policy's compute dtype,
measured in the same run as the median rate of a 2048x2048 matmul. With `--xla` every variant
also runs compiled by XLA (`jit_compile=True`), on both sides, and the ratios name their reference.

    python bench/recurrent.py [--rounds 5] [--cells rnn lstm gru] [--dtype-policies float32 mixed_bfloat16] [--xla]
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
from zoo import training  # noqa: E402

STEPS, AXES, UNITS, BATCH, WINDOWS, CLASSES = 150, 3, 128, 32, 1472, 6
GATES = {"rnn": 1, "lstm": 4, "gru": 3}
COMPUTE_DTYPES = {"float32": "float32", "mixed_bfloat16": "bfloat16"}


def epoch_flops(cell: str) -> float:
    """Multiply-adds x 2 of the matrix products of one training epoch (3x the forward pass)."""
    recurrent = 2 * STEPS * GATES[cell] * UNITS * (AXES + UNITS)
    head = 2 * (UNITS * UNITS + UNITS * CLASSES)
    return 3 * WINDOWS * (recurrent + head)


def peak_flops(dtype: str, repeats: int = 10) -> float:
    a = tf.cast(tf.random.normal((2048, 2048)), dtype)
    tf.matmul(a, a).numpy()
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        tf.matmul(a, a).numpy()
        rates.append(2 * 2048**3 / (time.perf_counter() - start))
    return statistics.median(rates)


def epoch_runner(name: str, policy: str, xla: bool, x: np.ndarray, y: np.ndarray):
    model = zoo.get(name, preset="course", dtype_policy=policy)
    model.jit_compile = xla
    timings = []

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            timings.append(time.perf_counter() - self.start)

    batches = training.epoch_batches(x, y, BATCH, seed=0)  # fed as zoo.training.fit feeds

    def epoch() -> float:
        model.fit(batches, epochs=1, shuffle=False, verbose=0, callbacks=[Timer()])
        return timings[-1]

    epoch()  # tracing
    return epoch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cells", nargs="+", choices=list(GATES), default=list(GATES))
    parser.add_argument("--dtype-policies", nargs="+", choices=list(COMPUTE_DTYPES),
                        default=["float32"])
    parser.add_argument("--xla", action="store_true", help="also run every variant under XLA")
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(WINDOWS, STEPS, AXES)).astype("float32")
    y = np.eye(CLASSES, dtype="float32")[rng.integers(0, CLASSES, WINDOWS)]
    policies = list(dict.fromkeys(["float32", *args.dtype_policies]))  # float32: the reference
    compilers = [False, True] if args.xla else [False]
    variants = [(f"{prefix}{cell}", policy, xla) for cell in args.cells for policy in policies
                for xla in compilers for prefix in ("", "keras_")]
    runners = {variant: epoch_runner(*variant, x, y) for variant in variants}
    seconds: dict[tuple[str, str, bool], list[float]] = {variant: [] for variant in variants}
    peaks: dict[str, list[float]] = {policy: [] for policy in policies}
    for round_ in range(args.rounds):
        for policy in policies:
            peaks[policy].append(peak_flops(COMPUTE_DTYPES[policy]))
        for variant in variants:
            seconds[variant].append(runners[variant]())
        print(f"round {round_ + 1}: " + ", ".join(
            f"{name}/{policy}{'/XLA' if xla else ''} {seconds[name, policy, xla][-1]:.2f}s"
            for name, policy, xla in variants), flush=True)
    peak = {policy: statistics.median(rates) for policy, rates in peaks.items()}
    print(f"\n{platform.processor() or platform.machine()}, TF {tf.__version__}, Keras {keras.__version__}; "
          "measured peak (2048^2 matmul, median): " + ", ".join(
              f"{COMPUTE_DTYPES[p]} {rate / 1e9:.0f} GFLOP/s" for p, rate in peak.items()))
    print("| cell | policy | XLA | zoo s/epoch | Keras s/epoch | zoo / Keras | "
          "zoo / Keras float32 without XLA | GFLOP/epoch | zoo % of peak | Keras % of peak |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for cell in args.cells:
        reference = statistics.median(seconds[f"keras_{cell}", "float32", False])  # Keras' default
        for policy in policies:
            for xla in compilers:
                ours = statistics.median(seconds[cell, policy, xla])
                theirs = statistics.median(seconds[f"keras_{cell}", policy, xla])
                flops = epoch_flops(cell)
                print(f"| {cell} | {policy} | {'yes' if xla else 'no'} | {ours:.2f} | {theirs:.2f} | "
                      f"{ours / theirs:.2f} | {ours / reference:.2f} | {flops / 1e9:.1f} | "
                      f"{100 * flops / ours / peak[policy]:.1f} | {100 * flops / theirs / peak[policy]:.1f} |")


if __name__ == "__main__":
    main()
