"""Weight sets (zoo.weights): writing, finding by tag, checksums, loading by tag or path,
architecture checks, fine-tuning and `zoo predict` (the shipped sets: tests/test_shipped_sets.py).

Sets are tiny (a few units, seeded initial weights, no training) and live in a tmp directory
that `$ZOO_WEIGHTS_PATH` points the lookup at.
"""

import json

import h5py
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo import runs, training, weights
from zoo.convnets.data import CLASS_NAMES as CIFAR_CLASSES
from zoo.export import export
from zoo.recurrent.data import COURSE_CLASSES

# One entry of each family, small, with 8 fixed inputs.
TINY = {
    "sparse_autoencoder": ({"hidden_units": 8}, (8, 256)),
    "lstm": ({"units": 4, "head_units": 4}, (8, 150, 3)),
    "two_layer_fc": ({"hidden_dim": 8}, (8, 32, 32, 3)),
}


CLASS_NAMES = {"lstm": {"class_names": list(COURSE_CLASSES)},
               "two_layer_fc": {"class_names": list(CIFAR_CLASSES)}}


def fixed_inputs(shape):
    rng = np.random.default_rng(1)
    if len(shape) == 4:
        return rng.integers(0, 256, shape).astype(np.float32)
    return rng.uniform(0.1, 0.9, shape).astype(np.float32)


@pytest.fixture
def weight_dir(tmp_path, monkeypatch):
    directory = tmp_path / "weights"
    monkeypatch.setenv(weights.PATH_VARIABLE, str(directory))
    return directory


def tiny_model(name, **extra):
    overrides, _ = TINY[name]
    training.set_seed(0)
    return zoo.get(name, **overrides, **extra)


def make_set(name, directory, tag="tiny", adapted=False, **extra):
    """A set of `name`'s tiny model; `adapted`: its preprocessing fitted to data far from zero
    mean and unit variance first, as a trained model's is."""
    overrides, shape = TINY[name]
    model = tiny_model(name, **extra)
    if adapted:
        assert training.adapt_preprocessing(model, 5 * fixed_inputs(shape) + 3)
    hyperparameters = zoo.get_entry(name).resolve(None, **overrides, **extra)
    card = weights.write_set(
        model, name, tag,
        {"data": "seeded initial weights (no data)", "licence": "CC0", "metrics": {},
         "recipe": {"preset": None, "hyperparameters": hyperparameters, "seed": 0, "epochs": 0},
         "command": "tests/test_weights.py", **CLASS_NAMES.get(name, {})},
        directory, check_inputs=fixed_inputs(shape),
    )
    return model, card


def outputs(model, x):
    return np.asarray(model(x, training=False))


def assert_recorded_outputs(name, tag):
    model = zoo.get(name, weights=tag, dtype_policy="float32")  # as the outputs were recorded
    with np.load(weights.check_file(name, tag)) as check:
        np.testing.assert_allclose(outputs(model, check["inputs"]), check["outputs"], atol=1e-5)


@pytest.mark.parametrize("name", sorted(TINY))
def test_a_written_set_loads_by_tag_and_gives_its_recorded_outputs(name, weight_dir):
    original, card_path = make_set(name, weight_dir)
    card = json.loads(card_path.read_text())
    assert card["tag"] == "tiny" and card["entry"] == name and card["storage_dtype"] == "float32"
    file = weight_dir / f"{name}.tiny.weights.h5"
    assert card["size_bytes"] == file.stat().st_size and card["sha256"] == weights.sha256(file)
    with h5py.File(file) as handle:
        assert "optimizer" not in handle  # weights only
    assert "tiny" in weights.available(name) and name in zoo.list(pretrained=True)
    assert "tiny" in zoo.describe(name)["weights"]
    assert_recorded_outputs(name, "tiny")
    x = fixed_inputs(TINY[name][1])
    np.testing.assert_allclose(outputs(zoo.get(name, weights="tiny"), x), outputs(original, x),
                               atol=1e-6)


def test_a_damaged_set_fails_clearly(weight_dir):
    make_set("sparse_autoencoder", weight_dir)
    file = weight_dir / "sparse_autoencoder.tiny.weights.h5"
    content = bytearray(file.read_bytes())
    content[len(content) // 2] ^= 0xFF
    file.write_bytes(bytes(content))
    with pytest.raises(weights.WeightsError, match="SHA-256 mismatch: expected [0-9a-f]{64}, "
                                                   "got [0-9a-f]{64}; reinstall zoo"):
        zoo.get("sparse_autoencoder", weights="tiny")


def test_unknown_tag_names_the_sets(weight_dir):
    make_set("sparse_autoencoder", weight_dir)
    with pytest.raises(weights.WeightsError, match="no weight set 'other'.*sets: .*tiny"):
        zoo.get("sparse_autoencoder", weights="other")


def test_float16_storage_casts_back(weight_dir):
    model = tiny_model("sparse_autoencoder")
    hyperparameters = zoo.get_entry("sparse_autoencoder").resolve(None, hidden_units=8)
    fields = {"data": "none", "licence": "CC0", "metrics": {"x": 1}, "metrics_float32": {"x": 1},
              "command": "c", "recipe": {"hyperparameters": hyperparameters}}
    weights.write_set(model, "sparse_autoencoder", "half", fields, weight_dir, float16=True)
    with h5py.File(weight_dir / "sparse_autoencoder.half.weights.h5") as handle:
        assert handle["encoder/vars/0"].dtype == np.float16
    loaded = zoo.get("sparse_autoencoder", weights="half")
    assert all(w.dtype == "float32" for w in loaded.weights)
    x = fixed_inputs((8, 256))
    np.testing.assert_allclose(outputs(loaded, x), outputs(model, x), atol=1e-3)
    without = {key: value for key, value in fields.items() if key != "metrics_float32"}
    with pytest.raises(ValueError, match="metrics_float32"):
        weights.write_set(model, "sparse_autoencoder", "h2", without, weight_dir, float16=True)


def test_loading_by_each_kind_of_path(tmp_path):
    name = "two_layer_fc"
    model = tiny_model(name)
    x = fixed_inputs(TINY[name][1])
    expected = outputs(model, x)
    hyperparameters = zoo.get_entry(name).resolve(None, **TINY[name][0])

    run = runs.RunDirectory(tmp_path / "run")
    run.claim()
    model.save(run.model_path)
    run.write_record({"name": name, "hyperparameters": hyperparameters, "status": runs.FINISHED})
    model.save(tmp_path / "model.keras")
    model.save_weights(tmp_path / "model.weights.h5")
    exported = export(model, name, zoo.get_entry(name).task.endpoints(model),
                      {"hyperparameters": hyperparameters}, root=tmp_path / "saved_models")

    for path, extra in ((run.path, {}), (exported, {}), (tmp_path / "model.keras", TINY[name][0]),
                        (tmp_path / "model.weights.h5", TINY[name][0])):
        loaded = zoo.get(name, weights=str(path), **extra)
        np.testing.assert_allclose(outputs(loaded, x), expected, atol=1e-6, err_msg=str(path))
    with pytest.raises(weights.WeightsError, match="holds weights of 'two_layer_fc', not 'cifar_small'"):
        zoo.get("cifar_small", weights=str(run.path))


def test_architecture_changing_override_is_refused_learning_rate_is_not(weight_dir):
    make_set("lstm", weight_dir)
    with pytest.raises(zoo.HyperparameterError,
                       match=r"units=8 changes the architecture .* trained with units=4"):
        zoo.get("lstm", weights="tiny", units=8)
    model = zoo.get("lstm", weights="tiny", learning_rate=0.123, dropout=0.3)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.123)


def test_a_file_that_does_not_fit_names_the_variable_and_both_shapes(tmp_path):
    tiny_model("two_layer_fc").save_weights(tmp_path / "small.weights.h5")
    with pytest.raises(weights.WeightsError,
                       match=r"variable .*kernel \(hidden/vars/0\) has shape \(3072, 8\) in the "
                             r"file, \(3072, 16\) in the model"):
        zoo.get("two_layer_fc", weights=str(tmp_path / "small.weights.h5"), hidden_dim=16)


def test_keras_lstm_loads_the_lstm_set(weight_dir):
    model = make_set("lstm", weight_dir, adapted=True)[0]
    assert "tiny" in weights.available("keras_lstm")
    x = fixed_inputs((8, 150, 3))
    twin = zoo.get("keras_lstm", weights="tiny")
    np.testing.assert_allclose(outputs(twin, x), outputs(model, x), atol=1e-5)
    np.testing.assert_allclose(outputs(twin, x), outputs(zoo.get("lstm", weights="tiny"), x),
                               atol=1e-5)


def har_file(path, classes=3, per_class=6):
    rng = np.random.default_rng(0)
    y = np.repeat(np.eye(classes, dtype=np.float32), per_class, axis=0)
    with h5py.File(path, "w") as handle:
        handle["trX"] = rng.normal(size=(len(y), 150, 3)).astype(np.float32)
        handle["trY"] = y
        handle["tstX"] = rng.normal(size=(classes, 150, 3)).astype(np.float32)
        handle["tstY"] = np.eye(classes, dtype=np.float32)
        handle.attrs["classes"] = [f"act{i}" for i in range(classes)]
    return path


def test_fine_tuning_with_another_class_count_replaces_the_head(cli, weight_dir, tmp_path):
    make_set("lstm", weight_dir)
    data = har_file(tmp_path / "har3.h5")
    code, out, err = cli("train", "lstm", "--weights", "tiny", "--set", "num_classes=3",
                         "--data", data, "--epochs", 1, "--run-dir", tmp_path / "run")
    assert code == 0, err
    assert "re-initialised the classifier head" in out and "classifier/vars/0" in out
    record = runs.RunDirectory(tmp_path / "run").record()
    assert record["hyperparameters"]["num_classes"] == 3 and record["hyperparameters"]["units"] == 4
    assert record["weights"]["source"] == "tiny"
    code, _, err = cli("train", "lstm", "--weights", "tiny", "--set", "units=8", "--data", data,
                       "--epochs", 1, "--run-dir", tmp_path / "run2")
    assert code == 2 and "units=8 changes the architecture" in err


def test_predict_images_one_bad_among_good(cli, weight_dir, tmp_path):
    make_set("two_layer_fc", weight_dir)
    folder = tmp_path / "images"
    folder.mkdir()
    for index, size in enumerate((32, 50)):
        png = tf.io.encode_png(np.full((size, size + 3, 3), 40 * index, np.uint8)).numpy()
        (folder / f"image{index}.png").write_bytes(png)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    code, out, err = cli("predict", "two_layer_fc", "--weights", "tiny", folder,
                         tmp_path / "broken.png", "--output", tmp_path / "predictions.csv")
    assert code == 1
    assert out.count("image") >= 2 and "broken.png: refused: cannot decode image" in err
    lines = (tmp_path / "predictions.csv").read_text().splitlines()
    assert len(lines) == 3 and lines[0].startswith("input,prediction,airplane")


def test_predict_windows_one_bad_among_good(cli, weight_dir, tmp_path):
    make_set("lstm", weight_dir)
    windows = np.random.default_rng(0).normal(size=(3, 150, 3)).astype(np.float32)
    windows[1, 5, 0] = np.nan
    np.save(tmp_path / "good.npy", windows)
    np.save(tmp_path / "wrong.npy", np.zeros((2, 100, 3), np.float32))
    har = har_file(tmp_path / "har.h5", classes=6)
    code, out, err = cli("predict", "lstm", "--weights", "tiny", tmp_path / "good.npy",
                         tmp_path / "wrong.npy", har, "--key", "tstX")
    assert code == 1
    assert "good.npy[0]: " in out and "good.npy[2]: " in out and "har.h5[5]: " in out
    assert "good.npy[1]: refused: the window has NaN" in err
    assert "must have shape (N, 150, 3), got (2, 100, 3)" in err


def test_predict_autoencoder_writes_code_and_reconstruction(cli, weight_dir, tmp_path):
    make_set("sparse_autoencoder", weight_dir)
    image = np.random.default_rng(0).integers(0, 256, (48, 40, 3)).astype(np.uint8)
    (tmp_path / "photo.png").write_bytes(tf.io.encode_png(image).numpy())
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8 broken")
    code, out, err = cli("predict", "sparse_autoencoder", "--weights", "tiny",
                         tmp_path / "photo.png", tmp_path / "bad.jpg", "--out", tmp_path / "out")
    assert code == 1 and "photo.png: 6 patches" in out and "bad.jpg: refused" in err
    assert np.load(tmp_path / "out" / "photo.code.npy").shape == (6, 8)
    assert np.load(tmp_path / "out" / "photo.reconstruction.npy").shape == (6, 256)
    assert (tmp_path / "out" / "photo.reconstruction.png").stat().st_size > 0


def test_describe_quotes_a_cross_validated_sets_figures(cli, weight_dir):
    model, card = make_set("lstm", weight_dir)
    fields = json.loads(card.read_text())
    validated = {"scheme": "leave-one-subject-out cross-validation over subjects 1-11",
                 "metrics": {"accuracy": 0.93}, "recall": {"sitting": 0.86, "standing": 0.95}}
    fields.update(cross_validation=validated, metrics=validated["metrics"],
                  data={"measured_on": validated["scheme"]}, training_metrics={"accuracy": 0.99})
    weights.write_set(model, "lstm", "tiny", {key: fields[key] for key in fields if key not in
                                              ("tag", "file", "size_bytes", "sha256",
                                               "storage_dtype")}, weight_dir)
    code, out, _ = cli("describe", "lstm")
    assert code == 0 and "accuracy': 0.93}, on leave-one-subject-out" in out
    assert "recall per class on people left out: sitting 86.0%, standing 95.0%" in out
    code, out, _ = cli("list", "--pretrained", "lstm")
    assert "accuracy 0.930 on leave-one-subject-out cross-validation over subjects 1-11" in out


def test_describe_and_export_carry_the_card(cli, weight_dir, tmp_path):
    make_set("sparse_autoencoder", weight_dir)
    code, out, _ = cli("describe", "sparse_autoencoder")
    assert code == 0 and "weights 'tiny'" in out and "licence: CC0" in out and "sha256" in out
    code, out, _ = cli("list", "--pretrained")
    assert code == 0 and "sparse_autoencoder" in out.split()
    code, out, err = cli("export", "sparse_autoencoder", "--weights", "tiny", "--root",
                         tmp_path / "saved")
    assert code == 0, err
    card = json.loads((tmp_path / "saved" / "sparse_autoencoder" / "1" / "model_card.json").read_text())
    assert card["weight_card"]["licence"] == "CC0" and card["weight_card"]["tag"] == "tiny"
    assert card["weights"] == "tiny"
