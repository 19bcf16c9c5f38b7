"""Fine-tuning to two classes against training from scratch, on the same few images.

    python bench/finetune.py [--name cifar_airbench] [--weights cifar10] [--classes cat dog]
                             [--train 500] [--held-out 500] [--epochs N] [--batch-size B]
                             [--dtype-policy float32] [--seed 0] [--runs finetune scratch]
                             [--data ../shared/data/cifar10/train] [--run-root DIR]

The held-out images are ones the set never trained on: for each class, the first `--held-out`
files (sorted by name) of `DATA/<class>/` among the images its card says it held out (its
loader's `validation_size` and split seed, `zoo.convnets.data.split_indices`); the training
images are the first `--train` files of the class among the others. Two runs of the same
entry, both with `num_classes` set to the number of classes, the entry's epochs and batch size:
- finetune: `zoo.get(NAME, weights=WEIGHTS, num_classes=K)`: the set's weights, a fresh head;
- scratch: `zoo.get(NAME, num_classes=K)`: fresh weights everywhere.
Each is trained with `zoo.training.fit` (held-out accuracy logged after every epoch, no
figures), then scored on the held-out images. Prints one Markdown table row per run: held-out
accuracy and macro-F1, and wall seconds for building (loading) and for `fit`.

Both runs fit the same batches in the same order (seed `--seed`). `--dtype-policy float32`
by default: where the CPU has no bfloat16 units, TensorFlow emulates them (about 15x slower).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import zoo  # noqa: E402
from zoo import classification, training  # noqa: E402
from zoo.convnets import data  # noqa: E402
from zoo.convnets.readers import list_image_folder  # noqa: E402
from zoo.data import Splits  # noqa: E402
from zoo.workflow.using import split_seed  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10" / "train"


def set_held_out(args: argparse.Namespace) -> set[Path]:
    """The images of `args.data` that the set `args.weights` held out, never trained on."""
    card = zoo.weights.card(args.name, args.weights)
    files, _ = list_image_folder(args.data, card["class_names"])  # the loader's file order
    _, held_out = data.split_indices(len(files), card["data"]["load_options"]["validation_size"],
                                     split_seed(card))
    return {Path(path).resolve() for path in files.paths[held_out]}


def link_folders(source: Path, classes: list[str], count: int, target: Path,
                 take: Callable[[Path], bool]) -> Path:
    """`target/<class>/` holding links to the first `count` files (sorted by name) of
    `source/<class>/` that `take`: a class-folder tree of just those images, not copied."""
    for name in classes:
        files = sorted(p for p in (source / name).iterdir()
                       if p.is_file() and p.suffix.lower() in data.IMAGE_SUFFIXES)
        chosen = [path for path in files if take(path.resolve())][:count]
        if len(chosen) < count:
            sys.exit(f"{source / name} has {len(chosen)} such images; {count} are needed")
        (target / name).mkdir(parents=True)
        for path in chosen:
            (target / name / path.name).symlink_to(path.resolve())
    return target


def read(args: argparse.Namespace, scratch: Path) -> Splits:
    """The training and held-out images as `Splits` (held-out as the validation split)."""
    classes = sorted(args.classes)  # the order a class-folder tree's labels take
    never_trained_on = set_held_out(args)
    train = link_folders(args.data, classes, args.train, scratch / "train",
                         lambda path: path not in never_trained_on)
    held_out = link_folders(args.data, classes, args.held_out, scratch / "held_out",
                            never_trained_on.__contains__)
    x_train, train_labels = data.read_image_folder(train, classes)
    x_val, val_labels = data.read_image_folder(held_out, classes)
    one_hot = np.eye(len(classes), dtype=np.float32)
    return Splits(x_train=x_train, y_train=one_hot[train_labels], x_val=x_val,
                  y_val=one_hot[val_labels],
                  info={"source": str(args.data), "classes": classes,
                        "validation": f"{args.held_out} images of each class that the "
                                      f"{args.weights} set held out"})


def run(kind: str, args: argparse.Namespace, splits: Splits, run_root: Path) -> str:
    """Builds (`finetune`: loads) and trains one model; its Markdown table row."""
    classes = len(splits.info["classes"])
    weights = {"weights": args.weights} if kind == "finetune" else {}
    training.set_seed(args.seed)
    start = time.perf_counter()
    model = zoo.get(args.name, num_classes=classes, dtype_policy=args.dtype_policy, **weights)
    built = time.perf_counter() - start
    start = time.perf_counter()
    training.fit(model, splits, run_root / kind, epochs=args.epochs, batch_size=args.batch_size,
                 verbose=0, overwrite=True)
    fitted = time.perf_counter() - start
    predicted = model.predict(splits.x_val, batch_size=256, verbose=0).argmax(-1)
    matrix = classification.confusion_matrix(splits.y_val.argmax(-1), predicted, classes)
    accuracy = np.trace(matrix) / matrix.sum()
    source = f"`{args.weights}` set, fresh head" if weights else "fresh weights"
    return (f"| {kind} | {args.name} | {source} | {len(splits.x_train)} | {args.epochs} | "
            f"{accuracy:.4f} | {classification.macro_f1(matrix):.4f} | {built:.1f} | "
            f"{fitted:.1f} |")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="cifar_airbench")
    parser.add_argument("--weights", default="cifar10", help="the set (or path) to fine-tune")
    parser.add_argument("--classes", nargs="+", default=["cat", "dog"])
    parser.add_argument("--train", type=int, default=500, help="training images per class")
    parser.add_argument("--held-out", type=int, default=500,
                        help="held-out images per class, among those the set held out")
    parser.add_argument("--epochs", type=int, help="default: the entry's")
    parser.add_argument("--batch-size", type=int, help="default: the entry's")
    parser.add_argument("--dtype-policy", default="float32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--runs", nargs="+", choices=("finetune", "scratch"),
                        default=["finetune", "scratch"])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA,
                        help="a class-folder tree: DATA/<class>/*.jpg")
    parser.add_argument("--run-root", type=Path,
                        help="keep the run directories here (default: a temporary folder)")
    args = parser.parse_args(argv)
    fit = zoo.get_entry(args.name).fit_settings()
    args.epochs = args.epochs or fit["epochs"]
    args.batch_size = args.batch_size or fit["batch_size"]
    with tempfile.TemporaryDirectory(prefix="zoo-finetune-") as scratch:
        splits = read(args, Path(scratch))
        run_root = args.run_root or Path(scratch) / "runs"
        print(f"{len(splits.x_train)} training and {len(splits.x_val)} held-out images of "
              f"{', '.join(splits.info['classes'])} from {args.data}; batch {args.batch_size}, "
              f"{args.dtype_policy}, seed {args.seed}", flush=True)
        print("\n| run | entry | start | training images | epochs | held-out accuracy | "
              "held-out macro-F1 | build s | fit s |")
        print("|---|---|---|---|---|---|---|---|---|", flush=True)
        for kind in args.runs:
            print(run(kind, args, splits, run_root), flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # zoo's progress lines
    main()
