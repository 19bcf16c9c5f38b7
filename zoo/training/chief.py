"""Who writes a run directory: the chief/worker protocol of `fit`, in one place.

A process training alone is its own chief. Under `MultiWorkerMirroredStrategy` every worker
calls `fit` with the same arguments and trains in step with the others, but only the chief
(`zoo.strategies.is_chief`) claims `run_dir`, holds its lock, records the run, checkpoints,
logs `history.csv` and finishes the run. Every other worker checks the run's record as the
chief does (`zoo.runs.RunDirectory.check`), writes its own checkpoints and history to a scratch
folder, resumes from the chief's checkpoint (the same one the chief restores; hence `run_dir`
on storage shared by every machine) and ends without writing anything of the run.

`open_run` sets a process up for its part; `finish_run` ends it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from zoo import runs
from zoo.files import atomic_path
from zoo.strategies import is_chief
from zoo.training.callbacks import EpochCheckpoint, read_history, trim_torn_row
from zoo.training.writing import writing

__all__ = ["RunFiles", "finish_run", "open_run"]


@dataclasses.dataclass(frozen=True)
class RunFiles:
    """One process's part in a run: whether it is the chief, and where it keeps its files.

    Attributes:
        run: the run directory.
        settings: the run's settings, as recorded.
        chief: whether this process writes `run`.
        state: what the run directory held: `zoo.runs.NEW`, `RESUMED` or `FINISHED`.
        checkpoint: the callback that checkpoints this process's epochs and restores the
            chief's.
        history_path: the `history.csv` this process logs to.
    """

    run: runs.RunDirectory
    settings: Mapping[str, Any]
    chief: bool
    state: str
    checkpoint: EpochCheckpoint
    history_path: Path


@contextlib.contextmanager
def open_run(
    run: runs.RunDirectory,
    settings: Mapping[str, Any],
    strategy: tf.distribute.Strategy,
    *,
    overwrite: bool = False,
) -> Iterator[RunFiles]:
    """Sets this process up for its part in `run` under `strategy`, for the `with` block: the
    chief claims the run directory, holds its lock and starts (or resumes) the run; another
    worker checks the run and keeps its files in a scratch folder, removed afterwards.

    Args:
        run: the run directory.
        settings: the run's settings; a resumed run must match them.
        strategy: the model's strategy (`model.distribute_strategy`).
        overwrite: start afresh over an earlier run (zoo's own files only).

    Returns:
        A context manager that gives the process's `RunFiles`.

    Raises:
        zoo.runs.RunError: `run` is not zoo's, is in use by another process, or holds a run
            with other settings (and `overwrite` is false).
    """
    chief = is_chief(strategy)
    with contextlib.ExitStack() as stack:
        if chief:
            run.claim()
            stack.enter_context(run.lock())
            state = run.start(settings, overwrite=overwrite)
            checkpoint = EpochCheckpoint(run.checkpoint_dir)
            history_path = run.history_path
            trim_torn_row(history_path)  # a kill mid-append; its epoch is trained again
        else:
            # A non-chief worker of a multi-worker job trains in step with the chief but writes
            # nothing of the run: its files go to a scratch folder, and it resumes from the
            # chief's checkpoint (the same one the chief restores; hence --run-dir on shared
            # storage across machines). It takes no lock: the chief holds it.
            state = run.check(settings, overwrite=overwrite)
            scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="zoo-worker-")))
            checkpoint = EpochCheckpoint(scratch / runs.CHECKPOINT_DIR, restore_from=(
                run.checkpoint_dir if state == runs.RESUMED else None))
            history_path = scratch / runs.HISTORY_FILE
            if state == runs.RESUMED and run.history_path.is_file():
                shutil.copyfile(run.history_path, history_path)
        yield RunFiles(run, settings, chief, state, checkpoint, history_path)


def finish_run(
    files: RunFiles,
    model: keras.Model,
    figures: Callable[[keras.Model, dict[str, list[float]]], Sequence[Path]] | None = None,
) -> dict[str, list[float]]:
    """Ends this process's part in a trained run: another worker only reads its own history
    back; the chief writes `model.keras`, draws the `figures` and records the run as finished.

    Args:
        files: the process's part, from `open_run` (still open: the chief holds the lock).
        model: the trained model.
        figures: `figures(model, history) -> [paths]` draws the run's figures.

    Returns:
        The run's full history.
    """
    if not files.chief:
        return read_history(files.history_path)
    run = files.run
    runs.kill_point("trained")
    with writing(run.model_path), atomic_path(run.model_path) as temporary:
        model.save(temporary)  # the temporary name keeps the .keras suffix Keras requires
    history = read_history(run.history_path)
    drawn = []
    if figures is not None:
        # A multi-worker model's predict is a collective step the other workers would have
        # to join; the chief draws with a local copy of the trained model instead.
        multi_worker = isinstance(model.distribute_strategy,
                                  tf.distribute.MultiWorkerMirroredStrategy)
        drawn = list(figures(run.load_model() if multi_worker else model, history))
    runs.kill_point("figures")
    run.finish(files.settings, history, drawn)
    return history
