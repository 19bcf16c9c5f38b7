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

    python bench/har.py cv [--cells rnn] [--folds 3] [--seeds 0] [--set KEY=VALUE ...] [--epochs N]
        Cross-validation over the TRAINING subjects only (the test subjects are never read):
        the training subjects are dealt into `--folds` groups (sorted ids, round-robin); each
        group is scored by a model trained on the others.

    python bench/har.py loso [--cells rnn lstm gru] [--seeds 0] [--set KEY=VALUE ...]
                             [--epochs N] [--json FILE] [--ensemble]
        Leave-one-subject-out cross-validation over every subject of the file (training and
        test subjects together: USC-HAD's 1-11): each subject is scored by a model trained on
        all the others. What a user with a new person's data gets; recipes are chosen on it.
        `--ensemble` also scores the cells together (the mean of their probabilities).

    Both print every subject's accuracy per seed, the confusion matrix summed over seeds, and a
    Markdown row: seeds, mean subject accuracy, worst subject, macro-F1 and the recall of each
    class (over every scored window, mean over seeds). `--set` changes hyperparameters as `zoo
    train --set` does; `--epochs` shortens the schedule for screening. Runs are kept in
    runs/bench-har/{cv,loso}-NAME-SETTINGS-RECIPEHASH-sSEED-foldK/, so a rerun (or a killed run)
    reuses or resumes them.

Data: ../shared/data/har/usc_had.h5 (relative to the repository), or --data FILE with subject
ids (`trS`, `tstS`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import multiprocessing
import os
import statistics
import sys
from concurrent import futures
from contextlib import nullcontext
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
                      overrides: dict | None = None, epochs: int | None = None) -> np.ndarray:
    """Trains entry `name` as `zoo train` does (with hyperparameter `overrides`, as `--set`, and
    `epochs` in place of the entry's); returns the class probabilities of every test window.
    A finished run in `run_dir` is reused, not trained again."""
    entry = zoo.get_entry(name)
    hyperparameters = entry.resolve(preset, **(overrides or {}))
    training.set_seed(seed)
    model = entry.build(hyperparameters)
    record = {"name": name, "preset": preset, "hyperparameters": hyperparameters, "seed": seed,
              "data": splits.info}
    fit = {**entry.fit_settings(preset), **({"epochs": epochs} if epochs else {})}
    training.fit(model, splits, run_dir, record=record, verbose=0, **fit)
    return model.predict(splits.x_test, batch_size=256, verbose=0)


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
                    name, None if preset == "strong" else preset, seed, splits, run_dir
                ).argmax(axis=1), splits)
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


def recipe_tag(name: str, overrides: dict, settings: list[str], epochs: int | None) -> str:
    """A run-directory name part: the settings as given, and a digest of the resolved recipe,
    so that changed defaults train afresh."""
    recipe = json.dumps([zoo.get_entry(name).resolve(None, **overrides), epochs], sort_keys=True)
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:8]
    given = "-".join(settings).replace("=", "") or "defaults"
    return f"{given}{f'-e{epochs}' if epochs else ''}-{digest}"


def share_the_cores(jobs: int) -> None:
    """In each of `jobs` worker processes: its share of the cores for TensorFlow's ops."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(max(1, (os.cpu_count() or 1) // jobs))
    tf.config.threading.set_inter_op_parallelism_threads(1)


def cross_validate(name: str, x: np.ndarray, y: np.ndarray, ids: np.ndarray,
                   folds: list[np.ndarray], seed: int, run_prefix: str, overrides: dict,
                   epochs: int | None, classes: list[str], source: str, jobs: int = 1) -> dict:
    """Scores every subject by a model trained on the other folds' subjects (no validation
    split: the recipe is fixed), `jobs` folds at a time in processes of their own. Returns
    per-subject accuracy, the confusion matrix pooled over the scored windows and every
    window's class probabilities (see `fold_scores`)."""
    probabilities = np.empty((len(x), len(classes)), dtype=np.float32)
    spawn = multiprocessing.get_context("spawn")  # TensorFlow does not survive a fork
    with (futures.ProcessPoolExecutor(jobs, mp_context=spawn, initializer=share_the_cores,
                                      initargs=(jobs,)) if jobs > 1 else nullcontext()) as pool:
        pending = {}
        for fold, scored in enumerate(folds):
            is_scored = np.isin(ids, scored)
            splits = Splits(
                x_train=x[~is_scored], y_train=y[~is_scored], x_val=x[:0], y_val=y[:0],
                x_test=x[is_scored], y_test=y[is_scored],
                info={"source": source, "classes": classes,
                      "validation": {"split": "none", "windows": 0},
                      "scored_subjects": [int(s) for s in scored]},
            )
            arguments = (name, None, seed, splits, RUNS / f"{run_prefix}-s{seed}-fold{fold}",
                         overrides, epochs)
            if pool is None:
                probabilities[is_scored] = train_and_predict(*arguments)
            else:
                pending[pool.submit(train_and_predict, *arguments)] = is_scored
        for done, is_scored in pending.items():
            probabilities[is_scored] = done.result()
    return fold_scores(seed, probabilities, y, ids, folds, len(classes))


def fold_scores(seed: int, probabilities: np.ndarray, y: np.ndarray, ids: np.ndarray,
                folds: list[np.ndarray], classes: int) -> dict:
    """One seed's cross-validation from each window's class probabilities (from the model that
    did not see its subject): accuracy per subject and the pooled confusion matrix."""
    actual = classification.class_indices(y)
    predicted = probabilities.argmax(axis=1)
    correct = predicted == actual
    subjects = {int(s): float(np.mean(correct[ids == s])) for s in np.concatenate(folds)}
    return {"seed": seed, "subjects": subjects, "probabilities": probabilities,
            "confusion": classification.confusion_matrix(actual, predicted, classes)}


def summarise(results: list[dict], classes: list[str]) -> dict:
    """Mean and worst subject, macro-F1 and per-class recall of the confusion matrix pooled over
    every scored window, per seed; and over seeds (means; the worst subject of any seed)."""
    per_seed = []
    for result in results:
        matrix = result["confusion"]
        recall = matrix.diagonal() / np.maximum(matrix.sum(axis=1), 1)
        worst = min(result["subjects"], key=result["subjects"].get)
        per_seed.append({
            "seed": result["seed"],
            "subject_accuracy": result["subjects"],
            "mean_subject_accuracy": statistics.mean(result["subjects"].values()),
            "worst_subject": {"subject": worst, "accuracy": result["subjects"][worst]},
            "macro_f1": classification.macro_f1(matrix),
            "recall": dict(zip(classes, recall.tolist())),
            "confusion": matrix.tolist(),
        })
    worst = min(per_seed, key=lambda seed: seed["worst_subject"]["accuracy"])
    return {
        "seeds": per_seed,
        "mean_subject_accuracy": statistics.mean(s["mean_subject_accuracy"] for s in per_seed),
        "worst_subject": {**worst["worst_subject"], "seed": worst["seed"]},
        "macro_f1": statistics.mean(s["macro_f1"] for s in per_seed),
        "recall": {c: statistics.mean(s["recall"][c] for s in per_seed) for c in classes},
    }


def report(name: str, tag: str, summary: dict, classes: list[str]) -> None:
    """Prints a cell's cross-validation: subjects per seed, then one Markdown row."""
    for seed in summary["seeds"]:
        scores = seed["subject_accuracy"]
        print(f"{name} {tag} seed {seed['seed']}: " + " ".join(
            f"{s}:{scores[s]:.1%}" for s in sorted(scores)) + f" | mean "
            f"{seed['mean_subject_accuracy']:.1%}, worst {seed['worst_subject']['accuracy']:.1%} "
            f"(subject {seed['worst_subject']['subject']}), macro-F1 {seed['macro_f1']:.3f}",
            flush=True)
    print(classification.format_confusion_matrix(
        np.sum([s["confusion"] for s in summary["seeds"]], axis=0), classes))
    worst = summary["worst_subject"]
    print(f"| {name} | {tag} | {len(summary['seeds'])} | {summary['mean_subject_accuracy']:.1%} | "
          f"{worst['accuracy']:.1%} (subject {worst['subject']}, seed {worst['seed']}) | "
          f"{summary['macro_f1']:.3f} | "
          + " ".join(f"{summary['recall'][c]:.1%}" for c in classes) + " |", flush=True)


def cv(args: argparse.Namespace) -> None:
    x, y, _, _, names, _ = data.read_windows(args.data)  # the training split only
    ids = data.read_subjects(args.data).get("trS")
    if ids is None:
        raise SystemExit(f"{args.data} needs trS (subject ids) for cross-validation on subjects")
    subjects = np.unique(ids)
    if not 2 <= args.folds <= len(subjects):
        raise SystemExit(f"--folds must be in [2, {len(subjects)}], got {args.folds}")
    folds = [subjects[start::args.folds] for start in range(args.folds)]
    for name in args.cells:
        overrides = zoo.get_entry(name).parse_settings(args.set)
        tag = recipe_tag(name, overrides, args.set, args.epochs)
        results = [cross_validate(name, x, y, ids, folds, seed, f"cv-{name}-{tag}", overrides,
                                  args.epochs, list(names), str(args.data), args.jobs)
                   for seed in args.seeds]
        report(name, tag, summarise(results, list(names)), list(names))


def loso(args: argparse.Namespace) -> None:
    subjects = data.read_subjects(args.data)
    if set(subjects) != {"trS", "tstS"}:
        raise SystemExit(f"{args.data} needs trS and tstS (subject ids) for leave-one-subject-out")
    splits = data.load(args.data, validation_fraction=0.0, include_test=True)
    ids = np.concatenate([subjects["trS"], subjects["tstS"]])
    folds = [[s] for s in np.unique(ids)]
    classes = splits.info["classes"]
    summaries, results = {}, {}
    for name in args.cells:
        overrides = zoo.get_entry(name).parse_settings(args.set)
        tag = recipe_tag(name, overrides, args.set, args.epochs)
        results[name] = [cross_validate(name, splits.x_train, splits.y_train, ids, folds, seed,
                                        f"loso-{name}-{tag}", overrides, args.epochs, classes,
                                        str(args.data), args.jobs)
                         for seed in args.seeds]
        summaries[name] = {"recipe": tag, "settings": args.set, "epochs": args.epochs,
                           "hyperparameters": zoo.get_entry(name).resolve(None, **overrides),
                           "command": " ".join(["python", "bench/har.py", *sys.argv[1:]]),
                           **summarise(results[name], classes)}
        report(name, tag, summaries[name], classes)
    if args.ensemble:
        # Each window scored by the mean of the cells' probabilities, every cell's model
        # trained without its subject (the same folds and seed).
        members = "+".join(args.cells)
        ensemble = [fold_scores(seed, np.mean([results[name][i]["probabilities"]
                                               for name in args.cells], axis=0),
                                splits.y_train, ids, folds, len(classes))
                    for i, seed in enumerate(args.seeds)]
        summaries[members] = {"members": args.cells, "settings": args.set,
                              "epochs": args.epochs, **summarise(ensemble, classes)}
        report(members, "mean probabilities", summaries[members], classes)
    if args.json:
        args.json.write_text(json.dumps(summaries, indent=2) + "\n")


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
    by_fold.set_defaults(run=cv)
    by_subject = modes.add_parser("loso", help="leave-one-subject-out cross-validation")
    by_subject.add_argument("--cells", nargs="+", default=["rnn", "lstm", "gru"])
    by_subject.add_argument("--json", type=Path, help="write the summaries here (for the cards)")
    by_subject.add_argument("--ensemble", action="store_true",
                            help="also score the mean of the cells' probabilities")
    by_subject.set_defaults(run=loso)
    for mode in (by_fold, by_subject):
        mode.add_argument("--seeds", nargs="+", type=int, default=[0])
        mode.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                          help="hyperparameters of the entry, as zoo train --set")
        mode.add_argument("--epochs", type=int, help="in place of the entry's (for screening)")
        mode.add_argument("--jobs", type=int, default=1, help="folds trained at once")
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # zoo's progress lines
    main()
