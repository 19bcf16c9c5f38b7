"""Hyperparameter search: hypermodels from the registry, the autoencoder's objective, a real
search's tables, plots and best run, exporting it, resuming a killed search, bad input.

Searches run on 256 random patches, 1 epoch per trial, batch 16: each trial takes a few seconds,
most of it compiling the model. One search in this process (`search_run`) serves several tests
and is the reference that a killed and restarted search must reproduce trial for trial.
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import h5py
import keras_tuner as kt
import numpy as np
import pytest

import zoo
from zoo import tuning
from zoo.cli import main
from zoo.registry import Choice, Float, Int
from zoo.tuning import report

NAME = "sparse_autoencoder"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
TRIALS = 3
# `zoo tune` arguments of the tiny search that several tests run.
TINY = ["--max-trials", TRIALS, "--epochs", 1, "--batch-size", 16, "--seed", 0]


@pytest.fixture(scope="module")
def tiny_patches(tmp_path_factory):
    """256 random course-style patches, (256, 3, 16, 16), shared by this module's searches."""
    path = tmp_path_factory.mktemp("data") / "patches.h5"
    with h5py.File(path, "w") as handle:
        handle["data"] = np.random.default_rng(0).random((256, 3, 16, 16)).astype(np.float32)
    return path


@pytest.fixture(scope="module")
def search_run(tiny_patches, tmp_path_factory):
    """A finished random search of 3 trials, run in this process."""
    directory = tmp_path_factory.mktemp("search")
    result = tuning.search(NAME, tuner="random", max_trials=TRIALS, directory=directory,
                           data=tiny_patches, epochs=1, batch_size=16, seed=0)
    return result


def zoo_command(*args):
    return [sys.executable, "-m", "zoo", *map(str, args)]


# --- hypermodels ---------------------------------------------------------------------------


def test_hypermodel_declares_the_entry_search_space_log_scaled():
    hypermodel = tuning.hypermodel(NAME)
    assert isinstance(hypermodel, kt.HyperModel)
    hp = kt.HyperParameters()
    model = hypermodel.build(hp)
    entry = zoo.get_entry(NAME)
    declared = {parameter.name: parameter for parameter in hp.space}
    assert set(declared) == set(entry.search_space()) == {
        "hidden_units", "weight_decay", "sparsity_weight", "sparsity_target", "learning_rate"
    }
    for name, space in entry.search_space().items():
        assert (declared[name].min_value, declared[name].max_value) == (space.low, space.high)
        assert declared[name].sampling == ("log" if space.log else "linear")
    # Without values from a tuner, the hypermodel builds the entry's defaults.
    assert model.hidden_units == entry.hparams["hidden_units"].default
    assert model.sparsity_target == entry.hparams["sparsity_target"].default


def test_hypermodel_uses_the_tuners_values_and_keeps_fixed_ones():
    hypermodel = tuning.hypermodel(NAME, fixed={"weight_decay": 0.0}, preset="course")
    assert "weight_decay" not in hypermodel.space
    hp = kt.HyperParameters()
    hp.values = {"hidden_units": 20, "sparsity_target": 0.07}
    model = hypermodel.build(hp)
    assert (model.hidden_units, model.sparsity_target, model.weight_decay) == (20, 0.07, 0.0)
    # A searched hyperparameter the tuner has given no value takes the preset's (the course's beta).
    assert model.sparsity_weight == zoo.get_entry(NAME).presets["course"]["sparsity_weight"]


def test_grid_declares_evenly_spaced_values_on_log_ranges():
    hp = kt.HyperParameters()
    tuning.declare(hp, {"units": Int(16, 256, log=True), "rate": Float(1e-4, 1e-2, log=True),
                        "kind": Choice(("a", "b"))}, {"units": 64}, grid_points=3)
    values = {parameter.name: list(parameter.values) for parameter in hp.space}
    assert values["units"] == [16, 64, 256]
    np.testing.assert_allclose(values["rate"], [1e-4, 1e-3, 1e-2])
    assert values["kind"] == ["a", "b"]


@pytest.mark.parametrize(
    "options, error, message",
    [
        ({"space": {"nonsense": Float(0.1, 1.0)}}, zoo.HyperparameterError, "'nonsense'"),
        ({"space": {"sparsity_target": Float(0.1, 2.0)}}, zoo.HyperparameterError,
         "sparsity_target must be in"),
        ({"fixed": {"hidden_units": 0}}, zoo.HyperparameterError, "hidden_units must be in"),
        ({"space": {"hidden_units": Int(16, 64)}, "fixed": {"hidden_units": 20}},
         tuning.TuningError, "nothing to search"),
    ],
)
def test_hypermodel_rejects_bad_spaces_and_values(options, error, message):
    with pytest.raises(error, match=message):
        tuning.hypermodel(NAME, **options)


def test_search_takes_names_for_its_space_and_strategy_and_refuses_what_cannot_work(tmp_path):
    """`zoo.tune(name, space=[names], strategy=name)`: what `zoo tune --search --strategy` give."""
    from zoo.tuning.hypermodel import chosen_space

    entry = zoo.get_entry(NAME)
    assert chosen_space(entry, ["learning_rate", "hidden_units"]) == {
        "learning_rate": entry.search_space()["learning_rate"],
        "hidden_units": entry.search_space()["hidden_units"]}
    refused = [
        ({"space": ["hidden_units", "colour"]}, zoo.HyperparameterError,
         "no search space for 'colour'"),
        ({"strategy": "multi_worker"}, zoo.HyperparameterError, "multi_worker is for zoo train"),
        ({"strategy": "two_gpus"}, tuning.TuningError, "strategy must be one of one_device, "),
    ]
    for options, error, message in refused:
        with pytest.raises(error, match=message):
            tuning.search(NAME, directory=tmp_path, **options)
    assert list(tmp_path.iterdir()) == []  # refused before anything is written


# --- the autoencoder's objective ----------------------------------------------------------


def units(hidden_units):
    """What the objective reads of a trained autoencoder: its hidden size."""
    return types.SimpleNamespace(hidden_units=hidden_units)


def test_sparse_code_objective_is_not_won_by_a_dense_code(patches):
    """beta = lambda = 0 gives a dense code that reconstructs best; it must lose to a sparse one."""
    objective = zoo.autoencoder.sparse_code(active_units=4)
    splits = zoo.data.Splits(x_train=patches, x_val=patches)
    dense = objective.evaluate(  # 64 units, each active 36% of the time: 23 active units
        {"val_reconstruction": 0.06, "val_mean_activation": 0.36}, units(64), splits
    )
    sparse = objective.evaluate(  # 1.3 active units, reconstructing far worse
        {"val_reconstruction": 1.0, "val_mean_activation": 0.02}, units(64), splits
    )
    assert sparse["val_sparse_reconstruction"] == 1.0  # within budget: the error alone
    assert sparse["val_active_units"] == pytest.approx(1.28)
    assert dense["val_sparse_reconstruction"] > 10 * sparse["val_sparse_reconstruction"]
    # Over budget by a quarter costs a quarter of the mean patch's error.
    over = objective.evaluate({"val_reconstruction": 0.5, "val_mean_activation": 0.05},
                              units(100), splits)
    mean_error = 0.5 * np.mean(np.sum((patches - patches.mean(0)) ** 2, axis=1))
    assert over["val_sparse_reconstruction"] == pytest.approx(0.5 + 0.25 * mean_error, rel=1e-5)


def test_zoo_tune_uses_the_family_objective_else_the_headline_metric():
    assert zoo.get_entry(NAME).task.tuning_objective.name == "val_sparse_reconstruction"
    assert zoo.get_entry("lstm").task.tuning_objective == zoo.registry.Objective(
        "val_accuracy", "max", "validation accuracy (higher is better)")
    objective = zoo.registry.Objective.of(zoo.registry.Metric("val_accuracy", "max"))
    assert objective.evaluate({"val_accuracy": 0.9}, None, None) == {"val_accuracy": 0.9}
    with pytest.raises(KeyError, match="val_accuracy"):
        objective.evaluate({"val_loss": 1.0}, None, None)


# --- a search's results ---------------------------------------------------------------------


def test_search_writes_every_trial_to_csv_and_markdown(search_run):
    project = search_run.project_dir
    with open(project / "trials.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["trial"] for row in rows] == ["0", "1", "2"]
    searched = set(zoo.get_entry(NAME).search_space())
    for row, record in zip(rows, search_run.records):
        assert row["status"] == "COMPLETED"
        assert float(row["seconds"]) > 0
        objective = float(row["val_sparse_reconstruction"])
        assert objective >= float(row["val_reconstruction"]) > 0
        assert float(row["val_active_units"]) == pytest.approx(
            float(row["hidden_units"]) * float(row["val_mean_activation"]), rel=1e-5
        )
        for name in searched:
            assert float(row[name]) == pytest.approx(float(record.values[name]))
        # Training metrics are prefixed, so the weight decay term is not lambda's column.
        assert float(row["train_weight_decay"]) >= 0
    markdown = (project / "trials.md").read_text()
    table = [line for line in markdown.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| rank | trial | status | seconds | val_sparse_reconstruction |")
    assert len(table) == 1 + TRIALS
    assert table[1].startswith(f"| 1 | {search_run.best.trial_id} | COMPLETED |")


def test_search_summary_plots_and_best_run(search_run):
    project, best = search_run.project_dir, search_run.best
    scores = [r.metrics["val_sparse_reconstruction"] for r in search_run.records]
    assert best.metrics["val_sparse_reconstruction"] == min(scores)
    for name in zoo.get_entry(NAME).search_space():
        assert (project / f"objective_vs_{name}.png").read_bytes().startswith(PNG_MAGIC)
    summary = json.loads((project / "best.json").read_text())
    assert summary["best"]["trial_id"] == best.trial_id
    assert summary["trials"] == {"COMPLETED": TRIALS}
    assert summary["search"]["objective"]["name"] == "val_sparse_reconstruction"
    assert f"## Best: trial {best.trial_id}" in (project / "best.md").read_text()
    run = json.loads((search_run.run_dir / "run.json").read_text())
    assert run["hyperparameters"] == search_run.best_hyperparameters
    assert run["search"]["trial_id"] == best.trial_id
    assert run["search"]["directory"] == str(project.resolve())
    assert run["metrics"]["val_reconstruction"] == pytest.approx(
        best.metrics["val_reconstruction"], rel=1e-5
    )
    for figure in ("curves.png", "features.png"):
        assert (search_run.run_dir / figure).read_bytes().startswith(PNG_MAGIC)


def test_export_of_the_best_run_names_its_search_and_trial(search_run, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["export", NAME, "--run-dir", str(search_run.run_dir), "--root", "exported"]) == 0
    card = json.loads((tmp_path / "exported" / NAME / "1" / "model_card.json").read_text())
    assert card["search"]["trial_id"] == search_run.best.trial_id
    assert card["search"]["directory"] == str(search_run.project_dir.resolve())
    assert card["hyperparameters"] == search_run.best_hyperparameters


def test_restarting_a_finished_search_runs_nothing_and_other_settings_are_refused(search_run):
    directory = search_run.project_dir.parent
    data = json.loads((search_run.project_dir / "search.json").read_text())["data"]
    again = tuning.search(NAME, tuner="random", max_trials=TRIALS, directory=directory, data=data,
                          epochs=1, batch_size=16, seed=0)
    assert [r.metrics for r in again.records] == [r.metrics for r in search_run.records]
    with pytest.raises(tuning.TuningError, match='tuner: "random" there, "grid" now'):
        tuning.search(NAME, tuner="grid", max_trials=TRIALS, directory=directory, data=data,
                      epochs=1, batch_size=16, seed=0)


# --- killing and restarting a real search ---------------------------------------------------


@pytest.mark.slow
def test_killed_search_resumes_without_repeating_or_losing_trials(
    search_run, tiny_patches, tmp_path, subprocess_env
):
    command = zoo_command("tune", NAME, "--data", tiny_patches, "--directory", tmp_path, *TINY)
    project = tmp_path / NAME
    first = subprocess.Popen(command, env=subprocess_env, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    # Kill once trial 0 is finished and trial 1 has started.
    while not (project / "trial_1" / "trial.json").exists():
        assert first.poll() is None, first.stdout.read()[-3000:]
        assert time.monotonic() < deadline, "trial 1 never started"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    before_kill = first.communicate()[0]
    trial_0 = json.loads((project / "trial_0" / "trial.json").read_text())
    assert trial_0["status"] == "COMPLETED"
    model_0 = project / "trial_0" / "run" / "model.keras"
    written = model_0.stat().st_mtime_ns

    second = subprocess.run(command, env=subprocess_env, capture_output=True, text=True,
                            timeout=300)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    started_again = {line.split()[2].rstrip(":") for line in second.stdout.splitlines()
                     if line.startswith("[tuner0] trial ") and line.split()[2].endswith(":")}
    assert "0" not in started_again and "2" in started_again, second.stdout
    assert "[tuner0] trial 0:" in before_kill
    # Trial 0 was neither run again nor rewritten.
    assert model_0.stat().st_mtime_ns == written
    assert json.loads((project / "trial_0" / "trial.json").read_text()) == trial_0
    with open(project / "trials.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["trial"], row["status"]) for row in rows] == [
        ("0", "COMPLETED"), ("1", "COMPLETED"), ("2", "COMPLETED")
    ]
    # The same seed gives the same trials as the uninterrupted search in this process.
    searched = list(zoo.get_entry(NAME).search_space())
    resumed = [[float(row[name]) for name in searched] for row in rows]
    reference = [[float(r.values[name]) for name in searched] for r in search_run.records]
    np.testing.assert_allclose(resumed, reference, rtol=1e-12)


# --- tuners and bad input -----------------------------------------------------------------


@pytest.mark.slow
def test_hyperband_continues_the_best_trials_model(tiny_patches, tmp_path):
    result = tuning.search(NAME, tuner="hyperband", max_trials=4, directory=tmp_path,
                           data=tiny_patches, epochs=3, batch_size=16, seed=0)
    records = {r.trial_id: r for r in result.records}
    assert all(r.status == "COMPLETED" for r in records.values())
    first_round = [r for r in records.values() if r.values["tuner/round"] == 0]
    continued = [r for r in records.values() if r.values["tuner/round"] == 1]
    assert len(first_round) == 3 and len(continued) == 1
    parent = records[continued[0].values["tuner/trial_id"]]
    assert parent == report.best_trial(first_round, result.objective)
    # It trained 2 more epochs from its parent's weights, with its parent's hyperparameters.
    values = continued[0].values
    assert (values["tuner/initial_epoch"], values["tuner/epochs"]) == (1, 3)
    history = (tmp_path / NAME / f"trial_{continued[0].trial_id}" / "run" / "history.csv").read_text()
    assert len(history.strip().splitlines()) == 1 + 2
    for name in zoo.get_entry(NAME).search_space():
        assert continued[0].values[name] == parent.values[name]


@pytest.mark.slow
def test_grid_search_walks_the_grid(tiny_patches, tmp_path):
    result = tuning.search(NAME, tuner="grid", max_trials=2, directory=tmp_path, data=tiny_patches,
                           epochs=1, batch_size=16, grid_points=2,
                           space={"hidden_units": Int(16, 64, log=True),
                                  "sparsity_target": Float(0.01, 0.1, log=True)})
    assert [(r.values["hidden_units"], r.values["sparsity_target"]) for r in result.records] == [
        (16, 0.01), (16, pytest.approx(0.1))
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        ([NAME, "--tuner", "randon"], "unknown tuner 'randon'; did you mean 'random'?"),
        ([NAME, "--max-trials", "0"], "--max-trials: must be an integer from 1 to 1000000000, got 0"),
        (["sparse_autoencodr"], "did you mean 'sparse_autoencoder'"),
        ([NAME, "--set", "nonsense=1"], "'nonsense'"),
        ([NAME, "--seed", "-1"], "--seed: must be an integer from 0 to 4294967295, got -1"),
        ([NAME, "--search", "hidden_units, colour"],
         "sparse_autoencoder has no search space for 'colour'; searchable: hidden_units"),
        ([NAME, "--strategy", "multi_worker"], "multi_worker is for zoo train"),
        ([NAME, "--mirrored", "--strategy", "one_device"],
         "--mirrored contradicts --strategy one_device"),
    ],
)
def test_bad_tune_arguments_are_clean_errors(cli, tmp_path, args, message):
    code, out, err = cli("tune", *args)
    assert code == 2
    assert err.startswith("zoo: error: ") and message in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("script", ["sparse_autoencoder", "recurrent", "convnet"])
def test_tuning_scripts_are_zoo_tune_with_family_defaults(script, subprocess_env, tmp_path):
    """Each script takes every `zoo tune` option, and a mistake is the CLI's one-line error."""
    path = Path(__file__).parents[1] / "tuning" / f"{script}.py"
    shown = subprocess.run([sys.executable, str(path), "--help"], capture_output=True,
                           text=True, env=subprocess_env, timeout=120, cwd=tmp_path)
    assert shown.returncode == 0
    for option in ("--set", "--batch-size", "--mirrored", "--grid-points", "--search"):
        assert option in shown.stdout
    refused = subprocess.run([sys.executable, str(path), "--tuner", "randon"],
                             capture_output=True, text=True, env=subprocess_env, timeout=120,
                             cwd=tmp_path)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1].startswith(
        "zoo: error: unknown tuner 'randon'; did you mean")


def test_distributed_needs_its_environment_and_is_not_joined_by_accident(cli, monkeypatch):
    for variable in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT"):
        monkeypatch.delenv(variable, raising=False)
    code, _, err = cli("tune", NAME, "--distributed")
    assert code == 2 and "KERASTUNER_TUNER_ID, KERASTUNER_ORACLE_IP, KERASTUNER_ORACLE_PORT" in err
    monkeypatch.setenv("KERASTUNER_ORACLE_IP", "127.0.0.1")
    code, _, err = cli("tune", NAME)
    assert code == 2 and "pass --distributed" in err
    assert os.listdir(".") == []


def test_a_foreign_search_directory_is_refused_and_kept_even_with_overwrite(cli, tmp_path,
                                                                             patch_file):
    foreign = tmp_path / "runs" / "tuning" / NAME
    foreign.mkdir(parents=True)
    (foreign / "trials.csv").write_text("my own results\n")
    for extra in ([], ["--overwrite"]):
        code, out, err = cli("tune", NAME, "--data", patch_file, "--preset", "tiny",
                             "--max-trials", "1", *extra)
        assert code == 1 and err.count("\n") == 1, err
        assert "is not empty and is not a zoo search directory" in err, err
        assert sorted(p.name for p in foreign.iterdir()) == ["trials.csv"]
        assert (foreign / "trials.csv").read_text() == "my own results\n"


def test_a_second_search_into_one_directory_is_refused(cli, tmp_path, patch_file):
    from zoo import runs

    directory = tmp_path / "runs" / "tuning" / NAME
    runs.claim_directory(directory, "search directory", "")
    with runs.locked(directory, "search directory"):  # the first search, still running
        code, out, err = cli("tune", NAME, "--data", patch_file, "--preset", "tiny",
                             "--max-trials", "1")
    assert code == 1 and "is in use by another zoo process" in err, err
