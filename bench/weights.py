"""Builds a shipped weight set from a finished `zoo train` run: the command a set's card records.

    zoo train lstm --data ../shared/data/har/usc_had.h5 --seed 0 --run-dir runs/weights/lstm
    python bench/weights.py lstm --tag usc_had --run-dir runs/weights/lstm \
        --data ../shared/data/har/usc_had.h5

It loads the run (`zoo.get(NAME, weights=RUN_DIR)`), measures it on the data's test split (the
validation split where the data has no test split, as the embedded photographs), stores the
weights as float16 when that leaves every measured metric unchanged to 4 decimals (float32
otherwise; `--storage float16` stores float16 anyway, and the card then records the float16
copy's metrics, the figures a user gets, beside the float32 ones), keeps the outputs of 8 fixed inputs beside them, and writes the card into the
family's `zoo/<family>/weights/` (see `zoo.weights`).
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import zoo  # noqa: E402
from zoo import runs, weights  # noqa: E402
from zoo.workflow import using  # noqa: E402

# What each family's data is and the terms it comes under, for the cards.
LICENCES = {
    "recurrent": "USC-HAD (Zhang & Sawchuk, UbiComp 2012), released by USC for research; cite "
                 "the paper",
    "autoencoder": "photographs shipped with matplotlib and scikit-image, under those packages' "
                   "sample-data terms",
    "convnets": "CIFAR-10 (Krizhevsky 2009); cite the technical report",
}


def measure(model, splits) -> tuple[str, dict[str, float]]:
    """The split measured (test, else validation) and Keras' metrics on it."""
    x, y, split = splits.x_test, splits.y_test, "test"
    if x is None or not len(x):
        x, y, split = splits.x_val, splits.y_val, "validation"
    values = model.evaluate(x, y, batch_size=256, verbose=0, return_dict=True)
    return split, {name: round(float(value), 6) for name, value in values.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--tag", required=True)
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--data", help="the run's data (default: the entry's embedded data)")
    parser.add_argument("--load", action="append", default=[], metavar="KEY=INT",
                        help="the loader's options the run used (e.g. validation_size=5000), "
                             "where its record lacks them")
    parser.add_argument("--split-seed", type=int,
                        help="the seed the run's held-out split was drawn with, where its "
                             "record lacks data.split_seed (default: the run's seed, as zoo "
                             "train draws it)")
    parser.add_argument("--storage", choices=("auto", "float16", "float32"), default="auto",
                        help="auto: float16 only where no metric moves")
    parser.add_argument("--train-command", required=True,
                        help="the zoo train command that wrote --run-dir, for the card")
    args = parser.parse_args()

    entry = zoo.get_entry(args.name)
    record = runs.RunDirectory(args.run_dir).finished_record(args.name)
    model = zoo.get(args.name, weights=str(args.run_dir))
    options = {**record["data"].get("load_options", {}),
               **{key: int(value) for key, _, value in (pair.partition("=") for pair in args.load)}}
    split_seed = using.split_seed(record) if args.split_seed is None else args.split_seed
    splits = entry.task.load(args.data, seed=split_seed, **options)
    split, metrics = measure(model, splits)
    source = record["data"].get("source")
    if source and Path(source).exists():  # a local path says nothing elsewhere: its name does
        source = Path(source).name
    this = " ".join(shlex.quote(word) for word in ["python", "bench/weights.py", *sys.argv[1:]])
    fields = {
        "data": {"source": source, "measured_on": f"the {split} split",
                 "validation": record["data"].get("validation"), "load_options": options,
                 "split_seed": split_seed},
        "licence": LICENCES[entry.family],
        "recipe": {"epochs": record["epochs_trained"],
                   **{key: record[key] for key in ("preset", "hyperparameters", "seed", "fit")}},
        "metrics": metrics,
        "command": f"{args.train_command} && {this}",
    }
    if record["data"].get("classes"):
        fields["class_names"] = record["data"]["classes"]
    check_inputs = (splits.x_test if split == "test" else splits.x_val)[:8]
    with tempfile.TemporaryDirectory() as scratch:  # does float16 storage change a metric?
        weights.write_set(model, args.name, args.tag, {**fields, "metrics_float32": metrics},
                          scratch, float16=True)
        os.environ[weights.PATH_VARIABLE] = scratch
        _, half = measure(zoo.get(args.name, weights=args.tag), splits)
        del os.environ[weights.PATH_VARIABLE]
    print(f"{args.name}.{args.tag} stored as float16 would measure {half}")
    unchanged = all(np.isclose(half[key], metrics[key], atol=5e-5) for key in metrics)
    float16 = args.storage == "float16" or (args.storage == "auto" and unchanged)
    if float16:
        fields["metrics_float32"] = metrics
        fields["metrics"] = half
    card = weights.write_set(model, args.name, args.tag, fields, float16=float16,
                             check_inputs=check_inputs)
    print(f"{args.name}.{args.tag}: {split} {metrics} ({'float16' if float16 else 'float32'}) "
          f"-> {card}")


if __name__ == "__main__":
    main()
