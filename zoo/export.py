"""Export: a versioned SavedModel, ONNX or LiteRT file that loads without zoo, a `.keras` copy
and a JSON model card.

Layout, as TensorFlow Serving expects (every format numbers its versions in the same sequence,
so a root served by TensorFlow Serving should hold SavedModel versions only):

    saved_models/NAME/VERSION/          SavedModel (signatures: `serve` plus the entry's others)
    saved_models/NAME/VERSION/NAME.onnx     or, with format="onnx", the `serve` endpoint in ONNX
    saved_models/NAME/VERSION/NAME.tflite   or, with format="litert", the `serve` endpoint in LiteRT
    saved_models/NAME/VERSION/NAME.keras    the Keras model, for fine-tuning with zoo installed
    saved_models/NAME/VERSION/model_card.json

ONNX and LiteRT hold only the `serve` endpoint, with the SavedModel's input names and dtypes
(uint8 images, float32 windows or patches) and its output names (`output_0` for a single
tensor, the keys of a dict). They are converted from the same `keras.export.ExportArchive`
function the SavedModel holds: ONNX with tf2onnx (`pip install 'zoo[onnx]'`), LiteRT with
TensorFlow's own converter (builtin ops only, so any LiteRT runtime runs it; `zoo[litert]` adds
the standalone `ai-edge-litert` interpreter). A model the format cannot express is refused with
the converter's reason (`ExportError`) and nothing is written.

Each version is written under a hidden temporary name and renamed into place when complete, so
an interrupted export never leaves a directory that looks like a valid version.
"""

from __future__ import annotations

import datetime
import importlib
import json
import logging
import platform
import re
import shutil
import tempfile
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import runs
from zoo.errors import UserError

if TYPE_CHECKING:
    import keras
from zoo.files import atomic_path

__all__ = ["CARD_FILE", "FORMATS", "ExportError", "export", "library_versions", "next_version",
           "outputs_by_name", "probe"]

CARD_FILE = "model_card.json"
# format -> the suffix of its file in the version directory (None: the directory is a SavedModel)
FORMATS = {"saved_model": None, "onnx": ".onnx", "litert": ".tflite"}
ONNX_OPSET = 17  # onnxruntime >= 1.13 runs it
# A converted file must give the model's outputs on a probe batch within this, or it is refused.
TOLERANCE = 1e-4


class ExportError(UserError, ValueError):
    """The format cannot express the model, or its converter is not installed."""


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
    format: str = "saved_model",  # noqa: A002 (the word Keras' model.export uses)
) -> Path:
    """Writes `model` to `root/name/<next version>/` and returns that directory.

    One export at a time writes to a root (an OS lock, `zoo.runs.locked`), so two exports get
    two versions; hidden temporaries that a killed export left are removed.

    Args:
        model: the trained model.
        name: the entry's name.
        endpoints: `{signature name: (function, [tf.TensorSpec, ...])}`; must include `serve`.
            A function may return a tensor or a dict of tensors.
        card: model-card fields (hyperparameters, metrics, preprocessing, ...); name, version,
            format, signatures, library versions and date are added.
        root: the directory that holds every model's versions.
        format: "saved_model" (every endpoint), "onnx" or "litert" (the `serve` endpoint).

    Raises:
        ExportError: the format is unknown, its converter is not installed, or it cannot
            express the model (nothing is written then).
    """
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; one of {', '.join(FORMATS)}")
    if "serve" not in endpoints:
        raise ValueError(f"endpoints must include 'serve', got {sorted(endpoints)}")
    reserved = sorted(set(card) & {"name", "version", "format", "signatures", "load",
                                   "libraries", "exported"})
    if reserved:
        raise ValueError(f"the model card's {reserved} are written by export; leave them out")
    if format != "saved_model":
        # Before the lock and the version: a refused format leaves the root as it was.
        _require(format)
        endpoints = {"serve": endpoints["serve"]}
        artifact = _convert(model, endpoints, format)
    model_dir = Path(root) / name
    with runs.locked(root, "export root"):
        # Holding the lock, no other export is writing: hidden temporaries are a killed one's.
        for stale in model_dir.glob(".tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)
        version = next_version(model_dir)
        target = model_dir / str(version)
        with atomic_path(target) as temporary:
            if format == "saved_model":
                _archive(model, endpoints).write_out(str(temporary), verbose=False)
                load = (f"tf.saved_model.load('{target}').signatures['serve'] or "
                        f"keras.layers.TFSMLayer('{target}', call_endpoint='serve')")
            else:
                temporary.mkdir()
                file = f"{name}{FORMATS[format]}"
                (temporary / file).write_bytes(artifact)
                load = _LOADS[format].format(path=target / file)
            model.save(temporary / f"{name}.keras")
            full_card = _card(name, version, format, card, endpoints, load)
            (temporary / CARD_FILE).write_text(json.dumps(full_card, indent=2, default=str) + "\n")
        return target


_LOADS = {
    "onnx": "onnxruntime.InferenceSession('{path}').run(None, {{input name: array}})",
    "litert": "ai_edge_litert.interpreter.Interpreter(model_path='{path}')"
              ".get_signature_runner('serve')(**{{input name: array}}) "
              "(or tf.lite.Interpreter)",
}


def _card(name, version, format, card, endpoints, load):  # noqa: A002
    return {
        "name": name,
        "version": version,
        "format": format,
        **card,
        "signatures": {
            endpoint: [
                {"shape": list(spec.shape), "dtype": spec.dtype.name} for spec in signature
            ]
            for endpoint, (_, signature) in endpoints.items()
        },
        "load": load,
        "libraries": library_versions(),
        "exported": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _archive(model: keras.Model, endpoints: Mapping[str, tuple[Any, list[Any]]]):
    import keras  # TensorFlow: only when writing an export

    archive = keras.export.ExportArchive()
    archive.track(model)
    for endpoint, (function, signature) in endpoints.items():
        archive.add_endpoint(endpoint, function, input_signature=signature)
    return archive


# The packages a format's converter and the runtime that checks its file need, beyond
# TensorFlow (which converts to LiteRT and runs it when ai-edge-litert is absent).
_PACKAGES = {"onnx": ("tf2onnx", "onnx", "onnxruntime"), "litert": ()}


def _require(format: str) -> None:  # noqa: A002
    """Refuses, naming the pip extra, when a package the format needs cannot be imported."""
    for package in _PACKAGES.get(format, ()):
        try:
            importlib.import_module(package)
        except ImportError as error:
            raise ExportError(
                f"the {format} format needs {', '.join(_PACKAGES[format])} ({error}); "
                f"install them with: pip install 'zoo[{format}]'") from None


def _refused(format: str, error: Exception,  # noqa: A002
             what: str = "the {format} format cannot express this model") -> ExportError:
    """The converter's reason in one line: its first error naming an op, else its first line
    (MLIR's `<unknown>:0: error: loc(...): ` prefixes dropped)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    errors = [line.split("error: ", 1)[1] for line in lines if "error: " in line] or lines
    errors = [line.rsplit("): ", 1)[-1] if line.startswith("loc(") else line for line in errors]
    named = [line for line in errors if re.search(r"\bops?\b", line, re.IGNORECASE)]
    reason = (named or errors or [type(error).__name__])[0]
    return ExportError(f"{what.format(format=format)}: {reason[:300]}")


def _to_onnx(saved_model: str) -> bytes:
    """The SavedModel's `serve` signature, frozen and converted by tf2onnx (as its
    `--saved-model` command line does); inputs and outputs keep the signature's names."""
    _require("onnx")
    import onnx
    from tf2onnx import convert, tf_loader

    logging.getLogger("tf2onnx").setLevel(logging.CRITICAL)  # failures come back as the reason
    tf_logger = logging.getLogger("tensorflow")  # tf2onnx's TF1 freezing: deprecation notices
    level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)
    try:
        graph_def, inputs, outputs, renames = tf_loader.from_saved_model(
            saved_model, None, None, tag=["serve"], signatures=["serve"],
            return_tensors_to_rename=True)
        proto, _ = convert.from_graph_def(graph_def, input_names=inputs, output_names=outputs,
                                          opset=ONNX_OPSET, tensors_to_rename=renames)
    except Exception as error:  # tf2onnx raises many kinds; each means "cannot express"
        raise _refused("onnx", error) from None
    finally:
        tf_logger.setLevel(level)
    try:
        # tf2onnx logs the nodes it fails on and goes on: ONNX's full check (types too, as
        # onnxruntime's loader) is what catches them.
        onnx.checker.check_model(proto, full_check=True)
    except Exception as error:
        raise _refused("onnx", error, "the {format} format cannot express this model: "
                                      "tf2onnx's graph fails ONNX type inference") from None
    return proto.SerializeToString()


def _to_litert(saved_model: str) -> bytes:
    """The SavedModel's `serve` signature, converted by TensorFlow's LiteRT converter with
    builtin ops only (no Flex delegate, which standalone runtimes lack)."""
    import tensorflow as tf

    if not hasattr(tf.lite, "TFLiteConverter"):
        raise ExportError("the litert format needs tf.lite.TFLiteConverter, which this "
                          f"TensorFlow {tf.__version__} lacks")
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model, signature_keys=["serve"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        return converter.convert()
    except Exception as error:  # ConverterError, or a lowering pass giving up
        raise _refused("litert", error) from None


def _convert(model: keras.Model, endpoints: Mapping[str, tuple[Any, list[Any]]],
             format: str) -> bytes:  # noqa: A002
    """The `serve` endpoint in `format`, converted from a temporary SavedModel of it."""
    with tempfile.TemporaryDirectory() as directory:
        _archive(model, {"serve": endpoints["serve"]}).write_out(directory, verbose=False)
        artifact = _CONVERTERS[format](directory)
    _verify(format, artifact, *endpoints["serve"])
    return artifact


def outputs_by_name(outputs: Any) -> dict[str, Any]:
    """An endpoint's result by the names a SavedModel signature gives it: a dict's keys, else
    `output_0`, `output_1`, ... in order."""
    if isinstance(outputs, Mapping):
        return dict(outputs)
    if isinstance(outputs, (list, tuple)):
        return {f"output_{index}": value for index, value in enumerate(outputs)}
    return {"output_0": outputs}


def probe(signature: list[Any], batch: int = 2, seed: int = 0) -> dict[str, Any]:
    """Seeded inputs for `signature`, by input name: every pixel value for integer dtypes,
    [-1, 1] for floats; unknown sizes are `batch`."""
    import numpy as np

    rng = np.random.default_rng(seed)
    inputs = {}
    for index, spec in enumerate(signature):
        shape = [batch if size is None else size for size in spec.shape]
        dtype = spec.dtype.as_numpy_dtype
        if np.issubdtype(dtype, np.integer):
            values = rng.integers(0, 256, shape)
        else:
            values = rng.uniform(-1, 1, shape)
        inputs[spec.name or f"input_{index}"] = values.astype(dtype)
    return inputs


def _verify(format: str, artifact: bytes, function: Any, signature: list[Any]) -> None:  # noqa: A002
    """Refuses a converted file whose runtime cannot run it or disagrees with the model."""
    import numpy as np

    inputs = probe(signature)
    expected = {name: np.asarray(value) for name, value
                in outputs_by_name(function(*inputs.values())).items()}
    try:
        actual = _RUNNERS[format](artifact, inputs)
    except ExportError:
        raise
    except Exception as error:
        raise _refused(format, error, "its runtime cannot run the converted model") from None
    if sorted(actual) != sorted(expected):
        raise ExportError(f"the {format} file's outputs {sorted(actual)} are not the model's "
                          f"{sorted(expected)}")
    for name, value in expected.items():
        got = np.asarray(actual[name])
        if got.shape != value.shape or not np.allclose(got, value, rtol=TOLERANCE,
                                                       atol=TOLERANCE):
            difference = (float(np.max(np.abs(got - value))) if got.shape == value.shape
                          else f"shape {got.shape} against {value.shape}")
            raise ExportError(f"the {format} format cannot express this model faithfully: "
                              f"output {name!r} differs from the model's ({difference})")


def _run_onnx(artifact: bytes, inputs: dict[str, Any]) -> dict[str, Any]:
    _require("onnx")
    import onnxruntime

    session = onnxruntime.InferenceSession(artifact, providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    return dict(zip(names, session.run(names, inputs)))


def _run_litert(artifact: bytes, inputs: dict[str, Any]) -> dict[str, Any]:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806
    runner = Interpreter(model_content=artifact).get_signature_runner("serve")
    return runner(**inputs)


_CONVERTERS = {"onnx": _to_onnx, "litert": _to_litert}
_RUNNERS = {"onnx": _run_onnx, "litert": _run_litert}
