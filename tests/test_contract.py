"""One contract per entry: every registered model, wherever it was registered, gets these
checks without writing a test (in the spirit of Keras' `run_layer_test` and keras-hub's
backbone test harness).

For each name in `zoo.list()` (read when this module is imported, so an entry registered by
any module imported before it is included), on its task's `example` data and `tiny` preset:

1. `zoo.describe` is complete: description, family, task, data, metric, objective, a help
   text and a valid default for every hyperparameter, every preset and search range valid;
2. a few steps of the entry's own compiled optimizer lower the loss on one fixed batch;
3. `get_config`/`from_config` and a `.keras` save/load give the same outputs;
4. every export endpoint reloads without zoo (one subprocess for all entries) and gives the
   model's outputs;
5. the task's figures are drawn as PNG files;
6. the entry's keras-tuner hypermodel builds;
7. `zoo tune NAME --preset tiny --max-trials 1 --epochs 1` completes one trial.

What an entry must provide (data, not code): a `tiny` preset (small sizes, `epochs: 1`, a
small `batch_size`) and a `Task.example` writer in its family's data module.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap

import keras
import keras_tuner
import numpy as np
import pytest
import tensorflow as tf

import zoo
import zoo.tuning
from zoo.export import export
from zoo.training import adapt_preprocessing, set_seed
from zoo_free import WITHOUT_ZOO

NAMES = zoo.list()
PRESET = "tiny"
FIXED_BATCH = 16  # examples in the fixed batch the loss must fall on
STEPS = 8  # optimizer steps on it
TOLERANCE = 1e-5  # outputs of a restored or exported model against the original
# An export runs the model as a graph TensorFlow optimises (fused ops), so in bfloat16 its
# roundings fall elsewhere than in Keras' call: a probability may move by a fraction of one
# bfloat16 step (2^-8 relative); cifar_airbench's tiny model moved 3e-5.
BFLOAT16_EXPORT_TOLERANCE = 1e-3
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def entry_of(name):
    """The entry, failing (not skipping) with what to add when it lacks the contract's data."""
    entry = zoo.get_entry(name)
    missing = []
    if PRESET not in entry.presets:
        missing.append(
            f"a {PRESET!r} preset (presets={{'{PRESET}': {{...small sizes..., 'epochs': 1, "
            "'batch_size': 8}} in its register call)"
        )
    if entry.task.example is None:
        missing.append(
            f"an example writer on its task (Task(..., example=data.example), a function "
            f"(directory, seed) -> path that writes a small {entry.family} data file)"
        )
    if missing:
        pytest.fail(f"{name} does not meet the entry contract; add {' and '.join(missing)}")
    return entry


def example_splits(entry, directory):
    path = entry.task.example(directory, 0)
    assert path.exists(), f"{entry.task.example.__qualname__} returned {path}, which does not exist"
    return path, entry.task.load(path, seed=0)


def build(entry, splits):
    """The entry built with the tiny preset after `set_seed(0)`, its preprocessing adapted."""
    set_seed(0)
    model = zoo.get(entry.name, preset=PRESET)
    assert isinstance(model, keras.Model), f"zoo.get({entry.name!r}) returned {type(model)}"
    assert model.optimizer is not None, f"zoo.get({entry.name!r}) returned an uncompiled model"
    adapt_preprocessing(model, splits.x_train)
    return model


def outputs(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


def close(actual, expected):
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    return float(np.max(np.abs(actual - expected), initial=0.0))


@pytest.fixture(scope="module", params=NAMES)
def case(request, tmp_path_factory):
    """One entry on its example data: built, and trained `STEPS` steps on a fixed batch."""
    entry = entry_of(request.param)
    directory = tmp_path_factory.mktemp(f"contract-{entry.name}")
    data_path, splits = example_splits(entry, directory)
    model = build(entry, splits)
    x = splits.x_train[:FIXED_BATCH]
    y = None if splits.y_train is None else splits.y_train[:FIXED_BATCH]

    def loss():
        return float(model.evaluate(x, y, batch_size=len(x), verbose=0, return_dict=True)["loss"])

    before = loss()
    # The entry's own compiled optimizer and train_step (its `fit` override included); one
    # batch per step, in order.
    model.fit(x, y, batch_size=len(x), epochs=STEPS, shuffle=False, verbose=0)
    after = loss()
    return {"entry": entry, "data": data_path, "splits": splits, "model": model,
            "x": splits.x_val[:4], "loss": (before, after), "dir": directory}


def test_describe_is_complete(case):
    entry = case["entry"]
    described = zoo.describe(entry.name)
    for key in ("description", "family", "task", "data"):
        assert isinstance(described[key], str) and described[key].strip(), f"{entry.name}: {key}"
    assert described["family"] in zoo.families()
    for key in ("metric", "tuning_objective"):
        assert described[key]["name"] and described[key]["direction"] in ("min", "max"), key
    for name, hp in entry.hparams.items():
        assert hp.help.strip(), f"{entry.name}: hyperparameter {name} has no help text"
        assert hp.check(name, hp.default) == hp.default, f"{entry.name}: {name}'s default"
    for name, space in entry.search_space().items():
        bounds = space.values if hasattr(space, "values") else (space.low, space.high)
        for bound in bounds:
            entry.hparams[name].check(name, bound)
    for preset in entry.presets:
        entry.resolve(preset)
        settings = entry.fit_settings(preset)
        assert settings == {**entry.fit, **settings}
    tiny = entry.fit_settings(PRESET)
    assert tiny.get("epochs") == 1, f"{entry.name}: the {PRESET} preset must set epochs: 1"
    assert tiny.get("batch_size", 10**9) <= 32, f"{entry.name}: {PRESET} needs a small batch_size"


def test_training_steps_lower_the_loss_on_a_fixed_batch(case):
    before, after = case["loss"]
    assert np.isfinite(before) and np.isfinite(after), case["loss"]
    # Strictly lower by a margin that no round-off reaches: a model whose gradients do not
    # reach its weights (or whose learning rate is zero) fails.
    assert after < before - 1e-4 * abs(before), (
        f"{case['entry'].name}: loss {before:.6f} -> {after:.6f} after {STEPS} steps on one batch"
    )


def test_config_round_trip(case):
    model, x = case["model"], case["x"]
    expected = outputs(model, x)
    # Weights travel through a weights file, not set_weights: an adapted Normalization only
    # takes up loaded statistics in load_own_variables (Keras' finalize_state).
    weights = case["dir"] / "trained.weights.h5"
    model.save_weights(weights)
    for how, clone in (
        ("from_config", model.__class__.from_config(model.get_config())),
        ("deserialize_keras_object", keras.saving.deserialize_keras_object(
            json.loads(json.dumps(keras.saving.serialize_keras_object(model))))),
    ):
        assert type(clone) is type(model), how
        clone(x)  # builds its variables
        assert len(clone.weights) == len(model.weights), (
            f"{how}: {len(clone.weights)} weights, the model has {len(model.weights)}"
        )
        clone.load_weights(weights)
        assert clone.get_config() == model.get_config(), how
        assert close(outputs(clone, x), expected) <= TOLERANCE, how


def test_keras_file_round_trip(case):
    model, x = case["model"], case["x"]
    path = case["dir"] / f"{case['entry'].name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded) is type(model)
    assert loaded.get_config() == model.get_config()
    assert close(outputs(loaded, x), outputs(model, x)) <= TOLERANCE


def test_figures_are_drawn(case):
    out = case["dir"] / "figures"
    out.mkdir()
    paths = case["entry"].task.figures(case["model"], case["splits"], out)
    pngs = [path for path in map(type(out), paths) if path.suffix == ".png"]
    assert pngs, f"{case['entry'].name}: figures returned no PNG ({paths})"
    for path in paths:
        assert path.is_file(), path
    for path in pngs:
        assert path.read_bytes()[:8] == PNG_MAGIC, f"{path} is not a PNG"


@pytest.mark.parametrize("name", NAMES)
def test_hypermodel_builds(name):
    entry_of(name)
    hypermodel = zoo.tuning.hypermodel(name, preset=PRESET)
    model = hypermodel.build(keras_tuner.HyperParameters())
    assert isinstance(model, keras.Model)
    assert model.optimizer is not None


@pytest.mark.parametrize("name", NAMES)
def test_tune_one_trial_through_the_command_line(name, cli, tmp_path):
    entry = entry_of(name)
    data_path = entry.task.example(tmp_path / "data", 0)
    code, out, err = cli("tune", name, "--data", data_path, "--preset", PRESET,
                         "--max-trials", 1, "--epochs", 1, "--directory", tmp_path / "tuning")
    assert code == 0, f"zoo tune {name} exited {code}\n{out[-2000:]}\n{err[-2000:]}"
    with open(tmp_path / "tuning" / name / "trials.csv", newline="") as handle:
        trials = list(csv.DictReader(handle))
    assert [trial["status"] for trial in trials] == ["COMPLETED"], trials


# --- export: every entry's endpoints, loaded back in one subprocess that cannot import zoo ---

LOAD_WITHOUT_ZOO = WITHOUT_ZOO + textwrap.dedent(
    """
    import json
    import numpy as np
    import tensorflow as tf

    manifest_path, results_path = sys.argv[1:3]
    results = {}
    for name, export in json.load(open(manifest_path)).items():
        try:
            loaded = tf.saved_model.load(export["path"])
            found = {}
            for endpoint, spec in export["endpoints"].items():
                x = np.load(spec["inputs"])
                outputs = loaded.signatures[endpoint](**{spec["argument"]: tf.constant(x)})
                expected = np.load(spec["expected"])
                if sorted(outputs) != sorted(expected.files):
                    raise ValueError(f"{endpoint}: outputs {sorted(outputs)}, expected "
                                     f"{sorted(expected.files)}")
                found[endpoint] = 0.0
                for output in expected.files:
                    actual = outputs[output].numpy()
                    if actual.shape != expected[output].shape:
                        raise ValueError(f"{endpoint}/{output}: shape {actual.shape}, expected "
                                         f"{expected[output].shape}")
                    difference = np.abs(actual.astype(np.float64) - expected[output])
                    found[endpoint] = max(found[endpoint], float(np.max(difference, initial=0.0)))
            results[name] = {"differences": found, "signatures": sorted(loaded.signatures)}
        except Exception as error:  # reported per entry
            results[name] = {"error": f"{type(error).__name__}: {error}"}
    json.dump(results, open(results_path, "w"))
    """
)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, subprocess_env_module):
    """Exports every entry (tiny, on its example data) and loads every export back in ONE
    subprocess without zoo: `{name: {"differences": {endpoint: max |diff|}} or {"error"}}`."""
    root = tmp_path_factory.mktemp("contract-exports")
    manifest, results = {}, {}
    for name in NAMES:
        try:
            entry = zoo.get_entry(name)
            if PRESET not in entry.presets or entry.task.example is None:
                continue  # entry_of fails the entry's test with what to add
            _, splits = example_splits(entry, root / "data" / name)
            model = build(entry, splits)
            outputs(model, splits.x_val[:1])  # builds subclassed models (export needs weights)
            endpoints = entry.task.endpoints(model)
            path = export(model, name, endpoints, card={"preset": PRESET}, root=root / "models")
            specs = {}
            for endpoint, (function, signature) in endpoints.items():
                assert len(signature) == 1, f"{endpoint}: one input per endpoint, got {signature}"
                (spec,) = signature
                x = np.asarray(splits.x_val[:4]).astype(spec.dtype.as_numpy_dtype)
                returned = function(tf.constant(x))
                assert isinstance(returned, dict), f"{endpoint}: outputs must be named (a dict)"
                expected = {key: keras.ops.convert_to_numpy(value).astype(np.float64)
                            for key, value in returned.items()}
                inputs = root / "arrays" / f"{name}-{endpoint}-inputs.npy"
                inputs.parent.mkdir(parents=True, exist_ok=True)
                np.save(inputs, x)
                np.savez(root / "arrays" / f"{name}-{endpoint}-expected.npz", **expected)
                specs[endpoint] = {
                    "argument": spec.name, "inputs": str(inputs),
                    "expected": str(root / "arrays" / f"{name}-{endpoint}-expected.npz"),
                }
            manifest[name] = {"path": str(path), "endpoints": specs}
        except Exception as error:
            results[name] = {"error": f"exporting failed: {type(error).__name__}: {error}"}
    (root / "manifest.json").write_text(json.dumps(manifest))
    (root / "load.py").write_text(LOAD_WITHOUT_ZOO)
    completed = subprocess.run(
        [sys.executable, str(root / "load.py"), str(root / "manifest.json"),
         str(root / "results.json")],
        cwd=root, env=subprocess_env_module, capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return {**json.loads((root / "results.json").read_text()), **results}


@pytest.fixture(scope="module")
def subprocess_env_module():
    import os

    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}


@pytest.mark.parametrize("name", NAMES)
def test_export_endpoints_load_without_zoo(name, exported):
    entry = entry_of(name)
    result = exported[name]
    assert "error" not in result, f"{name}: {result.get('error')}"
    assert "serve" in result["differences"], f"{entry.name} exports no 'serve' endpoint"
    assert set(result["differences"]) <= set(result["signatures"])
    bfloat16 = entry.hparams["dtype_policy"].default == "mixed_bfloat16"
    tolerance = BFLOAT16_EXPORT_TOLERANCE if bfloat16 else TOLERANCE
    for endpoint, difference in result["differences"].items():
        assert difference <= tolerance, f"{name}: endpoint {endpoint} differs by {difference}"
