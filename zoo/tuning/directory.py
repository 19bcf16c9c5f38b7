"""A search's directory, `DIRECTORY/NAME/`: the settings that make it one search, held by one
process at a time, and keras-tuner's state in it kept readable across kills.

    search.json             the settings; a restart must match them
    oracle.json, tuner0.json, trial_NN/trial.json     keras-tuner's state

The chief (or the one process of a search that is not distributed) claims the folder as zoo's
(`zoo.runs.claim_directory`) and locks it; workers write their trials under the chief's lock.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import keras_tuner as kt
from keras_tuner.src import utils as kt_utils

from zoo import runs
from zoo.files import atomic_path
from zoo.tuning.hypermodel import EntryHyperModel, TuningError

__all__ = ["SETTINGS_FILE", "atomic_state_files", "held", "reconcile", "settings"]

SETTINGS_FILE = "search.json"
FINISHED = ("COMPLETED", "FAILED")


def settings(hm: EntryHyperModel, tuner: str, seed: int, data: str | Path | None) -> dict[str, Any]:
    """What makes a search the same search: a restart with other values would mix two searches
    in one oracle. (`max_trials` may grow on a restart, to extend a finished search.)

    Args:
        hm: the search's hypermodel (entry, space, fixed values, preset, fit settings).
        tuner: the tuner's name.
        seed: the search's seed.
        data: the data path, or `None` for the entry's embedded data.

    Returns:
        The settings, as they read back from `search.json`.
    """
    described = {
        "name": hm.entry.name,
        "tuner": tuner,
        "objective": hm.objective.describe(),
        "space": {
            name: {"kind": type(space).__name__.lower(), **dataclasses.asdict(space)}
            for name, space in hm.space.items()
        },
        "fixed": hm.fixed,
        "preset": hm.preset,
        "fit": hm.fit_settings,
        "seed": seed,
        "grid_points": hm.grid_points,
        "data": None if data is None else str(Path(data).resolve()),
    }
    return json.loads(json.dumps(described, default=str))  # as it reads back from the file


def _check_settings(
    project_dir: Path, settings: Mapping[str, Any], ignore: tuple[str, ...] = ()
) -> bool:
    """Whether `project_dir` holds a search; raises `TuningError` if it is another search (the
    settings in `ignore` aside)."""
    path = project_dir / SETTINGS_FILE
    if not path.is_file():
        return False
    earlier = json.loads(path.read_text())
    differences = [key for key in sorted({*earlier, *settings} - set(ignore))
                   if earlier.get(key) != settings.get(key)]
    if differences:
        details = "; ".join(
            f"{key}: {json.dumps(earlier.get(key))} there, {json.dumps(settings.get(key))} now"
            for key in differences
        )
        raise TuningError(
            f"{project_dir} holds a search with other settings ({details}); run the same command "
            "to resume it, or start afresh with another --directory or --overwrite"
        )
    return True


def _start_or_resume(project_dir: Path, settings: Mapping[str, Any], overwrite: bool) -> None:
    """Starts a search in the claimed `project_dir` (removing an earlier one if `overwrite`), or
    checks that the search there is this one, to be resumed."""
    if overwrite:  # the earlier search's files, all zoo's; the marker and the lock stay
        for path in project_dir.iterdir():
            if path.name not in (runs.MARKER_FILE, runs.LOCK_FILE):
                shutil.rmtree(path) if path.is_dir() and not path.is_symlink() else path.unlink()
    if not _check_settings(project_dir, settings):
        with atomic_path(project_dir / SETTINGS_FILE) as temporary:
            temporary.write_text(json.dumps(settings, indent=2) + "\n")


@contextlib.contextmanager
def held(role: str, project_dir: Path, settings: Mapping[str, Any],
         overwrite: bool = False) -> Iterator[None]:
    """The search directory, held for the length of a search.

    The chief or a single process claims `project_dir` as zoo's (a foreign folder is refused
    before anything is written in it, never overwritten or removed) and locks it, so that a
    second search into it is refused at once rather than marking this one's trials failed;
    then starts the search there (afresh with `overwrite`) or checks that it is this one, to be
    resumed. A worker writes its trials under the chief's lock and only checks the settings,
    the data's path aside (on another machine the same data may well live at another path).

    Args:
        role: "single", "chief" or "worker" (see `zoo.tuning.distributed.role`).
        project_dir: `DIRECTORY/NAME`.
        settings: this search's (`settings`).
        overwrite: remove an earlier search's files first (not a worker's to decide).

    Raises:
        TuningError: the directory holds a search with other settings.
        zoo.runs.RunError: a foreign folder, or one another process holds.
    """
    if role == "worker":
        _check_settings(project_dir, settings, ignore=("data",))
        yield
        return
    runs.claim_directory(project_dir, "search directory", "choose another --directory")
    with runs.locked(project_dir, "search directory"):
        _start_or_resume(project_dir, settings, overwrite)
        yield


@contextlib.contextmanager
def atomic_state_files() -> Iterator[None]:
    """Routes keras-tuner's JSON state writes through `zoo.files.atomic_path` for a search.

    keras-tuner writes `oracle.json`, `tuner0.json` and each `trial.json` in place; a search
    killed during a write would leave a truncated file that no restart can read.
    """
    original = kt_utils.save_json

    def save_json(path: str, content: Any) -> str:
        text = json.dumps(content)
        with atomic_path(path) as temporary:
            temporary.write_text(text)
        return text

    kt_utils.save_json = save_json
    try:
        yield
    finally:
        kt_utils.save_json = original


def reconcile(oracle: kt.Oracle) -> None:
    """Makes a reloaded oracle agree with the trial files of a search killed mid-way.

    keras-tuner saves a trial's file and then its own state, so a kill in between leaves:
    - a trial created but missing from the oracle's start order: it is removed, and the oracle,
      whose saved state predates it, creates it again with the same id and values;
    - a trial finished but still listed as running (the oracle saves before it lets go of a
      finished trial): keras-tuner would run it again; it is taken off the retry queue.
    Trials killed while training stay queued for retry and resume from their last epoch.

    Args:
        oracle: the search's oracle, its state reloaded from the directory.
    """
    changed = False
    for trial_id in sorted(set(oracle.trials) - set(oracle.start_order)):
        del oracle.trials[trial_id]
        shutil.rmtree(Path(oracle._project_dir) / f"trial_{trial_id}", ignore_errors=True)
        changed = True
    for trial_id in list(oracle._retry_queue):
        if oracle.trials[trial_id].status in FINISHED:
            oracle._retry_queue.remove(trial_id)
            if trial_id not in oracle.end_order:
                oracle.end_order.append(trial_id)
            changed = True
    if changed:
        oracle.save()
