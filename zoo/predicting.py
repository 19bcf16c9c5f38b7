"""What `zoo predict` gets back from a family's `Task.predict`: one `Prediction` per input
(an image, a window, a patch image), failed ones with their reason, so that one bad input does
not cost the others their predictions."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["Prediction", "class_rows", "expand"]


@dataclasses.dataclass
class Prediction:
    """One input's result: `text` to print and a `row` for `--output FILE.csv`, or `error`."""

    input: str
    text: str = ""
    row: dict[str, Any] = dataclasses.field(default_factory=dict)
    error: str | None = None


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
               top: int = 3) -> Prediction:
    """A classifier's `Prediction`: the `top` classes with their probabilities."""
    names = list(class_names) if len(class_names) == len(probabilities) else [
        f"class {index}" for index in range(len(probabilities))
    ]
    order = np.argsort(probabilities)[::-1][:top]
    text = ", ".join(f"{names[i]} {probabilities[i]:.3f}" for i in order)
    row = {"input": label, "prediction": names[order[0]],
           **{name: f"{p:.6f}" for name, p in zip(names, probabilities)}}
    return Prediction(label, text, row)
