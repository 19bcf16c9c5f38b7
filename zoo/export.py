"""Export: one versioned directory holding a SavedModel, an ONNX and a LiteRT file (any of
them) that load without zoo, a `.keras` copy and a JSON model card.

Layout, as TensorFlow Serving expects (every version holds the formats its export asked for):

    saved_models/NAME/VERSION/saved_model.pb, variables/   SavedModel: `serve` and the others
    saved_models/NAME/VERSION/NAME.onnx       the `serve` endpoint in ONNX
    saved_models/NAME/VERSION/NAME.tflite     the `serve` endpoint in LiteRT
    saved_models/NAME/VERSION/NAME.keras      the Keras model, for fine-tuning with zoo installed
    saved_models/NAME/VERSION/model_card.json  each format's file, every signature's inputs and
                                               outputs (name, shape, dtype), the caller's fields

ONNX and LiteRT hold only the `serve` endpoint, with the SavedModel's input names and dtypes
(uint8 images, float32 windows or patches) and its output names (`output_0` for a single
tensor, the keys of a dict). They are converted from the same `keras.export.ExportArchive`
function the SavedModel holds: ONNX with tf2onnx (`pip install 'zoo[onnx]'`), LiteRT with
TensorFlow's own converter (builtin ops only, so any LiteRT runtime runs it; `zoo[litert]` adds
the standalone `ai-edge-litert` interpreter). A model one asked format cannot express refuses
the whole export with the converter's reason (`ExportError`), and no version is written.

A version is written into a hidden folder `NAME/.zoo-export-*` that carries a marker file,
converters' scratch SavedModels included, and renamed to its number when complete: an
interrupted export never leaves a directory that looks like a valid version, and the next
export removes only folders carrying that marker. Anything else in the root is left alone: an
entry named like a version that is not one (a file named `1`) only takes its number.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib
import json
import logging
import os
import platform
import re
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import runs
from zoo.errors import UserError

if TYPE_CHECKING:
    import keras

__all__ = ["CARD_FILE", "FORMATS", "ExportError", "export", "formats", "library_versions",
           "next_version", "outputs_by_name", "probe"]

logger = logging.getLogger(__name__)

CARD_FILE = "model_card.json"
# format -> the suffix of its file in the version directory (None: the directory is a SavedModel)
FORMATS = {"saved_model": None, "onnx": ".onnx", "litert": ".tflite"}
ALIASES = {"savedmodel": "saved_model", "tflite": "litert"}
SAVED_MODEL_FILE = "saved_model.pb"
ONNX_OPSET = 17  # onnxruntime >= 1.13 runs it
# A converted file must give the model's outputs on a probe batch within this, or it is refused.
TOLERANCE = 1e-4
# An unfinished version: a folder named with this prefix that holds the marker file. Both are
# zoo's own, so a user's `.tmp-*` (or anything else) in the root is never taken for one.
UNFINISHED_PREFIX = ".zoo-export-"
UNFINISHED_MARKER = ".zoo-export-unfinished"
SCRATCH_DIR = ".zoo-scratch"  # inside the unfinished folder: the converters' serve-only SavedModel
_VERSION = re.compile(r"[0-9]+")


class ExportError(UserError, ValueError):
    """The format cannot express the model, its converter is not installed, or the export root
    cannot take a version."""


def library_versions() -> dict[str, str]:
    """The versions of Python and the packages an export depends on, for the model card."""
    versions = {"python": platform.python_version()}
    for package in ("zoo", "tensorflow", "keras", "numpy", "h5py"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def formats(names: str | Sequence[str]) -> tuple[str, ...]:
    """The export formats `names` asks for, in order and once each.

    Args:
        names: a format, a comma-separated list of them (`"saved_model,onnx"`), or a sequence;
            `savedmodel` is an alias of `saved_model`, `tflite` of `litert`.

    Returns:
        The formats' canonical names (keys of `FORMATS`).

    Raises:
        ExportError: an unknown name, or none at all.
    """
    items = [names] if isinstance(names, str) else list(names)
    chosen: list[str] = []
    for item in items:
        for name in str(item).split(","):
            name = name.strip().lower().replace("-", "_")
            if not name:
                continue
            name = ALIASES.get(name, name)
            if name not in FORMATS:
                raise ExportError(f"unknown export format {name!r}; one or more of "
                                  f"{', '.join(FORMATS)}, separated by commas")
            if name not in chosen:
                chosen.append(name)
    if not chosen:
        raise ExportError(f"no export format given in {names!r}; one or more of "
                          f"{', '.join(FORMATS)}, separated by commas")
    return tuple(chosen)


def next_version(model_dir: str | Path) -> int:
    """1 + the highest number naming anything under `model_dir` (1 when nothing does).

    An entry named like a version that is not one (a file, a folder zoo did not write) takes
    its number too: an export never writes over it, and each version is newer than it.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return 1
    numbers = [int(path.name) for path in model_dir.iterdir() if _VERSION.fullmatch(path.name)]
    return max(numbers, default=0) + 1


def export(
    model: keras.Model,
    name: str,
    endpoints: Mapping[str, tuple[Any, list[Any]]],
    card: Mapping[str, Any],
    root: str | Path = "saved_models",
    format: str | Sequence[str] = "saved_model",  # noqa: A002 (the word Keras' model.export uses)
    *,
    convert: tuple[keras.Model, Mapping[str, tuple[Any, list[Any]]]] | None = None,
) -> Path:
    """Writes `model` in every format asked for to ONE new `root/name/<next version>/`.

    One export at a time writes to a root (an OS lock, `zoo.runs.locked`), so two exports get
    two versions; unfinished folders that a killed export left (zoo's marker inside) are removed.

    Args:
        model: the trained model.
        name: the entry's name.
        endpoints: `{signature name: (function, [tf.TensorSpec, ...])}`; must include `serve`.
            A function may return a tensor or a dict of tensors.
        card: model-card fields (hyperparameters, metrics, preprocessing, ...); name, version,
            formats, signatures, library versions and date are added.
        root: the directory that holds every model's versions.
        format: one format or several (a sequence, or comma-separated): "saved_model" (every
            endpoint), "onnx", "litert" (the `serve` endpoint); see `formats`.
        convert: `(model, endpoints)` whose `serve` endpoint the ONNX and LiteRT files hold,
            when not `model`'s: a bfloat16 model's float32 twin, as neither format has bfloat16
            convolutions. The SavedModel and the `.keras` copy hold `model`.

    Returns:
        The version directory.

    Raises:
        ExportError: a format is unknown, its converter is not installed, or it cannot express
            the model; `root` or `root/name` is not a directory (nothing is written then).
    """
    chosen = formats(format)
    if "serve" not in endpoints:
        raise ValueError(f"endpoints must include 'serve', got {sorted(endpoints)}")
    reserved = sorted(set(card) & {"name", "version", "formats", "signatures", "keras",
                                   "libraries", "exported"})
    if reserved:
        raise ValueError(f"the model card's {reserved} are written by export; leave them out")
    for wanted in chosen:  # before the lock: a missing converter leaves the root as it was
        _require(wanted)
    root = Path(root)
    model_dir = root / name
    for directory in (root, model_dir):
        if directory.exists() and not directory.is_dir():
            raise ExportError(f"the export folder {directory} is not a directory; move it "
                              "away or export to another root (--root)")
    held = endpoints if "saved_model" in chosen else {"serve": endpoints["serve"]}
    created = not model_dir.exists()
    with runs.locked(root, "export root"):
        model_dir.mkdir(exist_ok=True)
        _remove_unfinished(model_dir)
        version = next_version(model_dir)
        target = model_dir / str(version)
        try:
            with _unfinished(model_dir) as temporary:
                described = _write(model, name, held, chosen, temporary, target, convert)
                full_card = {"name": name, "version": version, **card, **described,
                             "keras": f"{name}.keras",
                             "libraries": library_versions(),
                             "exported": datetime.datetime.now(datetime.timezone.utc)
                             .isoformat(timespec="seconds")}
                (temporary / CARD_FILE).write_text(
                    json.dumps(full_card, indent=2, default=str) + "\n")
                _publish(temporary, target)
        except BaseException:
            if created:  # a refused first export leaves no empty model folder behind
                with contextlib.suppress(OSError):
                    model_dir.rmdir()
            raise
        return target


def _remove_unfinished(model_dir: Path) -> None:
    """Removes the unfinished versions killed exports left: zoo's folders, marker inside (the
    caller holds the root's lock, so no export is writing one)."""
    for path in model_dir.glob(f"{UNFINISHED_PREFIX}*"):
        if path.is_dir() and not path.is_symlink() and (path / UNFINISHED_MARKER).is_file():
            logger.info("removing %s, an export that did not finish", path)
            shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def _unfinished(model_dir: Path) -> Iterator[Path]:
    """A new hidden folder in `model_dir`, marked as zoo's unfinished export; removed with
    everything in it if the block fails."""
    temporary = model_dir / f"{UNFINISHED_PREFIX}{uuid.uuid4().hex[:12]}"
    temporary.mkdir()
    try:
        (temporary / UNFINISHED_MARKER).write_text(f"{os.getpid()}\n")
        yield temporary
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise


def _publish(temporary: Path, target: Path) -> None:
    """Renames the finished `temporary` to `target`, which must not exist: a rename onto an
    empty folder would replace it, and nothing zoo did not write is replaced."""
    (temporary / UNFINISHED_MARKER).unlink()
    if os.path.lexists(target):
        raise ExportError(f"{target} appeared while exporting; nothing was written over it, "
                          "export again for the next version")
    os.rename(temporary, target)


def _write(model: keras.Model, name: str, endpoints: Mapping[str, tuple[Any, list[Any]]],
           chosen: Sequence[str], temporary: Path, target: Path,
           convert: tuple[keras.Model, Mapping[str, tuple[Any, list[Any]]]] | None,
           ) -> dict[str, Any]:
    """Writes each format and the `.keras` copy into `temporary`; returns the card's
    `formats` and `signatures`."""
    archive, functions = _archive(model, endpoints)
    described: dict[str, Any] = {}
    if "saved_model" in chosen:
        archive.write_out(str(temporary), verbose=False)
        described["saved_model"] = {
            "file": SAVED_MODEL_FILE, "signatures": list(endpoints),
            "load": f"tf.saved_model.load('{target}').signatures['serve'] or "
                    f"keras.layers.TFSMLayer('{target}', call_endpoint='serve')"}
    converted = [wanted for wanted in chosen if wanted != "saved_model"]
    if converted:
        source_model, source = convert if convert is not None else (model, endpoints)
        serve = {"serve": source["serve"]}
        if convert is None and "saved_model" in chosen:
            saved_model = temporary  # the version's own SavedModel: its `serve` is converted
        else:
            # The scratch SavedModel lives in the unfinished folder, so a killed conversion's
            # is removed with it (never left in the system's temporary folder).
            saved_model = temporary / SCRATCH_DIR
            _archive(source_model, serve)[0].write_out(str(saved_model), verbose=False)
        for wanted in converted:
            artifact = _CONVERTERS[wanted](str(saved_model))
            _verify(wanted, artifact, *serve["serve"])
            file = f"{name}{FORMATS[wanted]}"
            (temporary / file).write_bytes(artifact)
            described[wanted] = {"file": file, "signatures": ["serve"],
                                 "load": _LOADS[wanted].format(path=target / file)}
        shutil.rmtree(temporary / SCRATCH_DIR, ignore_errors=True)
    model.save(temporary / f"{name}.keras")
    return {"formats": described, "signatures": _signatures(endpoints, functions)}


def _input_name(spec: Any, index: int) -> str:
    """An input's name in the SavedModel signature (and the converted files)."""
    return spec.name or f"input_{index}"


def _signatures(endpoints: Mapping[str, tuple[Any, list[Any]]],
                functions: Mapping[str, Any]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """`{endpoint: {"inputs": [...], "outputs": [...]}}`, each tensor's name, shape (None:
    any size) and dtype, the outputs as the traced function gives them."""
    def tensor(name: str, value: Any) -> dict[str, Any]:
        return {"name": name, "shape": list(value.shape), "dtype": value.dtype.name}

    described = {}
    for endpoint, (_, signature) in endpoints.items():
        traced = functions[endpoint].get_concrete_function()
        described[endpoint] = {
            "inputs": [tensor(_input_name(spec, index), spec)
                       for index, spec in enumerate(signature)],
            "outputs": [tensor(output, value) for output, value
                        in outputs_by_name(traced.structured_outputs).items()],
        }
    return described


_LOADS = {
    "onnx": "onnxruntime.InferenceSession('{path}').run(None, {{input name: array}})",
    "litert": "ai_edge_litert.interpreter.Interpreter(model_path='{path}')"
              ".get_signature_runner('serve')(**{{input name: array}}) "
              "(or tf.lite.Interpreter)",
}


def _archive(model: keras.Model, endpoints: Mapping[str, tuple[Any, list[Any]]],
             ) -> tuple[Any, dict[str, Any]]:
    """A `keras.export.ExportArchive` of `model` with `endpoints`, and each endpoint's
    `tf.function`."""
    import keras  # TensorFlow: only when writing an export

    archive = keras.export.ExportArchive()
    archive.track(model)
    functions = {endpoint: archive.add_endpoint(endpoint, function, input_signature=signature)
                 for endpoint, (function, signature) in endpoints.items()}
    return archive, functions


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
        inputs[_input_name(spec, index)] = values.astype(dtype)
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
    from zoo._quiet import stderr_discarded

    # The interpreter's C++ writes "Created TensorFlow Lite XNNPACK delegate for CPU." to fd 2;
    # a failure still comes back as the exception.
    with stderr_discarded():
        runner = Interpreter(model_content=artifact).get_signature_runner("serve")
        return runner(**inputs)


_CONVERTERS = {"onnx": _to_onnx, "litert": _to_litert}
_RUNNERS = {"onnx": _run_onnx, "litert": _run_litert}
