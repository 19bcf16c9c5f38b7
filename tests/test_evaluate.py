"""`zoo evaluate` scores and draws only the splits it is asked for."""

import json

import keras
import numpy as np
import pytest

import zoo
from zoo.recurrent import data as har


@pytest.mark.slow
def test_evaluate_predicts_only_the_requested_splits(cli, tmp_path, monkeypatch):
    path = har.example(tmp_path / "data", seed=0)
    splits = zoo.get_entry("lstm").task.load(path, seed=0)
    assert len(splits.x_train) and len(splits.x_test)
    code, _, err = cli("train", "lstm", "--data", path, "--preset", "tiny")
    assert code == 0, err

    predicted = []
    original = keras.Model.predict

    def counting(self, x, *args, **kwargs):
        predicted.append(len(x))
        return original(self, x, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "predict", counting)
    code, out, err = cli("evaluate", "lstm", "--data", path, "--splits", "test")
    assert code == 0, err
    assert predicted and set(predicted) == {len(splits.x_test)}, predicted
    metrics = json.loads((tmp_path / "runs/lstm/evaluation/metrics.json").read_text())["metrics"]
    assert list(metrics) == ["test"]
    report = (tmp_path / "runs/lstm/evaluation/confusion_matrices.txt").read_text()
    assert report.startswith("test:") and "train:" not in report and "val:" not in report


def test_splits_only_empties_the_others():
    x = np.zeros((4, 2))
    splits = zoo.data.Splits(x, x[:2], np.ones(4), np.ones(2), x[:1], np.ones(1))
    only = splits.only(["val"])
    assert len(only.x_val) == 2 and len(only.x_train) == 0 and only.x_test is None
    assert len(only.y_train) == 0 and only.y_test is None


@pytest.mark.slow
def test_evaluate_refuses_an_out_folder_it_did_not_write_and_keeps_its_files(cli, tmp_path):
    path = har.example(tmp_path / "data", seed=0)
    code, _, err = cli("train", "lstm", "--data", path, "--preset", "tiny")
    assert code == 0, err
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "metrics.json").write_text('{"mine": true}\n')
    code, out, err = cli("evaluate", "lstm", "--data", path, "--out", mine)
    assert code == 1 and err.count("\n") == 1, err
    assert "is not empty and is not a zoo evaluation folder" in err, err
    assert sorted(p.name for p in mine.iterdir()) == ["metrics.json"]
    assert (mine / "metrics.json").read_text() == '{"mine": true}\n'
    code, out, err = cli("evaluate", "lstm", "--data", path, "--out", tmp_path / "new")
    assert code == 0, err
    code, out, err = cli("evaluate", "lstm", "--data", path, "--out", tmp_path / "new")
    assert code == 0, err  # its own folder, again
