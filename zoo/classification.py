"""What every classification task shares: confusion matrices, macro-F1, and the per-split report
(PNG and text) that `zoo train` and `zoo evaluate` show.

Models report accuracy and macro-F1 as Keras metrics while training (`metrics()`); the report
adds the confusion matrices, which say *which* classes are mistaken for which, and scores
macro-F1 over the classes present in each split (Keras' metric averages over every column of the
labels: the same when a split has examples of every class of the data).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

from zoo import plots
from zoo.data import Splits
from zoo.files import atomic_path

__all__ = [
    "Accuracy",
    "Crossentropy",
    "MacroF1",
    "class_indices",
    "confusion_matrix",
    "format_confusion_matrix",
    "loss",
    "macro_f1",
    "metrics",
    "one_hot_targets",
    "report",
    "serving_outputs",
]

REPORT_FILE = "confusion_matrices.txt"


def one_hot_targets(targets: Any, probabilities: Any) -> Any:
    """`targets` as rows like `probabilities` `(N, C)`: class indices `(N,)` or `(N, 1)`, of any
    number type (Keras' sparse labels, what `keras.utils.image_dataset_from_directory` yields),
    become one-hot rows of `probabilities`' dtype; one-hot or soft rows pass through unchanged.

    Which is which is read from the static shapes, so it costs nothing in a traced step. An
    index outside [0, C) becomes a row of zeros (`zoo.training.check_labels` refuses those
    before `zoo.training.fit` trains).
    """
    targets = keras.ops.convert_to_tensor(targets)
    classes = probabilities.shape[-1]
    rank = len(targets.shape)
    if rank == len(probabilities.shape) and targets.shape[-1] == 1 and classes != 1:
        targets, rank = keras.ops.squeeze(targets, axis=-1), rank - 1
    if rank != len(probabilities.shape) - 1:
        return targets
    dtype = keras.backend.standardize_dtype(probabilities.dtype)
    return keras.ops.one_hot(keras.ops.cast(targets, "int32"), classes, dtype=dtype)


# The loss and metrics every classifier compiles with. Each takes one-hot rows or class indices
# as targets, so that `model.fit(x, labels)` and `model.evaluate` work with either, as Keras'
# "accuracy" string does, with no `sparse_` variant to pick and nothing in the model: the
# families' train steps (Keras' own, and the recurrent family's written-out one) hand the
# targets to the compiled loss and metrics unchanged. Label smoothing applies to the one-hot
# rows, so it applies to indices too. Registered with Keras, so saved models load them back.


@keras.saving.register_keras_serializable(package="zoo")
class Crossentropy(keras.losses.CategoricalCrossentropy):
    """`keras.losses.CategoricalCrossentropy` (label smoothing included) whose targets may also
    be class indices `(N,)` (see `one_hot_targets`)."""

    def call(self, y_true: Any, y_pred: Any) -> Any:
        return super().call(one_hot_targets(y_true, y_pred), y_pred)


@keras.saving.register_keras_serializable(package="zoo")
class Accuracy(keras.metrics.CategoricalAccuracy):
    """`keras.metrics.CategoricalAccuracy` whose targets may also be class indices `(N,)`."""

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        super().update_state(one_hot_targets(y_true, y_pred), y_pred, sample_weight)


@keras.saving.register_keras_serializable(package="zoo")
class MacroF1(keras.metrics.F1Score):
    """`keras.metrics.F1Score` whose targets may also be class indices `(N,)`."""

    def update_state(self, y_true: Any, y_pred: Any, sample_weight: Any = None) -> None:
        super().update_state(one_hot_targets(y_true, y_pred), y_pred, sample_weight)


def loss(label_smoothing: float = 0.0) -> keras.losses.Loss:
    """The cross-entropy of a softmax classifier, for `compile`: targets may be one-hot rows or
    class indices; `label_smoothing` smooths the one-hot rows (indices are encoded first)."""
    return Crossentropy(label_smoothing=label_smoothing)


def metrics() -> list[keras.metrics.Metric]:
    """Fresh accuracy and macro-F1 metrics for `compile`; targets may be one-hot rows or class
    indices."""
    return [Accuracy(name="accuracy"), MacroF1(average="macro", name="macro_f1")]


def serving_outputs(probabilities: Any) -> dict[str, Any]:
    """A classifier's named export outputs: `probabilities` (N, classes) and `class_index`, the
    int64 argmax of each row, so that a served model needs no post-processing to name a class
    (the model card's `class_names[class_index]`)."""
    import tensorflow as tf

    probabilities = tf.convert_to_tensor(probabilities)
    return {"probabilities": probabilities,
            "class_index": tf.argmax(probabilities, axis=-1, output_type=tf.int64)}


def class_indices(targets: np.ndarray) -> np.ndarray:
    """Class indices from one-hot rows `(N, C)` or from indices `(N,)` or `(N, 1)`."""
    targets = np.asarray(targets)
    if targets.ndim == 2 and targets.shape[-1] > 1:
        return targets.argmax(axis=-1)
    return targets.reshape(-1).astype(np.int64)


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
    outputs: Mapping[str, np.ndarray] | None = None,
) -> list[Path]:
    """Confusion matrices of every split with labels, as PNGs and one text file.

    Args:
        model: the classifier, outputs `(N, len(class_names))` probabilities.
        splits: the data; every split with labels is reported.
        class_names: the data's classes in the labels' order (`splits.info["classes"]`).
        out_dir: where to write.
        title: the figures' title.
        outputs: the model's probabilities on some splits (`{split: array}`), used rather
            than predicting them again.

    Returns:
        The paths written: `confusion_{split}.png` per split and `confusion_matrices.txt`.
    """
    out_dir = Path(out_dir)
    paths, sections = [], []
    for split in ("train", "val", "test"):
        x, y = getattr(splits, f"x_{split}"), getattr(splits, f"y_{split}")
        if x is None or y is None or not len(x):
            continue
        probabilities = (outputs or {}).get(split)
        if probabilities is None:
            probabilities = model.predict(x, batch_size=256, verbose=0)
        predicted = np.argmax(probabilities, axis=-1)
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
