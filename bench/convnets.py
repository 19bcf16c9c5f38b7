"""CIFAR-10 conv nets: training seconds per epoch, validation accuracy per epoch, inference images/s.

Three modes:

    python bench/convnets.py speed [--rounds 5] [--models cifar_small cifar_airbench]
        Interleaved rounds (A B A B ...): per model, the median time of training steps at the
        entry's batch size, scaled to an epoch of 49,000 images, and the median inference
        throughput (batch 256, the exported forward pass, test-time flip included).

    python bench/convnets.py pipeline [--rounds 7] [--steps 10] [--models cifar_airbench]
        The input pipeline's share of a training step: interleaved rounds of `--steps` steps
        through `model.fit` fed by Keras' own pipeline for NumPy arrays (autotuned tf.data) and
        by zoo's (`zoo.training.epoch_batches`, as `zoo train` feeds it), against the same
        number of `train_on_batch` calls on batches already in memory. The difference is the
        time feeding adds to the steps (fit's fixed cost per call spread over `--steps`; an
        epoch of 45,000 images at batch 512 is 88 steps).

    python bench/convnets.py accuracy NAME [--preset P] [--set KEY=VALUE ...] [--epochs N]
                                           [--batch-size B] [--seed S] [--validation 5000]
                                           [--training-images N] [--run-dir runs/bench-NAME]
        A full training run with `zoo.training.fit` on the shared CIFAR-10 folder: seconds and
        held-out accuracy for every epoch, into the run directory (history.csv, log), and the
        whole run's wall time. `--training-images` trains on the first N of the training
        split only, against the same held-out images (what more training images buy).

Data: ../shared/data/cifar10 (relative to the repository), or --data PATH in any format
`zoo.convnets.data.load` reads.
"""

from __future__ import annotations

import argparse
import logging
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

import zoo  # noqa: E402
from zoo import training  # noqa: E402
from zoo.convnets import data  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10"
EPOCH_IMAGES = 49_000


class EpochClock(keras.callbacks.Callback):
    """Prints each epoch's wall-clock seconds and held-out accuracy as it ends."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        print(f"epoch {epoch + 1}: {time.perf_counter() - self.start:.0f} s, "
              f"accuracy {logs.get('accuracy', float('nan')):.4f}, "
              f"val_accuracy {logs.get('val_accuracy', float('nan')):.4f}", flush=True)


def speed(args: argparse.Namespace) -> None:
    splits = data.load(args.data, seed=0)
    models = {}
    for name in args.models:
        training.set_seed(0)
        model = zoo.get(name)
        training.adapt_preprocessing(model, splits.x_train)
        batch = zoo.get_entry(name).fit_settings()["batch_size"]
        model.train_on_batch(splits.x_train[:batch], splits.y_train[:batch])  # trace once
        model.predict(splits.x_val[:256], batch_size=256, verbose=0)
        models[name] = (model, batch)
    steps, seconds = {n: [] for n in models}, {n: [] for n in models}
    throughput = {n: [] for n in models}
    for round_ in range(args.rounds):
        for name, (model, batch) in models.items():
            start = time.perf_counter()
            for step in range(args.steps):
                first = (round_ * args.steps + step) * batch % (len(splits.x_train) - batch)
                model.train_on_batch(splits.x_train[first:first + batch],
                                     splits.y_train[first:first + batch])
            per_step = (time.perf_counter() - start) / args.steps
            steps[name].append(per_step)
            seconds[name].append(per_step * EPOCH_IMAGES / batch)
            start = time.perf_counter()
            model.predict(splits.x_val, batch_size=256, verbose=0)
            throughput[name].append(len(splits.x_val) / (time.perf_counter() - start))
        print(f"round {round_ + 1}: " + ", ".join(
            f"{n} {seconds[n][-1]:.0f} s/epoch {throughput[n][-1]:.0f} img/s" for n in models),
            flush=True)
    reference = args.models[0]
    print(f"\n| model | batch | s/step (median) | s/epoch of {EPOCH_IMAGES:,} (median) | "
          f"x {reference} | inference images/s (median) |")
    print("|---|---|---|---|---|---|")
    for name, (_, batch) in models.items():
        epoch = statistics.median(seconds[name])
        print(f"| {name} | {batch} | {statistics.median(steps[name]):.3f} | {epoch:.0f} | "
              f"{epoch / statistics.median(seconds[reference]):.2f} | "
              f"{statistics.median(throughput[name]):.0f} |")


def pipeline(args: argparse.Namespace) -> None:
    splits = data.load(args.data, seed=0)
    rows = []
    for name in args.models:
        training.set_seed(0)
        model = zoo.get(name)
        training.adapt_preprocessing(model, splits.x_train)
        batch = zoo.get_entry(name).fit_settings()["batch_size"]
        images, labels = splits.x_train[:args.steps * batch], splits.y_train[:args.steps * batch]
        in_memory = [(images[i:i + batch], labels[i:i + batch]) for i in range(0, len(images), batch)]
        feeds = {
            # What zoo.training.fit fed until 2026-11-30: Keras' own (autotuned) array pipeline.
            "Keras arrays": lambda: model.fit(images, labels, batch_size=batch, shuffle=True,
                                              verbose=0),
            "zoo epoch_batches": lambda: model.fit(
                training.epoch_batches(images, labels, batch, seed=0), shuffle=False, verbose=0),
            "in memory": lambda: [model.train_on_batch(x, y) for x, y in in_memory],
        }
        for feed in feeds.values():
            feed()  # traces
        seconds = {label: [] for label in feeds}
        for round_ in range(args.rounds):
            for label, feed in feeds.items():
                start = time.perf_counter()
                feed()
                seconds[label].append((time.perf_counter() - start) / args.steps)
            print(f"round {round_ + 1}: {name} " + ", ".join(
                f"{label} {values[-1]:.3f}" for label, values in seconds.items()) + " s/step",
                flush=True)
        bare = statistics.median(seconds["in memory"])
        for label, values in seconds.items():
            step = statistics.median(values)
            slow = sum(value > 1.25 * bare for value in values)
            rows.append(f"| {name} | {label} | {batch} | {args.steps} | {step:.3f} | "
                        f"{(step - bare) / step:.1%} | {slow} of {len(values)} |")
    print("\n| model | feeding | batch | steps | s/step (median) | share of the step not "
          "computing | rounds over 1.25x in memory |\n|---|---|---|---|---|---|---|")
    print("\n".join(rows))


def accuracy(args: argparse.Namespace) -> None:
    splits = data.load(args.data, seed=0, validation_size=args.validation)
    splits.info["load_options"] = {"validation_size": args.validation}  # as zoo train records them
    splits.info["split_seed"] = 0  # whatever --seed: zoo evaluate and bench/weights.py read it
    if args.training_images:
        if not 0 < args.training_images <= len(splits.x_train):
            raise SystemExit(f"--training-images must be in [1, {len(splits.x_train)}], "
                             f"got {args.training_images}")
        splits = dataclasses.replace(splits, x_train=splits.x_train[:args.training_images],
                                     y_train=splits.y_train[:args.training_images])
        splits.info["training_images"] = args.training_images
    entry = zoo.get_entry(args.name)
    fit = entry.fit_settings(args.preset)
    overrides = entry.parse_settings(args.set)
    for option in ("epochs", "batch_size"):
        if getattr(args, option):
            fit[option] = getattr(args, option)
    training.set_seed(args.seed)
    model = zoo.get(args.name, preset=args.preset, **overrides)
    # The run record of `zoo train`, so that the run loads by path (zoo.get(weights=RUN_DIR)).
    record = {"name": args.name, "preset": args.preset, "seed": args.seed, "data": splits.info,
              "hyperparameters": entry.resolve(args.preset, **overrides)}
    print(f"{args.name} (preset {args.preset}, {overrides}): {len(splits.x_train)} training, "
          f"{len(splits.x_val)} held-out images, {fit}", flush=True)
    start = time.perf_counter()
    history = training.fit(model, splits, args.run_dir or Path("runs") / f"bench-{args.name}", **fit,
                           callbacks=[EpochClock()], verbose=0, record=record)
    print("val_accuracy per epoch: " + ", ".join(f"{v:.4f}" for v in history["val_accuracy"]))
    print(f"wall time of the run (training, evaluations, figures): {time.perf_counter() - start:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    modes = parser.add_subparsers(dest="mode", required=True)
    timing = modes.add_parser("speed")
    timing.add_argument("--rounds", type=int, default=5)
    timing.add_argument("--steps", type=int, default=5, help="training steps timed per round")
    timing.add_argument("--models", nargs="+", default=["cifar_small", "cifar_airbench"])
    timing.set_defaults(run=speed)
    feeding = modes.add_parser("pipeline")
    feeding.add_argument("--rounds", type=int, default=7)
    feeding.add_argument("--steps", type=int, default=10, help="training steps per measurement")
    feeding.add_argument("--models", nargs="+", default=["cifar_airbench"])
    feeding.set_defaults(run=pipeline)
    full = modes.add_parser("accuracy")
    full.add_argument("name")
    full.add_argument("--preset")
    full.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                      help="a hyperparameter of the entry")
    full.add_argument("--epochs", type=int)
    full.add_argument("--batch-size", type=int)
    full.add_argument("--seed", type=int, default=0,
                      help="seeds initial weights and training order (the held-out split stays seed 0)")
    full.add_argument("--validation", type=int, default=5000, help="held-out training images")
    full.add_argument("--training-images", type=int,
                      help="train on the first N training images only (same held-out images)")
    full.add_argument("--run-dir", type=Path, help="default runs/bench-NAME")
    full.set_defaults(run=accuracy)
    args = parser.parse_args()
    args.run(args)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # zoo's progress lines
    sys.exit(main())
