"""Shared fixtures: tiny seeded patch data, the CLI run in-process, and an environment for
`python` subprocesses."""

import os
from pathlib import Path

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture
def patches():
    """64 seeded random `(64, 256)` float32 patches in [0.1, 0.9], the autoencoder's range."""
    return np.random.default_rng(0).uniform(0.1, 0.9, (64, 256)).astype(np.float32)


@pytest.fixture
def patch_file(tmp_path):
    """A tiny course-style HDF5 patch file: dataset 'data', (256, 3, 16, 16) float RGB."""
    import h5py

    path = tmp_path / "patches.h5"
    with h5py.File(path, "w") as handle:
        handle["data"] = np.random.default_rng(0).random((256, 3, 16, 16)).astype(np.float32)
    return path


@pytest.fixture(scope="session")
def subprocess_env():
    """The current environment with TensorFlow's C++ logging quiet, Python unbuffered, and this
    checkout first on `PYTHONPATH`, so that `python -m zoo` runs the zoo under test (a git
    worktree's, not another checkout's installed one)."""
    root = str(Path(__file__).resolve().parents[1])  # this checkout's zoo, also in a worktree
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": path}


@pytest.fixture
def cli(tmp_path, monkeypatch, capsys):
    """Runs `zoo ARGS` in this process, in an empty directory: (exit code, stdout, stderr)."""
    from zoo.cli import main

    monkeypatch.chdir(tmp_path)

    def run(*args):
        code = main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


# The inner loop (`pytest -m "not slow"`) leaves out whatever starts Python processes or runs
# searches, exports to every format, distributed jobs and every-entry sweeps; CI runs it all.
SLOW_FIXTURES = {"subprocess_env", "subprocess_env_module", "search_run", "exports"}
SLOW_MODULES = {"test_contract.py", "test_distributed.py", "test_export_formats.py",
                "test_tuning_distributed.py", "test_tuning_strategy.py"}


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())) or item.path.name in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


class KilledAfterCheckpoint(Exception):
    """Stands for the training process dying right after an epoch's checkpoint."""


@pytest.fixture
def killed_after_first_checkpoint(monkeypatch):
    """A context manager: training inside it stops, as if killed, right after epoch 1's
    checkpoint is written; afterwards checkpoints behave as usual, so the run resumes."""
    import contextlib

    from zoo.training import EpochCheckpoint

    save = EpochCheckpoint.on_epoch_end

    def killed(self, epoch, logs=None):
        save(self, epoch, logs)
        raise KilledAfterCheckpoint()

    @contextlib.contextmanager
    def context():
        monkeypatch.setattr(EpochCheckpoint, "on_epoch_end", killed)
        try:
            with pytest.raises(KilledAfterCheckpoint):
                yield
        finally:
            monkeypatch.setattr(EpochCheckpoint, "on_epoch_end", save)

    return context


def pytest_terminal_summary(terminalreporter):
    """The tally of tests/test_hostile_trial.py's table, when its cases ran: one line."""
    reports = [report for reports in terminalreporter.stats.values() for report in reports
               if getattr(report, "when", None) == "call"
               and "hostile" in dict(getattr(report, "user_properties", ()))]
    if not reports:
        return
    cases = [dict(report.user_properties)["hostile"] for report in reports]
    terminalreporter.write_line(
        f"hostile trial: {len(cases)} cases, {sum(r.passed for r in reports)} passed; "
        f"{sum(c['refused'] for c in cases)} refused in one line, "
        f"{sum(c['completed'] for c in cases)} completed; "
        f"tracebacks {sum(c['traceback'] for c in cases)}, "
        f"files lost {sum(c['lost'] for c in cases)}, hangs {sum(c['hung'] for c in cases)}")
