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


# --- --overwrite: the new run is built beside the old one, swapped in only when finished ---------


def snapshot(directory):
    """Every file under `directory` with its bytes (but the lock's, which names its holder)."""
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file() and p.name != ".zoo-lock"}


def siblings(run_dir):
    return sorted(p.name for p in run_dir.parent.iterdir() if p.name.startswith(f".{run_dir.name}."))


@pytest.fixture
def finished(tmp_path, example):
    """A finished lstm run (tiny, one epoch) holding a file of the user's; its data."""
    data = example("lstm")
    run = zoo.train("lstm", data, preset="tiny", run_dir=tmp_path / "runs" / "lstm")
    (run.path / "notes.txt").write_text("the user's, kept across overwrites\n")
    return run, data


@pytest.mark.slow
def test_an_overwrite_trains_beside_the_old_run_and_swaps_it_in_when_finished(finished,
                                                                               monkeypatch):
    import zoo.workflow.fitting as fitting

    old, data = finished
    before = snapshot(old.path)
    # What a killed overwrite left (zoo's, marked) and a look-alike of the user's (kept).
    killed = old.path.parent / ".lstm.overwrite-0badf00d"
    zoo.runs.RunDirectory(killed).claim()
    (killed / "history.csv").write_text("epoch,loss\n0,1.5\n")
    look_alike = old.path.parent / ".lstm.overwrite-mine"
    look_alike.mkdir()
    seen = []

    def fit_into(entry, model, splits, run_dir, record, **options):
        history = original(entry, model, splits, run_dir, record, **options)
        # The new run is finished beside the old one, which is as it was.
        seen.append((run_dir, snapshot(old.path) == before, siblings(old.path)))
        return history

    original = fitting.fit_into
    monkeypatch.setattr(fitting, "fit_into", fit_into)
    new = zoo.train("lstm", data, preset="tiny", run_dir=old.path, epochs=2, overwrite=True)
    [(built_in, old_intact, beside)] = seen
    assert built_in.parent == old.path.parent and built_in.name.startswith(".lstm.overwrite-")
    assert old_intact and beside == sorted([built_in.name, look_alike.name])
    assert new.path == old.path and new.record["epochs_trained"] == 2
    assert zoo.runs.RunDirectory(old.path).record()["epochs_trained"] == 2
    assert all(path.is_file() for path in new.files) and new.files
    assert (old.path / "notes.txt").read_text() == "the user's, kept across overwrites\n"
    assert siblings(old.path) == [look_alike.name]  # the old run and the killed one: gone


@pytest.mark.slow
@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_overwrite_leaves_the_old_run_byte_identical(failure, finished, monkeypatch):
    import keras

    import zoo.workflow.fitting as fitting

    old, data = finished
    before = snapshot(old.path)

    class FailAfterAnEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise failure

    def fit_into(*args, callbacks=(), **options):
        return original(*args, callbacks=[*callbacks, FailAfterAnEpoch()], **options)

    original = fitting.fit_into
    monkeypatch.setattr(fitting, "fit_into", fit_into)
    with pytest.raises(type(failure)) as raised:
        zoo.train("lstm", data, preset="tiny", run_dir=old.path, epochs=3, overwrite=True)
    if isinstance(failure, KeyboardInterrupt):
        assert str(raised.value) == (f"{old.path} holds its earlier run as it was; the same "
                                     "command trains it again")
    assert snapshot(old.path) == before
    assert siblings(old.path) == []  # the half-built run is removed


def test_an_overwrite_refuses_a_folder_zoo_does_not_own(tmp_path, example):
    foreign = tmp_path / "theirs"
    foreign.mkdir()
    (foreign / "run.json").write_text('{"status": "finished"}\n')  # looks like a run, no marker
    before = snapshot(foreign)
    with pytest.raises(zoo.runs.RunError, match="not a zoo run directory"):
        zoo.train("lstm", example("lstm"), preset="tiny", run_dir=foreign, overwrite=True)
    assert snapshot(foreign) == before and siblings(foreign) == []
