"""A run's file that cannot be written (a file-size limit, a full disk) ends training in one
`RunWriteError` line naming the file, and the run resumes from what was written before.

The limit is `RLIMIT_FSIZE` in this process (`ulimit -f`): Python ignores SIGXFSZ, so a write past
it fails with EFBIG, as on a full disk with ENOSPC. Before zoo wrote weight files from memory,
HDF5 crashed the process (a segmentation fault in H5Fclose) when the first checkpoint hit it.
"""

import contextlib
import errno
import signal

import keras
import numpy as np
import pytest

from zoo.autoencoder import SparseAutoencoder
from zoo.data import Splits
from zoo.errors import UserError
from zoo.runs import CHECKPOINT_DIR, HISTORY_FILE, MODEL_FILE
from zoo.training import RunWriteError, fit, read_history, set_seed

resource = pytest.importorskip("resource")


@contextlib.contextmanager
def file_size_limit(size):
    """Files this process writes stop growing at `size` bytes (EFBIG) inside the block."""
    assert signal.getsignal(signal.SIGXFSZ) == signal.SIG_IGN  # Python's default
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


class LimitAfterEpoch1(keras.callbacks.Callback):
    """Sets the file-size limit once epoch 1's row and checkpoint are written (it comes after
    `fit`'s own callbacks): to the history's size, or below a checkpoint's."""

    def __init__(self, run_dir, file, stack):
        super().__init__()
        self.run_dir, self.file, self.stack = run_dir, file, stack

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            size = (self.run_dir / HISTORY_FILE).stat().st_size if self.file == HISTORY_FILE else 30_000
            self.stack.enter_context(file_size_limit(size))


def autoencoder_run(run_dir, patches, callbacks=()):
    set_seed(0)
    model = SparseAutoencoder(input_dim=256, hidden_units=8, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    history = fit(model, Splits(x_train=patches, x_val=patches[:16]), run_dir, epochs=3,
                  batch_size=16, callbacks=callbacks, verbose=0)
    return model, history


@pytest.mark.slow
@pytest.mark.parametrize("file", [HISTORY_FILE, "checkpoint"])
def test_a_write_that_fails_stops_the_run_which_resumes_from_its_last_checkpoint(
        file, tmp_path, patches):
    run_dir = tmp_path / "run"
    with contextlib.ExitStack() as stack, pytest.raises(RunWriteError) as failed:
        autoencoder_run(run_dir, patches, callbacks=[LimitAfterEpoch1(run_dir, file, stack)])

    named = run_dir / HISTORY_FILE if file == HISTORY_FILE else (
        run_dir / CHECKPOINT_DIR / "epoch-0002.weights.h5")
    assert str(failed.value).startswith(f"could not write {named}: File too large (EFBIG);")
    assert isinstance(failed.value, UserError) and isinstance(failed.value, OSError)
    # Epoch 1's checkpoint is intact and alone: no half-written or temporary file beside it.
    assert [p.name for p in (run_dir / CHECKPOINT_DIR).iterdir()] == ["epoch-0001.weights.h5"]
    restored = SparseAutoencoder(input_dim=256, hidden_units=8, seed=0)
    restored.compile(optimizer=keras.optimizers.Adam(1e-2))
    restored.optimizer.build(restored.trainable_variables)
    restored.load_weights(run_dir / CHECKPOINT_DIR / "epoch-0001.weights.h5")
    assert int(restored.optimizer.iterations) == 4

    model, history = autoencoder_run(run_dir, patches)  # no limit: resumes at epoch 2
    _, straight = autoencoder_run(tmp_path / "straight", patches)
    assert history == straight == read_history(run_dir / HISTORY_FILE)
    assert (run_dir / MODEL_FILE).is_file() and not (run_dir / CHECKPOINT_DIR).exists()


def test_a_model_file_that_cannot_be_written_leaves_a_run_that_finishes_later(
        tmp_path, patches, monkeypatch):
    save = keras.Model.save

    def disk_full(self, path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(keras.Model, "save", disk_full)
    with pytest.raises(RunWriteError, match=rf"could not write {tmp_path / MODEL_FILE}: No space "
                                            r"left on device \(ENOSPC\); .* run the same command"):
        autoencoder_run(tmp_path, patches)
    assert not (tmp_path / MODEL_FILE).exists()
    assert not list(tmp_path.glob(".tmp-*"))
    monkeypatch.setattr(keras.Model, "save", save)

    model, history = autoencoder_run(tmp_path, patches)  # finishes from the final weights
    loaded = keras.saving.load_model(tmp_path / MODEL_FILE)
    for ours, saved in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, saved)
    assert len(history["loss"]) == 3


@pytest.mark.slow  # two zoo train runs on the embedded photographs: ~25 s on 2 loaded cores
def test_zoo_train_tells_a_failed_checkpoint_write_in_one_line_and_resumes(cli):
    command = ("train", "sparse_autoencoder", "--preset", "tiny", "--epochs", "2",
               "--run-dir", "run", "--load", "count=256")
    with file_size_limit(30_000):  # below the first checkpoint's ~70 KB
        code, _, err = cli(*command)
    assert code == 1
    [line] = [line for line in err.splitlines() if line.startswith("zoo: error:")]
    assert "run/.zoo-checkpoints/epoch-0001.weights.h5: File too large (EFBIG)" in line
    assert "Traceback" not in err and "h5py" not in err

    code, out, err = cli(*command)
    assert code == 0, err
    assert "Traceback" not in err
