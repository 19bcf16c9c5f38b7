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

    from zoo.workflow import using

    scored, predicted, evaluated = [], [], []
    score = using.score
    monkeypatch.setattr(using, "score",
                        lambda model, x, y: scored.append(len(x)) or score(model, x, y))
    monkeypatch.setattr(keras.Model, "predict", lambda *args, **kwargs: predicted.append(1))
    monkeypatch.setattr(keras.Model, "evaluate", lambda *args, **kwargs: evaluated.append(1))
    code, out, err = cli("evaluate", "lstm", "--data", path, "--splits", "test")
    assert code == 0, err
    # One pass over the test windows gives the metrics and the confusion matrix.
    assert (scored, predicted, evaluated) == ([len(splits.x_test)], [], []), (scored, predicted)
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


@pytest.mark.parametrize("name, tag, inputs", [
    ("lstm", "usc_had", lambda rng: rng.normal(size=(300, 150, 3)).astype("float32")),
    ("cifar_small", "cifar10", lambda rng: rng.integers(0, 256, (300, 32, 32, 3), np.uint8)),
    # Confident mistakes on noise: a loss from clipped probabilities was 0.02 too low here.
    ("three_layer_convnet", "cifar10",
     lambda rng: rng.integers(0, 256, (300, 32, 32, 3), np.uint8)),
])
def test_one_pass_scores_as_keras_evaluate_does(name, tag, inputs):
    """`score` gives `model.evaluate`'s loss and metrics and `model.predict`'s outputs; 300
    examples make a last batch of 44, which the loss must weigh by its size."""
    from zoo.workflow.using import score

    model = zoo.get(name, weights=tag)
    rng = np.random.default_rng(0)
    x = inputs(rng)
    classes = model.predict(x[:1], verbose=0).shape[-1]
    labels = rng.integers(0, classes, len(x))
    for y in (np.eye(classes, dtype="float32")[labels], labels):  # one-hot, integers
        expected = model.evaluate(x, y, batch_size=256, verbose=0, return_dict=True)
        scores, outputs = score(model, x, y)
        assert list(scores) == list(expected)
        for metric, value in expected.items():
            assert scores[metric] == pytest.approx(value, rel=1e-6), metric
        np.testing.assert_allclose(outputs, model.predict(x, verbose=0), atol=1e-6)


def test_a_model_with_its_own_test_step_is_scored_by_evaluate():
    from zoo.autoencoder import data as patches
    from zoo.workflow.using import score

    model = zoo.get("sparse_autoencoder", weights="photos")
    x = patches.load(None, count=300).x_train
    scores, outputs = score(model, x, x)
    assert outputs is None
    assert scores == model.evaluate(x, x, batch_size=256, verbose=0, return_dict=True)


def test_the_split_seed_of_a_run_and_of_a_set():
    """`zoo train` splits and trains with one seed; a run or set that records its split's own
    (trained at seed 1 on the seed-0 split) is held out by that."""
    from zoo.workflow.using import split_seed

    assert split_seed({"seed": 3, "data": {}}) == 3
    assert split_seed({"seed": 1, "data": {"split_seed": 0}}) == 0
    assert split_seed({"recipe": {"seed": 1}, "data": {"split_seed": 2}}) == 2
    assert split_seed({"recipe": {"seed": 1}, "data": {}}) == 0  # cards before the field
