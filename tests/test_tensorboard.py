"""TensorBoard logs (`--tensorboard`): Keras' epoch scalars, the task's pictures, and for a
search one log dir per trial with keras-tuner's HParams; and a search's per-trial progress."""

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo import summaries


@pytest.fixture
def tensorboard():
    pytest.importorskip("tensorboard", reason="--tensorboard needs it: pip install 'zoo[tensorboard]'")


def summaries_in(log_dir):
    """{(run, tag): plugin name} of every summary under `log_dir` (run: the event file's
    folder relative to `log_dir`)."""
    found = {}
    for path in Path(log_dir).rglob("events.out.tfevents.*"):
        run = str(path.parent.relative_to(log_dir))
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                found[run, value.tag] = value.metadata.plugin_data.plugin_name
    return found


def example(name, tmp_path):
    return zoo.get_entry(name).task.example(tmp_path / "data" / name, 0)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["three_layer_convnet", "sparse_autoencoder"])
def test_train_logs_epoch_scalars_and_the_tasks_pictures(name, cli, tmp_path, tensorboard):
    code, out, err = cli("train", name, "--preset", "tiny", "--data", example(name, tmp_path),
                         "--epochs", "2", "--tensorboard", "logs", "--images-every", "1")
    assert code == 0, err
    found = summaries_in(tmp_path / "logs")
    assert found["train", "epoch_loss"] == "scalars", found
    assert found["validation", "epoch_loss"] == "scalars", found
    assert found[summaries.IMAGES_DIR, "learned"] == "images", found
    steps = [event.step for path in (tmp_path / "logs" / summaries.IMAGES_DIR).iterdir()
             for event in tf.compat.v1.train.summary_iterator(str(path)) if event.summary.value]
    assert sorted(steps) == [1, 2]  # every epoch, as --images-every 1 asks


@pytest.mark.slow
def test_tune_logs_each_trial_with_hparams_and_shows_progress(cli, tmp_path, tensorboard):
    name = "sparse_autoencoder"
    code, out, err = cli("tune", name, "--preset", "tiny", "--data", example(name, tmp_path),
                         "--max-trials", "2", "--directory", "search", "--tensorboard", "logs")
    assert code == 0, err
    trials = sorted(path.name for path in (tmp_path / "logs").iterdir())
    assert len(trials) == 2 and all(trial.startswith("trial_") for trial in trials), trials
    for trial in trials:
        assert (tmp_path / "search" / name / trial).is_dir()  # named like keras-tuner's folder
        plugins = summaries_in(tmp_path / "logs" / trial)
        assert "hparams" in plugins.values(), plugins
        assert plugins["train", "epoch_loss"] == "scalars", plugins
        assert plugins[summaries.IMAGES_DIR, "learned"] == "images", plugins
    # Progress while a trial trains (zoo.training.Progress), and the one-line result per trial.
    assert "epoch 1/1:" in out and "left)" in out, out
    assert sum(" COMPLETED: " in line for line in out.splitlines()) == 2, out


@pytest.mark.slow
def test_tune_quiet_keeps_only_the_trial_lines(cli, tmp_path):
    name = "sparse_autoencoder"
    code, out, err = cli("tune", name, "--preset", "tiny", "--data", example(name, tmp_path),
                         "--max-trials", "1", "--directory", "search", "--quiet")
    assert code == 0, err
    assert "epoch 1/1:" not in out, out
    assert " COMPLETED: " in out, out


def test_tile_normalises_each_image_into_one_grid():
    images = np.stack([np.full((3, 3, 1), 5.0), np.arange(9.0).reshape(3, 3, 1) - 100])
    grid = summaries.tile(images)
    assert grid.min() >= 0 and grid.max() <= 1
    scale = -(-summaries.MIN_TILE_PIXELS // 3)
    assert grid.shape == ((3) * scale, (3 + 1 + 3) * scale, 1)
    assert np.allclose(grid[:scale, :scale], 0.5)  # a constant image is mid-grey
    with pytest.raises(ValueError, match="expected images"):
        summaries.tile(np.zeros((2, 3, 3)))


def test_without_tensorboard_installed_it_is_one_clear_error(cli, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name == "tensorboard" else real(name, *args))
    name = "sparse_autoencoder"
    code, _, err = cli("train", name, "--preset", "tiny", "--data", example(name, tmp_path),
                       "--tensorboard", "logs")
    assert code == 1 and "pip install tensorboard" in err, err
    assert not (tmp_path / "runs").exists() and not (tmp_path / "logs").exists()
