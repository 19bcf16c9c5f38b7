"""Builds a shipped weight set from a finished `zoo train` run: the command a set's card records.

    zoo train lstm --data ../shared/data/har/usc_had.h5 --seed 0 --run-dir runs/weights/lstm
    python bench/weights.py lstm --tag usc_had --run-dir runs/weights/lstm \
        --data ../shared/data/har/usc_had.h5

It loads the run (`zoo.get(NAME, weights=RUN_DIR)`), measures it on the data's test split (the
validation split where the data has no test split, as the embedded photographs), stores the
weights as float16 when that leaves every measured metric unchanged to 4 decimals (float32
otherwise; `--storage float16` stores float16 anyway, and the card then records the float16
copy's metrics, the figures a user gets, beside the float32 ones), keeps the outputs of 8 fixed
inputs beside them, and writes the card into the family's `zoo/<family>/weights/` (see
`zoo.weights`).

A final model trained on every example (`zoo train lstm --load include_test=true ...`) has no
held-out split: its card quotes its recipe's cross-validation (`--cross-validation FILE`, written
by `python bench/har.py loso --json FILE`) and records, as `training_metrics`, what the set
scores on its own training windows.
"""

from __future__ import annotations

import argparse
import json
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


# A card's split name -> the `Splits` attribute suffix.
SPLITS = {"test": "test", "validation": "val", "training": "train"}


def measured_split(splits) -> str:
    """The split a set is measured on: test, else validation, else (a final model trained on
    every example, whose figure for new data is a cross-validation's) its own training data."""
    for split in ("test", "validation"):
        x = getattr(splits, f"x_{SPLITS[split]}")
        if x is not None and len(x):
            return split
    return "training"


def measure(model, splits, split: str) -> dict[str, float]:
    """Keras' metrics on `split` ("test", "validation" or "training")."""
    values = model.evaluate(getattr(splits, f"x_{SPLITS[split]}"),
                            getattr(splits, f"y_{SPLITS[split]}"),
                            batch_size=256, verbose=0, return_dict=True)
    return {name: round(float(value), 6) for name, value in values.items()}


def cross_validated(path: Path, cell: str, record: dict) -> dict:
    """`cell`'s summary in a `bench/har.py loso --json` file, with its headline metrics; refused
    unless its folds were trained with the run's recipe and schedule (`record`)."""
    summary = json.loads(path.read_text())[cell]
    if (summary["hyperparameters"] != record["hyperparameters"]
            or (summary["epochs"] or record["fit"]["epochs"]) != record["epochs_trained"]):
        raise SystemExit(f"{path}: {cell}'s cross-validation trained another recipe or schedule "
                         f"({summary['recipe']}) than {record['hyperparameters']}, "
                         f"{record['epochs_trained']} epochs")
    subjects = sorted(int(s) for s in summary["seeds"][0]["subject_accuracy"])
    seeds = len(summary["seeds"])
    return {
        "scheme": f"leave-one-subject-out cross-validation over subjects "
                  f"{subjects[0]}-{subjects[-1]} (accuracy: the mean over subjects, each scored "
                  f"by a model of this recipe trained on all the others; {seeds} "
                  f"seed{'s' if seeds > 1 else ''})",
        # The final set's data: the same subjects, none held out.
        "trained_on": f"every window of subjects {subjects[0]}-{subjects[-1]}, the file's test "
                      "subjects included (load option include_test)",
        "metrics": {"accuracy": round(summary["mean_subject_accuracy"], 6),
                    "macro_f1": round(summary["macro_f1"], 6),
                    "worst_subject_accuracy": round(summary["worst_subject"]["accuracy"], 6)},
        **summary,
    }


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
    parser.add_argument("--cross-validation", type=Path, metavar="JSON",
                        help="for a run trained on every example: the figures of its recipe's "
                             "cross-validation (bench/har.py loso --json), which the card quotes")
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
    split = measured_split(splits)
    if (split == "training") != bool(args.cross_validation):
        raise SystemExit("a set trained on every example needs --cross-validation for its "
                         "figure, and only such a set takes one")
    metrics = measure(model, splits, split)
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
    check_inputs = getattr(splits, f"x_{SPLITS[split]}")[:8]
    with tempfile.TemporaryDirectory() as scratch:  # does float16 storage change a metric?
        weights.write_set(model, args.name, args.tag, {**fields, "metrics_float32": metrics},
                          scratch, float16=True)
        os.environ[weights.PATH_VARIABLE] = scratch
        half = measure(zoo.get(args.name, weights=args.tag), splits, split)
        del os.environ[weights.PATH_VARIABLE]
    print(f"{args.name}.{args.tag} stored as float16 would measure {half}")
    unchanged = all(np.isclose(half[key], metrics[key], atol=5e-5) for key in metrics)
    float16 = args.storage == "float16" or (args.storage == "auto" and unchanged)
    if float16:
        fields["metrics_float32"] = metrics
        fields["metrics"] = half
    if args.cross_validation:
        # The card's figure is the recipe's on people it did not see; what the stored set
        # scores on its own training windows (`zoo evaluate --splits train` reproduces it)
        # goes beside it. The fold models were float32: the figure holds for either storage.
        validated = cross_validated(args.cross_validation, entry.weights_from or args.name,
                                    record)
        fields["data"]["measured_on"] = validated["scheme"]
        fields["data"]["trained_on"] = validated["trained_on"]
        fields["training_metrics"] = fields["metrics"]
        fields["cross_validation"] = validated
        fields["metrics"] = validated["metrics"]
        if float16:
            fields["metrics_float32"] = validated["metrics"]
    card = weights.write_set(model, args.name, args.tag, fields, float16=float16,
                             check_inputs=check_inputs)
    print(f"{args.name}.{args.tag}: {split} {metrics} ({'float16' if float16 else 'float32'}) "
          f"-> {card}")


if __name__ == "__main__":
    main()
