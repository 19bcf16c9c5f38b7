"""The `zoo` command: listing, describing, argument errors, and a train -> evaluate -> export run.

Each `python -m zoo` process starts TensorFlow (seconds on a small machine), so only `list` and
`train` run as real subprocesses; the rest call `zoo.cli.main` in this process, which is what
`python -m zoo` runs (`raise SystemExit(main())`), from an empty working directory.
"""

import json
import os
import re
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest
import tensorflow as tf

import zoo
from zoo.workflow.fitting import Interrupted

NAME = "sparse_autoencoder"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def zoo_command(*args, cwd, env):
    return subprocess.run(
        [sys.executable, "-m", "zoo", *map(str, args)],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
    )


def test_python_m_zoo_list(tmp_path, subprocess_env):
    result = zoo_command("list", cwd=tmp_path, env=subprocess_env)
    assert result.returncode == 0, result.stderr[-2000:]
    names = [line.split()[0] for line in result.stdout.splitlines()]
    assert NAME in names and names == sorted(names) == zoo.list()
    assert "Sparse autoencoder" in result.stdout


def test_a_reader_that_leaves_early_stops_zoo_without_a_traceback(tmp_path, subprocess_env):
    """`zoo list | head -0`: nobody reads the pipe any more when zoo starts writing."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # before the interpreter has even started
    try:
        result = subprocess.run([sys.executable, "-m", "zoo", "list"], cwd=tmp_path,
                                env=subprocess_env, stdout=write_end, stderr=subprocess.PIPE,
                                text=True, timeout=300)
    finally:
        os.close(write_end)
    assert result.returncode == 1
    assert result.stderr == ""


def test_list_pattern_without_matches_prints_nothing(cli):
    assert cli("list", "*no-such-model*") == (0, "", "")
    code, out, _ = cli("list", "*auto*")
    assert code == 0 and out.split()[0] == NAME


def test_describe_shows_defaults_ranges_and_search_space(cli):
    entry = zoo.get_entry(NAME)
    hidden_units, optimizer = entry.hparams["hidden_units"], entry.hparams["optimizer"]
    code, out, err = cli("describe", NAME)
    assert code == 0, err
    assert f"metric: {entry.task.metric.name} ({entry.task.metric.direction}imise)" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert repr(hidden_units.default) in lines["hidden_units"]
    assert hidden_units.valid in lines["hidden_units"]
    space = hidden_units.search
    assert f"kind=int, low={space.low}, high={space.high}, log={space.log}" in lines["hidden_units"]
    assert repr(optimizer.default) in lines["optimizer"] and "not searched" in lines["optimizer"]
    for preset in entry.presets:
        assert f"preset {preset!r}" in out

    code, out, err = cli("describe", NAME, "--json")
    assert code == 0, err
    described = json.loads(out)
    assert described["name"] == NAME
    assert described["hyperparameters"]["hidden_units"]["default"] == hidden_units.default
    assert described["hyperparameters"]["hidden_units"]["valid"] == hidden_units.valid
    assert described["hyperparameters"]["optimizer"]["valid"] == list(optimizer.valid)
    assert described["search_space"]["hidden_units"] == {
        "kind": "int", "low": space.low, "high": space.high, "log": space.log
    }
    assert set(described["search_space"]) == set(entry.search_space())
    assert "optimizer" not in described["search_space"]
    assert described["presets"] == json.loads(json.dumps(entry.presets))


def test_describe_misspelt_name_suggests_the_right_one(cli):
    code, out, err = cli("describe", "sparse_autoencodr")
    assert code == 2
    assert out == ""
    assert "did you mean 'sparse_autoencoder'" in err


def test_train_rejects_out_of_range_hyperparameter(cli, tmp_path):
    code, _, err = cli("train", NAME, "--set", "hidden_units=0")
    assert code == 2
    valid = zoo.get_entry(NAME).hparams["hidden_units"].valid
    assert valid.startswith("[1,")  # so that 0 is out of range
    assert "hidden_units" in err and valid in err
    assert not (tmp_path / "runs").exists()


def test_train_rejects_unknown_hyperparameter_listing_valid_keys(cli, tmp_path):
    code, _, err = cli("train", NAME, "--set", "nonsense=1")
    assert code == 2
    assert "'nonsense'" in err
    for key in zoo.get_entry(NAME).hparams:
        assert key in err
    assert not (tmp_path / "runs").exists()


def test_export_without_a_trained_run_says_to_train_first(cli, tmp_path):
    code, _, err = cli("export", NAME)
    assert code == 1
    assert f"train it first: zoo train {NAME}" in err
    assert not (tmp_path / "saved_models").exists()


def test_missing_data_path_is_named(cli, tmp_path):
    code, _, err = cli("train", NAME, "--data", "no/such/patches", "--epochs", "1")
    assert code == 1
    assert "no/such/patches" in err and "does not exist" in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(
    "option, value",
    [
        ("--epochs", "0"),
        ("--batch-size", "100000"),
    ],
)
def test_bad_fit_option_is_a_clean_error(cli, capsys, patch_file, option, value):
    try:
        code, _, err = cli("train", NAME, "--data", patch_file, option, value)
    except SystemExit as exit:  # a check in argparse would do too
        code, err = exit.code, capsys.readouterr().err
    assert code in (1, 2)
    assert "error:" in err and option.lstrip("-").split("-")[0] in err  # "epochs", "batch"


def test_train_evaluate_export(tmp_path, patch_file, subprocess_env, cli):
    # Training runs as a real `python -m zoo` process; evaluate and export reuse this process's
    # TensorFlow, which saves two start-ups.
    result = zoo_command(
        "train", NAME, "--data", patch_file, "--epochs", 2, "--batch-size", 16,
        "--set", "hidden_units=8", cwd=tmp_path, env=subprocess_env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # TensorFlow's C++ start-up lines (written to fd 2, whatever TF_CPP_MIN_LOG_LEVEL says) are
    # hidden without --verbose.
    noise = [line for line in result.stderr.splitlines()
             if line.startswith(("WARNING: All log messages", "I0000", "E0000"))]
    assert not noise, noise
    counts = re.search(r"(\d+) training, (\d+) validation examples", result.stdout)
    assert counts and int(counts[1]) + int(counts[2]) == 256 and int(counts[2]) > 0
    assert "val_reconstruction:" in result.stdout
    run_dir = tmp_path / "runs" / NAME
    for figure in ("curves.png", "features.png", "reconstructions.png", "patches.png"):
        assert (run_dir / figure).read_bytes().startswith(PNG_MAGIC), figure
    run = json.loads((run_dir / "run.json").read_text())
    assert run["name"] == NAME
    assert run["epochs_trained"] == 2
    assert run["hyperparameters"]["hidden_units"] == 8
    assert str(patch_file) in run["data"]["source"]
    assert run["metrics"]["val_reconstruction"] > 0
    assert (run_dir / "model.keras").is_file() and not (run_dir / "backup").exists()

    code, out, err = cli("evaluate", NAME, "--data", patch_file, "--splits", "val, train")
    assert code == 0, err
    assert out.startswith("train ") and "\nval " in out
    metrics = json.loads((run_dir / "evaluation" / "metrics.json").read_text())["metrics"]
    assert set(metrics) == {"train", "val"}
    code, out, err = cli("evaluate", NAME, "--data", patch_file, "--splits", "val,tset")
    assert code == 2 and "expected splits among train, val, test, got 'val,tset'" in err
    code, out, err = cli("evaluate", NAME, "--data", patch_file)  # the held-out split by default
    assert code == 0, err
    assert out.startswith("val ") and "train " not in out
    assert metrics["val"]["reconstruction"] == pytest.approx(
        run["metrics"]["val_reconstruction"], rel=1e-4
    )
    for figure in ("features.png", "reconstructions.png"):
        assert (run_dir / "evaluation" / figure).read_bytes().startswith(PNG_MAGIC), figure

    code, out, err = cli("export", NAME, "--root", "exported")
    assert code == 0, err
    version = tmp_path / "exported" / NAME / "1"
    assert "exported/sparse_autoencoder/1" in out
    assert (version / "saved_model.pb").is_file()
    card = json.loads((version / "model_card.json").read_text())
    assert (card["name"], card["version"], card["epochs_trained"]) == (NAME, 1, 2)
    assert card["hyperparameters"] == run["hyperparameters"]
    assert card["metrics"] == run["metrics"]
    assert card["headline_metric"] == "val_reconstruction"


@pytest.mark.slow
def test_train_on_a_folder_of_photographs_draws_the_colour_patches(cli, tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "photos").mkdir()
    for index in range(2):
        pixels = rng.integers(0, 256, (40, 48, 3)).astype(np.uint8)
        (tmp_path / "photos" / f"{index}.png").write_bytes(tf.io.encode_png(pixels).numpy())
    code, out, err = cli("train", NAME, "--data", tmp_path / "photos", "--epochs", 1,
                         "--set", "hidden_units=4")
    assert code == 0, err
    assert (tmp_path / "runs" / NAME / "patches.png").read_bytes().startswith(PNG_MAGIC)
    assert "patches.png" in out


@pytest.mark.slow
def test_sweep_trains_the_grid_and_draws_one_figure(cli, tmp_path, patch_file):
    code, out, err = cli(
        "sweep", NAME, "--data", patch_file, "--epochs", 1, "--batch-size", 16,
        "--grid", "hidden_units=4,9", "--grid", "weight_decay=0,1e-3",
    )
    assert code == 0, err
    assert "[4/4] hidden_units=9 weight_decay=0.001" in out
    run_dir = tmp_path / "runs" / f"{NAME}-sweep"
    assert (run_dir / "sweep.png").read_bytes().startswith(PNG_MAGIC)
    results = json.loads((run_dir / "sweep.json").read_text())["results"]
    assert [tuple(r["hyperparameters"].values()) for r in results] == [
        (4, 0.0), (4, 1e-3), (9, 0.0), (9, 1e-3)
    ]
    assert all(r["metrics"]["val_reconstruction"] > 0 for r in results)
    # The weight decay term is zero without decay (a metric, not to be confused with lambda).
    assert results[0]["metrics"]["weight_decay"] == 0.0 < results[1]["metrics"]["weight_decay"]


def test_sweep_needs_two_hyperparameters(cli, patch_file):
    code, _, err = cli("sweep", NAME, "--data", patch_file, "--grid", "hidden_units=4,9")
    assert code == 2 and "exactly two" in err


@pytest.mark.parametrize(
    "datasets, message",
    [
        ({"patches": np.zeros((8, 3, 16, 16), np.float32)}, "no dataset 'data'"),
        ({"data": np.full((8, 3, 16, 16), np.nan, np.float32)}, "NaN/inf"),
        ({"data": np.zeros((8, 16, 16), np.float32)}, r"shape \(N, 3, 16, 16\)"),
        ({"data": np.zeros((8, 3, 16, 16), np.int32)}, "floating point"),
    ],
)
def test_bad_patch_file_is_refused_before_anything_is_written(cli, tmp_path, datasets, message):
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as handle:
        for key, value in datasets.items():
            handle[key] = value
    code, _, err = cli("train", NAME, "--data", path, "--epochs", 1)
    assert code == 1
    assert re.search(message, err) and "bad.h5" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.h5"]


LIGHT_COMMANDS = textwrap.dedent(
    """
    import contextlib, io, sys
    from zoo.cli import main
    for argv in (["list"], ["list", "--family", "recurrent"], ["describe", "lstm"],
                 ["describe", "cifar_airbench", "--json"], ["--help"], ["train", "--help"],
                 ["tune", "--help"], ["--version"]):
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(argv) == 0, argv
        heavy = sorted(m for m in ("tensorflow", "keras", "keras_tuner", "matplotlib")
                       if m in sys.modules)
        assert not heavy, (argv, heavy)
    print("light")
    """
)


def test_list_describe_and_help_import_no_tensorflow(tmp_path, subprocess_env):
    result = subprocess.run([sys.executable, "-c", LIGHT_COMMANDS], cwd=tmp_path,
                            env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout == "light\n", result.stderr[-3000:]


def test_errors_raised_with_tensorflow_are_one_line_user_errors():
    from zoo import cli, summaries, training, tuning

    for error in (training.NonFiniteLossError, tuning.TuningError, summaries.TensorBoardMissing):
        assert issubclass(error, cli.USER_ERRORS), error
    assert issubclass(tuning.TuningError, cli.USAGE_ERRORS)
    assert not issubclass(training.NonFiniteLossError, cli.USAGE_ERRORS)
    assert issubclass(tuning.TuningError, ValueError)
    assert issubclass(training.NonFiniteLossError, FloatingPointError)


FAILED_IMPORT = textwrap.dedent(
    """
    import os, sys
    from zoo.workflow.console import start_tensorflow

    class NoTensorFlow:
        def find_spec(self, name, path=None, target=None):
            if name == "keras" or name.split(".")[0] == "tensorflow":
                raise ImportError("no tensorflow here")

    sys.meta_path.insert(0, NoTensorFlow())
    try:
        start_tensorflow()
    except ImportError as error:
        print(f"reported: {error}", file=sys.stderr, flush=True)
    os.write(2, b"fd 2 is back\\n")
    """
)


def test_a_failed_tensorflow_import_is_reported_on_a_restored_stderr(tmp_path, subprocess_env):
    result = subprocess.run([sys.executable, "-c", FAILED_IMPORT], cwd=tmp_path,
                            env=subprocess_env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr.splitlines() == ["reported: no tensorflow here", "fd 2 is back"]


def test_list_pretrained_shows_each_sets_metric_split_and_size(cli):
    """`zoo list --pretrained`: one line a set, its headline metric with the split the card
    says it was measured on (every shipped card says), and its size."""
    from zoo import weights

    code, out, err = cli("list", "--pretrained")
    assert code == 0, err
    lines = out.splitlines()
    shipped = weights.shipped()
    assert shipped and {name for name, _, _ in shipped} <= {line.split()[0] for line in lines}
    for name, tag, _ in shipped:
        card = weights.card(name, tag)
        assert card["data"]["measured_on"] in ("the test split", "the validation split") or (
            card["data"]["measured_on"].startswith("leave-one-subject-out cross-validation")
            and "cross_validation" in card), name
        metric = zoo.get_entry(name).task.metric.name.removeprefix("val_")
        size = f"{card['size_bytes'] / 2**20:.1f} MiB"
        line = next(line for line in lines if line.split()[:2] == [name, tag])
        assert f"{size}  {metric} {card['metrics'][metric]:.3f} on {card['data']['measured_on']}" \
            in line, line
        if zoo.get_entry(name).task.class_names is not None:  # what a class index means
            assert len(card["class_names"]) == card.get("recipe", {}).get(
                "hyperparameters", {}).get("num_classes", 10), name
    # A twin loading another entry's set says whose it is.
    assert any(line.split()[:3] == ["keras_lstm", "usc_had", "(lstm's)"] for line in lines)
    code, out, _ = cli("list", "--pretrained", "--family", "autoencoder")
    assert code == 0 and [line.split()[:2] for line in out.splitlines()] == [[NAME, "photos"]]


# --- Ctrl-C and SIGTERM: an orderly stop, one line, a run that resumes --------------------------


def test_sigterm_inside_the_block_is_a_keyboard_interrupt_and_the_handlers_come_back():
    import signal

    from zoo.workflow.console import Interrupts

    before = {number: signal.getsignal(number) for number in Interrupts.SIGNALS}
    interrupts = Interrupts()
    with pytest.raises(KeyboardInterrupt):
        with interrupts:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # Python runs the handler between bytecodes
                pass
    assert interrupts.signal == signal.SIGTERM and interrupts.exit_status == 143
    assert {number: signal.getsignal(number) for number in Interrupts.SIGNALS} == before
    assert Interrupts().exit_status == 130  # an interrupt with no signal counts as Ctrl-C


@pytest.mark.parametrize("raised, line", [
    (KeyboardInterrupt(), "zoo: interrupted"),
    (Interrupted("the run in R resumes with the same command"),
     "zoo: interrupted; the run in R resumes with the same command"),
])
def test_an_interrupted_command_ends_with_one_line_and_status_130(raised, line, cli,
                                                                  monkeypatch):
    def interrupted(*args, **kwargs):
        raise raised

    monkeypatch.setattr(zoo, "evaluate", interrupted)
    code, out, err = cli("evaluate", NAME)
    assert (code, err) == (130, line + "\n")


def as_from_a_terminal():
    """Gives the child SIGINT as a terminal does: a suite started in the background (nohup,
    some CI runners) passes SIGINT on ignored or blocked, and zoo rightly leaves an ignored
    SIGINT ignored; a blocked one never arrives (the CI run where the train ran to its end)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def interrupt_a_training(signal_number, command, cwd, env):
    """Starts `zoo COMMAND`, sends `signal_number` once its first epoch is checkpointed and
    returns (exit status, stderr, seconds from the signal to the exit)."""
    import time

    import signal

    run_dir = cwd / "runs" / "lstm"
    process = subprocess.Popen([sys.executable, "-m", "zoo", *map(str, command)], cwd=cwd,
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True, preexec_fn=as_from_a_terminal)
    try:
        deadline = time.monotonic() + 180
        while not list((run_dir / ".zoo-checkpoints").glob("epoch-*.weights.h5")):
            assert process.poll() is None, process.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint within 180 s"
            time.sleep(0.05)
        process.send_signal(signal_number)
        signalled = time.monotonic()
        _, err = process.communicate(timeout=60)
        return process.returncode, err, time.monotonic() - signalled
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


@pytest.mark.parametrize("name, status", [("SIGINT", 130), ("SIGTERM", 143)])
def test_a_signalled_train_stops_at_once_in_one_line_and_resumes(name, status, tmp_path,
                                                                 subprocess_env):
    import signal

    from zoo.recurrent import data as har
    from zoo.runs import RunDirectory

    data = har.example(tmp_path / "data", seed=0)
    command = ("train", "lstm", "--preset", "tiny", "--data", data, "--epochs", 8)
    code, err, seconds = interrupt_a_training(getattr(signal, name), command, tmp_path,
                                              subprocess_env)
    assert (code, err) == (status, "zoo: interrupted; the run in runs/lstm resumes with the "
                                   "same command\n")
    assert seconds < 20
    run = RunDirectory(tmp_path / "runs" / "lstm")
    assert run.status() == "training" and not run.model_path.exists()
    epochs_before = len(run.history_path.read_text().splitlines()) - 1
    assert 1 <= epochs_before < 8

    rerun = zoo_command(*command, cwd=tmp_path, env=subprocess_env)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Traceback" not in rerun.stderr
    assert run.status() == "finished" and run.record()["epochs_trained"] == 8
    assert run.model_path.is_file() and not run.checkpoint_dir.exists()
