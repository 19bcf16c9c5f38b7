"""What `zoo predict` gets back from a family's `Task.predict`: one `Prediction` per input
(an image, a window, a patch image), failed ones with their reason, so that one bad input does
not cost the others their predictions; and what every family's predict shares: the progress
of long inputs, the checks on where predictions are written, names that never collide."""

from __future__ import annotations

import collections
import csv
import dataclasses
import logging
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoo.files import OutputError

__all__ = [
    "OutputError", "Prediction", "Progress", "check_output", "class_rows", "expand",
    "group_counts", "output_folder", "unique_stems",
]

_log = logging.getLogger(__name__)

INPUT_COLUMN = "input"  # the first column of every CSV zoo predict writes


@dataclasses.dataclass
class Prediction:
    """One input's result: `text` to print and a `row` for `--output FILE.csv`, or `error`.

    `group`, when a family sets it, is what a summary counts the prediction under (a
    classifier's predicted class): for inputs that come in thousands (a file's windows), where
    `zoo predict --output` prints counts per group instead of a line per prediction.
    """

    input: str
    text: str = ""
    row: dict[str, Any] = dataclasses.field(default_factory=dict)
    error: str | None = None
    group: str | None = None


def group_counts(predictions: Sequence[Prediction]) -> dict[str, int] | None:
    """How many successful predictions fell in each group, most first (ties in order of first
    appearance), or `None` when any successful prediction has no group (nothing to summarise).

    Args:
        predictions: what a `Task.predict` returned.

    Returns:
        Group to count, or `None`.
    """
    succeeded = [p for p in predictions if p.error is None]
    if not succeeded or any(p.group is None for p in succeeded):
        return None
    counts = collections.Counter(p.group for p in succeeded)
    return dict(counts.most_common())


class Progress:
    """Logs "predicted 512/2000 images, 40 s left" every `every` seconds while a long input is
    predicted (through `logging`, at INFO; `zoo predict` shows it on stderr).

    Args:
        total: how many items there are.
        what: the items, plural, for the message.
        every: seconds between lines; none before the first `every` seconds have passed.
    """

    def __init__(self, total: int, what: str, every: float = 10.0) -> None:
        self.total, self.what, self.every = total, what, every
        self.start = self.last = time.monotonic()

    def update(self, done: int) -> None:
        """Records that `done` items of `total` are predicted; logs a line when one is due."""
        now = time.monotonic()
        if now - self.last < self.every or done >= self.total or done <= 0:
            return
        self.last = now
        left = (now - self.start) / done * (self.total - done)
        _log.info("predicted %d/%d %s, %.0f s left", done, self.total, self.what, left)


def expand(inputs: Iterable[str], suffixes: Sequence[str]) -> list[Path]:
    """The inputs, each folder replaced by its files with `suffixes` (sorted, recursively)."""
    paths: list[Path] = []
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            paths += sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
        else:
            paths.append(path)
    return paths


def class_rows(label: str, probabilities: np.ndarray, class_names: Sequence[str],
               top: int = 3, grouped: bool = False) -> Prediction:
    """A classifier's `Prediction`: the `top` classes with their probabilities; `grouped`: its
    `group` is the predicted class, so that a summary counts the classes."""
    names = list(class_names) if len(class_names) == len(probabilities) else [
        f"class {index}" for index in range(len(probabilities))
    ]
    order = np.argsort(probabilities)[::-1][:top]
    text = ", ".join(f"{names[i]} {probabilities[i]:.3f}" for i in order)
    row = {"input": label, "prediction": names[order[0]],
           **{name: f"{p:.6f}" for name, p in zip(names, probabilities)}}
    return Prediction(label, text, row, group=names[order[0]] if grouped else None)


def unique_stems(paths: Sequence[Path]) -> list[str]:
    """An output name per input, never two alike: the file's stem where no other input has
    it, else `<parent folder>-<stem>`, with `-2`, `-3`, ... where even that repeats.

    Args:
        paths: the inputs, in order.

    Returns:
        One name per path, in order.
    """
    counts = collections.Counter(path.stem for path in paths)
    taken = {path.stem for path in paths if counts[path.stem] == 1}
    names = []
    for path in paths:
        name = path.stem
        if counts[name] > 1:
            base = f"{path.resolve().parent.name}-{name}"
            name, index = base, 1
            while name in taken:
                index += 1
                name = f"{base}-{index}"
        taken.add(name)
        names.append(name)
    return names


def _is_prediction_csv(path: Path) -> bool:
    """Whether `path` looks like a CSV that `zoo predict --output` wrote: a `.csv` whose header's
    first column is `input`."""
    if path.suffix.lower() != ".csv":
        return False
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            header = next(csv.reader([handle.readline(4096)]), [])
    except (OSError, UnicodeDecodeError):
        return False
    return bool(header) and header[0] == INPUT_COLUMN


def check_output(text: str) -> Path:
    """Checks `zoo predict --output` before any prediction is made: a file path whose parent
    exists as a folder or can be made, holding nothing or an earlier prediction CSV of zoo's.

    Args:
        text: the path as given (a trailing `/` names a folder, which is refused).

    Returns:
        The path.

    Raises:
        OutputError: a folder, a device, a link, a file zoo did not write, or a parent that is
            a file.
    """
    path = Path(text)
    if text.endswith(("/", "\\")) or path.is_dir():
        raise OutputError(f"--output {text} is a folder; give a file path such as "
                          f"{path / 'predictions.csv'} (zoo never replaces a folder)")
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise OutputError(f"--output {text} is a link or not a regular file; give a new file path")
    if path.exists() and not _is_prediction_csv(path):
        raise OutputError(f"--output {text} exists and is not a prediction CSV zoo wrote (one "
                          f"whose header starts with '{INPUT_COLUMN},'); give a new file path")
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise OutputError(f"--output {text}: {parent} is a file, not a folder")
            break
    return path


def output_folder(text: str | Path, option: str = "--out") -> Path:
    """Makes or checks a folder that predict writes its files into: a new or empty folder
    becomes zoo's (the owner marker of `zoo.runs.claim_directory`), a folder of zoo's is
    reused, anything else is refused, so nothing zoo did not write is overwritten.

    Args:
        text: the folder.
        option: the option that named it, for messages.

    Returns:
        The folder, existing and marked as zoo's.

    Raises:
        zoo.runs.RunError: a file, or a non-empty folder zoo did not create.
    """
    from zoo import runs

    runs.claim_directory(text, "prediction folder", f"give {option} a new or empty folder")
    return Path(text)


