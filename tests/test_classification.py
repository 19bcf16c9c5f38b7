"""Shared classification report: confusion matrices, macro-F1, PNG and text output."""

import keras
import numpy as np

from zoo import classification
from zoo.data import Splits


def test_confusion_matrix_rows_are_actual_columns_predicted():
    matrix = classification.confusion_matrix([0, 0, 1, 2], [0, 1, 1, 1], num_classes=3)
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 1, 0], [0, 1, 0]])


def test_macro_f1_equals_keras_f1_score():
    rng = np.random.default_rng(0)
    actual, predicted = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    metric = keras.metrics.F1Score(average="macro")
    metric.update_state(np.eye(4)[actual], np.eye(4)[predicted])
    matrix = classification.confusion_matrix(actual, predicted, 4)
    assert abs(classification.macro_f1(matrix) - float(metric.result())) < 1e-6


def test_macro_f1_counts_a_never_predicted_class_as_zero():
    matrix = classification.confusion_matrix([0, 1], [0, 0], num_classes=2)
    assert classification.macro_f1(matrix) == (2 / 3 + 0) / 2


def test_report_writes_a_png_per_split_and_a_text_table(tmp_path):
    class_names = ["sitting", "walking", "jogging"]
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(12, 4)).astype("float32")
    y = np.eye(3)[rng.integers(0, 3, 12)]
    splits = Splits(x_train=x, x_val=x[:0], y_train=y, y_val=y[:0], x_test=x[:6], y_test=y[:6])

    paths = classification.report(model, splits, class_names, tmp_path, "tiny")

    assert [p.name for p in paths] == ["confusion_train.png", "confusion_test.png",
                                       classification.REPORT_FILE]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths[:2])
    text = (tmp_path / classification.REPORT_FILE).read_text()
    predicted = model.predict(x[:6], verbose=0).argmax(-1)
    expected = classification.confusion_matrix(y[:6].argmax(-1), predicted, 3)
    test_rows = text.split("test:")[1].splitlines()[2:5]
    for name, row, counts in zip(class_names, test_rows, expected):
        assert row.split() == [name, *map(str, counts)]
