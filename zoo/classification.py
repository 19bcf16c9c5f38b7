"""What every classification task shares: confusion matrices, macro-F1, and the per-split report
(PNG and text) that `zoo train` and `zoo evaluate` show.

Models report accuracy and macro-F1 as Keras metrics while training (`metrics()`); the report
adds the confusion matrices, which say *which* classes are mistaken for which, and scores
macro-F1 over the classes present in each split (Keras' metric averages over every column of the
labels: the same when a split has examples of every class of the data).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from zoo import plots
from zoo.data import Splits
from zoo.files import atomic_path

__all__ = [
    "class_indices",
    "confusion_matrix",
    "format_confusion_matrix",
    "macro_f1",
    "metrics",
    "report",
    "serving_outputs",
]

REPORT_FILE = "confusion_matrices.txt"


def metrics() -> list[keras.metrics.Metric]:
    """Fresh accuracy and macro-F1 metrics for `compile`, for one-hot targets."""
    return [
        keras.metrics.CategoricalAccuracy(name="accuracy"),
        keras.metrics.F1Score(average="macro", name="macro_f1"),
    ]


def serving_outputs(probabilities: Any) -> dict[str, Any]:
    """A classifier's named export outputs: `probabilities` (N, classes) and `class_index`, the
    int64 argmax of each row, so that a served model needs no post-processing to name a class
    (the model card's `class_names[class_index]`)."""
    import tensorflow as tf

    probabilities = tf.convert_to_tensor(probabilities)
    return {"probabilities": probabilities,
            "class_index": tf.argmax(probabilities, axis=-1, output_type=tf.int64)}


def class_indices(targets: np.ndarray) -> np.ndarray:
    """Class indices from one-hot rows `(N, C)` or from indices `(N,)`."""
    targets = np.asarray(targets)
    return targets.argmax(axis=-1) if targets.ndim == 2 else targets.astype(np.int64)


def confusion_matrix(actual: np.ndarray, predicted: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts with rows the actual class and columns the predicted class."""
    matrix = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(matrix, (np.asarray(actual), np.asarray(predicted)), 1)
    return matrix


def macro_f1(matrix: np.ndarray) -> float:
    """The unweighted mean of F1 = 2 TP / (2 TP + FP + FN) over the classes present: those with
    at least one actual example (a row of `matrix` that is not all zero).

    A class absent from the data would score 0 whatever the model did, so a 10-class model
    scored on cats and dogs would be averaged over 8 zeros; its predictions of absent classes
    still count, as misses of the actual classes. A present class never predicted scores 0.

    Args:
        matrix: a confusion matrix, rows the actual class, columns the predicted one.

    Returns:
        The macro-F1 over present classes; 0 for an empty matrix.
    """
    matrix = np.asarray(matrix, np.float64)
    present = matrix.sum(axis=1) > 0
    if not present.any():
        return 0.0
    true_positives = np.diag(matrix)
    denominators = matrix.sum(axis=0) + matrix.sum(axis=1)
    scores = np.divide(
        2 * true_positives, denominators, out=np.zeros_like(true_positives), where=denominators > 0
    )
    return float(scores[present].mean())


def format_confusion_matrix(matrix: np.ndarray, class_names: Sequence[str]) -> str:
    """A plain-text table: one row per actual class, one column per predicted class."""
    corner = "actual/predicted"
    label_width = max(len(corner), *(len(name) for name in class_names))
    width = max(5, *(len(name) for name in class_names), len(str(int(np.max(matrix)))))
    header = f"{corner:>{label_width}} " + " ".join(f"{name:>{width}}" for name in class_names)
    rows = [
        f"{name:>{label_width}} " + " ".join(f"{int(count):>{width}}" for count in counts)
        for name, counts in zip(class_names, matrix)
    ]
    return "\n".join([header, *rows])


def report(
    model: keras.Model,
    splits: Splits,
    class_names: Sequence[str],
    out_dir: str | Path,
    title: str,
) -> list[Path]:
    """Confusion matrices of every split with labels, as PNGs and one text file.

    Args:
        model: the classifier, outputs `(N, len(class_names))` probabilities.
        splits: the data; every split with labels is reported.
        class_names: the data's classes in the labels' order (`splits.info["classes"]`).
        out_dir: where to write.
        title: the figures' title.

    Returns:
        The paths written: `confusion_{split}.png` per split and `confusion_matrices.txt`.
    """
    out_dir = Path(out_dir)
    paths, sections = [], []
    for split in ("train", "val", "test"):
        x, y = getattr(splits, f"x_{split}"), getattr(splits, f"y_{split}")
        if x is None or y is None or not len(x):
            continue
        predicted = np.argmax(model.predict(x, batch_size=256, verbose=0), axis=-1)
        matrix = confusion_matrix(class_indices(y), predicted, len(class_names))
        accuracy = np.trace(matrix) / matrix.sum()
        present = int((matrix.sum(axis=1) > 0).sum())
        over = f" over the {present} of {len(class_names)} classes present" if present < len(
            class_names) else ""
        summary = (f"{split}: accuracy {accuracy:.4f}, macro-F1 {macro_f1(matrix):.4f}{over}, "
                   f"{len(x)} examples")
        sections.append(f"{summary}\n{format_confusion_matrix(matrix, class_names)}")
        paths.append(
            plots.confusion_matrix(
                matrix, class_names, out_dir / f"confusion_{split}.png", f"{title}\n{summary}"
            )
        )
    with atomic_path(out_dir / REPORT_FILE) as temporary:
        temporary.write_text("\n\n".join(sections) + "\n")
    return [*paths, out_dir / REPORT_FILE]
