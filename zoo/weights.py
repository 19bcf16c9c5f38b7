"""Trained weight sets: shipped with the package, found by tag, checked, and loaded by
`zoo.get(name, weights=TAG_OR_PATH)`.

A family owns its weight sets, in its own folder (declared as package data in pyproject.toml):

    zoo/<family>/weights/<entry>.<tag>.weights.h5   the model's variables (no optimizer state),
                                                    float32 or float16 (see the card)
    zoo/<family>/weights/<entry>.<tag>.json         the card: data and its licence, recipe,
                                                    test metrics, class names, the command that
                                                    rebuilds it, file size and SHA-256
    zoo/<family>/weights/<entry>.<tag>.check.npz    8 fixed inputs and the outputs the set gives
                                                    them (tests check them within 1e-5)

`$ZOO_WEIGHTS_PATH` (directories separated by `os.pathsep`, each holding such files directly)
is searched before the package: tests and people trying a set before it ships use it.

A `weights` argument is a tag of the entry (or of the entry it takes its weights from,
`register(..., weights_from="lstm")`), or a path: a run directory of `zoo train`/`zoo tune`
(its `model.keras` and `run.json`), a `.keras` file, a `.weights.h5` file, or an export
directory `saved_models/NAME/VERSION` (`NAME.keras` and `model_card.json`). A set or a run
that records its hyperparameters builds the entry with them; overrides that change a weight's
shape are refused, naming the key. Every variable's shape is checked before anything is
loaded: a file that does not fit is refused naming the first variable that differs (the
`.weights.h5` format itself is `zoo.weight_files`'s).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from zoo.files import atomic_path
from zoo.registry import DTYPE_POLICY, Entry, HyperparameterError, entries, get_entry
from zoo.saving import extract_weights
from zoo.weight_files import WeightsError, copy_weights, load_file, save_file

logger = logging.getLogger(__name__)
# The hyperparameter whose change re-initialises a classifier's head instead of being refused.
NUM_CLASSES = "num_classes"

__all__ = ["PATH_VARIABLE", "SIZE_BUDGET_BYTES", "WeightsError", "available", "card", "find",
           "load", "shipped", "verify", "write_set"]

PATH_VARIABLE = "ZOO_WEIGHTS_PATH"
WEIGHTS_DIR = "weights"  # inside each family's package folder
WEIGHTS_SUFFIX, CARD_SUFFIX, CHECK_SUFFIX = ".weights.h5", ".json", ".check.npz"
SIZE_BUDGET_BYTES = 20 * 1024 * 1024  # every shipped set together
_TAG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
REQUIRED_CARD_FIELDS = ("data", "licence", "recipe", "metrics", "command")


# --- where sets live --------------------------------------------------------------------------


def _package_dir(family: str) -> Path:
    return Path(__file__).parent / family / WEIGHTS_DIR


def directories(family: str) -> list[Path]:
    """Where `family`'s sets are looked for: `$ZOO_WEIGHTS_PATH`'s directories, then the
    family's package folder."""
    extra = [Path(p) for p in os.environ.get(PATH_VARIABLE, "").split(os.pathsep) if p]
    return [*extra, _package_dir(family)]


def _sets_in(directory: Path, entry: str) -> dict[str, Path]:
    """`{tag: card path}` of `entry`'s sets in `directory`."""
    found = {}
    for path in sorted(directory.glob(f"{entry}.*{CARD_SUFFIX}")):
        tag = path.name[len(entry) + 1:-len(CARD_SUFFIX)]
        if _TAG.match(tag) and path.with_name(f"{entry}.{tag}{WEIGHTS_SUFFIX}").exists():
            found[tag] = path
    return found


def _own_sets(entry: Entry) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for directory in reversed(directories(entry.family)):  # earlier directories win
        found.update(_sets_in(directory, entry.name))
    return found


def _sets(name: str) -> dict[str, Path]:
    """`{tag: card path}` for entry `name`: its own, then those of its `weights_from` entry."""
    entry = get_entry(name)
    found = _own_sets(entry)
    donor = getattr(entry, "weights_from", None)
    if donor:
        found = {**_own_sets(get_entry(donor)), **found}
    return found


def _read_card(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as error:
        raise WeightsError(f"cannot read the weight card {path} ({error}); reinstall zoo") from None


def available(name: str) -> dict[str, dict[str, Any]]:
    """`{tag: card}` of the weight sets entry `name` can load (its own and its `weights_from`
    entry's), sorted by tag."""
    return {tag: _read_card(path) for tag, path in sorted(_sets(name).items())}


def find(name: str, tag: str) -> tuple[Path, dict[str, Any]]:
    """The weights file and card of set `tag` of entry `name`.

    Raises:
        WeightsError: no such set (the message lists the tags there are).
    """
    sets = _sets(name)
    if tag not in sets:
        known = ", ".join(sorted(sets)) or "none"
        raise WeightsError(
            f"{name} has no weight set {tag!r} (sets: {known}; a path to a run directory, "
            f".keras, .weights.h5 or export directory also works)"
        )
    card_path = sets[tag]
    card_ = _read_card(card_path)
    return card_path.with_name(card_path.name[: -len(CARD_SUFFIX)] + WEIGHTS_SUFFIX), card_


def card(name: str, tag: str) -> dict[str, Any]:
    """The card of set `tag` of entry `name`: `data` (with `measured_on`, the split its
    `metrics` were measured on), `licence`, `recipe`, `metrics`, `command`, file, size and
    SHA-256, and for a classifier `class_names` (in output order).

    A classifier's card that does not name its classes (a set written outside the package)
    gets the task's default names, when their number is the recipe's class count.

    Raises:
        WeightsError: no such set (the message lists the tags there are), or an unreadable card.
    """
    found = find(name, tag)[1]
    defaults = get_entry(name).task.class_names
    if defaults is not None and "class_names" not in found:
        classes = found.get("recipe", {}).get("hyperparameters", {}).get("num_classes")
        if classes in (None, len(defaults)):
            found["class_names"] = list(defaults)
    return found


def shipped() -> list[tuple[str, str, Path]]:
    """`(entry, tag, weights file)` of every set inside the installed package (not
    `$ZOO_WEIGHTS_PATH`'s)."""
    found = []
    for entry in entries():
        for tag, path in _sets_in(_package_dir(entry.family), entry.name).items():
            found.append((entry.name, tag, path.with_name(f"{entry.name}.{tag}{WEIGHTS_SUFFIX}")))
    return found


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: str | Path, card_: Mapping[str, Any]) -> None:
    """Checks the file's size and SHA-256 against its card.

    Raises:
        WeightsError: "... SHA-256 mismatch: expected ..., got ...; reinstall zoo".
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"the weight file {path} is missing; reinstall zoo")
    got = sha256(path)
    if got != card_.get("sha256"):
        raise WeightsError(
            f"{path}: SHA-256 mismatch: expected {card_.get('sha256')}, got {got}; reinstall zoo"
        )


# --- what a `weights` argument names ----------------------------------------------------------


@contextlib.contextmanager
def _source(entry: Entry, weights: str | Path) -> Iterator[dict[str, Any]]:
    """What `weights` names: `{"file", "entry", "hyperparameters", "card", "what"}`, the file a
    `.weights.h5` (extracted from a `.keras` while the block runs)."""
    if not isinstance(weights, (str, os.PathLike)) or not str(weights).strip():
        # Path("") is the current folder: an empty argument must not load whatever is there.
        raise WeightsError(
            f"weights must be a weight set's tag of {entry.name} (sets: "
            f"{', '.join(available(entry.name)) or 'none'}) or a path to a run directory, "
            f".keras, .weights.h5 or export directory, got {weights!r}"
        )
    path = Path(weights)
    if isinstance(weights, str) and _TAG.match(weights) and not path.exists():
        file, card_ = find(entry.name, weights)
        verify(file, card_)
        yield {"file": file, "entry": card_["entry"], "card": card_,
               "hyperparameters": card_["recipe"]["hyperparameters"],
               "what": f"weight set {weights!r} ({card_['entry']}.{weights})"}
        return
    if not path.exists():
        raise WeightsError(
            f"no weight set {str(weights)!r} of {entry.name} and no such file or directory "
            f"(sets: {', '.join(available(entry.name)) or 'none'})"
        )
    record: dict[str, Any] | None = None
    keras_file: Path | None = None
    if path.is_dir() and (path / "run.json").is_file():
        from zoo import runs

        record = runs.RunDirectory(path).finished_record()
        keras_file = path / runs.MODEL_FILE
    elif path.is_dir() and (path / "model_card.json").is_file():
        record = _read_card(path / "model_card.json")
        keras_file = path / f"{record.get('name')}.keras"
    elif path.is_dir():
        raise WeightsError(
            f"{path} is neither a run directory (run.json, model.keras) nor an export directory "
            "(model_card.json, NAME.keras)"
        )
    elif path.name.endswith(".keras"):
        keras_file = path
    elif not path.name.endswith(WEIGHTS_SUFFIX):
        raise WeightsError(f"{path}: expected a .keras or .weights.h5 file, a run or export directory")
    found = {"entry": record.get("name") if record else None,
             "hyperparameters": record.get("hyperparameters") if record else None,
             "card": record, "what": str(path)}
    if keras_file is None:
        yield {**found, "file": path}
        return
    with tempfile.TemporaryDirectory(prefix="zoo-weights-") as directory:
        try:  # a .keras cut short or damaged is refused by zoo.saving, in its words
            file = extract_weights(keras_file, directory)
        except OSError as error:  # the temporary copy (a full disk, say)
            raise WeightsError(f"cannot copy the weights out of {keras_file} ({error})") from None
        yield {**found, "file": file}


def _shapes(model: Any) -> list[tuple[int, ...]]:
    return [tuple(weight.shape) for weight in model.weights]


def _culprit(entry: Entry, recorded: Mapping[str, Any], overrides: Mapping[str, Any]) -> str | None:
    """The first override that changes a weight's shape, built one at a time."""
    base = _shapes(entry.build(entry.resolve(None, **recorded)))
    for key, value in overrides.items():
        if recorded.get(key) == value:
            continue
        changed = entry.build(entry.resolve(None, **{**recorded, key: value}))
        if _shapes(changed) != base:
            return key
    return None


def load(
    name: str,
    weights: str | Path,
    preset: str | None = None,
    *,
    replace_head: bool = False,
    report: list[str] | None = None,
    **overrides: Any,
) -> Any:
    """`zoo.get(name, weights=...)`: builds entry `name` and loads `weights` into it.

    Args:
        name: the entry.
        weights: a set's tag or a path (see the module's docstring).
        preset: a preset, only for weights that do not record their hyperparameters.
        replace_head: fine-tuning with another class count: variables that differ only in the
            last axis keep their fresh values (named in `report`); other differences are refused.
            A `num_classes` override implies it.
        report: when given, receives one line per thing worth telling (the head replaced); the
            line is logged too.
        **overrides: hyperparameters; with weights that record theirs, only those that leave
            every weight's shape alone (learning rate, dropout, ...), and `num_classes`: another
            class count than the weights' re-initialises only the classifier head.

    Raises:
        WeightsError: unknown tag, damaged set, a file that does not fit, weights of another
            entry, an empty `weights` ("" would be the current folder).
        zoo.saving.ModelFileError: a `.keras` (file, run's or export's) cut short or damaged.
        HyperparameterError: an override that changes the architecture the weights were
            trained with.
    """
    entry = get_entry(name)
    with _source(entry, weights) as source:
        origin = source["entry"] or entry.name
        related = origin == entry.name or getattr(entry, "weights_from", None) == origin or (
            getattr(get_entry(origin), "weights_from", None) == entry.name
        )
        if not related:
            raise WeightsError(
                f"{source['what']} holds weights of {origin!r}, not {name!r}: load it with "
                f"zoo.get({origin!r}, weights=...)"
            )
        # The dtype policy is how to compute, not what was learned: this machine's default
        # (or the caller's), not the one the weights were trained in.
        recorded = {key: value for key, value in (source["hyperparameters"] or {}).items()
                    if key in entry.hparams and key != DTYPE_POLICY}
        if recorded and preset is not None:
            raise HyperparameterError(
                f"{source['what']} records its hyperparameters; a preset cannot change them"
            )
        hyperparameters = entry.resolve(preset, **{**recorded, **overrides})
        # Another class count is fine-tuning, from Python as from `zoo train --weights`: the
        # head's variables (shapes that differ in the class axis only) start fresh. With the
        # recorded count nothing differs, so nothing is replaced.
        replace_head = replace_head or (NUM_CLASSES in overrides and NUM_CLASSES in entry.hparams)
        model = entry.build(hyperparameters)
        try:
            if origin == entry.name:
                kept = load_file(model, source["file"], replace_head=replace_head,
                                 named=source["what"])
            else:  # the weights_from twin: the same variables in the same order
                donor = get_entry(origin)
                donor_hp = {k: v for k, v in {**hyperparameters, **recorded}.items()
                            if k in donor.hparams}
                if replace_head and NUM_CLASSES in donor.hparams:  # the twin gets the new head
                    donor_hp[NUM_CLASSES] = hyperparameters[NUM_CLASSES]
                twin = donor.build(donor.resolve(None, **donor_hp))
                kept = load_file(twin, source["file"], replace_head=replace_head,
                                 named=source["what"])
                for mine, theirs in zip(model.weights, twin.weights):
                    if tuple(mine.shape) != tuple(theirs.shape):
                        raise WeightsError(
                            f"{source['what']} does not fit {name}: variable {mine.path} has "
                            f"shape {tuple(theirs.shape)} in {origin}, {tuple(mine.shape)} here"
                        )
                if len(model.weights) != len(twin.weights):
                    raise WeightsError(f"{origin}'s variables do not match {name}'s")
                copy_weights(twin, model)  # the twin's fresh head included
        except WeightsError:
            # The class count is allowed to change the head: look for another culprit.
            others = {key: value for key, value in overrides.items()
                      if not (replace_head and key == NUM_CLASSES)}
            if recorded and others:
                key = _culprit(entry, recorded, others)
                if key is not None:
                    trained = recorded.get(key, entry.hparams[key].default)
                    raise HyperparameterError(
                        f"{key}={overrides[key]!r} changes the architecture of "
                        f"{source['what']}, trained with {key}={trained!r}; only overrides "
                        "that keep every weight's shape are allowed, and num_classes=K, which "
                        "re-initialises only the classifier head"
                    ) from None
            raise
    if kept:
        line = (f"re-initialised the classifier head ({', '.join(kept)}); loaded the rest "
                f"from {source['what']}")
        logger.info("%s: %s", name, line)
        if report is not None:
            report.append(line)
    model.zoo_weights = {"source": str(weights), "card": source["card"],
                         "hyperparameters": hyperparameters, "replaced": kept}
    return model


# --- writing a set ----------------------------------------------------------------------------


def write_set(
    model: Any,
    name: str,
    tag: str,
    card_fields: Mapping[str, Any],
    directory: str | Path | None = None,
    *,
    float16: bool = False,
    check_inputs: np.ndarray | None = None,
) -> Path:
    """Writes `model`'s weights as set `tag` of entry `name`: weights only (no optimizer state),
    optionally stored as float16, its card with size and SHA-256, and optionally the outputs on
    `check_inputs`; each file written atomically, the card last.

    Args:
        model: the trained model (built).
        name: its entry.
        tag: the set's tag, lower-case letters, digits, `_` and `-`.
        card_fields: at least `data`, `licence`, `recipe` (preset, hyperparameters, seed,
            epochs, ...), `metrics` (on the data's test split) and `command` (what rebuilds the
            set); a classifier's `class_names`. With `float16`, `metrics_float32` too: the
            metrics before the cast, so the card shows the accuracy is unchanged.
        directory: default the family's package folder `zoo/<family>/weights/`.
        float16: store floating-point variables as float16 (loading casts them back).
        check_inputs: 8 or so inputs whose outputs (of the stored weights, computed in float32)
            are kept beside the set, for the test that every shipped set still gives them.

    Returns:
        The card's path.
    """
    entry = get_entry(name)
    if not _TAG.match(tag):
        raise ValueError(f"a tag is lower-case letters, digits, '_' and '-', got {tag!r}")
    missing = [key for key in REQUIRED_CARD_FIELDS if key not in card_fields]
    if float16 and "metrics_float32" not in card_fields:
        missing.append("metrics_float32")
    if missing:
        raise ValueError(f"the card needs {missing}")
    if "hyperparameters" not in card_fields["recipe"]:
        raise ValueError("the card's recipe needs its hyperparameters")
    directory = Path(directory) if directory is not None else _package_dir(entry.family)
    stem = directory / f"{name}.{tag}"
    weights_path = stem.with_name(stem.name + WEIGHTS_SUFFIX)
    entry.ensure_built(model)
    save_file(model, weights_path, float16=float16)
    card_ = {
        "tag": tag,
        "entry": name,
        **card_fields,
        "storage_dtype": "float16" if float16 else "float32",
        "file": weights_path.name,
        "size_bytes": weights_path.stat().st_size,
        "sha256": sha256(weights_path),
    }
    if check_inputs is not None:
        # In float32 whatever the recipe's policy: bfloat16 outputs depend on a CPU's kernels.
        recipe = {k: v for k, v in card_fields["recipe"]["hyperparameters"].items()
                  if k in entry.hparams}
        stored = entry.build(entry.resolve(None, **{**recipe, DTYPE_POLICY: "float32"}))
        load_file(stored, weights_path)
        outputs = np.asarray(stored(np.asarray(check_inputs, np.float32), training=False))
        with atomic_path(stem.with_name(stem.name + CHECK_SUFFIX)) as temporary:
            with open(temporary, "wb") as handle:
                np.savez(handle, inputs=check_inputs, outputs=outputs)
    card_path = stem.with_name(stem.name + CARD_SUFFIX)
    with atomic_path(card_path) as temporary:
        temporary.write_text(json.dumps(card_, indent=2, default=str) + "\n")
    return card_path


def check_file(name: str, tag: str) -> Path | None:
    """The fixed inputs and outputs stored beside set `tag`, when there are some."""
    file, _ = find(name, tag)
    path = file.with_name(file.name[: -len(WEIGHTS_SUFFIX)] + CHECK_SUFFIX)
    return path if path.is_file() else None


def summary(card_: Mapping[str, Any]) -> list[str]:
    """A set's card as lines for `zoo describe`."""
    recipe = card_.get("recipe", {})
    return [
        f"weights {card_.get('tag')!r}" + (f" (the {card_['entry']} set)" if card_.get("entry") else ""),
        f"  data:    {card_.get('data')}",
        f"  licence: {card_.get('licence')}",
        f"  recipe:  preset {recipe.get('preset')}, seed {recipe.get('seed')}, epochs "
        f"{recipe.get('epochs')}, hyperparameters {recipe.get('hyperparameters')}",
        f"  metrics: {card_.get('metrics')}, on {measured_on(card_)}",
        *(["  recall per class on people left out: " + ", ".join(
            f"{name} {value:.1%}" for name, value in card_["cross_validation"]["recall"].items())]
          if "recall" in (card_.get("cross_validation") or {}) else []),
        f"  command: {card_.get('command')}",
        f"  file:    {card_.get('file')}, {card_.get('size_bytes')} bytes, "
        f"{card_.get('storage_dtype')}, sha256 {card_.get('sha256')}",
    ]


def measured_on(card_: Mapping[str, Any]) -> str:
    """The split a set's metrics were measured on, as its card says (with the held-out
    images' description for a validation split), e.g. "the test split" or "the validation
    split: 5000 training images held out (seed 0)"."""
    data = card_.get("data") if isinstance(card_.get("data"), Mapping) else {}
    split = data.get("measured_on") or "a split the card does not name"
    validation = data.get("validation")
    if "validation" in split and isinstance(validation, str) and validation:
        split = f"{split}: {validation}"
    return split


def headline(card_: Mapping[str, Any], metric: str) -> str:
    """A set's size, headline metric and the split it was measured on in one line for
    `zoo list --pretrained`, e.g. "0.2 MiB  accuracy 0.980 on the test split".

    Args:
        card_: the set's card.
        metric: the entry's headline metric as Keras logs it (`val_accuracy`); the card
            records it without the `val_` prefix.
    """
    metrics = card_.get("metrics") or {}
    key = metric.removeprefix("val_")
    value = metrics.get(key)
    shown = f"{key} {value:.3f}" if isinstance(value, (int, float)) else f"{key} not recorded"
    size = card_.get("size_bytes")
    mib = f"{size / 2**20:.1f} MiB" if isinstance(size, int) else "size not recorded"
    return f"{mib:>8s}  {shown} on {measured_on(card_)}"


__all__ += ["check_file", "copy_weights", "directories", "headline", "load_file", "measured_on",
            "sha256", "summary"]
