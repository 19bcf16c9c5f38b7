"""Accelerometer activity windows in the course's HDF5 layout: reading, checks and splits.

The layout: `trX` `(N, steps, axes)` float windows, `trY` `(N, classes)` one-hot labels, and
`tstX` / `tstY` likewise for the test set. A `classes` attribute on the file, when present,
names the classes in column order; otherwise the course's order is assumed.

An optional extension of the layout: `trS` and `tstS`, `(N,)` integer subject ids of the
training and test windows. With `trS`, validation holds out whole subjects (people the model
has not seen); without it, a random share of the windows, which overlap training windows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import itertools
import warnings

import numpy as np

from zoo.data import (
    DataError,
    Splits,
    check_array,
    check_classes,
    check_split,
    fewest_for_split,
    open_hdf5,
    read_hdf5_dataset,
)

__all__ = ["COURSE_CLASSES", "KEYS", "SUBJECT_KEYS", "OVERLAP_WARNING", "example",
           "hold_out_subjects", "load", "read_subjects", "read_windows"]

COURSE_CLASSES = ("downstairs", "jogging", "sitting", "standing", "upstairs", "walking")
KEYS = ("trX", "trY", "tstX", "tstY")
SUBJECT_KEYS = {"trS": "trX", "tstS": "tstX"}  # optional: subject id of each window
OVERLAP_WARNING = (
    "validation windows are a random share of the training windows, which overlap their "
    "neighbours by 50% and come from the same people: validation accuracy overstates accuracy "
    "on new people (store subject ids as trS to hold out whole subjects)"
)
STEPS, AXES = 150, 3


def _check_labels(labels: np.ndarray, name: str, source: str, classes: int) -> np.ndarray:
    if np.ndim(labels) == 1:
        raise DataError(
            f"{name} in {source} must be one-hot rows of shape (N, {classes}), got shape "
            f"{np.shape(labels)}; class indices? store them one-hot, np.eye({classes})[{name}]"
        )
    labels = check_array(labels, name, (None, classes), source=source)
    is_one_hot = np.isin(labels, (0, 1)).all() and (labels.sum(axis=1) == 1).all()
    if not is_one_hot:
        bad = int(np.flatnonzero(~(np.isin(labels, (0, 1)).all(axis=1) & (labels.sum(axis=1) == 1)))[0])
        raise DataError(
            f"{name} in {source} must be one-hot rows (a single 1, zeros elsewhere); "
            f"row {bad} is {labels[bad].tolist()}"
        )
    return labels.astype(np.float32)


def _class_names(attrs: Any, classes: int, source: str) -> tuple[str, ...]:
    if "classes" not in attrs:
        if classes != len(COURSE_CLASSES):
            raise DataError(
                f"{source} has {classes} label columns and no 'classes' attribute naming them; "
                f"without one the course's {len(COURSE_CLASSES)} classes are assumed"
            )
        return COURSE_CLASSES
    names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in attrs["classes"])
    if len(names) != classes:
        raise DataError(
            f"{source}: the 'classes' attribute names {len(names)} classes but the labels have "
            f"{classes} columns"
        )
    return names


def read_windows(
    path: str | Path,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[str, ...], dict[str, Any]]:
    """Reads and checks a course-layout HDF5 file.

    Returns:
        `(x_train, y_train, x_test, y_test, class_names, attributes)`; windows as float32
        `(N, 150, 3)`, labels as float32 one-hot rows.
    """
    source = str(path)
    with open_hdf5(path, KEYS) as handle:
        arrays = {key: read_hdf5_dataset(handle, key) for key in KEYS}
        attributes = {key: handle.attrs[key] for key in handle.attrs}
    x_train = check_array(arrays["trX"], "trX", (None, STEPS, AXES), source=source)
    x_test = check_array(arrays["tstX"], "tstX", (None, STEPS, AXES), source=source)
    named = len(attributes["classes"]) if "classes" in attributes else len(COURSE_CLASSES)
    classes = arrays["trY"].shape[-1] if np.ndim(arrays["trY"]) == 2 else named
    y_train = _check_labels(arrays["trY"], "trY", source, classes)
    y_test = _check_labels(arrays["tstY"], "tstY", source, classes)
    for x, y, split in ((x_train, y_train, "training"), (x_test, y_test, "test")):
        if len(x) != len(y):
            raise DataError(f"{source}: {len(x)} {split} windows but {len(y)} labels")
    names = _class_names(attributes, classes, source)
    return x_train.astype(np.float32), y_train, x_test.astype(np.float32), y_test, names, attributes


def _check_subjects(ids: Any, name: str, windows: int, source: str) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 1 or len(ids) != windows:
        raise DataError(
            f"{name} in {source} must hold one subject id per window, shape ({windows},), got "
            f"shape {ids.shape}"
        )
    if not np.issubdtype(ids.dtype, np.integer):
        bad = ("NaN/inf values and " if np.issubdtype(ids.dtype, np.floating)
               and not np.isfinite(ids).all() else "")
        raise DataError(f"{name} in {source} must be integer subject ids, got {bad}dtype {ids.dtype}")
    return ids.astype(np.int64)


def read_subjects(path: str | Path) -> dict[str, np.ndarray]:
    """The optional subject ids of a course-layout file: `{"trS": ..., "tstS": ...}`, with the
    keys the file has (none, either or both), each checked against its windows' count.

    Raises:
        DataError: naming the key, for ids that are not one integer per window.
    """
    source = str(path)
    with open_hdf5(path, KEYS) as handle:
        found = {}
        for key, windows in SUBJECT_KEYS.items():
            if key in handle:
                found[key] = _check_subjects(read_hdf5_dataset(handle, key), key, len(handle[windows]), source)
    return found


def hold_out_subjects(
    subjects: np.ndarray, labels: np.ndarray, fraction: float, seed: int
) -> list[int]:
    """Whole subjects to hold out for validation: about `fraction` of the windows.

    Among the subsets of subjects (at least one, never all; every subset for up to 12
    subjects, else seeded random ones), those that keep the most classes in training and then
    cover the most classes in validation are preferred; of those, the ones whose window count
    is at most a fifth of the share further from it than the closest one's are the
    candidates, and `seed` chooses one.

    Args:
        subjects: the subject id of each training window.
        labels: the class index of each training window.
        fraction: the share of windows to hold out, in (0, 1).
        seed: chooses among equally good subsets.

    Returns:
        The held-out subject ids, sorted.
    """
    ids = np.unique(subjects)
    if len(ids) < 2:
        raise DataError(
            f"holding out whole subjects needs at least two subjects in trS, got {len(ids)}"
        )
    counts = np.stack([np.bincount(labels[subjects == s], minlength=labels.max() + 1) for s in ids])
    total = counts.sum(axis=0)
    target = fraction * len(subjects)
    rng = np.random.default_rng(seed)
    if len(ids) <= 12:
        subsets = [c for size in range(1, len(ids))
                   for c in itertools.combinations(range(len(ids)), size)]
    else:  # seeded random prefixes of subject orders, each cut where it comes closest
        subsets = set()
        for _ in range(2000):
            order = rng.permutation(len(ids))
            sizes = np.cumsum(counts[order].sum(axis=1))[:-1]
            subsets.add(tuple(sorted(order[: int(np.abs(sizes - target).argmin()) + 1])))
        subsets = sorted(subsets)
    scored = []
    for subset in subsets:
        held = counts[list(subset)].sum(axis=0)
        kept = int(((total - held) > 0).sum())
        covered = int((held > 0).sum())
        scored.append(((kept, covered), abs(held.sum() - target), subset))
    best_coverage = max(score for score, _, _ in scored)
    scored = [(gap, subset) for score, gap, subset in scored if score == best_coverage]
    closest = min(gap for gap, _ in scored)
    candidates = [subset for gap, subset in scored if gap <= closest + 0.2 * target]
    chosen = candidates[int(rng.integers(len(candidates)))]
    return sorted(int(ids[index]) for index in chosen)


def example(directory: str | Path, seed: int = 0, per_class: int = 20) -> Path:
    """Writes a small file in the course layout, `directory/example_windows.h5`, and returns its
    path for `load`: `per_class` training windows and a quarter as many test windows of each
    of the course's six activities, seeded; each class its own sine wave plus noise. The
    training windows come from six subjects (`trS`), so validation holds out whole subjects.

    For smoke tests and tests/test_contract.py; `per_class` >= 5 keeps a validation window of
    every class at the default 10% split.
    """
    import h5py  # imported here: only HDF5 readers and writers need it

    rng = np.random.default_rng(seed)
    classes = len(COURSE_CLASSES)
    time = np.arange(STEPS) / STEPS

    def windows(count: int) -> tuple[np.ndarray, np.ndarray]:
        labels = np.repeat(np.arange(classes), count)
        phase = rng.uniform(0, 2 * np.pi, (len(labels), 1, AXES))
        wave = np.sin(2 * np.pi * (1 + labels)[:, None, None] * time[None, :, None] + phase)
        x = wave + rng.normal(0.0, 0.3, (len(labels), STEPS, AXES)) + np.array([0.0, 0.0, 9.8])
        return x.astype(np.float32), np.eye(classes, dtype=np.float32)[labels]

    (x_train, y_train), (x_test, y_test) = windows(per_class), windows(max(1, per_class // 4))
    path = Path(directory) / "example_windows.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle["trX"], handle["trY"], handle["tstX"], handle["tstY"] = x_train, y_train, x_test, y_test
        handle["trS"] = (np.arange(len(x_train)) % 6 + 1).astype(np.int16)
        handle.attrs["classes"] = list(COURSE_CLASSES)
    return path


def _describe(attributes: dict[str, Any]) -> dict[str, Any]:
    """The file's attributes as JSON-friendly values, for run records and model cards."""
    return {key: value.tolist() if isinstance(value, np.ndarray) else
            value.item() if isinstance(value, np.generic) else value
            for key, value in attributes.items()}


def load(path: str | Path | None, seed: int = 0, validation_fraction: float = 0.1,
         include_test: bool = False) -> Splits:
    """Training, validation and test windows from a course-layout HDF5 file.

    With subject ids (`trS`) in the file, whole subjects are held out for validation: about
    `validation_fraction` of the windows, chosen by `seed` (`hold_out_subjects`), so that
    validation measures accuracy on people the model has not seen. Without them,
    `validation_fraction` of each class of the training windows is held out at random, chosen
    by `seed`; those windows overlap training windows, and `info["validation"]["warning"]`
    (also issued as a warning) says so.
    With `include_test`, the test windows (and their subjects) join the training windows and
    the test split is empty: the final model of a recipe chosen by cross-validation over every
    subject, whose figure for new people is that cross-validation's, not a test split's.
    There is no embedded default: activity recordings are personal data no installed package
    ships, so a path is required.

    Args:
        path: the HDF5 file.
        seed: seed of the validation split.
        validation_fraction: share of the training windows held out, in [0, 1); 0 for no
            validation set.
        include_test: train on the test windows too; no test split.

    Returns:
        `Splits` whose `info["validation"]` describes the split: `{"split": "subjects",
        "subjects": [...], "windows": N, ...}` or `{"split": "random", ..., "warning": ...}`.

    Raises:
        DataError: a malformed file (subject ids included), training windows of fewer than two
            classes, `validation_fraction` out of range, or a split (when
            `validation_fraction` > 0) that leaves no validation or no training window.
    """
    if path is None:
        raise DataError(
            "activity recognition needs a data file: pass --data PATH to an HDF5 file with "
            f"{', '.join(KEYS)} (windows (N, {STEPS}, {AXES}) and one-hot labels, the course's "
            "layout)"
        )
    if not 0.0 <= validation_fraction < 1.0:
        raise DataError(f"validation_fraction must be in [0, 1), got {validation_fraction!r}")
    x_train, y_train, x_test, y_test, names, attributes = read_windows(path)
    subjects = read_subjects(path)
    if include_test:
        if len(subjects) == 1 and validation_fraction:
            raise DataError(
                f"{path} has subject ids for one split only ({', '.join(subjects)}): holding "
                "out whole subjects with include_test needs trS and tstS; store both, or pass "
                "validation_fraction=0")
        x_train, y_train = np.concatenate([x_train, x_test]), np.concatenate([y_train, y_test])
        x_test, y_test = x_test[:0], y_test[:0]
        subjects = ({"trS": np.concatenate([subjects["trS"], subjects["tstS"]])}
                    if len(subjects) == 2 else {})
    subjects = subjects.get("trS")
    labels = y_train.argmax(axis=1)
    check_classes(labels, names, str(path))
    is_validation = np.zeros(len(x_train), bool)
    if validation_fraction == 0:
        validation: dict[str, Any] = {"split": "none", "windows": 0}
    elif subjects is not None:
        held_out = hold_out_subjects(subjects, labels, validation_fraction, seed)
        is_validation = np.isin(subjects, held_out)
        validation = {
            "split": "subjects",
            "subjects": held_out,
            "windows": int(is_validation.sum()),
            "share": round(float(is_validation.mean()), 4),
            "classes": int(len(np.unique(labels[is_validation]))),
            "seed": seed,
        }
    else:
        rng = np.random.default_rng(seed)
        held_out = []
        for label in range(len(names)):  # stratified: every class is in the validation set
            members = rng.permutation(np.flatnonzero(y_train[:, label] == 1))
            held_out.extend(members[: round(validation_fraction * len(members))])
        check_split(
            len(x_train), len(held_out), what="training windows", source=str(path),
            fix=f"give at least {fewest_for_split(validation_fraction)} windows of one class "
            f"({validation_fraction:g} of each class is held out, rounded)",
        )
        is_validation[held_out] = True
        validation = {
            "split": "random",
            "description": f"{validation_fraction:.0%} of each class of the training windows, "
            f"seed {seed}",
            "windows": int(is_validation.sum()),
            "seed": seed,
            "warning": OVERLAP_WARNING,
        }
        warnings.warn(f"{path}: {OVERLAP_WARNING}", stacklevel=2)
    return Splits(
        x_train=x_train[~is_validation],
        x_val=x_train[is_validation],
        y_train=y_train[~is_validation],
        y_val=y_train[is_validation],
        x_test=x_test,
        y_test=y_test,
        info={
            "source": str(Path(path).resolve()),  # the same file by any path is the same data
            "classes": list(names),
            "attributes": _describe(attributes),
            "preprocessing": "none outside the model (per-channel normalisation is a model layer)",
            "validation": validation,
            **({"test": "none: the test windows are in training (include_test)"}
               if include_test else {}),
        },
    )
