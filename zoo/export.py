"""Export: a versioned SavedModel that loads without zoo, a `.keras` copy and a JSON model card.

Layout, as TensorFlow Serving expects:

    saved_models/NAME/VERSION/          SavedModel (signatures: `serve` plus the entry's others)
    saved_models/NAME/VERSION/NAME.keras    the Keras model, for fine-tuning with zoo installed
    saved_models/NAME/VERSION/model_card.json

Each version is written under a hidden temporary name and renamed into place when complete, so
an interrupted export never leaves a directory that looks like a valid version.
"""

from __future__ import annotations

import datetime
import json
import platform
import shutil
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import keras

from zoo import runs
from zoo.files import atomic_path

__all__ = ["CARD_FILE", "export", "library_versions", "next_version"]

CARD_FILE = "model_card.json"


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in ("zoo", "tensorflow", "keras", "numpy", "h5py"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def next_version(model_dir: str | Path) -> int:
    """1 + the highest numbered version under `model_dir` (1 when there is none)."""
    model_dir = Path(model_dir)
    versions = [int(p.name) for p in model_dir.glob("*") if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


def export(
    model: keras.Model,
    name: str,
    endpoints: Mapping[str, tuple[Any, list[Any]]],
    card: Mapping[str, Any],
    root: str | Path = "saved_models",
) -> Path:
    """Writes `model` to `root/name/<next version>/` and returns that directory.

    One export at a time writes to a root (an OS lock, `zoo.runs.locked`), so two exports get
    two versions; hidden temporaries that a killed export left are removed.

    Args:
        model: the trained model.
        name: the entry's name.
        endpoints: `{signature name: (function, [tf.TensorSpec, ...])}`; must include `serve`.
        card: model-card fields (hyperparameters, metrics, preprocessing, ...); name, version,
            signatures, library versions and date are added.
        root: the directory that holds every model's versions.
    """
    if "serve" not in endpoints:
        raise ValueError(f"endpoints must include 'serve', got {sorted(endpoints)}")
    reserved = sorted(set(card) & {"name", "version", "signatures", "load", "libraries", "exported"})
    if reserved:
        raise ValueError(f"the model card's {reserved} are written by export; leave them out")
    model_dir = Path(root) / name
    with runs.locked(root, "export root"):
        # Holding the lock, no other export is writing: hidden temporaries are a killed one's.
        for stale in model_dir.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        return _write(model, name, model_dir, endpoints, card)


def _write(
    model: keras.Model,
    name: str,
    model_dir: Path,
    endpoints: Mapping[str, tuple[Any, list[Any]]],
    card: Mapping[str, Any],
) -> Path:
    version = next_version(model_dir)
    target = model_dir / str(version)
    archive = keras.export.ExportArchive()
    archive.track(model)
    for endpoint, (function, signature) in endpoints.items():
        archive.add_endpoint(endpoint, function, input_signature=signature)
    full_card = {
        "name": name,
        "version": version,
        **card,
        "signatures": {
            endpoint: [
                {"shape": list(spec.shape), "dtype": spec.dtype.name} for spec in signature
            ]
            for endpoint, (_, signature) in endpoints.items()
        },
        "load": f"tf.saved_model.load('{target}').signatures['serve'] or "
        f"keras.layers.TFSMLayer('{target}', call_endpoint='serve')",
        "libraries": library_versions(),
        "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    with atomic_path(target) as temporary:
        archive.write_out(str(temporary), verbose=False)
        model.save(temporary / f"{name}.keras")
        (temporary / CARD_FILE).write_text(json.dumps(full_card, indent=2, default=str) + "\n")
    return target
