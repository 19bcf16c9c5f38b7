"""The run directory (`zoo.runs`) through `zoo train`, `evaluate` and `export`: foreign folders,
kills at every stage of a run, two processes on one folder, resume checks and clean errors.

A kill is real: `python -m zoo train` subprocesses with `$ZOO_KILL_AT` naming a kill point
("epoch-N" after epoch N's checkpoint, "trained", "figures"). Reruns and the quick refusals call
`zoo.cli.main` in this process, which is what `python -m zoo` runs. The runs are tiny LSTMs
(4 units) on a few random windows.
"""

import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import h5py
import keras
import numpy as np
import pytest

import zoo
from zoo import runs
from zoo.cli import main
from zoo.export import UNFINISHED_MARKER, UNFINISHED_PREFIX
from zoo.data import Splits
from zoo.runs import CHECKPOINT_DIR, HISTORY_FILE, MODEL_FILE, RECORD_FILE
from zoo.training import EpochCheckpoint, fit, set_seed

LSTM = ("lstm", "--preset", "course", "--set", "units=4")


def write_windows(path, classes=6, per_class=6, seed=0):
    """A course-layout HDF5 file of random windows, `per_class` training windows per class."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(classes), per_class)
    with h5py.File(path, "w") as handle:
        handle["trX"] = rng.normal(size=(len(labels), 150, 3)).astype(np.float32)
        handle["trY"] = np.eye(classes, dtype=np.float32)[labels]
        handle["tstX"] = rng.normal(size=(2 * classes, 150, 3)).astype(np.float32)
        handle["tstY"] = np.eye(classes, dtype=np.float32)[np.arange(2 * classes) % classes]
        if classes != 6:
            handle.attrs["classes"] = [f"activity{index}" for index in range(classes)]
    return path


def run_cli(*args):
    """`zoo ARGS` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(arg) for arg in args])
    return code, out.getvalue(), err.getvalue()


def zoo_process(*args, env, kill_at=None, **options):
    environment = {**env, runs.KILL_POINT_VARIABLE: kill_at} if kill_at else env
    return subprocess.Popen([sys.executable, "-m", "zoo", *map(str, args)], env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **options)


def assert_one_error_line(code, err, *needles):
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zoo: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def snapshot(directory):
    """Every file under `directory` with its bytes (but the lock's last holder's PID)."""
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file() and p.name != ".zoo-lock"}


def epochs_reported(log):
    """Epochs `zoo train` reported training (zoo.training.Progress reports at least the last)."""
    return [int(epoch) for epoch in re.findall(r"^epoch (\d+)/\d+:", log, re.MULTILINE)]


def history_rows(run_dir):
    return (run_dir / HISTORY_FILE).read_text().splitlines()


def assert_finished(run_dir, epochs):
    record = json.loads((run_dir / RECORD_FILE).read_text())
    assert record["status"] == "finished"
    assert record["epochs_trained"] == epochs
    assert (run_dir / MODEL_FILE).is_file()
    assert record["files"] and all((run_dir / name).is_file() for name in record["files"])
    assert "curves.png" in record["files"]
    assert not (run_dir / CHECKPOINT_DIR).exists()
    return record


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_windows(tmp_path_factory.mktemp("data") / "windows.h5")


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory, data, subprocess_env):
    """Three `zoo train lstm` runs killed at once, side by side: after epoch 2 of 6, after the
    last epoch of 2 ("trained": before model.keras) and after the figures ("figures": before
    the finished record). {kill point: (run directory, history.csv as the kill left it)}."""
    root = tmp_path_factory.mktemp("interrupted")
    plans = {"epoch-2": 6, "trained": 2, "figures": 2}
    processes = {
        point: zoo_process("train", *LSTM, "--epochs", epochs, "--data", data, "--run-dir",
                           root / point, env=subprocess_env, kill_at=point, cwd=root)
        for point, epochs in plans.items()
    }
    killed = {}
    for point, process in processes.items():
        output, _ = process.communicate(timeout=300)
        assert process.returncode == -signal.SIGKILL, output[-3000:]
        killed[point] = root / point, (root / point / HISTORY_FILE).read_text()
    return killed


# --- 1. foreign folders and failed reruns -------------------------------------------------------


def test_a_foreign_folder_is_refused_and_left_untouched(tmp_path, data):
    victim = tmp_path / "victim"
    (victim / "backup").mkdir(parents=True)
    (victim / "backup" / "important.txt").write_text("years of work")
    before = snapshot(victim)
    code, _, err = run_cli("train", *LSTM, "--epochs", 1, "--data", data, "--run-dir", victim)
    assert_one_error_line(code, err, "not a zoo run directory", "backup")
    assert snapshot(victim) == before
    assert sorted(p.name for p in victim.iterdir()) == ["backup"]  # no marker, no lock


@pytest.mark.slow
def test_a_failed_rerun_leaves_the_finished_run_intact(tmp_path, patch_file):
    run_dir = tmp_path / "run"
    common = ("train", "sparse_autoencoder", "--data", patch_file, "--epochs", 1,
              "--run-dir", run_dir)
    code, _, err = run_cli(*common, "--batch-size", 16)
    assert code == 0, err
    finished = snapshot(run_dir)
    assert MODEL_FILE in finished and RECORD_FILE in finished

    code, _, err = run_cli(*common, "--batch-size", 100000, "--overwrite")
    assert_one_error_line(code, err, "batch_size 100000")
    assert snapshot(run_dir) == finished
    code, _, err = run_cli(*common, "--batch-size", 16)  # without --overwrite: refused
    assert_one_error_line(code, err, "finished run", "--overwrite")
    assert snapshot(run_dir) == finished


# --- 2. a kill after the last epoch ------------------------------------------------------------


@pytest.mark.parametrize("point", ["trained", "figures"])
def test_a_kill_after_the_last_epoch_is_finished_without_training(point, interrupted, data):
    run_dir, history = interrupted[point]
    assert json.loads((run_dir / RECORD_FILE).read_text())["status"] == "training"
    assert (run_dir / CHECKPOINT_DIR / EpochCheckpoint.FINAL).is_file()
    assert (run_dir / MODEL_FILE).is_file() == (point == "figures")
    assert len(history.splitlines()) == 3  # header and both epochs
    final = run_dir.parent / f"{point}-final.weights.h5"
    shutil.copy(run_dir / CHECKPOINT_DIR / EpochCheckpoint.FINAL, final)

    code, out, err = run_cli("train", *LSTM, "--epochs", 2, "--data", data, "--run-dir", run_dir)

    assert code == 0, err
    assert epochs_reported(out) == []  # no epoch trained again
    assert (run_dir / HISTORY_FILE).read_text() == history
    assert_finished(run_dir, epochs=2)
    trained = keras.saving.load_model(run_dir / MODEL_FILE)
    reference = zoo.get("lstm", preset="course", units=4)
    reference(np.zeros((1, 150, 3), np.float32))
    reference.optimizer.build(reference.trainable_variables)
    reference.load_weights(final)
    for saved, kept in zip(trained.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(saved, kept)


# --- 3. two processes on one folder ------------------------------------------------------------


def test_a_second_train_on_a_run_in_use_is_refused_at_once(tmp_path, data, subprocess_env):
    run_dir = tmp_path / "run"
    first = zoo_process("train", *LSTM, "--epochs", 1000, "--data", data, "--run-dir", run_dir,
                        env=subprocess_env, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 180
        lock = run_dir / ".zoo-lock"
        while not (lock.is_file() and lock.read_text().strip() == str(first.pid)):
            assert first.poll() is None, first.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "the first zoo train took no lock in 180 s"
            time.sleep(0.1)
        started = time.monotonic()
        code, out, err = run_cli("train", *LSTM, "--epochs", 1000, "--data", data,
                                 "--run-dir", run_dir)
        assert time.monotonic() - started < 30  # refused, not queued behind the first
        assert_one_error_line(code, err, "in use", f"PID {first.pid}")
        assert epochs_reported(out) == []
        assert first.poll() is None  # the first one trains on
    finally:
        first.kill()
        first.communicate(timeout=60)


def hold_lock(directory):
    """Another process holding `zoo.runs.locked`'s lock on `directory` (plain flock, as
    `locked` takes it), until its stdin closes."""
    script = (
        "import fcntl, os, sys\n"
        f"handle = open({str(directory / '.zoo-lock')!r}, 'a+')\n"
        "fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "handle.truncate(0); handle.write(f'{os.getpid()}\\n'); handle.flush()\n"
        "print('locked', flush=True)\n"
        "sys.stdin.read()\n"
    )
    directory.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


# --- 3 and 5. exports: one at a time, stale temporaries removed --------------------------------


def test_exports_to_one_root_take_turns_and_clean_stale_temporaries(interrupted, data, tmp_path):
    run_dir = finished_run(interrupted, data)
    root = tmp_path / "saved_models"
    stale = root / "lstm" / f"{UNFINISHED_PREFIX}0000dead"  # a killed export's, marked
    stale.mkdir(parents=True)
    (stale / UNFINISHED_MARKER).write_text("4321\n")
    (stale / "saved_model.pb").write_bytes(b"half written")
    mine = root / "lstm" / ".tmp-mine"  # a user's folder that only looks temporary: kept
    mine.mkdir()

    holder = hold_lock(root)
    try:
        code, out, err = run_cli("export", "lstm", "--run-dir", run_dir, "--root", root)
        assert_one_error_line(code, err, "export root", "in use", f"PID {holder.pid}")
        assert stale.is_dir()  # not another export's to remove while it may be writing
        assert sorted(p.name for p in (root / "lstm").iterdir()) == sorted([stale.name, mine.name])
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)

    printed = []
    for _ in range(2):
        code, out, err = run_cli("export", "lstm", "--run-dir", run_dir, "--root", root)
        assert code == 0, err
        printed.append(re.search(r"exported lstm to (\S+)/", out).group(1))
    assert printed == [str(root / "lstm" / "1"), str(root / "lstm" / "2")]
    # The killed export's folder is gone, the user's is not.
    assert sorted(p.name for p in (root / "lstm").iterdir()) == [".tmp-mine", "1", "2"]


def finished_run(interrupted, data):
    """The "trained" run, finished (by its kill test, or here when run alone)."""
    run_dir, _ = interrupted["trained"]
    if runs.RunDirectory(run_dir).status() != "finished":
        code, _, err = run_cli("train", *LSTM, "--epochs", 2, "--data", data, "--run-dir", run_dir)
        assert code == 0, err
    return run_dir


# --- 4. resume checks --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "setting, named",
    [("learning_rate=0.001", "hyperparameters"), ("units=64", "hyperparameters")],
)
def test_resuming_with_other_settings_is_refused(setting, named, interrupted, data):
    run_dir, history = interrupted["epoch-2"]
    before = snapshot(run_dir)
    code, out, err = run_cli("train", *LSTM, "--set", setting, "--epochs", 6, "--data", data,
                             "--run-dir", run_dir)
    assert_one_error_line(code, err, "unfinished run with other settings", named,
                          setting.split("=")[0])
    assert epochs_reported(out) == []
    assert snapshot(run_dir) == before


def test_a_killed_zoo_train_resumes_after_its_last_checkpoint(interrupted, data, monkeypatch,
                                                            tmp_path):
    killed, history = interrupted["epoch-2"]
    run_dir = tmp_path / "run"
    shutil.copytree(killed, run_dir)  # the refusal tests keep theirs
    rows = history.splitlines()
    assert len(rows) == 3  # header and epochs 1, 2
    [checkpoint] = (run_dir / CHECKPOINT_DIR).glob("epoch-*.weights.h5")
    assert checkpoint.name == "epoch-0002.weights.h5"
    saved = tmp_path / "epoch-2.weights.h5"
    shutil.copy(checkpoint, saved)
    restored = {}
    original_restore = EpochCheckpoint.restore

    def restore(self, model, *args, **kwargs):
        epoch = original_restore(self, model, *args, **kwargs)
        restored.update(epoch=epoch, weights=model.get_weights())
        return epoch

    monkeypatch.setattr(EpochCheckpoint, "restore", restore)
    code, out, err = run_cli("train", *LSTM, "--epochs", 6, "--data", data, "--run-dir", run_dir)

    assert code == 0, err
    assert restored["epoch"] == 2
    assert epochs_reported(out)[-1] == 6
    assert history_rows(run_dir)[:3] == rows  # the epochs before the kill, as they were
    assert [row.split(",")[0] for row in history_rows(run_dir)[1:]] == list("012345")
    assert_finished(run_dir, epochs=6)
    reference = zoo.get("lstm", preset="course", units=4)
    reference(np.zeros((1, 150, 3), np.float32))
    reference.optimizer.build(reference.trainable_variables)
    reference.load_weights(saved)
    for after_restore, in_checkpoint in zip(restored["weights"], reference.get_weights()):
        np.testing.assert_array_equal(after_restore, in_checkpoint)


@pytest.mark.parametrize("command", ["evaluate", "export"])
def test_another_entrys_run_is_refused(command, interrupted, data, tmp_path):
    run_dir = finished_run(interrupted, data)
    before = snapshot(run_dir)
    extra = ("--data", data) if command == "evaluate" else ("--root", tmp_path / "exports")
    code, _, err = run_cli(command, "gru", "--run-dir", run_dir, *extra)
    assert_one_error_line(code, err, "holds a run of 'lstm', not 'gru'")
    assert snapshot(run_dir) == before
    assert not (tmp_path / "exports").exists()


# --- 6. clean CLI errors -----------------------------------------------------------------------


def test_a_negative_seed_is_a_usage_error(data):
    code, out, err = run_cli("train", *LSTM, "--data", data, "--seed", "-1")
    assert_one_error_line(code, err, "--seed", "-1")
    assert out == ""


def test_evaluating_on_data_with_another_class_count_is_a_clean_error(interrupted, data, tmp_path):
    run_dir = finished_run(interrupted, data)
    five = write_windows(tmp_path / "five.h5", classes=5)
    code, _, err = run_cli("evaluate", "lstm", "--run-dir", run_dir, "--data", five)
    assert_one_error_line(code, err, "5 classes", "outputs 6")


def test_a_model_refused_by_safe_mode_is_a_clean_error(interrupted, data, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run(interrupted, data), run_dir)
    inputs = keras.Input((150, 3))
    unsafe = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    (run_dir / MODEL_FILE).unlink()
    unsafe.save(run_dir / MODEL_FILE)
    code, out, err = run_cli("evaluate", "lstm", "--run-dir", run_dir, "--data", data)
    assert_one_error_line(code, err, "cannot load", MODEL_FILE)
    assert not (run_dir / runs.EVALUATION_DIR).exists()


def test_version_and_debug():
    code, out, err = run_cli("--version")
    assert (code, out.strip(), err) == (0, f"zoo {zoo.__version__}", "")
    with pytest.raises(runs.RunError, match="no finished run"):
        run_cli("--debug", "evaluate", "lstm", "--run-dir", "no/such/run")


# --- 8. a one-cycle schedule, Lookahead and a frozen layer across a resume ----------------------


class Killed(BaseException):
    """Stands for the process dying right after an epoch's checkpoint."""


@pytest.mark.slow
def test_one_cycle_and_lookahead_continue_across_a_resume(tmp_path):
    # Mirror-symmetric images, whole-batch steps and no shifts: the augmentation's random flips
    # and the data order change nothing, so a resumed run can equal the uninterrupted one.
    rng = np.random.default_rng(0)
    half = rng.integers(0, 256, (20, 32, 16, 3), dtype=np.uint8)
    x = np.concatenate([half, half[:, :, ::-1]], axis=2)
    y = np.eye(10, dtype=np.float32)[np.arange(20) % 10]
    splits = Splits(x_train=x, x_val=x[:0], y_train=y, y_val=y[:0])
    epochs = 4  # one step each: Lookahead starts at step 2 (30%), then averages every step

    def train(run_dir, callbacks=()):
        set_seed(0)
        # The whitening bias freezes after epoch 1, before the kill: the resumed run must too.
        model = zoo.get("cifar_airbench", width=8, crop_padding=0, test_augmentation="none",
                        whiten_bias_epochs=1)
        rates = []

        class Rates(keras.callbacks.Callback):
            def on_train_batch_begin(self, batch, logs=None):
                rates.append((int(self.model.optimizer.iterations),
                              float(self.model.optimizer.learning_rate)))

        try:
            fit(model, splits, run_dir, epochs=epochs, batch_size=len(x), verbose=0,
                callbacks=[Rates(), *callbacks])
        except Killed:
            pass
        return model, rates

    class KillAfterEpoch2(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:  # after the checkpoint: `fit`'s callbacks come first
                raise Killed()

    whole, whole_rates = train(tmp_path / "whole")
    _, first_rates = train(tmp_path / "resumed", [KillAfterEpoch2()])
    assert [name.name for name in (tmp_path / "resumed" / CHECKPOINT_DIR).iterdir()] == [
        "epoch-0002.weights.h5"]
    resumed, resumed_rates = train(tmp_path / "resumed")

    assert [step for step, _ in whole_rates] == [0, 1, 2, 3]
    assert first_rates + resumed_rates == whole_rates  # the schedule went on where it stopped
    assert len({rate for _, rate in whole_rates}) == 4
    for a, b in zip(whole.weights, resumed.weights):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-4, atol=1e-5,
                                   err_msg=a.path)


@pytest.mark.slow
def test_a_resume_refuses_other_data_at_the_same_path_and_takes_the_same_by_another(
        cli, tmp_path):
    from zoo.recurrent import data as har

    path = har.example(tmp_path / "data", seed=0)
    run = runs.RunDirectory(tmp_path / "runs" / "lstm")

    def interrupted():  # what a kill mid-training leaves: the record still says "training"
        run.write_record({**run.record(), "status": runs.TRAINING})

    code, _, err = cli("train", "lstm", "--data", path, "--preset", "tiny")
    assert code == 0, err
    recorded = run.record()["data"]
    assert len(recorded["fingerprint"]) == 64 and os.path.isabs(recorded["source"])
    interrupted()  # the same file by a relative path is the same data: it resumes
    code, _, err = cli("train", "lstm", "--data", path.relative_to(tmp_path), "--preset", "tiny")
    assert code == 0, err
    interrupted()  # other windows in the same file: refused, naming the fingerprint alone
    path.write_bytes(har.example(tmp_path / "other", seed=1).read_bytes())
    code, _, err = cli("train", "lstm", "--data", path, "--preset", "tiny")
    assert code == 1 and err.count("\n") == 1, err
    assert "(data.fingerprint: recorded" in err and "hyperparameters" not in err, err


# --- 6. what killed writes leave -----------------------------------------------------------------


def test_the_lock_of_an_owned_run_removes_killed_writes_temporaries_and_nothing_else(tmp_path):
    run = runs.RunDirectory(tmp_path / "run")
    run.claim()
    run.checkpoint_dir.mkdir()
    stale = [run.path / ".tmp-0123abcd-model.keras",
             run.checkpoint_dir / ".tmp-89abcdef-epoch-0002.weights.h5"]
    for path in stale:
        path.write_bytes(b"half written")
    (run.path / ".tmp-deadbeef-export").mkdir()  # a directory written through atomic_path
    (run.path / ".tmp-deadbeef-export" / "saved_model.pb").write_bytes(b"half")
    look_alikes = [".tmp-mine", ".tmp-0123ABCD-x", ".tmp-0123abcd", ".tmp-0123abc-x",
                   "notes.tmp-0123abcd-x"]  # not atomic_path's names: someone else's
    for name in look_alikes:
        (run.path / name).write_text("mine")
    nested = run.path / "notes"  # below the run's own folders nothing is touched
    nested.mkdir()
    (nested / ".tmp-0123abcd-draft.txt").write_text("mine")
    foreign = tmp_path / "foreign"  # a folder zoo does not own: locked, never cleaned
    foreign.mkdir()
    (foreign / ".tmp-0123abcd-model.keras").write_text("theirs")

    with run.lock():
        assert not any(path.exists() for path in stale)
        assert not (run.path / ".tmp-deadbeef-export").exists()
    assert all((run.path / name).read_text() == "mine" for name in look_alikes)
    assert (nested / ".tmp-0123abcd-draft.txt").read_text() == "mine"
    with runs.RunDirectory(foreign).lock():
        pass
    assert (foreign / ".tmp-0123abcd-model.keras").read_text() == "theirs"


def test_a_model_write_killed_before_its_rename_leaves_nothing_after_the_resume(
        tmp_path, data, subprocess_env):
    """A kill inside `atomic_path` (the model written, not yet renamed) leaves a `.tmp-`
    model.keras; the rerun that finishes the run removes it."""
    run_dir = tmp_path / "run"
    process = zoo_process("train", *LSTM, "--epochs", 1, "--data", data, "--run-dir", run_dir,
                          env=subprocess_env, kill_at="trained", cwd=tmp_path)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == -signal.SIGKILL, output[-3000:]
    stale = run_dir / ".tmp-0badf00d-model.keras"  # what a kill inside model.save leaves
    stale.write_bytes(b"PK\x03\x04 half a zip")
    code, _, err = run_cli("train", *LSTM, "--epochs", 1, "--data", data, "--run-dir", run_dir)
    assert code == 0, err
    assert_finished(run_dir, 1)
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(".tmp-")]
