"""Activity recognition on people the model has not seen: the recurrent entries on USC-HAD.

Every run trains exactly as `zoo train NAME --data FILE --seed S [--preset P]` does (the
entry's build, `zoo.training.fit`, the loader options of the entry and preset: every training
subject for the defaults, validation subjects held out for the course preset's early stopping),
then scores windows of people who took no part in training or in choosing anything.

    python bench/har.py seeds [--cells rnn lstm gru] [--presets strong course] [--seeds 0 1 2]
        Test accuracy and macro-F1 on the file's test subjects (USC-HAD: 10 and 11) for each
        cell, preset and seed, then the mean and the worst seed per cell and preset, and the
        worst seed's confusion matrix. Runs are kept in runs/bench-har/NAME-PRESET-sSEED/, so a
        rerun (or a killed run) reuses or resumes them.

    python bench/har.py cv [--cells rnn] [--folds 3] [--seeds 0] [--set KEY=VALUE ...]
        Cross-validation over the TRAINING subjects only (the test subjects are never read):
        the training subjects are dealt into `--folds` groups (sorted ids, round-robin); each
        group is scored by a model trained on the others. Prints every subject's accuracy, the
        mean over subjects and the worst subject, per seed and over seeds; runs are kept in
        runs/bench-har/cv-NAME-SETTINGS-RECIPEHASH-sSEED-foldK/. `--set` changes
        hyperparameters of the entry (as `zoo train --set` does), so recipes are compared on
        people the model has not seen without the test split choosing anything.

    python bench/har.py loso [--cells lstm] [--preset strong] [--seed 0]
        Leave-one-subject-out cross-validation over every subject of the file (training and
        test subjects together: USC-HAD's 1-11): for each subject, train on the others (with
        validation subjects held out among them where the preset validates) and score that
        subject.

Data: ../shared/data/har/usc_had.h5 (relative to the repository), or --data FILE with subject
ids (`trS`, `tstS`).
"""

from __future__ import annotations

import argparse
import logging
import hashlib
import json
import os
import statistics
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import zoo  # noqa: E402
from zoo import classification, training  # noqa: E402
from zoo.data import Splits  # noqa: E402
from zoo.recurrent import data  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "har" / "usc_had.h5"
RUNS = Path("runs") / "bench-har"


def train_and_predict(name: str, preset: str | None, seed: int, splits: Splits, run_dir: Path,
                      overrides: dict | None = None) -> np.ndarray:
    """Trains entry `name` as `zoo train` does (with hyperparameter `overrides`, as `--set`);
    returns the predicted class of every test window."""
    entry = zoo.get_entry(name)
    hyperparameters = entry.resolve(preset, **(overrides or {}))
    training.set_seed(seed)
    model = entry.build(hyperparameters)
    record = {"name": name, "preset": preset, "hyperparameters": hyperparameters, "seed": seed,
              "data": splits.info}
    training.fit(model, splits, run_dir, record=record, verbose=0, **entry.fit_settings(preset))
    return model.predict(splits.x_test, batch_size=256, verbose=0).argmax(axis=1)


def score(predicted: np.ndarray, splits: Splits) -> tuple[float, float, np.ndarray]:
    """Test accuracy, macro-F1 and the confusion matrix (rows actual, columns predicted)."""
    actual = classification.class_indices(splits.y_test)
    matrix = classification.confusion_matrix(actual, predicted, len(splits.info["classes"]))
    return float(np.mean(predicted == actual)), classification.macro_f1(matrix), matrix


def seeds(args: argparse.Namespace) -> None:
    rows = []
    for name in args.cells:
        for preset in args.presets:
            results = []
            options = zoo.get_entry(name).load_settings(None if preset == "strong" else preset)
            for seed in args.seeds:
                splits = data.load(args.data, seed=seed, **options)
                splits.info["load_options"] = options  # recorded, as zoo train records them
                run_dir = RUNS / f"{name}-{preset}-s{seed}"
                accuracy, f1, matrix = score(train_and_predict(
                    name, None if preset == "strong" else preset, seed, splits, run_dir), splits)
                held_out = splits.info["validation"].get("subjects")
                print(f"{name} {preset} seed {seed}: test accuracy {accuracy:.4f}, macro-F1 "
                      f"{f1:.4f} (validation subjects {held_out})", flush=True)
                results.append((accuracy, f1, seed, matrix))
            worst = min(results, key=lambda result: result[0])
            rows.append(
                f"| {name} | {preset} | " + " ".join(f"{r[0]:.1%}" for r in results)
                + f" | {statistics.mean(r[0] for r in results):.1%} | {worst[0]:.1%} (seed "
                f"{worst[2]}) | {statistics.mean(r[1] for r in results):.3f} | {worst[1]:.3f} |"
            )
            print(f"worst seed of {name} {preset} (seed {worst[2]}):")
            print(classification.format_confusion_matrix(worst[3], splits.info["classes"]))
    print("\n| cell | preset | test accuracy per seed | mean | worst | macro-F1 mean | "
          "macro-F1 worst |\n|---|---|---|---|---|---|---|")
    print("\n".join(rows))


def cv(args: argparse.Namespace) -> None:
    x, y, _, _, names, _ = data.read_windows(args.data)  # the training split only
    ids = data.read_subjects(args.data).get("trS")
    if ids is None:
        raise SystemExit(f"{args.data} needs trS (subject ids) for cross-validation on subjects")
    subjects = np.unique(ids)
    if not 2 <= args.folds <= len(subjects):
        raise SystemExit(f"--folds must be in [2, {len(subjects)}], got {args.folds}")
    folds = [subjects[start::args.folds] for start in range(args.folds)]
    tag = "-".join(args.set).replace("=", "") or "defaults"
    for name in args.cells:
        overrides = zoo.get_entry(name).parse_settings(args.set)
        # Named by the resolved recipe too, so that changed defaults train afresh.
        recipe = json.dumps(zoo.get_entry(name).resolve(None, **overrides), sort_keys=True)
        digest = hashlib.sha256(recipe.encode()).hexdigest()[:8]
        per_seed = []
        for seed in args.seeds:
            scores = {}
            for fold, scored in enumerate(folds):
                is_scored = np.isin(ids, scored)
                splits = Splits(
                    x_train=x[~is_scored], y_train=y[~is_scored],
                    x_val=x[:0], y_val=y[:0],
                    x_test=x[is_scored], y_test=y[is_scored],
                    info={"source": str(args.data), "classes": list(names),
                          "validation": {"split": "none", "windows": 0},
                          "scored_subjects": [int(s) for s in scored]},
                )
                run_dir = RUNS / f"cv-{name}-{tag}-{digest}-s{seed}-fold{fold}"
                predicted = train_and_predict(name, None, seed, splits, run_dir, overrides)
                correct = predicted == classification.class_indices(splits.y_test)
                for subject in scored:
                    scores[int(subject)] = float(np.mean(correct[ids[is_scored] == subject]))
            worst = min(scores, key=scores.get)
            per_seed.append(scores)
            print(f"{name} {tag} seed {seed}: " + " ".join(
                f"{s}:{scores[s]:.1%}" for s in sorted(scores))
                + f" | mean {statistics.mean(scores.values()):.1%}, worst {scores[worst]:.1%} "
                f"(subject {worst})", flush=True)
        means = [statistics.mean(scores.values()) for scores in per_seed]
        print(f"| {name} | {tag} | " + " ".join(f"{m:.1%}" for m in means)
              + f" | {statistics.mean(means):.1%} | "
              f"{min(min(scores.values()) for scores in per_seed):.1%} |", flush=True)


def loso(args: argparse.Namespace) -> None:
    x_train, y_train, x_test, y_test, names, _ = data.read_windows(args.data)
    subjects = data.read_subjects(args.data)
    if set(subjects) != {"trS", "tstS"}:
        raise SystemExit(f"{args.data} needs trS and tstS (subject ids) for leave-one-subject-out")
    x, y = np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test])
    ids = np.concatenate([subjects["trS"], subjects["tstS"]])
    for name in args.cells:
        scores = {}
        fraction = zoo.get_entry(name).load_settings(
            None if args.preset == "strong" else args.preset)["validation_fraction"]
        for subject in np.unique(ids):
            rest = ids != subject
            held = (data.hold_out_subjects(ids[rest], y[rest].argmax(axis=1), fraction, args.seed)
                    if fraction else [])
            is_validation = np.isin(ids, held) & rest
            is_training = rest & ~is_validation
            splits = Splits(
                x_train=x[is_training], y_train=y[is_training],
                x_val=x[is_validation], y_val=y[is_validation],
                x_test=x[~rest], y_test=y[~rest],
                info={"source": str(args.data), "classes": list(names),
                      "validation": ({"split": "subjects", "subjects": held} if held
                                     else {"split": "none", "windows": 0}),
                      "test_subject": int(subject)},
            )
            run_dir = RUNS / f"loso-{name}-{args.preset}-s{args.seed}-subject{subject}"
            accuracy, f1, _ = score(train_and_predict(
                name, None if args.preset == "strong" else args.preset, args.seed, splits, run_dir),
                splits)
            scores[int(subject)] = accuracy
            print(f"{name} {args.preset}: subject {subject} accuracy {accuracy:.4f}, macro-F1 "
                  f"{f1:.4f} (validation subjects {held})", flush=True)
        worst = min(scores, key=scores.get)
        print(f"| {name} | {args.preset} | " + " ".join(f"{scores[s]:.1%}" for s in sorted(scores))
              + f" | {statistics.mean(scores.values()):.1%} | {scores[worst]:.1%} (subject "
              f"{worst}) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    modes = parser.add_subparsers(dest="mode", required=True)
    by_seed = modes.add_parser("seeds", help="test accuracy of each cell, preset and seed")
    by_seed.add_argument("--cells", nargs="+", default=["rnn", "lstm", "gru"])
    by_seed.add_argument("--presets", nargs="+", default=["strong", "course"])
    by_seed.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    by_seed.set_defaults(run=seeds)
    by_fold = modes.add_parser("cv", help="cross-validation over the training subjects")
    by_fold.add_argument("--cells", nargs="+", default=["rnn"])
    by_fold.add_argument("--folds", type=int, default=3)
    by_fold.add_argument("--seeds", nargs="+", type=int, default=[0])
    by_fold.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE")
    by_fold.set_defaults(run=cv)
    by_subject = modes.add_parser("loso", help="leave-one-subject-out cross-validation")
    by_subject.add_argument("--cells", nargs="+", default=["lstm"])
    by_subject.add_argument("--preset", default="strong")
    by_subject.add_argument("--seed", type=int, default=0)
    by_subject.set_defaults(run=loso)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # zoo's progress lines
    main()
