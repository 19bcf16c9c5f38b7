"""Fine-tuning to any classes: `num_classes` on every conv entry, class folders of any names,
`zoo.get(NAME, weights=..., num_classes=K)` replacing only the head in every family, and
macro-F1 over the classes a split has.

Data are a few seeded PNGs per class written to tmp_path; weight sets are tiny seeded models
(no training) in a tmp directory that `$ZOO_WEIGHTS_PATH` points the lookup at.
"""

import json
import logging

import keras
import numpy as np
import pytest
from PIL import Image

import zoo
from zoo import classification, runs, training, weights
from zoo.convnets import data
from zoo.data import DataError, Splits
from zoo.registry import HyperparameterError

CONV_ENTRIES = ("two_layer_fc", "three_layer_convnet", "cifar_small", "cifar_airbench",
                "cifar_airbench_wide")


def write_folder(root, classes, per_class=4, seed=0):
    """`root/<class>/<i>.png`, each class its own grey level (class k at 40 + 60 k, +- 10), so
    that a label can be checked against its image."""
    rng = np.random.default_rng(seed)
    for level, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            pixels = 40 + 60 * level + rng.integers(-10, 11, (32, 32, 3))
            Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{index}.png")
    return root


# --- num_classes on every conv entry ---


@pytest.mark.parametrize("name", CONV_ENTRIES)
def test_every_conv_entry_takes_num_classes(name):
    entry = zoo.get_entry(name)
    described = zoo.describe(name)["hyperparameters"]["num_classes"]
    assert described["default"] == 10 and described["valid"] == "[2, 100000]"
    assert "num_classes" not in entry.search_space()
    model = zoo.get(name, preset="tiny", num_classes=3, dtype_policy="float32")
    assert model.num_classes == 3
    assert tuple(model(np.zeros((2, 32, 32, 3), np.float32), training=False).shape) == (2, 3)
    assert type(model).from_config(model.get_config()).num_classes == 3
    assert zoo.get(name, preset="tiny", dtype_policy="float32").num_classes == 10
    with pytest.raises(HyperparameterError, match="num_classes"):
        zoo.get(name, preset="tiny", num_classes=1)


# --- class folders of any names ---


def test_class_folders_of_any_names_load_sorted_and_are_recorded(tmp_path):
    write_folder(tmp_path / "pets" / "train", ("vehicle", "animal"), per_class=5)
    (tmp_path / "pets" / "train" / ".ipynb_checkpoints").mkdir()  # hidden: not a class
    write_folder(tmp_path / "pets" / "test", ("vehicle",), per_class=2)
    splits = data.load(tmp_path / "pets", validation_size=2)
    assert splits.info["classes"] == ["animal", "vehicle"]  # sorted, not the order written
    assert splits.y_train.shape == (8, 2) and splits.y_val.shape == (2, 2)
    # "vehicle" was written first, so its images are the darker: label 1 <=> darker.
    for x, y in ((splits.x_train, splits.y_train), (splits.x_val, splits.y_val),
                 (splits.x_test, splits.y_test)):
        np.testing.assert_array_equal(y.argmax(-1), (x.mean(axis=(1, 2, 3)) < 70).astype(int))
    assert splits.y_test.shape == (2, 2)  # the test folder has some of the training classes


def test_cifar_folder_names_keep_the_canonical_order(tmp_path):
    for name in reversed(data.CLASS_NAMES):
        (tmp_path / name).mkdir()
    assert data.folder_classes(tmp_path) == data.CLASS_NAMES
    write_folder(tmp_path / "pair", ("dog", "cat"), per_class=2)
    images, labels = data.read_image_folder(tmp_path / "pair", data.CLASS_NAMES)
    assert labels.tolist() == [3, 3, 5, 5]  # scored by a CIFAR-10 model: CIFAR-10's indices
    splits = data.load(tmp_path / "pair", classes="cifar10", validation_size=1)
    assert splits.y_train.shape == (3, 10) and splits.info["classes"] == list(data.CLASS_NAMES)


def test_a_test_folder_outside_the_training_classes_is_named(tmp_path):
    write_folder(tmp_path / "train", ("animal", "vehicle"), per_class=2)
    write_folder(tmp_path / "test", ("plant",), per_class=1)
    with pytest.raises(DataError, match=r"class folders \['plant'\] that are not classes of the "
                                        r"data \['animal', 'vehicle'\]"):
        data.load(tmp_path)


def test_a_class_count_mismatch_is_one_line_naming_both_counts_and_the_fix(tmp_path, cli):
    folder = write_folder(tmp_path / "two", ("animal", "vehicle"), per_class=5)
    code, _, err = cli("train", "cifar_small", "--data", folder, "--preset", "tiny")
    assert code == 1  # a data error, before anything is written
    message = err.strip()
    assert "\n" not in message
    assert "labels have 2 classes but the model outputs 10" in message
    assert "--set num_classes=2" in message


@pytest.mark.slow
def test_zoo_train_on_a_two_class_folder(tmp_path, cli):
    folder = write_folder(tmp_path / "two", ("animal", "vehicle"), per_class=10)
    code, out, err = cli("train", "cifar_small", "--data", folder, "--set", "num_classes=2",
                         "--preset", "tiny", "--run-dir", tmp_path / "run")
    assert code == 0, err
    record = runs.RunDirectory(tmp_path / "run").record()
    assert record["data"]["classes"] == ["animal", "vehicle"]
    assert record["hyperparameters"]["num_classes"] == 2
    report = (tmp_path / "run" / classification.REPORT_FILE).read_text()
    assert report.splitlines()[1].split() == ["actual/predicted", "animal", "vehicle"]
    # The run is a starting point too: a third class re-initialises its head only.
    model = zoo.get("cifar_small", weights=tmp_path / "run", num_classes=3)
    trained = runs.RunDirectory(tmp_path / "run").load_model()
    assert model.num_classes == 3
    assert_only_the_head_differs(trained, model, head_classes=(2, 3))


# --- zoo.get(NAME, weights=..., num_classes=K), in every family ---


TINY = {  # one classifier of each classifying family, and the conv nets with heads of each kind
    "cifar_small": ({"filters": 4}, (4, 32, 32, 3)),
    "cifar_airbench": ({"width": 8}, (4, 32, 32, 3)),
    "lstm": ({"units": 4, "head_units": 4}, (4, 150, 3)),
}


@pytest.fixture
def weight_dir(tmp_path, monkeypatch):
    directory = tmp_path / "weights"
    monkeypatch.setenv(weights.PATH_VARIABLE, str(directory))
    return directory


def make_set(name, directory):
    """A seeded, untrained set `tiny` of `name`, with its preprocessing fitted as a trained
    model's is (so that it is not at its fresh values)."""
    overrides, shape = TINY[name]
    training.set_seed(0)
    model = zoo.get(name, dtype_policy="float32", **overrides)
    inputs = np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)
    training.adapt_preprocessing(model, inputs)
    hyperparameters = zoo.get_entry(name).resolve(None, dtype_policy="float32", **overrides)
    weights.write_set(model, name, "tiny",
                      {"data": "seeded initial weights (no data)", "licence": "CC0", "metrics": {},
                       "recipe": {"preset": None, "hyperparameters": hyperparameters, "seed": 0,
                                  "epochs": 0},
                       "command": "tests/test_finetune.py"}, directory)
    return model


def assert_only_the_head_differs(source, model, head_classes):
    """Every variable of `model` equals `source`'s but the head's: those whose last axis has
    `head_classes[1]` entries where `source` has `head_classes[0]`."""
    assert len(source.weights) == len(model.weights)
    heads = 0
    for theirs, mine in zip(source.weights, model.weights):
        if tuple(theirs.shape) == tuple(mine.shape):
            np.testing.assert_array_equal(np.asarray(mine), np.asarray(theirs), err_msg=mine.path)
            continue
        assert (theirs.shape[-1], mine.shape[-1]) == head_classes, mine.path
        assert tuple(theirs.shape[:-1]) == tuple(mine.shape[:-1]), mine.path
        heads += 1
    assert heads >= 1


@pytest.mark.parametrize("name", sorted(TINY))
def test_get_with_another_class_count_replaces_only_the_head(name, weight_dir, caplog):
    source = make_set(name, weight_dir)
    with caplog.at_level(logging.INFO, logger="zoo.weights"):
        model = zoo.get(name, weights="tiny", num_classes=2)
    assert model.num_classes == 2
    assert_only_the_head_differs(source, model, head_classes=(source.num_classes, 2))
    assert model.zoo_weights["replaced"]
    assert model.zoo_weights["hyperparameters"]["num_classes"] == 2
    assert any("re-initialised the classifier head" in r.getMessage() for r in caplog.records)
    # The head is fresh, not a slice of the trained one: its kernel is drawn anew.
    trained, kernel = next((theirs, mine) for theirs, mine in zip(source.weights, model.weights)
                           if len(mine.shape) == 2 and tuple(mine.shape) != tuple(theirs.shape))
    assert not np.allclose(np.asarray(kernel), np.asarray(trained)[:, :2])
    # The recorded count replaces nothing.
    same = zoo.get(name, weights="tiny", num_classes=source.num_classes)
    assert same.zoo_weights["replaced"] == []


def test_keras_lstm_replaces_the_head_of_the_lstm_set_it_loads(weight_dir):
    source = make_set("lstm", weight_dir)
    model = zoo.get("keras_lstm", weights="tiny", num_classes=3)
    assert model.num_classes == 3 and model.zoo_weights["replaced"]
    assert_only_the_head_differs(source, model, head_classes=(source.num_classes, 3))


def test_other_shape_changes_stay_refused_beside_num_classes(weight_dir):
    make_set("cifar_small", weight_dir)
    with pytest.raises(HyperparameterError,
                       match=r"filters=8 changes the architecture .* trained with filters=4"):
        zoo.get("cifar_small", weights="tiny", num_classes=2, filters=8)


# --- macro-F1 over the classes present ---


def test_macro_f1_averages_over_the_classes_present_only():
    actual, predicted = [3, 3, 3, 5, 5], [3, 3, 5, 5, 0]  # one cat seen as a dog, a dog as a plane
    ten = classification.confusion_matrix(actual, predicted, 10)
    cat, dog = 2 * 2 / (2 * 2 + 0 + 1), 2 * 1 / (2 * 1 + 1 + 1)
    assert classification.macro_f1(ten) == pytest.approx((cat + dog) / 2)
    two = classification.confusion_matrix([0, 0, 0, 1, 1], [0, 0, 1, 1, 1], 2)
    assert classification.macro_f1(two) == pytest.approx((2 * 2 / 5 + 2 * 2 / 5) / 2)
    assert classification.macro_f1(np.zeros((3, 3))) == 0.0


def test_report_names_the_data_classes_and_says_how_many_are_present(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    x = np.random.default_rng(0).normal(size=(6, 4)).astype("float32")
    y = np.eye(3, dtype="float32")[[0, 0, 1, 1, 0, 1]]  # "plant" has no example
    splits = Splits(x_train=x, y_train=y, x_val=x[:0], y_val=y[:0],
                    info={"classes": ["animal", "vehicle", "plant"]})
    classification.report(model, splits, splits.info["classes"], tmp_path, "three")
    text = (tmp_path / classification.REPORT_FILE).read_text()
    assert "over the 2 of 3 classes present" in text
    assert text.splitlines()[1].split() == ["actual/predicted", "animal", "vehicle", "plant"]
    json.dumps(splits.info)  # what the run record stores
