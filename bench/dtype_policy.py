"""Seconds per training step, float32 against mixed_bfloat16, with achieved GFLOP/s and share of peak.

What it measures, in one process:

- For each model (`--models`, default sparse_autoencoder lstm cifar_airbench) and each dtype
  policy, the entry is built by `zoo.get(name, dtype_policy=...)` with its defaults (same seed,
  same weights), fed synthetic inputs shaped by its task's export signature, at the entry's
  batch size, and traced by one untimed step. Then rounds (`--rounds`) run the variants
  INTERLEAVED, A B A B ...: each times `--steps` `train_on_batch` calls. The table gives the
  median seconds per step, the ratio mixed/float32 and the seconds per epoch (steps per epoch
  from the entry's usual data size, EPOCH_EXAMPLES).
- FLOPs per training step are counted analytically by hand formulas, forward multiply-adds x 2
  of every Dense, Conv2D and recurrent matrix product (`layer_flops`), times 3 for forward plus
  backward (the weight and input gradients each cost one forward). Elementwise ops, batch norm,
  pooling and softmax are not counted, so GFLOP/s is a lower bound of the work done.
- Peak: measured IN THE SAME RUN, in each dtype, interleaved with the rounds: the median rate of
  a 2048x2048 matmul and of a 3x3 SAME conv (256x32x32x64 -> 128). "share of peak" divides a
  model's GFLOP/s by the conv peak of the same dtype (models with a Conv2D) or the matmul peak
  (dense and recurrent models, two_layer_fc included).

Options: `--xla` also times the conv nets with `jit_compile=True` (as extra variants);
`--intra-threads N` / `--inter-threads N` set TensorFlow's thread pools before the first op
(0: TensorFlow's default). Inputs are random, so losses are meaningless; only time is measured.

    python bench/dtype_policy.py [--rounds 5] [--steps 5] [--models lstm cifar_airbench] [--xla]
    python bench/dtype_policy.py --rounds 1 --steps 1 --models sparse_autoencoder   # smoke
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

POLICIES = ("float32", "mixed_bfloat16")
CONV_FAMILY = "convnets"
# Training examples per epoch of each family's usual data (for s/epoch only).
EPOCH_EXAMPLES = {"autoencoder": 10_240, "recurrent": 1_472, "convnets": 49_000}


def layer_flops(layer: keras.layers.Layer, input_shape: tuple, output_shape: tuple) -> float:
    """Forward FLOPs (2 x multiply-adds) of one example through `layer`'s matrix products."""
    if isinstance(layer, keras.layers.Conv2D):
        kernel = np.prod(layer.kernel.shape[:-1])  # kh * kw * C_in
        return 2.0 * kernel * np.prod(output_shape[1:])
    if isinstance(layer, keras.layers.Dense):
        return 2.0 * np.prod(layer.kernel.shape)
    return 0.0


def count_flops(model: keras.Model, x: np.ndarray) -> float:
    """Forward+backward FLOPs of one training example (3x forward), by hand formulas: Dense and
    Conv2D from their kernels (shapes recorded by a forward pass), recurrent cells as
    steps x 2 x (input + units) x gates x units."""
    total = 0.0
    shapes = {}

    def hook(layer):
        call = layer.call

        def recorded(inputs, *args, **kwargs):
            out = call(inputs, *args, **kwargs)
            shapes[id(layer)] = (tuple(inputs.shape), tuple(out.shape))
            return out

        return recorded

    layers = list(model._flatten_layers(include_self=False))
    originals = {}
    for layer in layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
            originals[id(layer)] = layer.call
            layer.call = hook(layer)
    try:
        model(x[:1], training=False)
    finally:
        for layer in layers:
            if id(layer) in originals:
                layer.call = originals[id(layer)]
    for layer in layers:
        if id(layer) in shapes:
            total += layer_flops(layer, *shapes[id(layer)])
        cell = getattr(layer, "cell", None)
        if cell is not None and hasattr(cell, "recurrent_kernel") and cell.built:
            inputs, width = cell.kernel.shape
            units = cell.recurrent_kernel.shape[0]
            steps = _recurrent_steps(model, x)
            total += 2.0 * steps * (inputs + units) * width
    return 3.0 * total


def _recurrent_steps(model: keras.Model, x: np.ndarray) -> int:
    steps = x.shape[1]
    pool = getattr(model, "pool_steps", 1) or 1
    return steps // pool


def peak(dtype: str, repeats: int = 5) -> dict[str, float]:
    """GFLOP/s of a 2048x2048 matmul and a 3x3 conv (256x32x32x64 -> 128, SAME) in `dtype`."""
    a = tf.cast(tf.random.normal((2048, 2048)), dtype)
    images = tf.cast(tf.random.normal((256, 32, 32, 64)), dtype)
    kernel = tf.cast(tf.random.normal((3, 3, 64, 128)), dtype)
    rates = {"matmul": [], "conv": []}
    for _ in range(repeats + 1):
        start = time.perf_counter()
        tf.matmul(a, a).numpy()
        rates["matmul"].append(2 * 2048**3 / (time.perf_counter() - start) / 1e9)
        start = time.perf_counter()
        tf.nn.conv2d(images, kernel, 1, "SAME").numpy()
        rates["conv"].append(2 * 256 * 32 * 32 * 128 * 9 * 64 / (time.perf_counter() - start) / 1e9)
    return {op: statistics.median(values[1:]) for op, values in rates.items()}  # first: warm-up


def variants(args: argparse.Namespace) -> list[tuple[str, str, bool]]:
    import zoo

    chosen = []
    for name in args.models:
        for policy in POLICIES:
            chosen.append((name, policy, False))
        if args.xla and zoo.get_entry(name).family == CONV_FAMILY:
            chosen += [(name, policy, True) for policy in POLICIES]
    return chosen


def prepare(name: str, policy: str, xla: bool, batch_limit: int | None):
    import zoo
    from zoo import training

    entry = zoo.get_entry(name)
    training.set_seed(0)
    model = zoo.get(name, dtype_policy=policy)
    (spec,) = entry.task.endpoints(model)["serve"][1]
    batch = entry.fit_settings()["batch_size"]
    if batch_limit:
        batch = min(batch, batch_limit)
    rng = np.random.default_rng(0)
    shape = (batch, *spec.shape[1:])
    if spec.dtype.name == "uint8":
        x = rng.integers(0, 256, shape, dtype=np.uint8)
    else:
        x = rng.uniform(0.1, 0.9, shape).astype("float32")
    classes = getattr(model, "num_classes", None)
    y = None if classes is None else np.eye(classes, dtype="float32")[np.arange(batch) % classes]
    training.adapt_preprocessing(model, x)
    if xla:
        model.jit_compile = True
        model.make_train_function(force=True)
    flops = count_flops(model, x) * batch
    model.train_on_batch(x, y)  # trace
    # The peak a model is held against: the conv's where it convolves, else the matmul's.
    convolves = any(isinstance(layer, keras.layers.Conv2D) for layer in model._flatten_layers())
    return {"model": model, "x": x, "y": y, "batch": batch, "flops": flops,
            "family": entry.family, "op": "conv" if convolves else "matmul"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=5, help="training steps timed per round")
    parser.add_argument("--models", nargs="+", default=["sparse_autoencoder", "lstm", "cifar_airbench"])
    parser.add_argument("--xla", action="store_true", help="also time conv nets with jit_compile=True")
    parser.add_argument("--intra-threads", type=int, default=0)
    parser.add_argument("--inter-threads", type=int, default=0)
    parser.add_argument("--batch-limit", type=int, help="cap the batch size (smoke runs)")
    args = parser.parse_args()
    tf.config.threading.set_intra_op_parallelism_threads(args.intra_threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.inter_threads)

    runs = {variant: prepare(*variant, args.batch_limit) for variant in variants(args)}
    seconds = {variant: [] for variant in runs}
    peaks = {policy: {"matmul": [], "conv": []} for policy in POLICIES}
    for round_ in range(args.rounds):
        for policy, dtype in zip(POLICIES, ("float32", "bfloat16")):
            for op, rate in peak(dtype).items():
                peaks[policy][op].append(rate)
        for variant, run in runs.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                run["model"].train_on_batch(run["x"], run["y"])
            seconds[variant].append((time.perf_counter() - start) / args.steps)
        print(f"round {round_ + 1}: " + ", ".join(
            f"{n}/{p}{'/xla' if j else ''} {seconds[(n, p, j)][-1]:.4f} s" for n, p, j in runs),
            flush=True)

    peak_median = {p: {op: statistics.median(v) for op, v in ops.items()} for p, ops in peaks.items()}
    print(f"\nthreads: intra {args.intra_threads or 'default'}, inter {args.inter_threads or 'default'}; "
          f"{args.rounds} rounds x {args.steps} steps; FLOPs by hand formulas (Dense, Conv2D, "
          "recurrent matmuls; x3 for training)")
    print("\n| peak (same run, median) | float32 GFLOP/s | bfloat16 GFLOP/s | ratio |")
    print("|---|---|---|---|")
    for op in ("matmul", "conv"):
        f32, bf16 = peak_median["float32"][op], peak_median["mixed_bfloat16"][op]
        label = "matmul 2048x2048" if op == "matmul" else "conv 3x3 256x32x32x64->128"
        print(f"| {label} | {f32:.0f} | {bf16:.0f} | {bf16 / f32:.2f} |")
    print("\n| model | policy | XLA | batch | s/step (median) | x float32 | s/epoch | GFLOP/step | "
          "GFLOP/s | share of peak |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (name, policy, xla), run in runs.items():
        step = statistics.median(seconds[(name, policy, xla)])
        reference = statistics.median(seconds[(name, "float32", xla)])
        rate = run["flops"] / step / 1e9
        op = run["op"]
        epoch = step * EPOCH_EXAMPLES.get(run["family"], 0) / run["batch"]
        print(f"| {name} | {policy} | {'yes' if xla else 'no'} | {run['batch']} | {step:.4f} | "
              f"{step / reference:.2f} | {epoch:.1f} | {run['flops'] / 1e9:.3f} | {rate:.1f} | "
              f"{rate / peak_median[policy][op]:.0%} of {op} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
