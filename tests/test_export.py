"""Export: versioned SavedModels that load without zoo, `.keras` round trips, atomic writes."""

import datetime
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

import zoo
from zoo.autoencoder import KLSparsity, SparseAutoencoder
from zoo.export import CARD_FILE, ExportError, export, formats, next_version
from zoo.files import atomic_path
from zoo.training import set_seed
from zoo_free import WITHOUT_ZOO

NAME = "sparse_autoencoder"
CARD = {"hyperparameters": {"hidden_units": 8, "weight_decay": 5e-4}, "seed": 0}


@pytest.fixture(scope="module")
def model():
    """A tiny SparseAutoencoder trained for one epoch, so its weights and optimizer moved."""
    set_seed(0)
    model = SparseAutoencoder(input_dim=256, hidden_units=8, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    x = np.random.default_rng(1).uniform(0.1, 0.9, (64, 256)).astype(np.float32)
    model.fit(x, epochs=1, batch_size=16, verbose=0)
    return model


def export_model(model, root, card=CARD):
    return export(model, NAME, zoo.get_entry(NAME).task.endpoints(model), card=card, root=root)


# Runs with `zoo` unimportable: the SavedModel must stand alone.
LOAD_WITHOUT_ZOO = WITHOUT_ZOO + textwrap.dedent(
    """
    import numpy as np
    import tensorflow as tf
    import keras

    path, inputs, out = sys.argv[1:4]
    x = np.load(inputs)
    loaded = tf.saved_model.load(path)
    results = {}
    names = {"serve": ["hidden", "reconstruction"], "encode": ["hidden"],
             "reconstruct": ["reconstruction"]}
    for name, expected in names.items():
        outputs = loaded.signatures[name](patches=tf.constant(x))
        assert sorted(outputs) == expected, (name, sorted(outputs))
        for output, value in outputs.items():
            results[f"{name}/{output}"] = value.numpy()
    served = keras.layers.TFSMLayer(path, call_endpoint="serve")(x)
    results["tfsm_serve"] = np.asarray(served["reconstruction"])
    np.savez(out, **results)
    print("signatures:", ",".join(sorted(loaded.signatures)))
    """
)


def test_export_versions_card_and_loading_without_zoo(model, tmp_path, subprocess_env):
    root = tmp_path / "saved_models"
    first = export_model(model, root)
    assert first == root / NAME / "1"
    assert (first / "saved_model.pb").is_file()
    assert (first / f"{NAME}.keras").is_file()

    card = json.loads((first / CARD_FILE).read_text())
    assert card["name"] == NAME
    assert card["version"] == 1
    assert card["hyperparameters"] == CARD["hyperparameters"]
    assert card["seed"] == 0
    assert {"python", "tensorflow", "keras", "numpy"} <= set(card["libraries"])
    assert card["libraries"]["keras"] == keras.__version__
    exported = datetime.datetime.fromisoformat(card["exported"])
    assert abs(datetime.datetime.now(datetime.timezone.utc) - exported) < datetime.timedelta(
        minutes=10
    )
    # Every signature's inputs and outputs by name, shape and dtype, as the SavedModel has them.
    patches = {"name": "patches", "shape": [None, 256], "dtype": "float32"}
    hidden = {"name": "hidden", "shape": [None, 8], "dtype": "float32"}
    reconstruction = {"name": "reconstruction", "shape": [None, 256], "dtype": "float32"}
    signatures = {name: {"inputs": value["inputs"],
                         "outputs": sorted(value["outputs"], key=lambda output: output["name"])}
                  for name, value in card["signatures"].items()}
    assert signatures == {
        "serve": {"inputs": [patches], "outputs": [hidden, reconstruction]},
        "encode": {"inputs": [patches], "outputs": [hidden]},
        "reconstruct": {"inputs": [patches], "outputs": [reconstruction]},
    }
    assert list(card["formats"]) == ["saved_model"]
    assert card["formats"]["saved_model"]["file"] == "saved_model.pb"
    assert card["formats"]["saved_model"]["signatures"] == ["serve", "encode", "reconstruct"]
    assert card["keras"] == f"{NAME}.keras"

    second = export_model(model, root)
    assert second == root / NAME / "2"
    assert json.loads((second / CARD_FILE).read_text())["version"] == 2
    assert sorted(p.name for p in (root / NAME).iterdir()) == ["1", "2"]

    x = np.random.default_rng(2).uniform(0.1, 0.9, (5, 256)).astype(np.float32)
    np.save(tmp_path / "inputs.npy", x)
    script = tmp_path / "load_without_zoo.py"
    script.write_text(LOAD_WITHOUT_ZOO)
    outputs = tmp_path / "outputs.npz"
    result = subprocess.run(
        [sys.executable, str(script), str(first), str(tmp_path / "inputs.npy"), str(outputs)],
        cwd=tmp_path,
        env=subprocess_env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "signatures: encode,reconstruct,serve" in result.stdout

    loaded = np.load(outputs)
    expected = {
        "serve/reconstruction": np.asarray(model(x)),
        "serve/hidden": np.asarray(model.encode(x)),
        "encode/hidden": np.asarray(model.encode(x)),
        "reconstruct/reconstruction": np.asarray(model(x)),
        "tfsm_serve": np.asarray(model(x)),
    }
    assert sorted(loaded.files) == sorted(expected)
    for name, value in expected.items():
        assert loaded[name].shape == value.shape, name
        assert np.max(np.abs(loaded[name] - value)) <= 1e-6, name
    assert loaded["encode/hidden"].shape == (5, 8)


def test_keras_file_round_trip(model, tmp_path):
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)

    assert isinstance(loaded, SparseAutoencoder)
    assert loaded.get_config() == model.get_config()
    assert loaded.get_config()["hidden_units"] == 8
    for original, restored in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(np.asarray(restored), np.asarray(original))
    # The optimizer state comes back too, so training can continue where it stopped.
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) == 4
    x = np.random.default_rng(3).uniform(0.1, 0.9, (7, 256)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(loaded(x)), np.asarray(model(x)))
    np.testing.assert_array_equal(np.asarray(loaded.encode(x)), np.asarray(model.encode(x)))


def test_kl_sparsity_serialization_round_trip():
    layer = KLSparsity(target=0.1, weight=2.5, name="kl")
    config = keras.saving.serialize_keras_object(layer)
    assert config["registered_name"] == "zoo>KLSparsity"
    restored = keras.saving.deserialize_keras_object(json.loads(json.dumps(config)))

    assert type(restored) is KLSparsity
    assert (restored.target, restored.weight, restored.name) == (0.1, 2.5, "kl")
    activations = np.random.default_rng(4).uniform(0.05, 0.95, (6, 3)).astype(np.float32)
    assert float(restored.penalty(activations)) == pytest.approx(float(layer.penalty(activations)))
    assert float(layer.penalty(activations)) > 0


class Interrupted(BaseException):
    """Stands for Ctrl-C or a kill signal turned into an exception: not an `Exception`."""


def leftovers(model_dir):
    return sorted(p.name for p in model_dir.iterdir()) if model_dir.exists() else []


def test_export_interrupted_while_saving_leaves_no_version(model, tmp_path, monkeypatch):
    def interrupted_save(self, *args, **kwargs):
        raise Interrupted("killed while saving the .keras copy")

    monkeypatch.setattr(keras.Model, "save", interrupted_save)
    with pytest.raises(Interrupted):
        export_model(model, tmp_path)
    assert leftovers(tmp_path / NAME) == []


def test_export_failing_card_leaves_earlier_versions_alone(model, tmp_path):
    model_dir = tmp_path / NAME
    (model_dir / "1").mkdir(parents=True)
    (model_dir / "1" / "marker").write_text("version 1")
    circular = {"data": []}
    circular["data"].append(circular)  # json.dumps fails on the card, after the SavedModel

    with pytest.raises(ValueError, match="[Cc]ircular"):
        export_model(model, tmp_path, card=circular)
    assert leftovers(model_dir) == ["1"]
    assert (model_dir / "1" / "marker").read_text() == "version 1"
    assert next_version(model_dir) == 2


def test_next_version_counts_anything_named_like_a_version(tmp_path):
    assert next_version(tmp_path / "missing") == 1
    (tmp_path / ".zoo-export-deadbeef").mkdir()  # an unfinished export takes no number
    (tmp_path / "3").mkdir()
    (tmp_path / "3a").mkdir()
    assert next_version(tmp_path) == 4
    # A file named like a version is not one, but its number is taken: never written over.
    (tmp_path / "9").write_text("a file, not a version")
    assert next_version(tmp_path) == 10


def test_atomic_path_file(tmp_path):
    target = tmp_path / "out" / "result.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            assert temporary.parent == target.parent and temporary.name.startswith(".tmp-")
            temporary.write_text("half written")
            raise RuntimeError("failed midway")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []

    with atomic_path(target) as temporary:
        temporary.write_text("first")
    assert target.read_text() == "first"
    assert list(target.parent.iterdir()) == [target]

    # A failed rewrite keeps the old content; a successful one replaces it.
    with pytest.raises(Interrupted):
        with atomic_path(target) as temporary:
            temporary.write_text("second, unfinished")
            raise Interrupted()
    assert target.read_text() == "first"
    with atomic_path(target) as temporary:
        temporary.write_text("second")
    assert target.read_text() == "second"
    assert list(target.parent.iterdir()) == [target]


# A classifier's SavedModel, loaded with zoo unimportable: named outputs, the argmax as an int64.
LOAD_CLASSIFIER_WITHOUT_ZOO = textwrap.dedent(
    """
    import sys
    sys.modules["zoo"] = None
    import numpy as np
    import tensorflow as tf

    path, inputs = sys.argv[1:3]
    served = tf.saved_model.load(path).signatures["serve"](images=tf.constant(np.load(inputs)))
    assert sorted(served) == ["class_index", "probabilities"], sorted(served)
    assert served["class_index"].dtype == tf.int64, served["class_index"].dtype
    probabilities = served["probabilities"].numpy()
    assert probabilities.shape == (6, 10), probabilities.shape
    np.testing.assert_array_equal(served["class_index"].numpy(), probabilities.argmax(-1))
    print("named outputs ok")
    """
)


def test_classifier_export_names_its_outputs_and_classes(cli, tmp_path, subprocess_env):
    entry = zoo.get_entry("three_layer_convnet")
    data = entry.task.example(tmp_path / "data", 0)
    code, _, err = cli("train", entry.name, "--preset", "tiny", "--data", data, "--run-dir", "run")
    assert code == 0, err
    code, out, err = cli("export", entry.name, "--run-dir", "run", "--root", "exports")
    assert code == 0, err
    target = tmp_path / "exports" / entry.name / "1"
    card = json.loads((target / CARD_FILE).read_text())
    assert card["class_names"] == entry.task.load(data, seed=0).info["classes"]
    assert len(card["class_names"]) == 10
    images = entry.task.load(data, seed=0).x_val[:6]
    np.save(tmp_path / "images.npy", np.asarray(images, np.uint8))
    script = tmp_path / "load_classifier.py"
    script.write_text(LOAD_CLASSIFIER_WITHOUT_ZOO)
    result = subprocess.run(
        [sys.executable, str(script), str(target), str(tmp_path / "images.npy")],
        cwd=tmp_path, env=subprocess_env, capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "named outputs ok" in result.stdout


def snapshot(directory):
    """Every path under `directory` with its bytes (None for a folder), zoo's lock left out."""
    return {str(path.relative_to(directory)): None if path.is_dir() else path.read_bytes()
            for path in sorted(directory.rglob("*")) if path.name != ".zoo-lock"}


def test_export_leaves_what_zoo_did_not_write_byte_identical(model, tmp_path):
    model_dir = tmp_path / NAME
    (model_dir / ".tmp-x").mkdir(parents=True)  # a user's hidden folder, not an export's
    (model_dir / ".tmp-x" / "notes.txt").write_text("kept")
    (model_dir / ".zoo-export-mine").mkdir()  # zoo's prefix, but no marker: not zoo's
    (model_dir / ".zoo-export-mine" / "data.bin").write_bytes(bytes(range(256)))
    (model_dir / "1").write_text("a file named like a version")
    (tmp_path / "README").write_text("the user's root")
    before = snapshot(tmp_path)

    first = export_model(model, tmp_path)
    second = export_model(model, tmp_path)
    assert (first, second) == (model_dir / "2", model_dir / "3")  # "1" is taken, not replaced
    after = snapshot(tmp_path)
    assert {key: value for key, value in after.items()
            if key.split("/")[:2] not in ([NAME, "2"], [NAME, "3"])} == before
    assert json.loads((first / CARD_FILE).read_text())["version"] == 2


def test_export_removes_only_unfinished_versions_zoo_marked(model, tmp_path):
    model_dir = tmp_path / NAME
    killed = model_dir / ".zoo-export-0123456789ab"  # what a killed export leaves
    (killed / ".zoo-scratch" / "variables").mkdir(parents=True)
    (killed / ".zoo-export-unfinished").write_text("12345\n")
    (killed / ".zoo-scratch" / "saved_model.pb").write_bytes(b"half")
    target = export_model(model, tmp_path)
    assert target == model_dir / "1"
    assert leftovers(model_dir) == ["1"]
    assert not list(target.glob(".zoo-*")), "the marker must not stay in a finished version"


def test_a_killed_conversion_leaves_its_scratch_in_the_unfinished_version(model, tmp_path,
                                                                          monkeypatch):
    exporting = sys.modules["zoo.export"]
    given = []

    def killed(saved_model):
        given.append(Path(saved_model))
        assert (given[0] / "saved_model.pb").is_file()
        raise Interrupted("killed while converting")

    monkeypatch.setitem(exporting._CONVERTERS, "litert", killed)
    endpoints = zoo.get_entry(NAME).task.endpoints(model)
    with pytest.raises(Interrupted):
        export(model, NAME, endpoints, CARD, root=tmp_path, format="litert")
    # Not the system's temporary folder: the scratch SavedModel was inside the version's own
    # unfinished folder, so it went with it.
    assert given[0].parent.parent == tmp_path / NAME
    assert given[0].parent.name.startswith(".zoo-export-")
    assert not given[0].exists() and leftovers(tmp_path / NAME) == []


def test_export_refuses_in_one_line_where_the_root_cannot_take_a_version(model, tmp_path):
    (tmp_path / NAME).write_text("a file where the model's folder goes")
    with pytest.raises(ExportError, match=f"{NAME} is not a directory") as refused:
        export_model(model, tmp_path)
    assert "\n" not in str(refused.value)
    assert (tmp_path / NAME).read_text() == "a file where the model's folder goes"
    with pytest.raises(ExportError, match="unknown export format 'tflitee'"):
        export(model, NAME, zoo.get_entry(NAME).task.endpoints(model), CARD,
               root=tmp_path / "other", format="saved_model,tflitee")
    assert not (tmp_path / "other").exists()


def test_format_names(tmp_path):
    assert formats("saved_model") == ("saved_model",)
    assert formats("savedmodel, onnx,litert,onnx") == ("saved_model", "onnx", "litert")
    assert formats(["litert", "saved_model"]) == ("litert", "saved_model")
    with pytest.raises(ExportError, match="no export format"):
        formats(" , ")
