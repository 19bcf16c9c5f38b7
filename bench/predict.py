"""`zoo predict`'s conv-net path against `model.predict` on the same images, side by side.

    python bench/predict.py cifar_airbench --weights cifar10 --per-class 200 --rounds 3

Takes the first `--per-class` images of each class folder under `--data` (2,000 by default),
loads the weight set as `zoo predict` does (its default dtype policy), then times, interleaved
for `--rounds` rounds after one warm-up of each:

- zoo: `zoo.convnets.predict.predict_images` on the files, what `zoo predict` runs (decoding,
  resizing, batching, the per-image rows included);
- model.predict: `model.predict` on the same images decoded beforehand (decoding not timed).

Prints each round's images/s, the medians and their ratio (zoo / model.predict).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from zoo import weights  # noqa: E402
from zoo.convnets.data import IMAGE_SUFFIXES  # noqa: E402
from zoo.convnets.predict import BATCH_SIZE, predict_images, read_batch  # noqa: E402


def first_images(root: Path, per_class: int) -> list[Path]:
    """The first `per_class` images (sorted by name) of each class folder under `root`."""
    paths = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        paths += files[:per_class]
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", default="cifar_airbench")
    parser.add_argument("--weights", default="cifar10")
    parser.add_argument("--data", type=Path, default=Path("../shared/data/cifar10/train"))
    parser.add_argument("--per-class", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline-batch", type=int, default=None,
                        help="model.predict's batch_size (default Keras' 32)")
    args = parser.parse_args()

    paths = first_images(args.data, args.per_class)
    model = weights.load(args.name, args.weights)
    images, kept, refused = read_batch(paths)
    assert not refused, refused
    print(f"{args.name} --weights {args.weights}: {len(paths)} images from {args.data}, "
          f"dtype policy {model.dtype_policy.name}, zoo batch {BATCH_SIZE}, model.predict batch "
          f"{args.baseline_batch or 32}; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs")

    def zoo_predict() -> np.ndarray:
        return np.array([[float(v) for v in list(p.row.values())[2:]]
                         for p in predict_images(model, paths)])

    def keras_predict() -> np.ndarray:
        return model.predict(images, batch_size=args.baseline_batch, verbose=0)

    # Warm-up: traces the predict functions (a full batch and a shorter last one).
    predict_images(model, paths[:BATCH_SIZE + 7])
    model.predict(images[:BATCH_SIZE + 7], batch_size=args.baseline_batch, verbose=0)
    rates: dict[str, list[float]] = {"zoo": [], "model.predict": []}
    outputs = {}
    for round_ in range(args.rounds):
        order = [("zoo", zoo_predict), ("model.predict", keras_predict)]
        for name, run in order if round_ % 2 == 0 else order[::-1]:  # interleaved
            start = time.perf_counter()
            outputs[name] = run()
            rates[name].append(len(paths) / (time.perf_counter() - start))
        print(f"round {round_ + 1}: zoo {rates['zoo'][-1]:.1f} images/s, model.predict "
              f"{rates['model.predict'][-1]:.1f} images/s", flush=True)
    difference = float(np.abs(outputs["zoo"] - np.asarray(outputs["model.predict"])).max())
    zoo_rate, keras_rate = (statistics.median(rates[k]) for k in ("zoo", "model.predict"))
    print(f"median of {args.rounds}: zoo {zoo_rate:.1f} images/s, model.predict "
          f"{keras_rate:.1f} images/s, ratio {zoo_rate / keras_rate:.2f}; largest probability "
          f"difference {difference:.2g}")


if __name__ == "__main__":
    main()
