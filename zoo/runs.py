"""The run directory: the one place that knows its files, its record and who may write to it.

A run directory (`zoo train`'s `--run-dir`, default `runs/NAME`; each tuning trial; a search's
`best/`) holds:

    .zoo-run            owner marker, written first: zoo touches only folders that carry it
    .zoo-lock           an OS lock (flock) held by the one process writing the run, with its PID
    run.json            the run record: entry, preset, hyperparameters, seed, fit settings, data,
                        status ("training" or "finished"), and when finished the metrics
    history.csv         one row per epoch
    .zoo-checkpoints/   the last epoch's weights and optimizer state, removed last
    model.keras         the trained model
    curves.png, ...     the learning curves and the family's figures (listed in the record)
    evaluation/         `zoo evaluate`'s metrics and figures

Writing is ordered so that a kill at any instant leaves a run that is either finished or
resumable: the record (status "training") before the first epoch, the model, history and
figures when training ends, then the record (status "finished"), and the checkpoints last. A
rerun of an interrupted finish completes it; a rerun of a finished run is refused unless told to
overwrite, and a resumed run must have the settings its record holds (an overwrite builds the
new run beside the old one: `zoo.workflow.replacing`). Nothing here imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import shutil
import signal
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from zoo.errors import UserError
from zoo.files import atomic_path, remove_temporaries

logger = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_DIR",
    "HISTORY_FILE",
    "MODEL_FILE",
    "RECORD_FILE",
    "RESUME_KEYS",
    "RunDirectory",
    "RunError",
    "claim_directory",
    "draw_figures",
    "kill_point",
    "locked",
]

MARKER_FILE = ".zoo-run"
LOCK_FILE = ".zoo-lock"
RECORD_FILE = "run.json"
HISTORY_FILE = "history.csv"
MODEL_FILE = "model.keras"
CHECKPOINT_DIR = ".zoo-checkpoints"
CURVES_FILE = "curves.png"
EVALUATION_DIR = "evaluation"  # `zoo evaluate`'s metrics and figures

# What a resumed run must share with the run it resumes.
RESUME_KEYS = ("name", "preset", "hyperparameters", "seed", "fit", "data")

TRAINING, FINISHED = "training", "finished"  # a record's status
NEW, RESUMED = "new", "resumed"  # what `start` found, besides FINISHED

# Set to the name of a `kill_point` to make the process kill itself there (tests of crash safety).
KILL_POINT_VARIABLE = "ZOO_KILL_AT"


class RunError(UserError, RuntimeError):
    """A run directory that cannot be used as asked: not zoo's, in use, finished, or holding
    another run."""


def _comparable(value: Any) -> Any:
    """`value` as its JSON round trip, so that a fresh record compares equal to a stored one."""
    return json.loads(json.dumps(value, default=str))


def _difference(key: str, recorded: Any, now: Any) -> str:
    """One setting that differs, as `key: recorded X, now Y`; for two mappings, only the
    entries that differ (`data.fingerprint: ...`), not both whole."""
    if isinstance(recorded, dict) and isinstance(now, dict):
        keys = sorted(k for k in {*recorded, *now} if recorded.get(k) != now.get(k))
        return "; ".join(_difference(f"{key}.{k}", recorded.get(k), now.get(k)) for k in keys)
    return f"{key}: recorded {json.dumps(recorded)}, now {json.dumps(now)}"


@contextlib.contextmanager
def locked(directory: str | Path, what: str) -> Iterator[None]:
    """Holds an exclusive OS lock on `directory` (created if missing) for one process.

    The lock (`fcntl.flock` on `directory/.zoo-lock`) is released when the block ends or the
    process dies, however it dies. A second process is refused at once with the holder's PID.

    Args:
        directory: the folder to lock.
        what: what the folder is, for the message ("run directory", "export root").

    Raises:
        RunError: another process holds the lock.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    handle = open(directory / LOCK_FILE, "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise RunError(
                f"the {what} {directory} is in use by another zoo process (PID {holder}); "
                "wait for it to finish, or use another directory"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock


def claim_directory(path: str | Path, what: str, hint: str) -> None:
    """Makes `path` a folder zoo owns (its `.zoo-run` marker written first), or checks that it
    is one: zoo writes and removes files only in folders that carry the marker.

    Args:
        path: the folder (created if missing).
        what: what it is, for the message ("run directory", "search directory").
        hint: what to do instead, for the message ("choose another --run-dir").

    Raises:
        RunError: `path` is a file, or exists, is not empty and has no marker.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunError(f"{path} is a file, not a {what}")
    if (path / MARKER_FILE).is_file():
        return
    foreign = sorted(p.name for p in path.glob("*") if p.name != LOCK_FILE)
    if foreign:
        shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
        raise RunError(
            f"{path} is not empty and is not a zoo {what} (it holds {shown}); zoo writes only "
            f"into an empty or new folder: {hint}"
        )
    path.mkdir(parents=True, exist_ok=True)
    with atomic_path(path / MARKER_FILE) as temporary:
        temporary.write_text(f"zoo {what}: zoo writes and removes only its own files here\n")


class RunDirectory:
    """One run's folder: its paths, its owner marker and its record.

    Args:
        path: the folder.

    Example:

    >>> run = RunDirectory("runs/lstm")
    >>> run.claim()
    >>> settings = {"name": "lstm", "seed": 0}
    >>> with run.lock():
    ...     run.start(settings)
    ...     # ... training writes the model, history and figures here ...
    ...     run.finish(settings, {"val_accuracy": [0.71, 0.84]})
    'new'
    >>> run.status(), run.record()["metrics"]["val_accuracy"]
    ('finished', 0.84)
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.marker = self.path / MARKER_FILE
        self.record_path = self.path / RECORD_FILE
        self.history_path = self.path / HISTORY_FILE
        self.model_path = self.path / MODEL_FILE
        self.checkpoint_dir = self.path / CHECKPOINT_DIR
        self.curves_path = self.path / CURVES_FILE

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r})"

    # --- ownership and state ----------------------------------------------------------------

    def is_owned(self) -> bool:
        return self.marker.is_file()

    def claim(self) -> None:
        """Makes the folder a zoo run directory, or checks that it is one (`claim_directory`).

        Raises:
            RunError: the folder is a file, or exists, is not empty and is not zoo's.
        """
        claim_directory(self.path, "run directory", "choose another --run-dir")

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """The run's exclusive lock (see `locked`). Holding it, in a folder zoo owns, the
        temporaries of writes killed before their rename are removed from the run's folder
        and its checkpoints' (`zoo.files.remove_temporaries`): no other process writes there."""
        with locked(self.path, "run directory"):
            if self.is_owned():
                for folder in (self.path, self.checkpoint_dir):
                    for name in remove_temporaries(folder):
                        logger.info("removed %s, left in %s by a killed write", name, folder)
            yield

    def record(self) -> dict[str, Any] | None:
        """The run record, or `None` when there is none.

        Raises:
            RunError: the record is not valid JSON (it is written atomically, so only a hand
                edit makes it so).
        """
        if not self.record_path.is_file():
            return None
        try:
            return json.loads(self.record_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise RunError(f"{self.record_path} is not a zoo run record ({error})") from None

    def status(self) -> str | None:
        """`FINISHED`, `TRAINING` (started, perhaps interrupted), or `None` (nothing yet)."""
        record = self.record()
        return None if record is None else record.get("status")

    def write_record(self, record: Mapping[str, Any]) -> None:
        with atomic_path(self.record_path) as temporary:
            temporary.write_text(json.dumps(record, indent=2, default=str) + "\n")

    # --- a run's life ------------------------------------------------------------------------

    def start(self, settings: Mapping[str, Any], *, overwrite: bool = False) -> str:
        """Records `settings` before training, or checks them against the run already here.
        Call it holding `lock()`, after `claim()`.

        Args:
            settings: the run's `RESUME_KEYS` (entry name, preset, hyperparameters, seed, fit
                settings, data) and anything else worth recording.
            overwrite: start afresh over whatever run is here (only zoo's own files are
                removed).

        Returns:
            `NEW` (nothing to resume: the record is written), `RESUMED` (an unfinished run with
            the same settings) or `FINISHED` (a finished run with the same settings).

        Raises:
            RunError: the folder holds a run with other settings, named key by key.
        """
        state = self.check(settings, overwrite=overwrite)
        if state == NEW:
            self.clear()
            self.write_record({**settings, "status": TRAINING})
        elif state == FINISHED:
            self.remove_checkpoints()  # a finish cut short after its record was written
        return state

    def check(self, settings: Mapping[str, Any], *, overwrite: bool = False) -> str:
        """What `start` would find, without writing anything: for a reader that must act as
        the writer does (a multi-worker job's non-chief workers, which read the chief's run
        directory but write none of it).

        Returns:
            `NEW`, `RESUMED` or `FINISHED`, as `start`.

        Raises:
            RunError: the folder holds a run with other settings, named key by key.
        """
        record = self.record()
        if record is None or overwrite:
            return NEW
        differing = [key for key in RESUME_KEYS
                     if _comparable(record.get(key)) != _comparable(settings.get(key))]
        if differing:
            details = "; ".join(_difference(key, _comparable(record.get(key)),
                                            _comparable(settings.get(key))) for key in differing)
            state = "a finished" if record.get("status") == FINISHED else "an unfinished"
            raise RunError(
                f"{self.path} holds {state} run with other settings ({details}); rerun with the "
                "recorded settings, pass --overwrite (overwrite=True) to start afresh, or "
                "choose another --run-dir"
            )
        return FINISHED if record.get("status") == FINISHED else RESUMED

    def finish(
        self,
        settings: Mapping[str, Any],
        history: Mapping[str, list[float]],
        files: Iterable[str | Path] = (),
        epochs_trained: int | None = None,
    ) -> None:
        """Records the run as finished, then removes its checkpoints: the last two steps of a
        run, after the model, history and figures are written.

        Args:
            settings: what `start` recorded.
            history: the run's per-epoch metrics; the last epoch's become the record's metrics.
            files: the figures and reports written into the run directory.
            epochs_trained: default the history's length (a continued run counts more).
        """
        self.write_record({
            **settings,
            "status": FINISHED,
            "epochs_trained": epochs_trained or len(next(iter(history.values()), [])),
            "metrics": {metric: values[-1] for metric, values in history.items()},
            "files": sorted(str(Path(path).relative_to(self.path)) for path in files),
        })
        self.remove_checkpoints()

    def remove_checkpoints(self) -> None:
        shutil.rmtree(self.checkpoint_dir, ignore_errors=True)

    def written_names(self) -> set[str]:
        """The names zoo writes in this folder (fixed ones and the record's files); anything
        else here is someone else's.

        Raises:
            RunError: the record is not valid JSON.
        """
        listed = {Path(name).parts[0] for name in (self.record() or {}).get("files", ())
                  if Path(name).parts}
        return {MARKER_FILE, LOCK_FILE, RECORD_FILE, HISTORY_FILE, MODEL_FILE, CURVES_FILE,
                EVALUATION_DIR, CHECKPOINT_DIR, *listed}

    def clear(self) -> None:
        """Removes the files of an earlier run that zoo wrote (those its record lists, plus the
        fixed names), keeping the marker and anything else in the folder."""
        record = self.record() or {}
        for name in (RECORD_FILE, HISTORY_FILE, MODEL_FILE, CURVES_FILE, *record.get("files", ())):
            path = self.path / name
            if path.parent == self.path and path.is_file():
                path.unlink()
        shutil.rmtree(self.path / EVALUATION_DIR, ignore_errors=True)
        self.remove_checkpoints()

    # --- reading a finished run back ----------------------------------------------------------

    def finished_record(self, name: str | None = None) -> dict[str, Any]:
        """The record of the finished run here, checked to be of entry `name` when given.

        Raises:
            RunError: there is no finished run here, or it is another entry's.
        """
        record = self.record()
        if record is None or record.get("status") != FINISHED or not self.model_path.is_file():
            hint = f"; train it first: zoo train {name} --run-dir {self.path}" if name else ""
            raise RunError(
                f"no finished run in {self.path}/ (looked for {RECORD_FILE} and {MODEL_FILE}){hint}"
            )
        if name is not None and record.get("name") != name:
            raise RunError(
                f"{self.path} holds a run of {record.get('name')!r}, not {name!r}: "
                f"give {record.get('name')} as the model, or the run directory of a {name} run"
            )
        return record

    def load_model(self) -> Any:
        """The trained `model.keras`, loaded in Keras' safe mode (no arbitrary code), with the
        families' Keras classes registered first (`zoo.load_model`).

        Raises:
            RunError: the file cannot be loaded (damaged, or refused by safe mode).
        """
        from zoo.saving import load_model  # Keras: only when a model is loaded

        try:
            return load_model(self.model_path)
        except (ValueError, TypeError, OSError, KeyError) as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise RunError(f"cannot load {self.model_path}: {reason}") from None


def draw_figures(
    task: Any, model: Any, splits: Any, history: Mapping[str, list[float]], directory: str | Path,
    title: str,
) -> list[Path]:
    """A run's figures: the learning curves (`curves.png`), then the task's own figures."""
    from zoo import plots  # matplotlib: only runs that draw need it

    directory = Path(directory)
    return [plots.learning_curves(history, directory / CURVES_FILE, title),
            *task.figures(model, splits, directory)]


def kill_point(name: str) -> None:
    """Kills this process with SIGKILL when `$ZOO_KILL_AT` is `name`: a named instant for tests
    to prove that a kill there loses nothing."""
    if os.environ.get(KILL_POINT_VARIABLE) == name:
        os.kill(os.getpid(), signal.SIGKILL)

