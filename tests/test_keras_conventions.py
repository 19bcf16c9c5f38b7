"""Keras habits that must work on zoo's models as on Keras' own (issue 25, item 4).

1. Integer class labels `(N,)` (Keras' sparse labels, `image_dataset_from_directory`'s default)
   train and evaluate every classifier, as one-hot rows do, label smoothing included.
2. A scheduled model (`zoo.schedules.ScheduledModel`) fits a `tf.data.Dataset` of unknown length.
3. `keras.saving.load_model` reads a zoo `.keras` file in a fresh process after `import zoo`, which
   still imports no TensorFlow.
4. Drawing figures leaves matplotlib's backend and pyplot's figures alone.
5. The library reports through `logging` (silent below WARNING by default); the command line
   shows the same lines; LiteRT's C++ delegate line is hidden.
"""

from __future__ import annotations

import ast
import io
import logging
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo import classification
from zoo.data import DataError, Splits
from zoo.schedules import UnknownLengthError, steps_per_epoch
from zoo.training import Progress, adapt_preprocessing, check_labels, fit, set_seed

CLASSIFIERS = [name for name in zoo.list() if zoo.get_entry(name).task.class_names]
ROOT = Path(zoo.__file__).resolve().parents[1]


def example_inputs(name, model, count, seed=0):
    """`count` random inputs in [0, 1) shaped as the entry's served input (its first export
    signature)."""
    _, signature = next(iter(zoo.get_entry(name).task.endpoints(model).values()))
    shape = [count if size is None else size for size in signature[0].shape]
    return np.random.default_rng(seed).uniform(0, 1, shape).astype(np.float32)


def run_python(script, env, timeout=300):
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


# --- 1. class indices as targets ----------------------------------------------------------


def test_loss_and_metrics_take_indices_as_one_hot_rows_with_label_smoothing():
    rng = np.random.default_rng(0)
    probabilities = keras.ops.softmax(rng.normal(size=(12, 5)).astype(np.float32))
    labels = rng.integers(0, 5, 12)
    one_hot = np.eye(5, dtype=np.float32)[labels]
    smoothed = keras.losses.CategoricalCrossentropy(label_smoothing=0.2)(one_hot, probabilities)
    for targets in (labels, labels[:, None], labels.astype(np.float32), one_hot):
        loss = classification.loss(0.2)(targets, probabilities)
        np.testing.assert_allclose(float(loss), float(smoothed), rtol=1e-6)
    # Smoothing applies to indices: without it the loss differs.
    assert abs(float(classification.loss(0.0)(labels, probabilities)) - float(smoothed)) > 1e-3
    for metric_of_indices, metric_of_rows in zip(classification.metrics(), classification.metrics()):
        metric_of_indices.update_state(labels, probabilities)
        metric_of_rows.update_state(one_hot, probabilities)
        np.testing.assert_allclose(float(metric_of_indices.result()),
                                   float(metric_of_rows.result()), rtol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_every_classifier_fits_and_evaluates_on_class_indices(name):
    set_seed(0)
    model = zoo.get(name, preset="tiny")
    x = example_inputs(name, model, 8)
    adapt_preprocessing(model, x)  # whitening, normalisation: finite losses on random pixels
    labels = np.arange(8) % model.num_classes
    history = model.fit(x, labels, epochs=1, batch_size=8, verbose=0)
    assert math.isfinite(history.history["loss"][0])
    with_indices = model.evaluate(x, labels, verbose=0, return_dict=True)
    with_rows = model.evaluate(x, np.eye(model.num_classes, dtype=np.float32)[labels],
                               verbose=0, return_dict=True)
    assert set(with_indices) >= {"loss", "accuracy", "macro_f1"}
    for metric, value in with_rows.items():
        np.testing.assert_allclose(with_indices[metric], value, rtol=1e-5, err_msg=metric)


def test_zoo_training_fit_takes_class_indices(tmp_path):
    set_seed(0)
    model = zoo.get("cifar_small", preset="tiny")
    x = example_inputs("cifar_small", model, 24)
    labels = np.arange(24) % 10
    splits = Splits(x_train=x[:16], y_train=labels[:16], x_val=x[16:], y_val=labels[16:])
    history = fit(model, splits, tmp_path / "run", epochs=1, batch_size=8, verbose=0)
    assert set(history) >= {"loss", "accuracy", "macro_f1", "val_loss", "val_accuracy"}
    assert all(math.isfinite(value) for values in history.values() for value in values)
    # The confusion-matrix report reads indices of either shape as the classes they name.
    for targets in (labels, labels[:, None], np.eye(10)[labels]):
        np.testing.assert_array_equal(classification.class_indices(targets), labels)


def test_check_labels_takes_indices_and_refuses_impossible_ones():
    model = zoo.get("cifar_small", preset="tiny")
    check_labels(model, np.arange(10))
    check_labels(model, np.arange(10)[:, None].astype(np.float32))  # (N, 1), as keras.datasets
    check_labels(model, np.eye(10))
    for labels, shown in ((np.array([0, 10]), "10"), (np.array([-1, 2]), "-1"),
                          (np.array([0.5, 1.0]), "0.5")):
        with pytest.raises(DataError, match=f"class index {shown}"):
            check_labels(model, labels)
    with pytest.raises(DataError, match="the labels have 6 classes"):
        check_labels(model, np.eye(6))


# --- 2. datasets of unknown length --------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cifar_small", "cifar_airbench"])
def test_scheduled_fit_counts_a_dataset_of_unknown_length(name):
    set_seed(0)
    model = zoo.get(name, preset="tiny")
    x = example_inputs(name, model, 20)
    adapt_preprocessing(model, x)
    dataset = tf.data.Dataset.from_tensor_slices((x, np.arange(20) % 10)).batch(8)
    dataset = dataset.filter(lambda *batch: True)
    assert int(dataset.cardinality()) == tf.data.UNKNOWN_CARDINALITY
    steps = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: trained.append(1))
    trained = []
    model.fit(dataset, epochs=2, verbose=0, callbacks=[steps])
    assert model.planned_steps == len(trained) == 2 * 3  # batches of 8, 8 and 4
    assert float(model.optimizer._learning_rate.total_steps) == 6


def test_steps_per_epoch_prefers_what_fit_was_told():
    dataset = tf.data.Dataset.range(10).batch(4)
    assert steps_per_epoch(dataset) == 3
    assert steps_per_epoch(dataset.filter(lambda value: True), given=7) == 7
    assert steps_per_epoch(np.zeros((100, 2)), batch_size=32, validation_split=0.2) == 3
    assert steps_per_epoch({"a": np.zeros((10, 2))}) == 1
    with pytest.raises(UnknownLengthError, match="repeats forever") as raised:
        steps_per_epoch(dataset.repeat())
    assert isinstance(raised.value, zoo.errors.UserError)


# --- 3. keras.saving.load_model after import zoo -------------------------------------------

LOAD_SCRIPT = """
import sys
import numpy as np
{first}
assert "tensorflow" not in sys.modules, "import zoo imported TensorFlow"
{second}
model = keras.saving.load_model({path!r})
assert type(model).__module__.startswith("zoo."), type(model)
data = np.load({data!r})
np.testing.assert_allclose(model.predict(data["x"], verbose=0), data["y"], rtol=1e-5, atol=1e-6)
print("loaded", type(model).__name__)
"""


@pytest.mark.parametrize(("name", "order"), [
    ("cifar_airbench", "zoo first"), ("lstm", "zoo first"), ("sparse_autoencoder", "zoo first"),
    ("lstm", "keras first"),
])
def test_keras_load_model_reads_a_zoo_file_after_import_zoo(name, order, tmp_path, subprocess_env):
    set_seed(0)
    model = zoo.get(name, preset="tiny")
    x = example_inputs(name, model, 4)
    adapt_preprocessing(model, x)
    path = tmp_path / f"{name}.keras"
    model.save(path)
    np.savez(tmp_path / "data.npz", x=x, y=model.predict(x, verbose=0))
    first, second = "import zoo", "import keras"
    if order == "keras first":
        first, second = "", "import keras\nimport zoo"
    done = run_python(LOAD_SCRIPT.format(first=first, second=second, path=str(path),
                                         data=str(tmp_path / "data.npz")), subprocess_env)
    assert f"loaded {type(model).__name__}" in done.stdout


def test_every_registered_zoo_class_has_a_deferred_name():
    zoo.saving.import_keras_objects()
    registered = {name for name, value in keras.saving.get_custom_objects().items()
                  if name.startswith("zoo>") and not isinstance(value, zoo._lazy.DeferredKerasObject)}
    assert registered, "no zoo class registered"
    assert registered <= set(zoo._keras_object_names())


# --- 4. figures without a backend ----------------------------------------------------------


def test_figures_leave_the_backend_and_pyplot_alone(tmp_path, subprocess_env):
    run_python(f"""
        import matplotlib
        matplotlib.use("svg")
        import matplotlib.pyplot as plt
        import numpy as np
        from zoo import plots
        plots.learning_curves({{"loss": [1.0, 0.5], "val_loss": [1.2, 0.7]}},
                              {str(tmp_path / "curves.png")!r}, "curves")
        plots.confusion_matrix(np.eye(3, dtype=int), ["a", "b", "c"],
                               {str(tmp_path / "confusion.png")!r}, "confusion")
        assert matplotlib.get_backend() == "svg", matplotlib.get_backend()
        assert plt.get_fignums() == [], plt.get_fignums()
    """, subprocess_env)
    for figure in ("curves.png", "confusion.png"):
        assert (tmp_path / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --- 5. logging ------------------------------------------------------------------------------


def test_the_library_never_prints():
    printing = []
    for path in sorted((ROOT / "zoo").rglob("*.py")):
        if path.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                printing.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert printing == []


def test_progress_is_logged_at_info_and_silent_by_default(caplog, subprocess_env):
    progress = Progress(interval=0.0)
    progress.set_params({"epochs": 1})
    progress.on_train_begin()
    with caplog.at_level(logging.INFO, logger="zoo"):
        progress.on_epoch_end(0, {"loss": 0.5})
    assert [(r.name, r.levelno) for r in caplog.records] == [("zoo.training", logging.INFO)]
    assert caplog.records[0].getMessage().startswith("epoch 1/1: loss 0.5 (")
    stream = io.StringIO()  # an explicit stream still gets the line
    progress = Progress(interval=0.0, stream=stream)
    progress.set_params({"epochs": 1})
    progress.on_train_begin()
    progress.on_epoch_end(0, {"loss": 0.5})
    assert stream.getvalue().startswith("epoch 1/1: loss 0.5 (")
    done = run_python("""
        from zoo.training import Progress
        progress = Progress(interval=0.0)
        progress.set_params({"epochs": 1})
        progress.on_train_begin()
        progress.on_epoch_end(0, {"loss": 0.5})
    """, subprocess_env)
    assert "epoch" not in done.stdout + done.stderr


def test_the_command_line_shows_info_lines_as_printed_and_restores_logging(capsys):
    from zoo.workflow.console import console_logging as _console_logging

    logger = logging.getLogger("zoo")
    before = (logger.level, logger.propagate, list(logger.handlers))
    with _console_logging():
        logging.getLogger("zoo.tuning.search").info("[tuner0] trial %s: %s", 0, "units=8")
        logging.getLogger("zoo.precision").warning("a warning")
        logging.getLogger("zoo.training").debug("not shown")
    out, err = capsys.readouterr()
    assert out == "[tuner0] trial 0: units=8\n"
    assert err == "a warning\n"
    assert (logger.level, logger.propagate, list(logger.handlers)) == before


def test_litert_check_hides_the_delegate_line(subprocess_env):
    done = run_python("""
        import os, tempfile
        import numpy as np
        import tensorflow as tf
        from zoo import export

        class Double(tf.Module):
            @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32, name="x")])
            def serve(self, x):
                return {"y": 2.0 * x}

        module, folder = Double(), tempfile.mkdtemp()
        tf.saved_model.save(module, folder, signatures={"serve": module.serve})
        artifact = tf.lite.TFLiteConverter.from_saved_model(folder, ["serve"]).convert()
        outputs = export._run_litert(artifact, {"x": np.ones((1, 4), np.float32)})
        assert outputs["y"].tolist() == [[2.0] * 4]
        os.write(2, b"MARK\\n")
        # The same interpreter, unwrapped, does write the line in this build.
        tf.lite.Interpreter(model_content=artifact).get_signature_runner("serve")(
            x=np.ones((1, 4), np.float32))
    """, subprocess_env)
    before, _, after = done.stderr.partition("MARK\n")
    assert "XNNPACK" not in before, before
    assert "XNNPACK" in after, "the unwrapped interpreter wrote no delegate line: test proves nothing"
