"""Convolutional family: cs231n's sanity checks, the fully-connected baseline, normalisation,
augmentation, the written-out loop against `fit`, serialisation and export."""

import math
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from gradients import assert_matches_finite_differences

import zoo
from zoo.convnets import data
from zoo.convnets.entries import CIFAR10
from zoo.convnets.layers import RandomCropFlip
from zoo.convnets.model import CifarSmallNet, ThreeLayerConvNet, TwoLayerNet
from zoo.data import Splits
from zoo.export import export
from zoo.registry import HyperparameterError
from zoo.schedules import OneCycle
from zoo.training import adapt_preprocessing, set_seed, train_loop

SHARED_CIFAR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10" / "train"


def pixels(count, size=32, seed=0, channels_first=False):
    shape = (count, 3, size, size) if channels_first else (count, size, size, 3)
    return np.random.default_rng(seed).integers(0, 256, shape).astype(np.uint8)


def one_hot(count, seed=0):
    return np.eye(10, dtype=np.float32)[np.random.default_rng(seed).integers(0, 10, count)]


def total_loss(model, x, y):
    probabilities = model(x, training=True)
    # The function, not the Loss object, whose float32 policy would cast float64 values.
    cross_entropy = keras.ops.mean(keras.losses.categorical_crossentropy(y, probabilities))
    return cross_entropy + sum(model.losses)


# --- cs231n's sanity checks ---


def test_initial_loss_is_log_10_and_grows_with_reg():
    x, y = pixels(50), one_hot(50)
    plain = ThreeLayerConvNet(seed=0)
    plain.scale.adapt(x)
    assert abs(float(total_loss(plain, x, y)) - math.log(10)) < 0.02
    regularised = ThreeLayerConvNet(seed=0, reg=1.0)
    regularised.scale.adapt(x)
    loss = float(total_loss(regularised, x, y))
    weights = sum(float(np.sum(w.numpy() ** 2)) for w in
                  (regularised.conv.kernel, regularised.hidden.kernel, regularised.scores.kernel))
    assert loss > math.log(10) + 0.1
    # The course's convention: 0.5 * reg * sum W^2 over the three weight matrices, no biases.
    assert loss == pytest.approx(float(total_loss(plain, x, y)) + 0.5 * 1.0 * weights, rel=1e-4)


@pytest.mark.parametrize("normalization", ["none", "batch", "group"])
def test_gradient_matches_finite_differences_in_float64(normalization):
    """cs231n's check: 3 filters, hidden 7, two 3x16x16 inputs (channels-first), float64."""
    model = ThreeLayerConvNet(num_filters=3, filter_size=3, hidden_dim=7, weight_scale=1e-2,
                              reg=0.5, normalization=normalization, groups=3, seed=0,
                              dtype="float64")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 16, 16))
    y = np.eye(10)[[3, 7]]
    model(x)
    with tf.GradientTape() as tape:
        loss = total_loss(model, x, y)
    gradients = tape.gradient(loss, model.trainable_variables)
    step = 1e-6
    for variable, gradient in zip(model.trainable_variables, gradients):
        flat = variable.numpy().reshape(-1)
        for index in rng.choice(flat.size, size=min(8, flat.size), replace=False):
            changed = flat.copy()
            changed[index] += step
            variable.assign(changed.reshape(variable.shape))
            higher = float(total_loss(model, x, y))
            changed[index] -= 2 * step
            variable.assign(changed.reshape(variable.shape))
            lower = float(total_loss(model, x, y))
            variable.assign(flat.reshape(variable.shape))
            numeric = (higher - lower) / (2 * step)
            analytic = float(gradient.numpy().reshape(-1)[index])
            error = abs(numeric - analytic) / max(1e-8, abs(numeric) + abs(analytic))
            assert error < 1e-5, (variable.path, index, numeric, analytic)


def test_channels_first_and_channels_last_give_the_same_scores():
    model = ThreeLayerConvNet(seed=0)
    x = pixels(4, channels_first=True)
    np.testing.assert_allclose(model(x), model(x.transpose(0, 2, 3, 1)), rtol=1e-6)


def test_wrong_image_shape_is_refused_naming_the_expected_shapes():
    with pytest.raises(ValueError, match=r"expected images \(N, H, W, 3\) or \(N, 3, H, W\)"):
        ThreeLayerConvNet()(np.zeros((2, 5, 32, 32)))


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_CIFAR.is_dir(), reason="needs ../shared/data/cifar10")
def test_overfits_100_training_images(tmp_path):
    """Adam 1e-3, batch 50, 15 epochs: at least 95% training accuracy on 100 CIFAR images."""
    for name in data.CLASS_NAMES:  # ten images of each class, read through the folder reader
        (tmp_path / name).mkdir()
        for image in sorted((SHARED_CIFAR / name).glob("*.jpg"))[:10]:
            shutil.copy(image, tmp_path / name / image.name)
    images, labels = data.read_image_folder(tmp_path)
    set_seed(0)
    model = zoo.get("three_layer_convnet", weight_scale=1e-2)  # the course's overfitting check
    adapt_preprocessing(model, images)
    history = model.fit(images, np.eye(10, dtype="float32")[labels], batch_size=50, epochs=15,
                        verbose=0)
    assert history.history["accuracy"][-1] >= 0.95


# --- the fully-connected baseline ---


def test_two_layer_net_starts_at_log_10_and_adds_the_course_l2():
    x, y = pixels(50), one_hot(50)
    losses = {}
    for reg in (0.0, 1.0):
        model = TwoLayerNet(hidden_dim=200, reg=reg, seed=0)
        model.scale.adapt(x)
        losses[reg] = float(total_loss(model, x, y))
    assert abs(losses[0.0] - math.log(10)) < 0.02
    weights = sum(float(np.sum(w.numpy() ** 2)) for w in (model.hidden.kernel, model.scores.kernel))
    assert losses[1.0] == pytest.approx(losses[0.0] + 0.5 * 1.0 * weights, rel=1e-4)


@pytest.mark.slow
def test_two_layer_net_gradient_matches_finite_differences_in_float64():
    model = TwoLayerNet(hidden_dim=6, weight_scale=0.1, reg=0.3, seed=0, dtype="float64")
    x = np.random.default_rng(1).normal(size=(3, 3, 4, 4))  # channels-first, as the course
    y = np.eye(10)[[3, 7, 0]]
    model(x)
    assert_matches_finite_differences(lambda: total_loss(model, x, y), model.trainable_variables,
                                      rtol=1e-5, atol=1e-8)


def test_two_layer_net_kaiming_init_and_channels_first():
    model = TwoLayerNet(hidden_dim=500, init="kaiming", seed=0)
    x = pixels(2, channels_first=True)
    np.testing.assert_allclose(model(x), model(x.transpose(0, 2, 3, 1)), rtol=1e-6)
    assert np.std(model.hidden.kernel.numpy()) == pytest.approx(math.sqrt(2 / 3072), rel=0.02)
    assert np.std(model.scores.kernel.numpy()) == pytest.approx(math.sqrt(2 / 500), rel=0.05)
    np.testing.assert_array_equal(model.hidden.bias.numpy(), 0)


def test_two_layer_net_first_filters_are_the_first_100_units_as_images():
    model = TwoLayerNet(hidden_dim=150, seed=0)
    model(pixels(1))
    filters = keras.ops.convert_to_numpy(model.first_filters())
    assert filters.shape == (100, 32, 32, 3)
    # Unit 7's weight on pixel (row 2, column 5), green: row (2 * 32 + 5) * 3 + 1 of the kernel.
    assert filters[7, 2, 5, 1] == model.hidden.kernel.numpy()[(2 * 32 + 5) * 3 + 1, 7]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"hidden_dim": 0}, "hidden_dim must be a positive integer, got 0"),
        ({"weight_scale": 0.0}, "weight_scale must be positive, got 0.0"),
        ({"init": "xavier"}, r"init must be one of \['normal', 'kaiming'\], got 'xavier'"),
        ({"reg": -1.0}, "reg must be non-negative, got -1.0"),
    ],
)
def test_two_layer_net_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TwoLayerNet(**kwargs)


def test_two_layer_fc_overfits_a_few_images():
    x, y = pixels(20), one_hot(20)
    set_seed(0)
    model = zoo.get("two_layer_fc", hidden_dim=100)
    adapt_preprocessing(model, x)
    history = model.fit(x, y, batch_size=10, epochs=20, verbose=0)
    assert history.history["accuracy"][-1] == 1.0


def test_two_layer_fc_course_preset_is_the_course_recipe():
    model = zoo.get("two_layer_fc", preset="course")
    assert isinstance(model, TwoLayerNet) and model.hidden_dim == 4000 and model.init == "kaiming"
    assert isinstance(model.optimizer, keras.optimizers.SGD) and model.optimizer.momentum == 0.0
    assert float(model.optimizer.learning_rate) == pytest.approx(1e-2)
    assert zoo.get_entry("two_layer_fc").fit_settings("course") == {"epochs": 1, "batch_size": 64}


# --- normalisation options: Keras' layers, used as the course describes ---


def test_spatial_batch_norm_uses_batch_statistics_in_training_and_running_averages_after():
    model = ThreeLayerConvNet(normalization="batch", seed=0)
    x = pixels(8)
    model(x)
    features = model.conv(model.scale(tf.cast(x, "float32"))).numpy()
    mean, variance = features.mean(axis=(0, 1, 2)), features.var(axis=(0, 1, 2))
    normalised = model.norm(features, training=True).numpy()
    np.testing.assert_allclose(normalised.mean(axis=(0, 1, 2)), 0, atol=1e-4)
    np.testing.assert_allclose(normalised.std(axis=(0, 1, 2)), 1, atol=1e-2)
    momentum = model.norm.momentum
    np.testing.assert_allclose(model.norm.moving_mean.numpy(), (1 - momentum) * mean, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(model.norm.moving_variance.numpy(),
                               momentum + (1 - momentum) * variance, rtol=1e-4)
    expected = (features - model.norm.moving_mean.numpy()) / np.sqrt(
        model.norm.moving_variance.numpy() + model.norm.epsilon)
    np.testing.assert_allclose(model.norm(features, training=False), expected, rtol=1e-4, atol=1e-4)


def test_group_norm_normalises_each_group_of_channels_per_image():
    model = ThreeLayerConvNet(num_filters=8, normalization="group", groups=2, seed=0)
    x = pixels(3)
    model(x)
    features = model.conv(model.scale(tf.cast(x, "float32"))).numpy()
    grouped = features.reshape(3, 32, 32, 2, 4)
    mean = grouped.mean(axis=(1, 2, 4), keepdims=True)
    variance = grouped.var(axis=(1, 2, 4), keepdims=True)
    expected = ((grouped - mean) / np.sqrt(variance + model.norm.epsilon)).reshape(features.shape)
    np.testing.assert_allclose(model.norm(features), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"normalization": "layer"}, "normalization must be one of"),
        ({"normalization": "group", "groups": 5}, "groups must divide"),
        ({"num_filters": 0}, r"num_filters must be in \[1, 1024\]"),
        ({"reg": -1.0}, r"reg must be in \[0, 10\]"),
        ({"learning_rate": 0.0}, r"learning_rate must be in \(0, 10\]"),
    ],
)
def test_bad_hyperparameters_are_refused(overrides, message):
    with pytest.raises(HyperparameterError, match=message):
        zoo.get("three_layer_convnet", **overrides)


def test_group_norm_of_cifar_small_checks_every_width():
    with pytest.raises(HyperparameterError, match=r"divide every convolution's filters \[6, 12, 24\]"):
        zoo.get("cifar_small", filters=6, normalization="group", groups=4)


# --- augmentation and schedule ---


def test_random_crop_flip_takes_one_shifted_possibly_mirrored_crop_per_image():
    layer = RandomCropFlip(2, seed=0)
    x = np.arange(16 * 6 * 6 * 1, dtype="float32").reshape(16, 6, 6, 1) + 1
    out = layer(x, training=True).numpy()
    padded = np.pad(x, [(0, 0), (2, 2), (2, 2), (0, 0)], mode="reflect")
    seen = set()
    for image, original in zip(out, padded):
        candidates = {
            (dy, dx, flip): original[dy:dy + 6, dx:dx + 6][:, ::-1] if flip else original[dy:dy + 6, dx:dx + 6]
            for dy in range(5) for dx in range(5) for flip in (False, True)
        }
        matches = [key for key, crop in candidates.items() if np.array_equal(crop, image)]
        assert matches, "each output must be one crop of the padded image"
        seen.update(matches)
    assert len({flip for _, _, flip in seen}) == 2  # both flipped and unflipped occur
    np.testing.assert_array_equal(layer(x, training=False), x)


def test_one_cycle_warms_up_then_decays_to_zero():
    schedule = OneCycle(0.4, warmup=0.2, total_steps=100)
    values = [float(schedule(step)) for step in (0, 10, 20, 60, 100, 150)]
    np.testing.assert_allclose(values, [0.04, 0.22, 0.4, 0.2, 0.0, 0.0], atol=1e-6)


def test_fit_sets_the_schedule_length_from_data_and_epochs():
    model = zoo.get("cifar_small", filters=4)
    model.fit(pixels(40), one_hot(40), batch_size=16, epochs=2, verbose=0)
    assert float(model.optimizer._learning_rate.total_steps) == 2 * 3


# --- the written-out loop against fit ---


@pytest.mark.slow
@pytest.mark.parametrize("normalization", ["batch", "none"])
def test_train_loop_gives_the_same_weights_and_loss_as_fit(normalization):
    x, y = pixels(60, size=12), one_hot(60)
    splits = Splits(x_train=x[:52], y_train=y[:52], x_val=x[52:], y_val=y[52:])

    def build():
        set_seed(0)
        model = ThreeLayerConvNet(num_filters=4, filter_size=3, hidden_dim=8, weight_scale=0.05,
                                  reg=1e-2, normalization=normalization, seed=0)
        model.compile(keras.optimizers.Adam(1e-2), keras.losses.CategoricalCrossentropy(),
                      metrics=["accuracy"])
        adapt_preprocessing(model, splits.x_train)
        return model

    with_fit = build()
    fitted = with_fit.fit(splits.x_train, splits.y_train, batch_size=16, epochs=3, shuffle=False,
                          validation_data=(splits.x_val, splits.y_val), verbose=0).history
    with_loop = build()
    looped = train_loop(with_loop, splits, epochs=3, batch_size=16, verbose=False)
    for a, b in zip(with_fit.weights, with_loop.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)
    for metric in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(looped[metric], fitted[metric], rtol=1e-5, err_msg=metric)


@pytest.mark.slow
def test_train_loop_plans_the_schedule_and_reshuffles_with_a_seed(caplog):
    x, y = pixels(48), one_hot(48)
    splits = Splits(x_train=x[:40], y_train=y[:40], x_val=x[40:], y_val=y[40:])
    results = []
    for _ in range(2):
        set_seed(0)
        model = zoo.get("cifar_small", filters=4)
        with caplog.at_level("INFO", logger="zoo.training"):  # verbose lines are logged
            history = train_loop(model, splits, epochs=2, batch_size=16, shuffle_seed=3)
        results.append(history["loss"])
        assert float(model.optimizer._learning_rate.total_steps) == 2 * 3
        assert set(history) >= {"loss", "accuracy", "macro_f1", "val_loss", "val_accuracy"}
    assert results[0] == results[1]
    assert any(record.getMessage().startswith("epoch 2/2: loss") for record in caplog.records)


# --- serialisation and export ---


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, overrides",
    [
        ("three_layer_convnet", {"normalization": "group", "groups": 4}),
        ("two_layer_fc", {"hidden_dim": 8, "reg": 1e-3}),
        ("cifar_small", {"filters": 4}),
        ("cifar_airbench", {"width": 4}),
    ],
)
def test_keras_file_round_trip_and_uint8_export_reload(name, overrides, tmp_path):
    set_seed(0)
    model = zoo.get(name, **overrides)
    x, y = pixels(24), one_hot(24)
    adapt_preprocessing(model, x)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    expected = model.predict(x, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    np.testing.assert_allclose(keras.saving.load_model(path).predict(x, verbose=0), expected,
                               rtol=1e-5, atol=1e-6)
    target = export(model, name, CIFAR10.endpoints(model), {"note": "test"}, root=tmp_path)
    served = tf.saved_model.load(str(target)).signatures["serve"](images=tf.constant(x))
    assert sorted(served) == ["class_index", "probabilities"]
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, rtol=1e-5, atol=1e-6)
    assert served["class_index"].dtype == tf.int64
    np.testing.assert_array_equal(served["class_index"].numpy(), expected.argmax(-1))
    with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
        tf.saved_model.load(str(target)).signatures["serve"](images=tf.constant(x, tf.float32))


@pytest.mark.slow
@pytest.mark.parametrize("name, overrides", [("cifar_small", {"filters": 4}),
                                             ("cifar_airbench", {"width": 4}),
                                             ("two_layer_fc", {"hidden_dim": 8})])
def test_figures_draw_colour_filters_and_confusion_matrices(name, overrides, tmp_path):
    set_seed(0)
    model = zoo.get(name, **overrides)
    x, y = pixels(30), one_hot(30)
    adapt_preprocessing(model, x)
    model(x[:1])
    splits = Splits(x_train=x[:20], y_train=y[:20], x_val=x[20:], y_val=y[20:])
    paths = CIFAR10.figures(model, splits, tmp_path)
    names = {p.name for p in paths}
    assert {"filters.png", "confusion_train.png", "confusion_val.png", "confusion_matrices.txt"} <= names
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in paths if p.suffix == ".png")
    assert "val: accuracy" in (tmp_path / "confusion_matrices.txt").read_text()


def test_cifar_small_course_preset_is_the_course_recipe():
    model = zoo.get("cifar_small", preset="course")
    assert model.augment is None and not isinstance(model.optimizer._learning_rate, OneCycle)
    assert [conv.filters for conv in model.convs] == [16, 32, 64]
    assert [conv.kernel_size for conv in model.convs] == [(5, 5), (3, 3), (3, 3)]
    assert zoo.get_entry("cifar_small").fit_settings("course") == {"epochs": 10, "batch_size": 64}
    assert isinstance(model, CifarSmallNet)


# --- the command line ---


def test_train_without_data_says_where_it_looked(tmp_path, monkeypatch, capsys):
    from zoo.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("ZOO_CIFAR10", raising=False)
    assert main(["train", "cifar_small"]) == 1
    error = capsys.readouterr().err
    assert "no CIFAR-10 data found; looked in" in error and "cifar-10-batches-py" in error
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_cli_train_evaluate_on_a_test_folder_and_export(tmp_path, monkeypatch, capsys):
    from PIL import Image

    from zoo.cli import main

    monkeypatch.chdir(tmp_path)
    np.savez(tmp_path / "cifar.npz", x_train=pixels(40), y_train=np.arange(40) % 10)
    for split, count in (("train", 2), ("test", 1)):
        for name in data.CLASS_NAMES[:3]:
            (tmp_path / "folder" / split / name).mkdir(parents=True)
            for index, image in enumerate(pixels(count, seed=len(name))):
                Image.fromarray(image).save(tmp_path / "folder" / split / name / f"{index}.png")
    assert main(["train", "cifar_small", "--data", "cifar.npz", "--epochs", "1",
                 "--set", "filters=4"]) == 0
    out = capsys.readouterr().out
    assert "36 training, 4 validation examples" in out and "val_accuracy:" in out
    run = tmp_path / "runs" / "cifar_small"
    assert {"filters.png", "curves.png", "confusion_val.png", "model.keras"} <= {p.name for p in run.iterdir()}
    assert main(["evaluate", "cifar_small", "--data", "folder"]) == 0
    out = capsys.readouterr().out
    assert "test: accuracy" in out and "3 examples" in out  # the test/ folder is the test split
    assert (run / "evaluation" / "confusion_test.png").is_file()
    assert main(["export", "cifar_small"]) == 0
    card = (tmp_path / "saved_models" / "cifar_small" / "1" / "model_card.json").read_text()
    assert '"dtype": "uint8"' in card


def test_cli_trains_two_layer_fc_on_a_tiny_npz(cli, tmp_path):
    np.savez(tmp_path / "cifar.npz", x_train=pixels(30), y_train=np.arange(30) % 10)
    code, out, err = cli("train", "two_layer_fc", "--data", "cifar.npz", "--epochs", "1",
                         "--set", "hidden_dim=16")
    assert code == 0, err
    assert "val_accuracy:" in out
    run = tmp_path / "runs" / "two_layer_fc"
    assert {"filters.png", "curves.png", "confusion_val.png", "model.keras"} <= {p.name for p in run.iterdir()}
    assert keras.saving.load_model(run / "model.keras").hidden_dim == 16
