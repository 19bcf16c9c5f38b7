"""Accelerometer windows: the course's HDF5 layout, its checks, splits, and the CLI end to end."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest

from zoo.cli import main
from zoo.data import DataError
from zoo.recurrent import data

USC_HAD = Path(__file__).resolve().parents[2] / "shared" / "data" / "har" / "usc_had.h5"


def write_windows(path, train=60, test=24, classes=6, attrs=None, **replace):
    """A course-layout file of random windows; `replace` swaps in bad datasets."""
    rng = np.random.default_rng(0)
    arrays = {
        "trX": rng.normal(size=(train, 150, 3)).astype("float32"),
        "trY": np.eye(classes, dtype="float32")[np.arange(train) % classes],
        "tstX": rng.normal(size=(test, 150, 3)).astype("float32"),
        "tstY": np.eye(classes, dtype="float32")[np.arange(test) % classes],
    }
    arrays.update(replace)
    with h5py.File(path, "w") as handle:
        for key, value in arrays.items():
            if value is not None:
                handle[key] = value
        for key, value in (attrs or {}).items():
            handle.attrs[key] = value
    return path


@pytest.fixture
def windows_file(tmp_path):
    return write_windows(tmp_path / "har.h5")


def test_load_splits_every_class_and_names_them_in_the_course_order(windows_file):
    splits = data.load(windows_file, seed=0)
    assert splits.x_train.shape == (54, 150, 3) and splits.x_val.shape == (6, 150, 3)
    assert splits.y_val.sum(axis=0).tolist() == [1.0] * 6  # stratified
    assert splits.x_test.shape == (24, 150, 3)
    assert splits.info["classes"] == list(data.COURSE_CLASSES)
    again = data.load(windows_file, seed=0)
    np.testing.assert_array_equal(again.x_val, splits.x_val)
    assert not np.array_equal(data.load(windows_file, seed=1).x_val, splits.x_val)


def test_class_names_come_from_the_file_attributes(tmp_path):
    names = ["walk", "run", "sit"]
    path = write_windows(tmp_path / "three.h5", classes=3, attrs={"classes": names})
    assert data.load(path).info["classes"] == names


@pytest.mark.parametrize(
    "replace, message",
    [
        ({"tstY": None}, "no dataset 'tstY'; expected 'trX', 'trY', 'tstX', 'tstY', found trX"),
        ({"trX": np.zeros((60, 128, 3), "float32")}, r"trX .* must have shape \(N, 150, 3\), got \(60, 128, 3\)"),
        ({"tstX": np.full((24, 150, 3), np.nan, "float32")}, "tstX .* NaN/inf"),
        ({"trY": np.full((60, 6), 1 / 6, "float32")}, "trY .* one-hot rows .* row 0"),
        ({"trY": np.eye(6, dtype="float32")[np.arange(59) % 6]}, "60 training windows but 59 labels"),
        ({"tstY": np.eye(5, dtype="float32")[np.arange(24) % 5]}, r"tstY .* shape \(N, 6\)"),
    ],
)
def test_malformed_files_are_refused_with_what_was_expected(tmp_path, replace, message):
    path = write_windows(tmp_path / "bad.h5", **replace)
    with pytest.raises(DataError, match=message):
        data.load(path)


def test_integer_labels_are_refused_asking_for_one_hot_rows(tmp_path):
    path = write_windows(tmp_path / "indices.h5", trY=np.arange(60) % 6)
    with pytest.raises(DataError, match=r"trY in .*indices.h5 must be one-hot rows of shape "
                                        r"\(N, 6\), got shape \(60,\).*np.eye\(6\)"):
        data.load(path)


def test_training_windows_need_two_classes(tmp_path):
    path = write_windows(tmp_path / "one.h5", trY=np.eye(6, dtype="float32")[np.zeros(60, int)])
    with pytest.raises(DataError, match=r"one.h5.* only 1 class \(downstairs\).*at least two"):
        data.load(path)


@pytest.mark.parametrize("train", [3, 12])  # 12: two a class, each rounding to none held out
def test_too_few_windows_for_a_validation_split_are_refused_up_front(tmp_path, train):
    path = write_windows(tmp_path / "few.h5", train=train)
    with pytest.raises(DataError, match=rf"few.h5: {train} training windows .* 0 for validation"
                                        r".*at least 6 windows of one class"):
        data.load(path)
    assert len(data.load(path, validation_fraction=0.0).x_val) == 0  # asked for: no validation


def test_class_count_must_match_the_named_classes(tmp_path):
    path = write_windows(tmp_path / "five.h5", classes=5)
    with pytest.raises(DataError, match="5 label columns and no 'classes' attribute"):
        data.load(path)
    path = write_windows(tmp_path / "named.h5", classes=3, attrs={"classes": ["a", "b"]})
    with pytest.raises(DataError, match="names 2 classes but the labels have 3 columns"):
        data.load(path)


@pytest.mark.slow
def test_training_on_a_different_class_count_says_how_to_build_the_model(tmp_path, capsys,
                                                                         monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write_windows(tmp_path / "three.h5", classes=3, attrs={"classes": ["a", "b", "c"]})
    assert main(["train", "rnn", "--data", str(path), "--epochs", "1", "--set", "units=4"]) == 1
    assert "labels have 3 classes but the model outputs 6; build it with num_classes=3" in (
        capsys.readouterr().err)
    assert not (tmp_path / "runs" / "rnn").exists()
    assert main(["train", "rnn", "--data", str(path), "--epochs", "1", "--set", "units=4",
                 "--set", "num_classes=3"]) == 0


def test_no_path_says_what_file_is_needed():
    with pytest.raises(DataError, match="--data PATH .* trX, trY, tstX, tstY"):
        data.load(None)


@pytest.mark.skipif(not USC_HAD.is_file(), reason="needs ../shared/data/har/usc_had.h5")
def test_reads_the_usc_had_windows():
    splits = data.load(USC_HAD)
    assert len(splits.x_train) + len(splits.x_val) == 1637 and len(splits.x_test) == 755
    assert splits.info["classes"] == list(data.COURSE_CLASSES)
    assert splits.info["attributes"]["sampling_hz"] == 20


def subject_ids(train=200, subjects=10):
    """Subject ids of `train` windows: contiguous runs of unequal length, every class in each."""
    sizes = np.arange(1, subjects + 1) + 2 * subjects  # unequal, every subject >= 6 windows
    bounds = np.round(np.cumsum(sizes) / sizes.sum() * train).astype(int)
    return np.searchsorted(bounds, np.arange(train), side="right").astype("int16") + 1


def subject_file(path, train=200, subjects=10, **replace):
    return write_windows(path, train=train, trS=subject_ids(train, subjects),
                         tstS=np.full(24, 99, "int16"), **replace)


def test_subject_ids_hold_out_whole_subjects_near_the_share(tmp_path):
    path = subject_file(tmp_path / "subjects.h5")
    ids = subject_ids()
    splits = data.load(path, seed=0)
    info = splits.info["validation"]
    assert info["split"] == "subjects" and 1 <= len(info["subjects"]) < 10
    held = np.isin(ids, info["subjects"])
    assert info["windows"] == held.sum() == len(splits.x_val)
    # Whole subjects: the validation windows are exactly those of the held-out subjects.
    x = h5py.File(path, "r")["trX"][()]
    np.testing.assert_array_equal(splits.x_val, x[held])
    np.testing.assert_array_equal(splits.x_train, x[~held])
    assert 0.07 <= held.mean() <= 0.13
    assert info["classes"] == 6 and (splits.y_val.sum(axis=0) > 0).all()
    assert "warning" not in info


def test_held_out_subjects_are_seeded(tmp_path):
    path = subject_file(tmp_path / "subjects.h5")
    chosen = [data.load(path, seed=seed).info["validation"]["subjects"] for seed in range(8)]
    assert data.load(path, seed=0).info["validation"]["subjects"] == chosen[0]
    assert len({tuple(c) for c in chosen}) > 1


def test_held_out_subjects_cover_the_classes_when_some_choice_does():
    # Subject 1 has only class 0; subjects 2 and 3 have every class. 10% is closest to subject 1.
    subjects = np.repeat([1, 2, 3], [10, 45, 45])
    labels = np.concatenate([np.zeros(10, int), np.arange(90) % 3])
    for seed in range(5):
        assert data.hold_out_subjects(subjects, labels, 0.1, seed) in ([2], [3])


def test_hold_out_needs_two_subjects():
    with pytest.raises(DataError, match="at least two subjects"):
        data.hold_out_subjects(np.ones(10, int), np.arange(10) % 2, 0.1, 0)


def test_many_subjects_are_searched_by_random_subsets():
    rng = np.random.default_rng(0)
    subjects = rng.integers(0, 40, 2000)
    chosen = data.hold_out_subjects(subjects, rng.integers(0, 6, 2000), 0.1, 0)
    assert 2 <= len(chosen) < 40 and abs(np.isin(subjects, chosen).mean() - 0.1) < 0.02


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("trS", np.ones(59, "int16"), r"trS in .* one subject id per window, shape \(60,\), got shape \(59,\)"),
        ("trS", np.ones((60, 1), "int16"), r"trS in .* shape \(60,\), got shape \(60, 1\)"),
        ("trS", np.ones(60, "float32"), "trS in .* integer subject ids, got dtype float32"),
        ("trS", np.full(60, np.nan), "trS in .* integer subject ids, got NaN/inf values and dtype float64"),
        ("tstS", np.ones(23, "int16"), r"tstS in .* shape \(24,\), got shape \(23,\)"),
        ("tstS", np.ones(24, "float32"), "tstS in .* integer"),
    ],
)
def test_bad_subject_ids_are_refused_naming_the_key(tmp_path, key, value, message):
    replace = {"trS": np.arange(60, dtype="int16") % 3, key: value}
    path = write_windows(tmp_path / "bad.h5", **replace)
    with pytest.raises(DataError, match=message):
        data.load(path)


def test_test_subject_ids_are_optional(tmp_path):
    path = write_windows(tmp_path / "trS.h5", trS=subject_ids(60, 5))
    assert data.load(path).info["validation"]["split"] == "subjects"


def test_include_test_trains_on_every_subject_with_no_test_split(tmp_path):
    path = subject_file(tmp_path / "subjects.h5")
    with h5py.File(path, "r") as handle:
        everything = np.concatenate([handle["trX"][()], handle["tstX"][()]])
    splits = data.load(path, validation_fraction=0.0, include_test=True)
    np.testing.assert_array_equal(splits.x_train, everything)
    assert len(splits.x_test) == len(splits.y_test) == 0 and "include_test" in splits.info["test"]
    # Subjects are held out from all of them: the test file's subject 99 may be chosen.
    held = {tuple(data.load(path, seed=seed, include_test=True).info["validation"]["subjects"])
            for seed in range(20)}
    assert any(99 in subjects for subjects in held)
    one_split = write_windows(tmp_path / "trS.h5", trS=subject_ids(60, 5))
    assert len(data.load(one_split, validation_fraction=0, include_test=True).x_train) == 84
    with pytest.raises(DataError, match="subject ids for one split only .*trS and tstS"):
        data.load(one_split, include_test=True)


def test_without_subject_ids_the_random_split_warns_of_overlap(windows_file):
    with pytest.warns(UserWarning, match="overstates accuracy on new people"):
        splits = data.load(windows_file, seed=0)
    info = splits.info["validation"]
    assert info["split"] == "random" and info["windows"] == len(splits.x_val) == 6
    assert "overlap" in info["warning"] and "new people" in info["warning"]


@pytest.mark.skipif(not USC_HAD.is_file(), reason="needs ../shared/data/har/usc_had.h5")
def test_usc_had_holds_out_whole_subjects_covering_every_class():
    with h5py.File(USC_HAD, "r") as handle:
        ids = handle["trS"][()]
    for seed in (0, 1):
        splits = data.load(USC_HAD, seed=seed)
        info = splits.info["validation"]
        assert info["split"] == "subjects" and set(info["subjects"]) < set(range(1, 10))
        held = np.isin(ids, info["subjects"])
        assert len(splits.x_val) == held.sum() and not set(ids[~held]) & set(info["subjects"])
        assert 0.07 <= held.mean() <= 0.14
        assert (splits.y_val.sum(axis=0) > 0).all() and (splits.y_train.sum(axis=0) > 0).all()


@pytest.mark.slow
def test_cli_trains_on_every_subject_unless_told_to_hold_some_out(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = subject_file(tmp_path / "subjects.h5")
    ids = subject_ids()
    options = ["--data", str(path), "--preset", "tiny"]

    assert main(["train", "lstm", *options, "--run-dir", "all"]) == 0
    assert "(200 training, 0 validation examples)" in capsys.readouterr().out
    record = json.loads((tmp_path / "all" / "run.json").read_text())["data"]
    assert record["validation"] == {"split": "none", "windows": 0}
    assert record["load_options"] == {"validation_fraction": 0.0, "include_test": False}

    assert main(["train", "lstm", *options, "--run-dir", "held", "--load", "validation_fraction=0.2"]) == 0
    out = capsys.readouterr().out
    record = json.loads((tmp_path / "held" / "run.json").read_text())["data"]
    held = record["validation"]["subjects"]
    assert f"validation: subjects {held} held out whole" in out
    assert record["load_options"] == {"validation_fraction": 0.2, "include_test": False}
    # `zoo evaluate` holds out the subjects the run held out.
    assert main(["evaluate", "lstm", "--data", str(path), "--run-dir", "held"]) == 0
    capsys.readouterr()
    metrics = json.loads((tmp_path / "held" / "evaluation" / "metrics.json").read_text())
    assert metrics["data"]["validation"]["subjects"] == held
    assert metrics["data"]["validation"]["windows"] == np.isin(ids, held).sum()

    assert main(["train", "lstm", *options, "--run-dir", "bad", "--load", "validation=0.2"]) == 2
    assert "loader has no option 'validation'; it takes validation_fraction" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()


def test_cli_train_evaluate_export_and_reload_without_zoo(tmp_path, windows_file, subprocess_env,
                                                          capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    options = ["--data", str(windows_file), "--run-dir", "run"]
    assert main(["train", "gru", *options, "--preset", "course", "--epochs", "1", "--set", "units=4",
                 "--set", "head_units=4", "--set", "normalize=true", "--set", "rotation=10"]) == 0
    trained = capsys.readouterr().out
    assert "test: accuracy" in trained and "actual/predicted" in trained
    for figure in ("curves.png", "confusion_train.png", "confusion_val.png", "confusion_test.png"):
        assert (tmp_path / "run" / figure).read_bytes()[:4] == b"\x89PNG"
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["fit"]["early_stopping_patience"] == 10 and run["epochs_trained"] == 1

    assert main(["evaluate", "gru", *options]) == 0
    evaluated = capsys.readouterr().out
    assert "macro_f1" in evaluated and "test: accuracy" in evaluated
    metrics = json.loads((tmp_path / "run" / "evaluation" / "metrics.json").read_text())
    assert set(metrics["metrics"]) == {"val", "test"}  # the held-out splits, by default

    assert main(["export", "gru", "--run-dir", "run", "--root", "exports"]) == 0
    card = json.loads((tmp_path / "exports" / "gru" / "1" / "model_card.json").read_text())
    assert card["validation"] == run["data"]["validation"]  # says how validation was held out
    assert card["validation"]["split"] == "random" and "new people" in card["validation"]["warning"]
    script = textwrap.dedent(
        """
        import sys
        sys.modules["zoo"] = None
        import numpy as np, tensorflow as tf
        loaded = tf.saved_model.load(sys.argv[1])
        served = loaded.signatures["serve"](windows=tf.constant(np.load(sys.argv[2])))
        assert sorted(served) == ["class_index", "probabilities"], sorted(served)
        np.save(sys.argv[3], served["probabilities"].numpy())
        """
    )
    windows = data.load(windows_file).x_test
    np.save(tmp_path / "windows.npy", windows)
    subprocess.run([sys.executable, "-c", script, "exports/gru/1", "windows.npy", "served.npy"],
                   check=True, cwd=tmp_path, env=subprocess_env)
    import keras

    model = keras.saving.load_model(tmp_path / "run" / "model.keras")
    np.testing.assert_allclose(np.load(tmp_path / "served.npy"), model.predict(windows, verbose=0),
                               atol=1e-5)
