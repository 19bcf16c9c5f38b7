"""Values a user should not give, refused in one line that names the value and what is expected
(issue 26's "Lower" items), from Python; tests/test_hostile_trial.py runs each through the
command line:

- a boolean option given "maybe" (`--set`, `--load`, `zoo.get(..., lookahead="maybe")`);
- a model name that is not a string (`zoo.get(None)`);
- an empty weights argument (`weights=""`, `--weights ""`), which once read the current folder;
- a `.keras` file cut short or damaged, which Keras reports as "File not found".
"""

import os
import re
import zipfile

import pytest

import zoo
from zoo import runs
from zoo.hparams import BOOLEAN_SPELLINGS, HyperparameterError, to_bool
from zoo.registry import UnknownModelError, entries, get_entry
from zoo.saving import ModelFileError
from zoo.weights import WeightsError
from zoo.workflow.fitting import load_options


def assert_one_line(code, err, *needles):
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("zoo: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


# --- booleans: one rule, everywhere ------------------------------------------------------------


@pytest.mark.parametrize("given,expected", [
    (True, True), (False, False), (1, True), (0, False),
    *((text, value) for text, value in BOOLEAN_SPELLINGS.items()),
    ("TRUE", True), (" No ", False), ("Yes", True),
])
def test_the_spellings_of_a_boolean(given, expected):
    assert to_bool("flag", given) is expected


@pytest.mark.parametrize("given", ["maybe", "", "ture", "2", 2, -1, 0.5, 1.0, None, [True]])
def test_anything_else_is_no_boolean(given):
    with pytest.raises(HyperparameterError) as caught:
        to_bool("flag", given)
    message = str(caught.value)
    assert message.startswith("flag expects true or false") and repr(given) in message
    assert "\n" not in message


BOOLEAN_HPARAMS = sorted((entry.name, key) for entry in entries()
                         for key, hp in entry.hparams.items() if hp.type is bool)


def test_some_entry_has_a_boolean_hyperparameter():
    assert BOOLEAN_HPARAMS, "no boolean hyperparameter left: the tests below test nothing"


@pytest.mark.parametrize("name,key", BOOLEAN_HPARAMS)
def test_a_boolean_hyperparameter_refuses_maybe_from_python_and_its_parser(name, key):
    entry = get_entry(name)
    with pytest.raises(HyperparameterError, match=rf"^{key} expects true or false .* got 'maybe'$"):
        zoo.get(name, **{key: "maybe"})  # refused before anything is built
    with pytest.raises(HyperparameterError, match=rf"^{key} expects true or false .* got 'maybe'$"):
        entry.parse_settings([f"{key}=maybe"])
    assert entry.parse_settings([f"{key}=no", f"{key}=YES"]) == {key: True}
    assert entry.resolve(None, **{key: 0})[key] is False


def test_a_boolean_loader_option_refuses_maybe(tmp_path):
    """`whiten` is the autoencoder loader's (`--load`), not a hyperparameter: "maybe" once
    whitened the images, as any non-empty text is true."""
    entry = get_entry("sparse_autoencoder")
    assert entry.load_settings()["whiten"] is True
    assert load_options(entry, None, {"whiten": "no"})["whiten"] is False
    assert load_options(entry, None, {"whiten": 0})["whiten"] is False  # what --load whiten=0 gives
    with pytest.raises(HyperparameterError, match=r"^loader option whiten expects true or false"):
        zoo.train("sparse_autoencoder", run_dir=tmp_path / "run", load={"whiten": "maybe"})
    assert not (tmp_path / "run").exists()


# --- a model name that is not a string ---------------------------------------------------------


@pytest.mark.parametrize("name", [None, 3, ["lstm"], b"lstm"])
@pytest.mark.parametrize("call", [zoo.get, zoo.describe, zoo.weights.available])
def test_a_model_name_that_is_not_a_string(call, name):
    with pytest.raises(UnknownModelError) as caught:
        call(name)
    message = str(caught.value)
    assert repr(name) in message and "zoo.list()" in message and "\n" not in message


# --- an empty weights argument -----------------------------------------------------------------


@pytest.fixture
def run_here(tmp_path, monkeypatch):
    """The current folder made to look like a run directory: an empty weights argument must
    not load it (Path("") is the current folder)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run.json").write_text('{"name": "lstm", "status": "finished"}\n')
    return tmp_path


@pytest.mark.parametrize("weights", ["", "  ", 3, True])
def test_an_empty_or_odd_weights_argument_is_refused(run_here, weights):
    with pytest.raises(WeightsError) as caught:
        zoo.get("lstm", weights=weights)
    message = str(caught.value)
    assert message.startswith("weights must be a weight set's tag of lstm (sets: ")
    assert message.endswith(f"got {weights!r}") and "\n" not in message


# --- a .keras file cut short or damaged --------------------------------------------------------


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "model.keras"
    zoo.get("lstm", preset="tiny").save(path)
    return path.read_bytes()


def damaged(how, whole):
    """The bytes of a `.keras` file damaged in one of the ways a copy or a disk damages one."""
    if how == "first 1000 bytes":
        return whole[:1000]
    if how == "random bytes":
        return os.urandom(len(whole))
    if how == "last 200 bytes lost":
        return whole[:-200]
    if how == "one byte flipped":  # inside model.weights.h5's data: the zip still opens
        flipped = bytearray(whole)
        flipped[len(whole) // 2] ^= 0xFF
        return bytes(flipped)
    raise AssertionError(how)


DAMAGES = ("first 1000 bytes", "random bytes", "last 200 bytes lost", "one byte flipped")
COMPLETE = "is not a complete Keras model file ("


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_keras_file_is_named_from_python(model_bytes, tmp_path, how):
    path = tmp_path / "model.keras"
    path.write_bytes(damaged(how, model_bytes))
    for load in (lambda: zoo.load_model(path),
                 lambda: zoo.get("lstm", preset="tiny", weights=path)):
        with pytest.raises(ModelFileError) as caught:
            load()
        message = str(caught.value)
        assert message.startswith(f"{path} {COMPLETE}") and "save it again" in message
        assert "File not found" not in message and "\n" not in message


def test_a_keras_file_without_its_weights_is_named(model_bytes, tmp_path):
    whole, path = tmp_path / "whole.keras", tmp_path / "model.keras"
    whole.write_bytes(model_bytes)
    with zipfile.ZipFile(whole) as source, zipfile.ZipFile(path, "w") as target:
        target.writestr("config.json", source.read("config.json"))
    with pytest.raises(ModelFileError, match=r"\(it lacks model.weights.h5\)"):
        zoo.load_model(path)
    with pytest.raises(ModelFileError, match=r"\(no such file\)"):
        zoo.load_model(tmp_path / "missing.keras")


def test_a_whole_keras_file_still_loads(model_bytes, tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(model_bytes)
    assert zoo.load_model(path).units == 8
    assert zoo.get("lstm", preset="tiny", weights=path).count_params() > 0


def test_a_keras_file_that_does_not_fit_is_named_not_its_temporary_copy(model_bytes, tmp_path):
    """A `.keras`'s weights are read from a temporary copy: the message names the user's file."""
    path = tmp_path / "model.keras"
    path.write_bytes(model_bytes)
    with pytest.raises(WeightsError) as caught:
        zoo.get("lstm", weights=path)  # the tiny preset's weights into the default lstm
    message = str(caught.value)
    assert message.startswith(f"{path} does not fit lstm: variable ") and "zoo-weights-" not in message


@pytest.fixture
def finished_run_cut_short(model_bytes, tmp_path):
    """A run directory whose record says finished and whose model.keras was cut short (a
    copy of the folder interrupted, say)."""
    run = runs.RunDirectory(tmp_path / "run")
    run.claim()
    run.write_record({"name": "lstm", "preset": "tiny", "status": runs.FINISHED,
                      "hyperparameters": {}})
    run.model_path.write_bytes(damaged("first 1000 bytes", model_bytes))
    return run


def test_a_run_whose_model_was_cut_short(finished_run_cut_short, cli):
    run = finished_run_cut_short
    expected = f"{run.model_path} {COMPLETE}"
    with pytest.raises(ModelFileError, match=re.escape(expected)):
        run.load_model()
    with pytest.raises(ModelFileError, match=re.escape(expected)):
        zoo.get("lstm", weights=run.path)
    code, out, err = cli("evaluate", "lstm", "--run-dir", run.path)
    assert_one_line(code, err, expected)
