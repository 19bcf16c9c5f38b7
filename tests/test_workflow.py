"""One workflow, three doors: `zoo.train` from Python and `zoo train` on the command line make
the same run (record and history), and either door evaluates and exports the other's run.

One entry of each family, its tiny preset, one epoch, on its task's seeded example data."""

import csv
import json
import sys

import pytest

import zoo

ENTRIES = ("sparse_autoencoder", "lstm", "two_layer_fc")  # ~10-15 s each, after TF's start
# Fields of run.json that name where or when a run was made, not what it is.
PLACES_AND_TIMES = ("started", "finished", "files", "seconds", "wall_seconds")


def comparable(record, run_dir):
    """`record` without its times and with its own run directory written as RUN_DIR."""
    text = json.dumps({key: value for key, value in record.items()
                       if key not in PLACES_AND_TIMES}, sort_keys=True, default=str)
    return json.loads(text.replace(str(run_dir), "RUN_DIR"))


def history(run_dir):
    with open(run_dir / "history.csv", newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def example(tmp_path):
    def make(name):
        return zoo.get_entry(name).task.example(tmp_path / "data" / name, 0)
    return make


@pytest.mark.slow
@pytest.mark.parametrize("name", ENTRIES)
def test_python_and_the_command_line_make_the_same_run(name, cli, tmp_path, example):
    data = example(name)
    made = zoo.train(name, data, preset="tiny", run_dir=tmp_path / "python", seed=3, epochs=1)
    code, out, err = cli("train", name, "--data", data, "--preset", "tiny", "--seed", 3,
                         "--epochs", 1, "--run-dir", tmp_path / "cli")
    assert code == 0, err
    assert f"model and figures in {tmp_path / 'cli'}/" in out
    # What the command prints is the run's summary, for Python users too.
    assert out.endswith(made.summary().replace(str(tmp_path / "python"), str(tmp_path / "cli"))
                        + "\n")
    from_cli = json.loads((tmp_path / "cli" / "run.json").read_text())
    assert made.record == json.loads((tmp_path / "python" / "run.json").read_text())
    assert comparable(made.record, tmp_path / "python") == comparable(from_cli, tmp_path / "cli")
    assert history(tmp_path / "python") == history(tmp_path / "cli")
    assert made.metrics == from_cli["metrics"]
    assert set(made.history) <= set(history(tmp_path / "cli")[0])
    assert [path.name for path in made.files] == from_cli["files"]
    assert all(path.is_file() for path in made.files)


@pytest.mark.slow
def test_each_door_evaluates_and_exports_the_others_run(cli, tmp_path, example):
    name = "lstm"
    data = example(name)
    made = zoo.train(name, data, preset="tiny", run_dir=tmp_path / "python", epochs=1)
    code, _, err = cli("train", name, "--data", data, "--preset", "tiny", "--epochs", 1,
                       "--run-dir", tmp_path / "cli")
    assert code == 0, err

    # The command line over the Python-made run.
    code, out, err = cli("evaluate", name, "--data", data, "--run-dir", made.path)
    assert code == 0, err
    assert out.startswith("test  accuracy ")  # the example holds out no validation subjects
    assert zoo.evaluate(name, data, run_dir=made.path).summary() + "\n" == out
    code, out, err = cli("export", name, "--run-dir", made.path, "--root", tmp_path / "exports")
    assert code == 0, err
    assert f"exported {name} to {tmp_path / 'exports' / name / '1'}/: SavedModel (signatures: serve" in out
    contents = zoo.workflow.using.export_contents(tmp_path / "exports" / name / "1")
    assert out.endswith(f": {contents}\n")

    # Python over the command line's run: the same scores the command line printed for its own.
    evaluation = zoo.evaluate(name, data, run_dir=tmp_path / "cli")
    assert set(evaluation.metrics) == {"test"}
    assert evaluation.path == tmp_path / "cli" / "evaluation"
    written = json.loads((evaluation.path / "metrics.json").read_text())["metrics"]
    assert written["test"] == pytest.approx(evaluation.metrics["test"])
    assert all(path.exists() for path in evaluation.figures)
    version = zoo.export(name, run_dir=tmp_path / "cli", root=tmp_path / "exports")
    assert version == tmp_path / "exports" / name / "2"
    card = json.loads((version / "model_card.json").read_text())
    assert card["hyperparameters"] == made.record["hyperparameters"]

    predictions = zoo.predict(name, [data], run_dir=tmp_path / "cli", output=tmp_path / "p.csv")
    assert predictions and all(p.error is None for p in predictions)
    with open(tmp_path / "p.csv", newline="") as handle:  # a row a prediction, as --output writes
        assert [row["input"] for row in csv.DictReader(handle)] == [
            p.row["input"] for p in predictions]


@pytest.mark.slow
def test_a_finished_run_is_not_trained_again_without_overwrite(tmp_path, example):
    data = example("sparse_autoencoder")
    run = zoo.train("sparse_autoencoder", data, preset="tiny", run_dir=tmp_path / "run")
    with pytest.raises(zoo.runs.RunError, match="holds a finished run of sparse_autoencoder"):
        zoo.train("sparse_autoencoder", data, preset="tiny", run_dir=run.path)
    again = zoo.train("sparse_autoencoder", data, preset="tiny", run_dir=run.path,
                      overwrite=True)
    assert again.history == run.history  # the same seed, the same run


def test_python_mistakes_are_user_errors(tmp_path, example):
    data = example("lstm")
    with pytest.raises(zoo.errors.UsageError, match="loader has no option 'colour'"):
        zoo.train("lstm", data, preset="tiny", run_dir=tmp_path / "r", load={"colour": "red"})
    with pytest.raises(zoo.errors.UsageError, match="validation_fraction expects a number"):
        zoo.train("lstm", data, preset="tiny", run_dir=tmp_path / "r",
                  load={"validation_fraction": "a lot"})
    with pytest.raises(zoo.errors.UsageError, match="expected splits among train, val, test"):
        zoo.evaluate("lstm", data, run_dir=tmp_path / "r", splits=("holdout",))
    with pytest.raises(zoo.errors.UsageError, match="got 'val,tset'"):
        zoo.evaluate("lstm", data, run_dir=tmp_path / "r", splits="val,tset")
    assert zoo.workflow.using.chosen_splits(" test, val") == ["val", "test"]  # SPLITS' order
    (tmp_path / "notes").mkdir()
    with pytest.raises(zoo.errors.UserError, match="is a folder"):  # before any model loads
        zoo.predict("lstm", [data], run_dir=tmp_path / "r", output=tmp_path / "notes")
    assert not (tmp_path / "r").exists()


def test_the_package_exposes_the_workflow_and_keeps_the_export_module():
    import zoo.export
    from zoo.export import FORMATS, export

    assert callable(zoo.export) and zoo.export is sys.modules["zoo.export"]
    assert export is zoo.export.export and "onnx" in FORMATS
    assert zoo.train is zoo.workflow.train and zoo.tune is zoo.tuning.search
