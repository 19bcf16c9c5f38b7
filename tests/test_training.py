"""Training machinery: resuming a killed run, the non-finite guard, history, stacked batches."""

import io
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.autoencoder import SparseAutoencoder
from zoo.data import DataError, Splits
from zoo.runs import CHECKPOINT_DIR, HISTORY_FILE, MODEL_FILE
from zoo.training import (
    EpochCheckpoint,
    NonFiniteLossError,
    Progress,
    epoch_batches,
    epoch_seed_state,
    fit,
    read_history,
    set_seed,
    steps_per_epoch,
)

EPOCHS = 6

# A small training run that pauses after each epoch's checkpoint, so that a kill lands between
# epochs (after `BackupAndRestore` and `CSVLogger` have written) rather than inside a write.
TRAIN_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import keras
    import numpy as np
    from zoo.autoencoder import SparseAutoencoder
    from zoo.data import Splits
    from zoo.training import fit, set_seed

    run_dir, epochs, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    weights_file = sys.argv[4] if len(sys.argv) > 4 else None
    set_seed(0)
    x = np.random.default_rng(0).uniform(0.1, 0.9, (288, 256)).astype("float32")
    model = SparseAutoencoder(input_dim=256, hidden_units=8, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))

    class Pause(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            time.sleep(pause)

    class SaveStartingWeights(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):  # after fit restored the checkpoint
            if weights_file:
                np.savez(weights_file, *self.model.get_weights())

    history = fit(model, Splits(x_train=x[:256], x_val=x[256:]), run_dir, epochs=epochs,
                  batch_size=16, batches_per_step=4, callbacks=[Pause(), SaveStartingWeights()],
                  verbose=2)
    print("EPOCHS IN HISTORY", len(history["loss"]))
    """
)


def epochs_started(log):
    return [int(k) for k in re.findall(rf"Epoch (\d+)/{EPOCHS}", log)]


def checkpoints_in(directory):
    return sorted(directory.glob("epoch-*.weights.h5"))


def checkpoints(run_dir):
    return checkpoints_in(run_dir / CHECKPOINT_DIR)


def autoencoder_weights(checkpoint, optimizer):
    """The weights a `SparseAutoencoder(256, 8)` holds after loading `checkpoint`."""
    model = SparseAutoencoder(input_dim=256, hidden_units=8, seed=0)
    model.compile(optimizer=optimizer)
    model.optimizer.build(model.trainable_variables)
    model.load_weights(checkpoint)
    return model.get_weights()


def logged_epochs(history_path):
    if not history_path.exists():
        return []
    return [int(line.split(",")[0]) for line in history_path.read_text().splitlines()[1:] if line]


def test_killed_run_resumes_from_its_checkpoint(tmp_path, subprocess_env):
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    run_dir = tmp_path / "run"
    history_path = run_dir / HISTORY_FILE

    first_log = tmp_path / "first.log"
    with open(first_log, "w") as log:
        process = subprocess.Popen(
            [sys.executable, str(script), str(run_dir), str(EPOCHS), "1.0"],
            cwd=tmp_path, env=subprocess_env, stdout=log, stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 120
            while not (checkpoints(run_dir) and logged_epochs(history_path)):
                assert process.poll() is None, first_log.read_text()[-3000:]
                assert time.monotonic() < deadline, "no checkpoint within 120 s"
                time.sleep(0.05)
            process.send_signal(signal.SIGKILL)
        finally:
            process.kill()
            process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    killed_epochs = logged_epochs(history_path)
    assert 1 <= len(killed_epochs) < EPOCHS
    [checkpoint] = checkpoints(run_dir)  # the one complete checkpoint left by the kill
    finished = int(checkpoint.name.split(".")[0].removeprefix("epoch-"))
    assert not (run_dir / MODEL_FILE).exists()
    loss_after_first_epoch = read_history(history_path)["loss"][0]
    rows_before = history_path.read_text().splitlines()
    saved = tmp_path / "checkpoint.weights.h5"
    shutil.copy(checkpoint, saved)
    starting_weights = tmp_path / "starting.npz"

    rerun = subprocess.run(
        [sys.executable, str(script), str(run_dir), str(EPOCHS), "0", str(starting_weights)],
        cwd=tmp_path, env=subprocess_env, capture_output=True, text=True, timeout=180,
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    started = epochs_started(rerun.stdout)
    assert started, rerun.stdout[-2000:]
    # It resumed after the last checkpointed epoch instead of starting again at epoch 1 ...
    assert started[0] == finished + 1 > 1
    assert started == list(range(started[0], EPOCHS + 1))
    # ... with the checkpoint's weights: its first epoch is better than a fresh first epoch.
    history = read_history(history_path)
    assert history["loss"][started[0] - 1] < loss_after_first_epoch
    assert "EPOCHS IN HISTORY 6" in rerun.stdout
    # The rows logged before the kill are kept as they were; the resumed run appended.
    assert history_path.read_text().splitlines()[: len(rows_before)] == rows_before
    # It trained on from exactly the checkpoint's weights.
    started_from = np.load(starting_weights)
    expected = autoencoder_weights(saved, keras.optimizers.Adam(1e-2))
    assert len(started_from.files) == len(expected)
    for index, weights in enumerate(expected):
        np.testing.assert_array_equal(started_from[f"arr_{index}"], weights)
    assert sorted(set(logged_epochs(history_path))) == list(range(EPOCHS))
    assert all(len(values) == EPOCHS for values in history.values())
    assert not (run_dir / CHECKPOINT_DIR).exists()
    assert (run_dir / MODEL_FILE).is_file()


@pytest.mark.parametrize("cause", ["huge learning rate", "nan in data"])
def test_non_finite_loss_raises_and_writes_no_model(cause, tmp_path, patches):
    set_seed(0)
    model = SparseAutoencoder(input_dim=256, hidden_units=8, seed=0)
    if cause == "huge learning rate":
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=1e30))
    else:
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1))
        patches = patches.copy()
        patches[np.arange(len(patches)) % 5 == 0, 3] = np.nan  # past zoo's data checks
    with pytest.raises(NonFiniteLossError, match=r"epoch \d+") as raised:
        fit(model, Splits(x_train=patches, x_val=patches[:16]), tmp_path, epochs=3,
            batch_size=16, verbose=0)
    assert re.search(r"(nan|inf)", str(raised.value))
    assert not (tmp_path / MODEL_FILE).exists()


def test_fit_without_validation_data(tmp_path, patches):
    set_seed(0)
    model = SparseAutoencoder(input_dim=256, hidden_units=8, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    history = fit(model, Splits(x_train=patches, x_val=patches[:0]), tmp_path, epochs=2,
                  batch_size=16, verbose=0)
    assert len(history["loss"]) == 2


def test_a_finished_run_is_loaded_again_with_its_weights_and_no_warning(tmp_path, patches):
    def adam_run():
        set_seed(0)
        model = SparseAutoencoder(input_dim=256, hidden_units=8, seed=0)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))  # state Keras would skip loading
        history = fit(model, Splits(x_train=patches, x_val=patches[:16]), tmp_path, epochs=2,
                      batch_size=16, verbose=0)
        return model, history

    trained, history = adam_run()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded, again = adam_run()
    assert [str(w.message) for w in caught] == []
    assert again["loss"] == history["loss"]
    for ours, theirs in zip(loaded.get_weights(), trained.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)


class Killed(BaseException):
    """Stands for the process dying at a chosen point of `fit`."""


def small_run(run_dir, patches, epochs=4, callbacks=()):
    set_seed(0)
    model = SparseAutoencoder(input_dim=256, hidden_units=8, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    return fit(model, Splits(x_train=patches, x_val=patches[:16]), run_dir, epochs=epochs,
               batch_size=16, callbacks=callbacks, verbose=0)


class EpochsBegun(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def capture_restore(monkeypatch):
    """Records what `EpochCheckpoint.restore` returned and the model's weights right after."""
    restored = {}
    original = EpochCheckpoint.restore

    def restore(self, model, *args, **kwargs):
        epoch = original(self, model, *args, **kwargs)
        restored.update(epoch=epoch, weights=model.get_weights())
        return epoch

    monkeypatch.setattr(EpochCheckpoint, "restore", restore)
    return restored


def assert_resumed_from(restored, begun, checkpoint, epoch, epochs=4):
    assert restored["epoch"] == epoch
    assert begun.epochs == list(range(epoch, epochs))  # on from the checkpoint, not epoch 0
    expected = autoencoder_weights(checkpoint, keras.optimizers.SGD(0.1))
    for after_restore, in_checkpoint in zip(restored["weights"], expected, strict=True):
        np.testing.assert_array_equal(after_restore, in_checkpoint)


def test_kill_between_checkpoint_and_history_row_loses_no_epoch(tmp_path, patches, monkeypatch):
    """Killed after epoch 2's history row, before its checkpoint: epoch 2 is trained again."""
    save_checkpoint = EpochCheckpoint.on_epoch_end

    def killed_at_epoch_2(self, epoch, logs=None):
        if epoch == 1:
            raise Killed()
        save_checkpoint(self, epoch, logs)

    monkeypatch.setattr(EpochCheckpoint, "on_epoch_end", killed_at_epoch_2)
    with pytest.raises(Killed):
        small_run(tmp_path, patches)
    monkeypatch.setattr(EpochCheckpoint, "on_epoch_end", save_checkpoint)
    rows_before = (tmp_path / HISTORY_FILE).read_text().splitlines()
    assert logged_epochs(tmp_path / HISTORY_FILE) == [0, 1]
    [complete] = checkpoints(tmp_path)
    assert complete.name == "epoch-0001.weights.h5"
    saved = shutil.copy(complete, tmp_path.parent / f"{tmp_path.name}-epoch-1.weights.h5")
    restored, begun = capture_restore(monkeypatch), EpochsBegun()

    history = small_run(tmp_path, patches, callbacks=[begun])

    assert_resumed_from(restored, begun, saved, epoch=1)
    assert (tmp_path / HISTORY_FILE).read_text().splitlines()[:3] == rows_before
    assert logged_epochs(tmp_path / HISTORY_FILE) == [0, 1, 1, 2, 3]
    assert len(history["loss"]) == 4
    assert history["loss"][0] == float(rows_before[1].split(",")[1])


def test_resume_ignores_a_checkpoint_write_cut_short_by_a_kill(tmp_path, patches, monkeypatch):
    class KilledAtEpoch3(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise Killed()

    with pytest.raises(Killed):
        small_run(tmp_path, patches, callbacks=[KilledAtEpoch3()])
    [complete] = checkpoints(tmp_path)
    assert complete.name == "epoch-0002.weights.h5"
    saved = shutil.copy(complete, tmp_path.parent / f"{tmp_path.name}-epoch-2.weights.h5")
    rows_before = (tmp_path / HISTORY_FILE).read_text().splitlines()
    # What a kill in the middle of writing epoch 3's checkpoint leaves behind.
    (tmp_path / CHECKPOINT_DIR / ".tmp-0000abcd-epoch-0003.weights.h5").write_bytes(
        complete.read_bytes()[: complete.stat().st_size // 2]
    )
    restored, begun = capture_restore(monkeypatch), EpochsBegun()

    history = small_run(tmp_path, patches, callbacks=[begun])

    assert_resumed_from(restored, begun, saved, epoch=2)
    assert (tmp_path / HISTORY_FILE).read_text().splitlines()[:3] == rows_before
    assert logged_epochs(tmp_path / HISTORY_FILE) == [0, 1, 2, 3]
    assert len(history["loss"]) == 4
    assert not (tmp_path / CHECKPOINT_DIR).exists()


def noisy_run(run_dir, epochs=3, callbacks=()):
    """A classifier whose training draws random numbers (noise, dropout) in every step."""
    set_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(48, 4)).astype("float32")
    y = np.eye(2, dtype="float32")[(x[:, 0] > 0).astype(int)]
    inputs = keras.Input((4,))
    hidden = keras.layers.Dense(8, activation="relu")(keras.layers.GaussianNoise(0.5)(inputs))
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Dropout(0.5)(hidden))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="categorical_crossentropy")
    history = fit(model, Splits(x_train=x[:40], y_train=y[:40], x_val=x[40:], y_val=y[40:]),
                  run_dir, epochs=epochs, batch_size=8, callbacks=callbacks, verbose=0)
    return model, history


def test_a_resumed_run_draws_the_random_numbers_of_an_uninterrupted_one(
        tmp_path, killed_after_first_checkpoint):
    """Noise and dropout draw per epoch from (seed, epoch) (`EpochSeeds`), not from a
    generator's state that a checkpoint does not hold: killed after epoch 1 and resumed, a run
    ends with the uninterrupted run's history and weights, bit for bit."""
    straight, straight_history = noisy_run(tmp_path / "straight")
    with killed_after_first_checkpoint():
        noisy_run(tmp_path / "resumed")
    begun = EpochsBegun()
    resumed, resumed_history = noisy_run(tmp_path / "resumed", callbacks=[begun])

    assert begun.epochs == [1, 2]
    assert resumed_history == straight_history
    for ours, theirs in zip(resumed.get_weights(), straight.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
    # The draws do change from epoch to epoch and with the generator's seed.
    assert epoch_seed_state(7, 0)[0] != epoch_seed_state(7, 1)[0] != epoch_seed_state(8, 1)[0]
    np.testing.assert_array_equal(epoch_seed_state(7, 1), epoch_seed_state(7, 1))


def test_read_history_keeps_the_later_row_of_a_repeated_epoch(tmp_path):
    path = tmp_path / HISTORY_FILE
    path.write_text(
        "epoch,loss,val_loss\n"
        "0,5.0,6.0\n"
        "1,4.0,5.0\n"
        "2,3.5,4.5\n"  # the process was killed before epoch 2's checkpoint ...
        "2,3.0,4.0\n"  # ... so the resumed run logged epoch 2 again
        "3,2.0,3.0\n"
    )
    assert read_history(path) == {"loss": [5.0, 4.0, 3.0, 2.0], "val_loss": [6.0, 5.0, 4.0, 3.0]}


def test_stacked_batches_take_the_same_steps_as_single_batches(patches):
    steps, batch = 4, 16
    stack = patches[: steps * batch].reshape(steps, batch, 256)
    models = []
    for _ in range(2):
        model = SparseAutoencoder(input_dim=256, hidden_units=8, seed=0, sparsity_weight=0.5)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5))
        model.optimizer.build(model.trainable_variables)
        models.append(model)
    stacked, single = models

    tf.function(stacked.train_step)(tf.constant(stack))
    single_step = tf.function(single.train_step)
    for mini_batch in stack:
        single_step(tf.constant(mini_batch))

    assert int(stacked.optimizer.iterations) == int(single.optimizer.iterations) == steps
    initial = SparseAutoencoder(input_dim=256, hidden_units=8, seed=0)
    for a, b, start in zip(stacked.trainable_weights, single.trainable_weights,
                           initial.trainable_weights):
        assert np.max(np.abs(np.asarray(a) - np.asarray(b))) <= 1e-5, a.path
        assert np.max(np.abs(np.asarray(a) - np.asarray(start))) > 1e-3, a.path  # they moved


def test_stacked_batches_cover_each_example_at_most_once_per_epoch():
    x = np.arange(100, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)
    dataset = epoch_batches(x, None, batch_size=8, seed=0, drop_remainder=True, stack=5)
    stacks = [np.asarray(stack) for stack in dataset]  # 12 batches
    assert [stack.shape for stack in stacks] == [(5, 8, 3), (5, 8, 3), (2, 8, 3)]
    assert len(stacks) == steps_per_epoch(100, 8, drop_remainder=True, stack=5)
    rows = np.concatenate([stack.reshape(-1, 3) for stack in stacks])
    assert len(np.unique(rows[:, 0])) == 96  # 12 full batches of distinct examples
    assert np.all(rows == rows[:, :1])  # rows stay whole
    assert not np.array_equal(rows[:, 0], np.arange(96))  # shuffled


def test_epoch_batches_reshuffle_each_epoch_and_a_resumed_run_gets_the_same_epochs():
    x, y = np.arange(64, dtype=np.float32), np.arange(64, dtype=np.float32) + 1000
    whole = [(np.asarray(a), np.asarray(b)) for a, b in epoch_batches(x, y, 10, seed=5, epochs=3)]
    assert [len(a) for a, _ in whole] == [10] * 6 + [4] + [10] * 6 + [4] + [10] * 6 + [4]
    assert steps_per_epoch(64, 10) == 7
    assert all(np.array_equal(b, a + 1000) for a, b in whole)  # pairs stay together
    epochs = [np.concatenate([a for a, _ in whole[k * 7:(k + 1) * 7]]) for k in range(3)]
    assert all(sorted(order) == list(range(64)) for order in epochs)
    assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
    # The order is a function of (seed, epoch): a run resumed at epoch 1 sees epochs 1 and 2.
    resumed = np.concatenate([np.asarray(a) for a, _ in
                              epoch_batches(x, y, 10, seed=5, epochs=3, first_epoch=1)])
    np.testing.assert_array_equal(resumed, np.concatenate(epochs[1:]))
    in_order = np.concatenate([np.asarray(a) for a in epoch_batches(x, None, 10)])
    np.testing.assert_array_equal(in_order, x)


@pytest.mark.slow
def test_same_seed_same_training(tmp_path, patches):
    """Seeded runs repeat exactly: initial weights, batch order and the trained result."""

    def train(run_dir):
        set_seed(3)
        model = SparseAutoencoder(input_dim=256, hidden_units=8)
        model.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=True)
        fit(model, Splits(x_train=patches[:48], x_val=patches[48:]), run_dir, epochs=3,
            batch_size=8, batches_per_step=3, verbose=0)
        return model.get_weights()

    first, second = train(tmp_path / "a"), train(tmp_path / "b")
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_epoch_checkpoint_restores_weights_and_optimizer_state(tmp_path, patches):
    set_seed(0)
    trained = SparseAutoencoder(input_dim=256, hidden_units=8)
    trained.compile(optimizer=keras.optimizers.Adam(1e-2))
    checkpoint = EpochCheckpoint(tmp_path)
    trained.fit(patches, epochs=2, batch_size=16, verbose=0, callbacks=[checkpoint])
    assert checkpoint.training_ended
    (tmp_path / EpochCheckpoint.FINAL).unlink()  # as if killed right after epoch 2's checkpoint
    assert [p.name for p in checkpoints_in(tmp_path)] == ["epoch-0002.weights.h5"]

    fresh = SparseAutoencoder(input_dim=256, hidden_units=8)
    fresh.compile(optimizer=keras.optimizers.Adam(1e-2))
    assert EpochCheckpoint(tmp_path).restore(fresh) == 2
    for a, b in zip(trained.get_weights(), fresh.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert int(fresh.optimizer.iterations) == int(trained.optimizer.iterations) == 8
    for a, b in zip(trained.optimizer.variables, fresh.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def tiny_classifier(normalize=False):
    inputs = keras.Input((3,))
    hidden = keras.layers.Normalization(name="normalize")(inputs) if normalize else inputs
    model = keras.Model(inputs, keras.layers.Dense(2, activation="softmax")(hidden))
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="categorical_crossentropy")
    return model


def test_early_stopping_keeps_the_best_epoch(tmp_path):
    set_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 3)).astype("float32")
    y = np.eye(2, dtype="float32")[(x[:, 0] > 0).astype(int)]
    # Validation labels are the opposite rule: learning the training rule makes them worse.
    splits = Splits(x_train=x, x_val=x[:16], y_train=y, y_val=y[:16, ::-1])
    model = tiny_classifier()

    history = fit(model, splits, tmp_path, epochs=50, batch_size=16, early_stopping_patience=2,
                  verbose=0)

    best = int(np.argmin(history["val_loss"]))
    assert len(history["val_loss"]) == best + 3  # stopped two epochs after the best
    kept = model.evaluate(x[:16], y[:16, ::-1], verbose=0)
    assert abs(kept - history["val_loss"][best]) < 1e-5


def test_early_stopping_without_validation_data_is_refused(tmp_path):
    x = np.zeros((8, 3), "float32")
    splits = Splits(x_train=x, x_val=x[:0], y_train=np.eye(2)[[0] * 8], y_val=None)
    with pytest.raises(DataError, match="validation"):
        fit(tiny_classifier(), splits, tmp_path, epochs=2, batch_size=4, early_stopping_patience=1)


def test_normalization_is_fitted_to_training_inputs_only(tmp_path):
    rng = np.random.default_rng(0)
    x_train = rng.normal([1.0, -5.0, 20.0], [2.0, 0.5, 3.0], (256, 3)).astype("float32")
    x_val = rng.normal(100.0, 1.0, (32, 3)).astype("float32")
    labels = np.eye(2, dtype="float32")[rng.integers(0, 2, 288)]
    splits = Splits(x_train=x_train, x_val=x_val, y_train=labels[:256], y_val=labels[256:])
    model = tiny_classifier(normalize=True)

    fit(model, splits, tmp_path, epochs=1, batch_size=32, verbose=0)

    layer = model.get_layer("normalize")
    np.testing.assert_allclose(np.ravel(layer.mean), x_train.mean(0), rtol=1e-4)
    np.testing.assert_allclose(np.ravel(layer.variance), x_train.var(0), rtol=1e-3)


def test_cosine_schedule_sets_each_epochs_rate_also_after_a_resume(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3)).astype("float32")
    splits = Splits(x_train=x, x_val=x[:8], y_train=np.eye(2)[rng.integers(0, 2, 32)],
                    y_val=np.eye(2)[rng.integers(0, 2, 8)])
    rates = []

    class Record(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            rates.append(float(self.model.optimizer.learning_rate))

    class KillAfterEpoch2(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    options = dict(epochs=4, batch_size=8, learning_rate_schedule="cosine", verbose=0)
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_classifier(), splits, tmp_path, callbacks=[Record(), KillAfterEpoch2()], **options)
    fit(tiny_classifier(), splits, tmp_path, callbacks=[Record()], **options)  # resumes at epoch 3

    expected = [0.5 * (1 + np.cos(np.pi * epoch / 4)) / 2 for epoch in range(4)]
    np.testing.assert_allclose(rates, expected, rtol=1e-6)


def test_unknown_schedule_is_refused(tmp_path):
    x = np.zeros((8, 3), "float32")
    splits = Splits(x_train=x, x_val=x[:0], y_train=np.eye(2)[[0] * 8], y_val=None)
    with pytest.raises(ValueError, match="'constant' or 'cosine', got 'linear'"):
        fit(tiny_classifier(), splits, tmp_path, epochs=1, batch_size=4, learning_rate_schedule="linear")


def test_progress_prints_now_and_then_and_the_last_epoch_with_time_left(monkeypatch):
    clock = iter([0.0, 1.0, 2.0, 30.0, 31.0])  # train begins, then the end of epochs 1-4
    monkeypatch.setattr(time, "monotonic", lambda: next(clock))
    stream = io.StringIO()
    progress = Progress(interval=10.0, stream=stream)
    progress.set_params({"epochs": 4})
    progress.on_train_begin()
    for epoch in range(4):
        progress.on_epoch_end(epoch, {"loss": 1.0 / (epoch + 1)})
    lines = stream.getvalue().splitlines()
    # Epochs 1 and 2 end within 10 s of the start; epoch 3 after 30 s; epoch 4 is the last.
    assert lines == [
        "epoch 3/4: loss 0.3333 (0:30 elapsed, 0:10 left)",
        "epoch 4/4: loss 0.25 (0:31 elapsed, 0:00 left)",
    ]


def test_a_half_written_history_row_is_ignored_and_cut_before_appending(tmp_path):
    from zoo.training import read_history, trim_torn_row

    path = tmp_path / "history.csv"
    path.write_bytes(b"epoch,loss\r\n0,0.5\r\n1,0.25\r\n2,0.1")  # killed mid-way through a row
    assert read_history(path) == {"loss": [0.5, 0.25]}
    trim_torn_row(path)
    assert path.read_bytes() == b"epoch,loss\r\n0,0.5\r\n1,0.25\r\n"
    trim_torn_row(path)  # a whole file stays as it is
    assert path.read_bytes() == b"epoch,loss\r\n0,0.5\r\n1,0.25\r\n"
