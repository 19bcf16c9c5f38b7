"""A user's mistake ends `zoo` with one `zoo: error:` line, no traceback, and nothing of the
user's changed: range errors, bad loader options, paths that are files where folders belong."""

import hashlib

import pytest

from zoo.recurrent import data as har


def fingerprint(directory):
    return {str(path.relative_to(directory)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(directory.rglob("*")) if path.is_file()}


@pytest.fixture
def har_data(tmp_path):
    return har.example(tmp_path / "data", seed=0)


CASES = {
    "seed past NumPy's range": (["--seed", "4294967296"], "--seed: must be an integer from 0"),
    "negative seed": (["--seed", "-1"], "--seed: must be an integer from 0"),
    "absurd epochs": (["--epochs", "99999999999999999999"], "--epochs: must be an integer from 1"),
    "loader option not a number": (["--load", "validation_fraction=abc"],
                                   "loader option validation_fraction expects a number"),
    "loader option a bool": (["--load", "validation_fraction=True"],
                             "loader option validation_fraction expects a number"),
    "unknown loader option": (["--load", "colour=red"], "loader has no option 'colour'"),
    "run directory under a file": (["--run-dir", "mine.txt/run"], "mine.txt"),
    "a bad dtype policy": (["--dtype-policy", "float8"], "dtype_policy must be one of"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_training_mistakes_end_in_one_line_and_touch_nothing(case, cli, tmp_path, har_data):
    arguments, message = CASES[case]
    (tmp_path / "mine.txt").write_text("my notes\n")
    before = fingerprint(tmp_path)
    code, out, err = cli("train", "lstm", "--preset", "tiny", "--data", har_data, *arguments)
    assert code in (1, 2), (out, err)
    assert err.startswith("zoo: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and message in err, err
    after = fingerprint(tmp_path)
    assert {key: after.get(key) for key in before} == before  # the user's files, unchanged



# Every output path of every command, put under a regular file (the trial's "not a directory"
# OSError cases) or on a folder zoo did not write: one line naming the path, nothing changed.
OUTPUT_CASES = {
    "train --tensorboard under a file": (
        ["train", "lstm", "--preset", "tiny", "--data", "{data}", "--run-dir", "run",
         "--tensorboard", "mine.txt/logs"], "mine.txt"),
    "train --tensorboard on a folder of the user's": (
        ["train", "lstm", "--preset", "tiny", "--data", "{data}", "--run-dir", "run",
         "--tensorboard", "folder"], "folder"),
    "evaluate --out under a file": (
        ["evaluate", "lstm", "--weights", "usc_had", "--data", "{data}", "--out", "mine.txt/ev"],
        "mine.txt"),
    "evaluate --out on a folder of the user's": (
        ["evaluate", "lstm", "--weights", "usc_had", "--data", "{data}", "--out", "folder"],
        "folder"),
    "export --root under a file": (
        ["export", "lstm", "--weights", "usc_had", "--root", "mine.txt/exports"], "mine.txt"),
    "predict --output under a file": (
        ["predict", "lstm", "--weights", "usc_had", "{data}", "--output", "mine.txt/p.csv"],
        "mine.txt"),
    "predict --output on a folder": (
        ["predict", "lstm", "--weights", "usc_had", "{data}", "--output", "folder"], "folder"),
    "predict --output on the working folder": (  # the trial's `--output ..` deleted files
        ["predict", "lstm", "--weights", "usc_had", "{data}", "--output", "."], "."),
    "tune --directory under a file": (
        ["tune", "lstm", "--preset", "tiny", "--data", "{data}", "--max-trials", "1",
         "--directory", "mine.txt/search"], "mine.txt"),
}


@pytest.mark.parametrize("case", sorted(OUTPUT_CASES))
def test_an_output_path_zoo_cannot_own_ends_in_one_line_and_touches_nothing(
        case, cli, tmp_path, har_data):
    arguments, named = OUTPUT_CASES[case]
    (tmp_path / "mine.txt").write_text("my notes\n")
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "metrics.json").write_text('{"mine": true}\n')
    before = fingerprint(tmp_path)
    code, out, err = cli(*[str(har_data) if arg == "{data}" else arg for arg in arguments])
    assert code == 1, (out, err)
    assert err.startswith("zoo: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and named in err, err
    after = fingerprint(tmp_path)
    assert {key: after.get(key) for key in before} == before
