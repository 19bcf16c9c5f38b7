"""Using a trained model: `evaluate` it on its data, `export` it, `predict` inputs with it.

The model comes from a finished run directory (default `runs/NAME`) or, with `weights`, from a
shipped weight set, a run, a `.keras` or `.weights.h5` file or an export (`zoo.weights`).
"""

from __future__ import annotations

import csv
import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo import runs, weights as weight_sets
from zoo.errors import UsageError
from zoo.files import atomic_path
from zoo.predicting import check_output
from zoo.registry import DTYPE_POLICY, Entry, HyperparameterError, get_entry

__all__ = ["SPLITS", "Evaluation", "chosen_splits", "class_names", "evaluate", "export",
           "export_contents", "predict", "score", "split_seed", "text_reports", "trained"]

SPLITS = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """A trained model's scores on its data.

    Attributes:
        metrics: `{split: {metric: value}}` for each scored split that has examples.
        figures: the task's figures (and text reports) of the scored splits.
        path: the folder holding `metrics.json` and the figures.
        data: what the data was (source, preprocessing, split sizes).
    """

    metrics: dict[str, dict[str, float]]
    figures: list[Path]
    path: Path
    data: dict[str, Any]

    def summary(self) -> str:
        """What `zoo evaluate` prints: a line of metrics a split, the task's text reports (a
        confusion matrix, say) and where the figures and `metrics.json` are."""
        lines = [f"{split:5s} " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items())
                 for split, metrics in self.metrics.items()]
        lines += text_reports(self.figures)
        lines.append(f"figures and metrics.json in {self.path}/: "
                     + ", ".join(p.name for p in self.figures))
        return "\n".join(lines)


def text_reports(paths: Sequence[Path]) -> list[str]:
    """The text reports among a task's outputs (`.txt` files: confusion matrices, say), each
    as its text."""
    return [path.read_text().rstrip() for path in paths if path.suffix == ".txt"]


def trained(entry: Entry, run_dir: str | Path | None = None,
            weights: str | Path | None = None) -> tuple[Any, dict[str, Any]]:
    """The model to evaluate, export or predict with, and what is known of it: the weight
    set's or run's card with `weights`, else the finished run in `run_dir` (default
    `runs/NAME`) and its record.

    Raises:
        zoo.runs.RunError: `run_dir` holds no finished run of the entry.
        zoo.weights.WeightsError: `weights` names nothing loadable.
    """
    if weights is not None:  # "" is refused by weights.load, not taken for "no weights"
        model = weight_sets.load(entry.name, str(weights))
        card = model.zoo_weights["card"] or {}
        return model, {"seed": card.get("recipe", {}).get("seed", 0), **card,
                       "hyperparameters": model.zoo_weights["hyperparameters"],
                       "weights": str(weights)}
    run = runs.RunDirectory(Path(run_dir or Path("runs") / entry.name))
    record = run.finished_record(entry.name)
    return run.load_model(), record


def class_names(entry: Entry, known: Mapping[str, Any]) -> list[str] | None:
    """A classifier's class names in output order: the weight set's card or the run's data
    record (which names the classes the data had), else the task's default; `None` for tasks
    without classes."""
    data = known.get("data") if isinstance(known.get("data"), dict) else {}
    names = known.get("class_names") or data.get("classes") or entry.task.class_names
    return None if names is None else list(names)


def chosen_splits(splits: Sequence[str] | str) -> list[str]:
    """The splits `splits` names, in their order in `SPLITS`.

    Args:
        splits: split names, or one text of them separated by commas ("val, test").

    Returns:
        The names, each once.

    Raises:
        UsageError: none named, or a name that is not a split.
    """
    names = splits.split(",") if isinstance(splits, str) else list(splits)
    names = [name.strip() for name in names if name.strip()]
    unknown = [name for name in names if name not in SPLITS]
    if unknown or not names:
        raise UsageError(f"expected splits among {', '.join(SPLITS)}, got {splits!r}")
    return [split for split in SPLITS if split in names]


def evaluate(name: str, data: str | Path | None = None, *, run_dir: str | Path | None = None,
             weights: str | Path | None = None, splits: Sequence[str] = ("val", "test"),
             out: str | Path | None = None) -> Evaluation:
    """Scores a trained model on its data and draws the task's figures (`zoo evaluate`'s work).

    Args:
        name: a registered name.
        data: a data file or folder; `None` for the entry's embedded data. The split held out
            is the one the run (or weight set) records.
        run_dir: the trained run (default `runs/NAME`).
        weights: score this weight set, run, `.keras`, `.weights.h5` or export instead.
        splits: which of "train", "val", "test" to score (or one text, "val,test").
        out: where `metrics.json` and the figures go; default `RUN_DIR/evaluation`, with
            `weights` `runs/NAME-evaluation`.

    Returns:
        The `Evaluation`.

    Raises:
        zoo.errors.UserError: no finished run, unloadable weights, bad data or unknown splits.
    """
    from zoo import training

    chosen = chosen_splits(splits)
    entry = get_entry(name)
    if weights:
        out_dir = Path(out or Path("runs") / f"{entry.name}-evaluation")
    else:
        out_dir = (Path(out) if out
                   else Path(run_dir or Path("runs") / entry.name) / runs.EVALUATION_DIR)
    if out is not None or weights:  # RUN_DIR/evaluation lies in a run directory zoo owns
        # Refused before any work if it holds files zoo did not write (metrics.json, figures).
        runs.claim_directory(out_dir, "evaluation folder", "choose another --out")
    model, run = trained(entry, run_dir, weights)
    # The split the weights were measured on: a set whose run held out more than the loader's
    # default (the conv sets: 5,000 images) records its loader options.
    options = run.get("data", {}).get("load_options") or {}
    # Labels in the model's classes, where the loader takes them: a folder of some of them
    # (cats and dogs for a CIFAR-10 model) is scored with their indices, not as its own problem.
    names = class_names(entry, run)
    if names is not None and "classes" in entry.load_settings():
        options = {**options, "classes": names}
    loaded = entry.task.load_splits(data, chosen, seed=split_seed(run), **options)
    results, outputs = {}, {}
    for split in chosen:
        x, y = getattr(loaded, f"x_{split}"), getattr(loaded, f"y_{split}")
        if x is not None and len(x):
            training.check_labels(model, y)
            results[split], outputs[split] = score(model, x, y)
    # Figures of the requested splits only: predicting 50,000 training images nobody asked
    # for took most of a 19.5-minute evaluation.
    figures = entry.task.figures(model, loaded.only(chosen), out_dir,
                                 outputs={k: v for k, v in outputs.items() if v is not None})
    content = {"data": loaded.info, "metrics": results,
               **({"weights": str(weights)} if weights else {})}
    with atomic_path(out_dir / "metrics.json") as temporary:
        temporary.write_text(json.dumps(content, indent=2, default=str) + "\n")
    return Evaluation(results, list(figures), out_dir, loaded.info)


def split_seed(run: Mapping[str, Any]) -> int:
    """The seed that drew the held-out split of a run's record or a weight set's card: its
    `data.split_seed` where recorded (a card; a run trained at one seed on another's split),
    else the run's seed (`zoo train` splits and trains with one), else 0 (the cards that
    predate the field were all measured on the seed-0 split)."""
    return run.get("data", {}).get("split_seed", run.get("seed", 0))


def score(model: Any, x: Any, y: Any, batch_size: int = 256) -> tuple[dict[str, float], Any]:
    """What `model.evaluate(x, y)` returns (the compiled loss and metrics), and the model's
    outputs on `x` for the figures, from one pass over `x`: `evaluate` and then `predict` ran
    the model twice.

    A model with a `test_step` of its own (the autoencoder's loss comes from inside the model)
    is scored by `evaluate`, and its outputs are `None`.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    if type(model).test_step is not keras.Model.test_step:
        return model.evaluate(x, y, batch_size=batch_size, verbose=0, return_dict=True), None

    @tf.function(reduce_retracing=True)
    def test_step(x_batch: Any, y_batch: Any) -> tuple[Any, Any]:
        # Keras' test step, returning the outputs too. The loss is computed on the outputs as
        # the model returns them: a softmax's carry its logits, which the cross-entropy uses;
        # from probabilities alone it would clip them, a lower loss on confident mistakes.
        outputs = model(x_batch, training=False)
        loss = model.compute_loss(x=x_batch, y=y_batch, y_pred=outputs, training=False)
        model.compute_metrics(x_batch, y_batch, outputs)
        return outputs, loss

    model.reset_metrics()
    loss, outputs = 0.0, []
    for start in range(0, len(x), batch_size):
        batch_outputs, batch_loss = test_step(x[start:start + batch_size],
                                              y[start:start + batch_size])
        loss += float(batch_loss) * len(batch_outputs)  # weighed as evaluate's loss tracker does
        outputs.append(batch_outputs.numpy())
    scores = {**{key: float(value) for key, value in model.get_metrics_result().items()},
              "loss": loss / len(x)}
    return dict(sorted(scores.items())), np.concatenate(outputs)  # in evaluate's order


def _card(entry: Entry, run: Mapping[str, Any], weights: str | Path | None) -> dict[str, Any]:
    """The model card's fields of a weight set (its card inside) or of a run (its record's)."""
    if weights:
        return {
            "description": entry.description,
            "task": entry.task.name,
            "hyperparameters": run["hyperparameters"],
            "headline_metric": entry.task.metric.name,
            "weights": str(weights),
            # The set's card (data, licence, recipe, metrics and the split they were measured
            # on, class names), or the run's record or export card the weights came from.
            "weight_card": {key: value for key, value in run.items()
                            if key not in ("hyperparameters", "weights")},
        }
    return {
        "description": entry.description,
        "task": entry.task.name,
        "preset": run["preset"],
        "hyperparameters": run["hyperparameters"],
        "data": run["data"].get("source"),
        "preprocessing": run["data"].get("preprocessing"),
        "validation": run["data"].get("validation"),
        "metrics": run["metrics"],
        "headline_metric": entry.task.metric.name,
        "fit": run["fit"],
        "epochs_trained": run["epochs_trained"],
        "seed": run["seed"],
        # A run written by `zoo tune` names the search and trial it came from.
        **({"search": run["search"]} if "search" in run else {}),
    }


def export(name: str, *, run_dir: str | Path | None = None, weights: str | Path | None = None,
           root: str | Path = "saved_models", format: str | Sequence[str] = "saved_model",  # noqa: A002
           ) -> Path:
    """Exports a trained model with its model card into a new version under `root/NAME/`
    (`zoo export`'s work; see `zoo.export.export` for the layout).

    Args:
        name: a registered name.
        run_dir: the trained run (default `runs/NAME`).
        weights: export this weight set (its card goes into the model card), run, `.keras`,
            `.weights.h5` or export instead.
        root: the directory that holds every model's versions.
        format: "saved_model", "onnx", "litert", or several (a sequence or comma-separated).
            A bfloat16 model's ONNX and LiteRT files are converted from its float32 twin.

    Returns:
        The version directory.

    Raises:
        zoo.export.ExportError: an unknown format (refused before the model loads), a missing
            converter, or a model a format cannot express.
        zoo.errors.UserError: no finished run, or unloadable weights.
    """
    from zoo.export import export as write, formats

    chosen = formats(format)  # an unknown name is refused before the model is loaded
    entry = get_entry(name)
    model, run = trained(entry, run_dir, weights)
    card = _card(entry, run, weights)
    names = class_names(entry, run)
    if names is not None:  # what a served class_index means
        card["class_names"] = names
    convert = None
    converted = [wanted for wanted in chosen if wanted != "saved_model"]
    if converted and model.dtype_policy.compute_dtype != "float32":
        # ONNX and LiteRT have no bfloat16 convolutions: convert the float32 twin. A mixed
        # policy keeps the variables float32, so the weights carry over unchanged.
        twin = entry.build({**run["hyperparameters"], DTYPE_POLICY: "float32"})
        weight_sets.copy_weights(model, twin)
        card["dtype_policy_converted"] = (f"trained in {model.dtype_policy.name}, "
                                          f"{' and '.join(converted)} converted in float32")
        convert = (twin, entry.task.endpoints(twin))
    return write(model, entry.name, entry.task.endpoints(model), card, root=root, format=chosen,
                 convert=convert)


def export_contents(version: str | Path) -> str:
    """What an export version holds, in words, as its model card says (`zoo export` prints
    it): the SavedModel's signatures, each converted format's file.

    Args:
        version: a version directory `export` returned.

    Returns:
        One line, the formats in the order written, separated by "; ".
    """
    from zoo.export import CARD_FILE

    formats = json.loads((Path(version) / CARD_FILE).read_text())["formats"]
    return "; ".join(
        f"SavedModel (signatures: {', '.join(written['signatures'])})" if name == "saved_model"
        else f"{written['file']} ({name}, the serve signature)"
        for name, written in formats.items())


def predict(name: str, inputs: Sequence[str | Path], *, weights: str | Path | None = None,
            run_dir: str | Path | None = None, key: str | None = None,
            out: str | Path | None = None, output: str | Path | None = None) -> list[Any]:
    """Predictions of a trained model for input files, read by the entry's family
    (`zoo predict`'s work; progress goes to the `zoo` loggers).

    Args:
        name: a registered name.
        inputs: conv nets: images or folders; recurrent: `.h5`/`.npy` windows (N, 150, 3);
            autoencoder: images cut into 16x16 patches.
        weights: a weight set, run, `.keras`, `.weights.h5` or export (default: the run in
            `run_dir`).
        run_dir: the trained run (default `runs/NAME`).
        key: the HDF5 dataset of windows (default: tstX, X or trX).
        out: the autoencoder's folder for codes and reconstructions (default `predictions/`).
        output: also write a CSV row per successful prediction to this file (if any
            succeeded): a new file or a prediction CSV zoo wrote earlier, checked before the
            model loads.

    Returns:
        One `zoo.predicting.Prediction` per input (or window); a refused input has `error` set.

    Raises:
        zoo.registry.HyperparameterError: the entry's task has no predict.
        zoo.files.OutputError: `output` is a folder, a device, a link or a file zoo did not
            write, or lies under a file.
        zoo.errors.UserError: no finished run, or unloadable weights.
    """
    entry = get_entry(name)
    if entry.task.predict is None:
        raise HyperparameterError(f"{entry.name}'s task has no predict")
    # Refused before the model loads: a folder, a device, or a file zoo did not write.
    table = check_output(str(output)) if output else None
    model, known = trained(entry, run_dir, weights)
    data = known.get("data") if isinstance(known.get("data"), dict) else {}
    options = {
        "class_names": known.get("class_names") or data.get("classes"),
        "preprocessing": known.get("preprocessing") or data.get("preprocessing"),
        "key": key,
        "out": None if out is None else str(out),
    }
    predictions = list(entry.task.predict(model, [str(path) for path in inputs], options))
    rows = [prediction.row for prediction in predictions if prediction.error is None]
    if table is not None and rows:
        _write_csv(table, rows)
    return predictions


def _write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """`rows` as a CSV file, its columns every row's keys in order of first appearance."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with atomic_path(path) as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, columns)
        writer.writeheader()
        writer.writerows(rows)
