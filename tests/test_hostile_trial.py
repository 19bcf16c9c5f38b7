"""Issue 26's hostile trial as one table: every case a new user can bring to the command line,
run through `zoo` (in this process, under a watchdog) with the same four checks:

- a mistake ends with a non-zero exit and one `zoo: error:` line (`zoo predict` also prints
  one line per refused input above it), and a case that should work exits 0;
- no traceback;
- every file zoo did not write is byte-identical afterwards (the case's folder and the shared
  inputs), and nothing a malicious input asks for happens;
- nothing hangs: a case that runs past `WATCHDOG_SECONDS` fails as a hang.

`pytest` prints the table's tally at the end of a run that includes it (see conftest.py's
`pytest_terminal_summary`), e.g. "hostile trial: 50 cases, 50 passed; 44 refused in one line,
6 completed; tracebacks 0, files lost 0, hangs 0" (bench/RESULTS.md quotes one run).

The trial's cases that need another process or a real fault keep their own tests: SIGINT and
SIGTERM (test_cli), a multi-worker job without its peer (test_peers: TensorFlow's collective
runtime cannot be left in a test process), a full disk (test_write_failures), kills at every
moment (test_runs, test_training), and the Python-only ones (`zoo.get(None)`, test_hostile_values).
"""

import dataclasses
import hashlib
import json
import os
import shutil
import signal
import traceback
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

import zoo
from zoo import peers, runs
from zoo.recurrent import data as har

WATCHDOG_SECONDS = 120
HUGE_SIDE = 10000  # a PNG declaring 10000x10000 pixels: 300 MB decoded, a few kB on disk


@dataclasses.dataclass(frozen=True)
class Case:
    """One trial case.

    Attributes:
        argv: the command line; "{windows}" stands for the shared activity windows,
            "{windows_relative}" for the same file by a path relative to the case's folder.
        says: what the one error line must contain; `None` for a case that should work.
        prepare: makes the case's own files in its folder (the user's, checked after).
        env: environment variables for the case.
        made: for a case that works, how many files each glob (under the case's folder)
            must match afterwards.
    """

    argv: tuple[str, ...]
    says: str | None
    prepare: Callable[[Path, "Inputs"], None] | None = None
    env: dict[str, str] = dataclasses.field(default_factory=dict)
    made: dict[str, int] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Inputs:
    """What every case may read, made once: activity windows and a finished tiny lstm run."""

    folder: Path
    windows: Path
    run: Path


TRAIN_LSTM = ("train", "lstm", "--preset", "tiny", "--data", "{windows}")
SHIPPED_LSTM = ("--weights", "usc_had")


# --- the files a case starts from ----------------------------------------------------------------


def copy_run(folder, inputs, status=runs.FINISHED):
    """The finished run, copied to `folder/run`; `status` "training" makes it an interrupted
    one (what a kill leaves)."""
    shutil.copytree(inputs.run, folder / "run")
    record = json.loads((folder / "run" / "run.json").read_text())
    (folder / "run" / "run.json").write_text(json.dumps({**record, "status": status}))


def foreign_folder(name, file="notes.txt"):
    def prepare(folder, inputs):
        (folder / name).mkdir(parents=True)
        (folder / name / file).write_text("mine\n")
    return prepare


def windows_file(damage):
    """Activity windows whose trX is damaged: "a corrupt chunk" (bytes overwritten in the
    middle of its gzip chunks, as a bad copy does) or "a group" where the dataset belongs."""
    def prepare(folder, inputs):
        rng = np.random.default_rng(0)
        path = folder / "windows.h5"
        with h5py.File(path, "w") as handle:
            if damage == "a group":
                handle.create_group("trX")
            else:
                handle.create_dataset("trX", data=rng.normal(size=(400, 150, 3)).astype("f4"),
                                      chunks=(10, 150, 3), compression="gzip")
            handle["trY"] = np.eye(6, dtype="f4")[rng.integers(0, 6, 400)]
            handle["tstX"] = rng.normal(size=(10, 150, 3)).astype("f4")
            handle["tstY"] = np.eye(6, dtype="f4")[rng.integers(0, 6, 10)]
        if damage == "a corrupt chunk":
            content = bytearray(path.read_bytes())
            content[len(content) // 2:len(content) // 2 + 2000] = b"\x55" * 2000
            path.write_bytes(content)
    return prepare


def huge_png(path):
    from PIL import Image

    Image.new("1", (HUGE_SIDE, HUGE_SIDE)).save(path)  # 1-bit and blank: it compresses to kB


def image_tree_with_a_huge_image(folder, inputs):
    from PIL import Image

    for name in ("cat", "dog"):
        (folder / "tree" / name).mkdir(parents=True)
        Image.new("RGB", (32, 32), (90, 20, 40)).save(folder / "tree" / name / "a.png")
    huge_png(folder / "tree" / "dog" / "b.png")


class Planted:
    """An object whose unpickling would create `planted.txt`: an .npz that carries one must
    be refused without running it."""

    def __reduce__(self):
        return Path.write_text, (Path("planted.txt"), "ran\n")


def npz_with_a_pickle(folder, inputs):
    np.savez(folder / "images.npz", x_train=np.array([Planted()], dtype=object),
             y_train=np.zeros(1, "int64"))


def run_with_model(damage):
    """The finished run with its model.keras "cut short" (first 1000 bytes) or replaced by
    one holding "a Lambda layer" (code Keras' safe mode must not run)."""
    def prepare(folder, inputs):
        import keras

        copy_run(folder, inputs)
        model_path = folder / "run" / runs.MODEL_FILE
        if damage == "cut short":
            model_path.write_bytes(model_path.read_bytes()[:1000])
        else:
            entry = keras.Input((150, 3))
            model_path.unlink()
            keras.Model(entry, keras.layers.Lambda(lambda x: x * 2)(entry)).save(model_path)
    return prepare


def interrupted_run_on_other_windows(folder, inputs):
    """A run interrupted on `windows.h5`, whose windows were then replaced at the same path."""
    shutil.copy(inputs.windows, folder / "windows.h5")
    zoo.train("lstm", folder / "windows.h5", preset="tiny", run_dir=folder / "run", epochs=1)
    record = json.loads((folder / "run" / "run.json").read_text())
    (folder / "run" / "run.json").write_text(json.dumps({**record, "status": runs.TRAINING}))
    shutil.copy(har.example(folder / "other", seed=1), folder / "windows.h5")


def export_root_holding(name, kind):
    def prepare(folder, inputs):
        path = folder / "exports" / "lstm" / name
        if kind == "folder":
            path.mkdir(parents=True)
            (path / "notes.txt").write_text("mine\n")
        else:
            path.parent.mkdir(parents=True)
            path.write_text("mine\n")
    return prepare


def same_named_images(folder, inputs):
    from PIL import Image

    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (folder / name).mkdir()
        pixels = rng.integers(0, 256, (64, 64, 3), np.uint8)
        Image.fromarray(pixels).save(folder / name / "photo.png")


def fifo(folder, inputs):
    os.mkfifo(folder / "pipe.h5")  # reading it would wait forever for a writer


def a_lock_held_on(path):
    """Holds zoo's lock on the directory `path` for the case's length, as a second zoo
    process still at work there does."""
    def prepare(folder, inputs):
        directory = folder / path
        runs.claim_directory(directory, "run directory", "")
        lock = runs.locked(directory, "run directory")
        lock.__enter__()
        return lock
    return prepare


# --- the table -----------------------------------------------------------------------------------


CASES = {
    # Numbers out of range and options that do not parse: refused before anything is written.
    "seed past NumPy's range": Case((*TRAIN_LSTM, "--seed", "4294967296"),
                                    "--seed: must be an integer from 0"),
    "negative seed": Case((*TRAIN_LSTM, "--seed", "-1"), "--seed: must be an integer from 0"),
    "absurd epochs": Case((*TRAIN_LSTM, "--epochs", "99999999999999999999"),
                          "--epochs: must be an integer from 1"),
    "loader option not a number": Case((*TRAIN_LSTM, "--load", "validation_fraction=abc"),
                                       "loader option validation_fraction expects a number"),
    "loader option a bool": Case((*TRAIN_LSTM, "--load", "validation_fraction=True"),
                                 "loader option validation_fraction expects a number"),
    "unknown loader option": Case((*TRAIN_LSTM, "--load", "colour=red"),
                                  "loader has no option 'colour'"),
    "loader option out of range": Case((*TRAIN_LSTM, "--load", "validation_fraction=1.5"),
                                       "validation_fraction must be in [0, 1), got 1.5"),
    "a negative count of patches": Case(("train", "sparse_autoencoder", "--load", "count=-1"),
                                        "count must be a whole number of patches"),
    "whiten=maybe": Case(("train", "sparse_autoencoder", "--load", "whiten=maybe"),
                         "loader option whiten expects true or false"),
    "a boolean hyperparameter given maybe": Case((*TRAIN_LSTM[:2], "--set", "bidirectional=maybe"),
                                                 "bidirectional expects true or false"),
    "a bad dtype policy": Case((*TRAIN_LSTM, "--dtype-policy", "float8"),
                               "dtype_policy must be one of"),
    "weights '' for train": Case(("train", "lstm", "--weights", ""),
                                 "weights must be a weight set's tag of lstm"),
    "weights '' for evaluate": Case(("evaluate", "lstm", "--weights", ""),
                                    "weights must be a weight set's tag of lstm"),
    "weights '' for export": Case(("export", "lstm", "--weights", ""),
                                  "weights must be a weight set's tag of lstm"),
    "weights '' for predict": Case(("predict", "lstm", "--weights", "", "{windows}"),
                                   "weights must be a weight set's tag of lstm"),
    "a malformed TF_CONFIG": Case((*TRAIN_LSTM, "--strategy", "multi_worker"),
                                  "TF_CONFIG is not a cluster description",
                                  env={"TF_CONFIG": "{not json"}),
    # Every output path under a regular file ("not a directory") or on a folder of the user's.
    "run directory under a file": Case((*TRAIN_LSTM, "--run-dir", "mine.txt/run"), "mine.txt"),
    "run directory on a folder of the user's": Case((*TRAIN_LSTM, "--run-dir", "folder"),
                                                    "folder"),
    "train --overwrite on a folder of the user's": Case(
        (*TRAIN_LSTM, "--run-dir", "folder", "--overwrite"), "folder"),
    "train --tensorboard under a file": Case(
        (*TRAIN_LSTM, "--run-dir", "run", "--tensorboard", "mine.txt/logs"), "mine.txt"),
    "train --tensorboard on a folder of the user's": Case(
        (*TRAIN_LSTM, "--run-dir", "run", "--tensorboard", "folder"), "folder"),
    "evaluate --out under a file": Case(
        ("evaluate", "lstm", *SHIPPED_LSTM, "--data", "{windows}", "--out", "mine.txt/ev"),
        "mine.txt"),
    "evaluate --out on a folder of the user's": Case(
        ("evaluate", "lstm", *SHIPPED_LSTM, "--data", "{windows}", "--out", "folder"), "folder"),
    "export --root under a file": Case(
        ("export", "lstm", *SHIPPED_LSTM, "--root", "mine.txt/exports"), "mine.txt"),
    "predict --output under a file": Case(
        ("predict", "lstm", *SHIPPED_LSTM, "{windows}", "--output", "mine.txt/p.csv"), "mine.txt"),
    "predict --output on a folder": Case(
        ("predict", "lstm", *SHIPPED_LSTM, "{windows}", "--output", "folder"), "folder"),
    "predict --output on the working folder": Case(  # the trial's `--output ..` deleted files
        ("predict", "lstm", *SHIPPED_LSTM, "{windows}", "--output", "."), "."),
    "tune --directory under a file": Case(
        ("tune", "lstm", "--preset", "tiny", "--data", "{windows}", "--max-trials", "1",
         "--directory", "mine.txt/search"), "mine.txt"),
    "tune into a search folder of the user's": Case(
        ("tune", "lstm", "--preset", "tiny", "--data", "{windows}", "--max-trials", "1",
         "--directory", "search"), "is not empty and is not a zoo search directory",
        prepare=foreign_folder("search/lstm", "trials.csv")),
    "tune --overwrite on a search folder of the user's": Case(
        ("tune", "lstm", "--preset", "tiny", "--data", "{windows}", "--max-trials", "1",
         "--directory", "search", "--overwrite"), "is not empty and is not a zoo search directory",
        prepare=foreign_folder("search/lstm", "trials.csv")),
    # Two processes at once: the second is refused at once, not mixed in.
    "a second train on a run in use": Case((*TRAIN_LSTM, "--run-dir", "run"),
                                           "is in use by another zoo process",
                                           prepare=a_lock_held_on("run")),
    # Damaged, foreign or malicious inputs: refused by name, nothing run, nothing decoded.
    "HDF5 windows with a corrupt chunk": Case(
        ("train", "lstm", "--preset", "tiny", "--data", "windows.h5"), "trX",
        prepare=windows_file("a corrupt chunk")),
    "HDF5 windows with a group for trX": Case(
        ("train", "lstm", "--preset", "tiny", "--data", "windows.h5"), "trX",
        prepare=windows_file("a group")),
    "predict HDF5 windows with a corrupt chunk": Case(
        ("predict", "lstm", *SHIPPED_LSTM, "windows.h5", "--key", "trX"), "1 of 1 inputs refused",
        prepare=windows_file("a corrupt chunk")),
    "predict /dev/zero": Case(("predict", "lstm", *SHIPPED_LSTM, "/dev/zero"),
                              "1 of 1 inputs refused"),
    "predict a FIFO": Case(("predict", "lstm", *SHIPPED_LSTM, "pipe.h5"), "1 of 1 inputs refused",
                           prepare=fifo),
    "predict a 10000x10000 PNG": Case(
        ("predict", "cifar_small", "--weights", "cifar10", "huge.png"), "1 of 1 inputs refused",
        prepare=lambda folder, inputs: huge_png(folder / "huge.png")),
    "train on a folder holding a 10000x10000 PNG": Case(
        ("train", "two_layer_fc", "--data", "tree"), f"declares {HUGE_SIDE}x{HUGE_SIDE} pixels",
        prepare=image_tree_with_a_huge_image),
    "train on an .npz that carries a pickle": Case(
        ("train", "two_layer_fc", "--data", "images.npz"), "images.npz",
        prepare=npz_with_a_pickle),
    "evaluate a run whose model.keras was cut short": Case(
        ("evaluate", "lstm", "--run-dir", "run", "--data", "{windows}"),
        "is not a complete Keras model file", prepare=run_with_model("cut short")),
    "evaluate --weights a .keras cut short": Case(
        ("evaluate", "lstm", "--weights", "run/model.keras", "--data", "{windows}"),
        "is not a complete Keras model file", prepare=run_with_model("cut short")),
    "evaluate a run whose model.keras holds a Lambda layer": Case(
        ("evaluate", "lstm", "--run-dir", "run", "--data", "{windows}"), "cannot load",
        prepare=run_with_model("a Lambda layer")),
    # A resume never mixes: other data at the same path, other settings.
    "resume on other windows at the same path": Case(
        ("train", "lstm", "--preset", "tiny", "--data", "windows.h5", "--run-dir", "run"),
        "(data.fingerprint: recorded", prepare=interrupted_run_on_other_windows),
    "resume with other settings": Case(
        (*TRAIN_LSTM, "--run-dir", "run", "--set", "units=64"), "units",
        prepare=lambda folder, inputs: copy_run(folder, inputs, status=runs.TRAINING)),
    # Peers that never answer: one line at the deadline.
    "a tuning worker whose chief never answers": Case(
        ("tune", "lstm", "--preset", "tiny", "--data", "{windows}", "--distributed",
         "--directory", "search"), "the search's chief: no answer from 127.0.0.1:9",
        env={"KERASTUNER_TUNER_ID": "worker0", "KERASTUNER_ORACLE_IP": "127.0.0.1",
             "KERASTUNER_ORACLE_PORT": "9", peers.TIMEOUT_VARIABLE: "2"}),
    # What the trial found broken where the command should work: it does, and keeps the
    # user's files.
    "export beside a file named 1 in the export root": Case(
        ("export", "lstm", *SHIPPED_LSTM, "--root", "exports"), None,
        prepare=export_root_holding("1", "file"), made={"exports/lstm/2/saved_model.pb": 1}),
    "export beside a .tmp- folder of the user's": Case(
        ("export", "lstm", *SHIPPED_LSTM, "--root", "exports"), None,
        prepare=export_root_holding(".tmp-mine", "folder"),
        made={"exports/lstm/1/saved_model.pb": 1}),
    "predict two same-named autoencoder inputs": Case(
        ("predict", "sparse_autoencoder", "--weights", "photos", "a/photo.png", "b/photo.png",
         "--out", "codes"), None, prepare=same_named_images, made={"codes/*.code.npy": 2}),
    "resume with the same windows by a relative path": Case(
        (*TRAIN_LSTM[:-1], "{windows_relative}", "--run-dir", "run"), None,
        prepare=lambda folder, inputs: copy_run(folder, inputs, runs.TRAINING),
        made={"run/model.keras": 1}),
}


# --- running a case ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile") / "inputs"
    windows = har.example(folder, seed=0)
    shutil.move(windows, folder / "windows.h5")
    zoo.train("lstm", folder / "windows.h5", preset="tiny", run_dir=folder / "run", epochs=1)
    return Inputs(folder, folder / "windows.h5", folder / "run")


def users_files(case_folder, inputs):
    """Every file's digest but those of the case's run directory, which zoo wrote."""
    paths = [*case_folder.rglob("*"), *inputs.folder.rglob("*")]
    return {str(path): hashlib.sha256(path.read_bytes()).hexdigest() for path in sorted(paths)
            if path.is_file() and (case_folder / "run") not in path.parents}


class Hung(BaseException):
    """The watchdog's: a case ran past WATCHDOG_SECONDS."""


def watchdog(number, frame):
    raise Hung


@pytest.mark.parametrize("name", list(CASES))
def test_a_hostile_case(name, inputs, cli, tmp_path, monkeypatch, record_property):
    case = CASES[name]
    folder = tmp_path / "case"
    folder.mkdir()
    monkeypatch.chdir(folder)
    (folder / "mine.txt").write_text("my notes\n")
    (folder / "folder").mkdir()
    (folder / "folder" / "metrics.json").write_text('{"mine": true}\n')
    held = case.prepare(folder, inputs) if case.prepare else None
    for key, value in case.env.items():
        monkeypatch.setenv(key, value)
    before = users_files(folder, inputs)
    windows = {"{windows}": str(inputs.windows),
               "{windows_relative}": os.path.relpath(inputs.windows, folder)}
    argv = [windows.get(arg, arg) for arg in case.argv]

    previous = signal.signal(signal.SIGALRM, watchdog)
    signal.alarm(WATCHDOG_SECONDS)
    hung = False
    try:
        code, out, err = cli(*argv)
    except Hung:
        code, out, err, hung = None, "", "", True
    except Exception:  # what `zoo` would have printed as a traceback
        code, out, err = 1, "", traceback.format_exc()
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        if held is not None:
            held.__exit__(None, None, None)

    after = users_files(folder, inputs)
    lost = sorted(path for path, digest in before.items() if after.get(path) != digest)
    error_lines = [line for line in err.splitlines() if line.startswith("zoo: error: ")]
    refused = (case.says is not None and code not in (0, None) and len(error_lines) == 1
               and err.splitlines()[-1] == error_lines[0] and case.says in error_lines[0])
    tracebacks = "Traceback" in out + err
    record_property("hostile", {"refused": refused, "completed": case.says is None and code == 0,
                                "traceback": tracebacks, "lost": len(lost), "hung": hung})

    assert not hung, f"no answer within {WATCHDOG_SECONDS} s"
    assert not tracebacks, err[-3000:]
    assert lost == [], lost
    assert not (folder / "planted.txt").exists(), "a pickle in the input ran"
    if case.says is None:
        assert code == 0, err[-3000:]
        assert {glob: len(list(folder.glob(glob))) for glob in case.made} == case.made
    else:
        assert refused, (code, err)
        if argv[0] != "predict":  # predict names each refused input on a line of its own
            assert err.count("\n") == 1, err
