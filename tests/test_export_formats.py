"""ONNX and LiteRT exports, for every registered entry: each file runs in its own runtime
(onnxruntime; the LiteRT interpreter) in a process that cannot import zoo, on the SavedModel's
inputs (uint8 images, float32 windows or patches), and gives the Keras `serve` endpoint's
outputs, name by name; a format that cannot express an entry refuses it with the reason.

One subprocess per format runs every entry's file. The converters and runtimes are the
`onnx` and `litert` extras (in `.[test]`); a format whose packages are missing is skipped.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import zoo
from zoo import precision
from zoo.export import CARD_FILE, FORMATS, ExportError, export, outputs_by_name
from zoo.training import adapt_preprocessing, set_seed
from zoo_free import WITHOUT_ZOO

NAMES = zoo.list()
CONVERTED = ("onnx", "litert")
TOLERANCE = 1e-4
BATCH = 3  # examples in the fixed inputs; not the probe's 2, so a fixed batch size would show

# What each format cannot express, found by exporting every entry, and the reason it gives.
# Every other entry must export; a new entry the format cannot express is added here.
RECURRENT_LITERT = "'tf.TensorListReserve' op requires element_shape to be"
REFUSED = {
    # tf2onnx converts every entry. (The hand-written cells' loop, before it took
    # `maximum_iterations`, became an ONNX Loop that mixed int32 and int64 step counters.)
    "onnx": {},
    "litert": {
        # Builtin-only LiteRT lowers a loop's TensorList only when its element shape is
        # static (the batch size is not: the SavedModel takes any). Keras' recurrent layers
        # keep one; zoo's loop (`Recurrent`) keeps its outputs only when it returns them.
        name: RECURRENT_LITERT
        for name in ("keras_gru", "keras_lstm", "keras_rnn")
    },
}

# Runs with `zoo` unimportable: the file must stand alone in its runtime.
RUN_WITHOUT_ZOO = WITHOUT_ZOO + textwrap.dedent(
    """
    import json

    import numpy as np

    format, manifest = sys.argv[1:3]
    if format == "onnx":
        import onnxruntime

        def run(path, inputs):
            session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
            names = [output.name for output in session.get_outputs()]
            assert [i.name for i in session.get_inputs()] == list(inputs), session.get_inputs()
            return dict(zip(names, session.run(names, inputs)))
    else:
        try:
            from ai_edge_litert.interpreter import Interpreter
        except ImportError:
            import tensorflow as tf
            Interpreter = tf.lite.Interpreter

        def run(path, inputs):
            runner = Interpreter(model_path=path).get_signature_runner("serve")
            assert sorted(runner.get_input_details()) == sorted(inputs), runner.get_input_details()
            return runner(**inputs)

    for case in json.load(open(manifest)):
        inputs = dict(np.load(case["inputs"]))
        np.savez(case["outputs"], **run(case["file"], inputs))
        print("ran", case["file"])
    """
)


@pytest.fixture(scope="module")
def exports(tmp_path_factory, subprocess_env):
    """Every entry (tiny preset, preprocessing adapted on its example data) exported in each
    format, or refused; then each format's files run in one subprocess without zoo.

    Returns `{(format, name): {"expected", "actual" or "refused", "target"}}`; a format whose
    packages are missing maps to a skip reason.
    """
    directory = tmp_path_factory.mktemp("export-formats")
    root = directory / "saved_models"
    results = {}
    rng = np.random.default_rng(7)
    manifests = {format: [] for format in CONVERTED}
    missing = {}
    for name in NAMES:
        entry = zoo.get_entry(name)
        splits = entry.task.load(entry.task.example(directory / name, 0), seed=0)
        set_seed(0)
        # float32: ONNX and LiteRT have no bfloat16 convolutions; `zoo export` converts a
        # bfloat16 model's float32 twin (tested below).
        model = zoo.get(entry.name, preset="tiny", dtype_policy="float32")
        adapt_preprocessing(model, splits.x_train)
        endpoints = entry.task.endpoints(model)
        function, signature = endpoints["serve"]
        inputs = {}
        for spec in signature:
            shape = [BATCH if size is None else size for size in spec.shape]
            dtype = spec.dtype.as_numpy_dtype
            values = (rng.integers(0, 256, shape) if np.issubdtype(dtype, np.integer)
                      else rng.normal(0.5, 0.5, shape))
            inputs[spec.name] = values.astype(dtype)
        expected = {key: np.asarray(value)
                    for key, value in outputs_by_name(function(*inputs.values())).items()}
        np.savez(directory / f"{name}.inputs.npz", **inputs)
        for format in CONVERTED:
            if format in missing:
                continue
            case = {"expected": expected}
            results[format, name] = case
            try:
                case["target"] = export(model, name, endpoints, {"preset": "tiny"},
                                        root=root, format=format)
            except ExportError as error:
                if "pip install" in str(error):
                    missing[format] = str(error)
                    continue
                case["refused"] = str(error)
                continue
            manifests[format].append({
                "name": name,
                "file": str(case["target"] / f"{name}{FORMATS[format]}"),
                "inputs": str(directory / f"{name}.inputs.npz"),
                "outputs": str(directory / f"{name}.{format}.outputs.npz"),
            })
    script = directory / "run_without_zoo.py"
    script.write_text(RUN_WITHOUT_ZOO)
    for format, cases in manifests.items():
        if format in missing or not cases:
            continue
        manifest = directory / f"{format}.json"
        manifest.write_text(json.dumps(cases))
        done = subprocess.run([sys.executable, str(script), format, str(manifest)],
                              capture_output=True, text=True, env=subprocess_env,
                              cwd=directory, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        for case in cases:
            results[format, case["name"]]["actual"] = dict(np.load(case["outputs"]))
    return results, missing


@pytest.mark.parametrize("format", CONVERTED)
@pytest.mark.parametrize("name", NAMES)
def test_exported_file_runs_in_its_runtime_or_is_refused(exports, format, name):
    results, missing = exports
    if format in missing:
        pytest.skip(missing[format])
    case = results[format, name]
    reason = REFUSED[format].get(name)
    if reason is not None:
        assert "refused" in case, f"{name} now exports to {format}; drop it from REFUSED"
        assert case["refused"].startswith(f"the {format} format cannot express this model: ")
        assert reason in case["refused"], case["refused"]
        assert "\n" not in case["refused"], case["refused"]
        return
    assert "refused" not in case, (
        f"{format} refused {name}: {case.get('refused')}; if the format truly cannot express "
        f"it, add it to REFUSED with the reason")
    target = case["target"]
    assert target.parent.name == name and target.name.isdigit()
    assert sorted(p.name for p in target.iterdir()) == sorted(
        [CARD_FILE, f"{name}.keras", f"{name}{FORMATS[format]}"])
    card = json.loads((target / CARD_FILE).read_text())
    assert card["version"] == int(target.name)
    assert list(card["formats"]) == [format]
    assert card["formats"][format]["file"] == f"{name}{FORMATS[format]}"
    assert list(card["signatures"]) == ["serve"]
    actual, expected = case["actual"], case["expected"]
    # The card names each output with the dtype the file gives it.
    outputs = {output["name"]: output for output in card["signatures"]["serve"]["outputs"]}
    assert sorted(outputs) == sorted(expected)
    for key, value in expected.items():
        assert outputs[key]["dtype"] == value.dtype.name, (key, outputs[key])
        assert len(outputs[key]["shape"]) == value.ndim, (key, outputs[key])
    assert sorted(actual) == sorted(expected)
    for key, value in expected.items():
        assert actual[key].shape == value.shape, (key, actual[key].shape, value.shape)
        assert actual[key].dtype == value.dtype, (key, actual[key].dtype, value.dtype)
        np.testing.assert_allclose(actual[key], value, rtol=0, atol=TOLERANCE, err_msg=key)


def test_formats_share_the_version_sequence(exports):
    """ONNX and LiteRT versions of one entry are numbered in one sequence, after each other."""
    results, missing = exports
    targets = [results[format, "sparse_autoencoder"].get("target") for format in CONVERTED
               if format not in missing]
    versions = [int(target.name) for target in targets if target is not None]
    assert versions == list(range(1, len(versions) + 1))


def test_cli_converts_a_bfloat16_model_in_float32(cli, tmp_path, monkeypatch):
    pytest.importorskip("tf2onnx")
    pytest.importorskip("onnxruntime")
    # The set loads in its recipe's bfloat16 where that is native (said so here, whatever the CPU).
    monkeypatch.setenv(precision.BFLOAT16_VARIABLE, "native")
    assert zoo.get_entry("cifar_airbench").dtype_policy_choice()["default"] == "mixed_bfloat16"
    code, out, err = cli("export", "cifar_airbench", "--weights", "cifar10", "--format", "onnx")
    assert code == 0, err  # export verified the ONNX file against the float32 twin's outputs
    target = tmp_path / "saved_models" / "cifar_airbench" / "1"
    assert (target / "cifar_airbench.onnx").is_file()
    card = json.loads((target / CARD_FILE).read_text())
    assert card["dtype_policy_converted"] == "trained in mixed_bfloat16, onnx converted in float32"


def test_cli_refuses_in_one_line_and_names_the_missing_extra(cli, tmp_path, monkeypatch):
    set_seed(0)
    model = zoo.get("keras_rnn")  # --weights FILE.keras rebuilds the default hyperparameters
    model(np.zeros((1, 150, 3), np.float32))
    path = tmp_path / "keras_rnn.keras"
    model.save(path)
    code, out, err = cli("export", "keras_rnn", "--weights", path, "--format", "litert")
    assert code == 1 and out == ""
    assert err.startswith("zoo: error: the litert format cannot express this model: ")
    assert RECURRENT_LITERT in err and err.count("\n") == 1, err
    assert not list((tmp_path / "saved_models").glob("keras_rnn/*")), "a refused export wrote a version"

    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    code, out, err = cli("export", "keras_rnn", "--weights", path, "--format", "onnx")
    assert code == 1 and err.count("\n") == 1, err
    assert "pip install 'zoo[onnx]'" in err, err


def test_cli_writes_every_format_into_one_version(cli, tmp_path):
    """`--format savedmodel,onnx,litert`: one version holds the SavedModel and both files, one
    card lists each; the version TensorFlow Serving serves (the highest) is a SavedModel."""
    wanted = ["saved_model", "onnx", "litert"]
    if not all(importlib.util.find_spec(package) for package in ("tf2onnx", "onnxruntime")):
        wanted.remove("onnx")  # the onnx extra is missing: the rest still go into one version
    name = "sparse_autoencoder"
    given = ",".join("savedmodel" if format == "saved_model" else format for format in wanted)
    code, out, err = cli("export", name, "--weights", "photos", "--format", given)
    assert code == 0, err
    target = tmp_path / "saved_models" / name / "1"
    assert sorted(p.name for p in target.parent.iterdir()) == ["1"]
    assert f"saved_models/{name}/1/" in out
    card = json.loads((target / CARD_FILE).read_text())
    assert list(card["formats"]) == wanted
    for format in wanted:
        assert (target / card["formats"][format]["file"]).is_file(), format
    assert card["formats"]["saved_model"]["signatures"] == ["serve", "encode", "reconstruct"]
    assert (target / f"{name}.keras").is_file() and (target / "variables").is_dir()
    assert not list(target.glob(".zoo-*")), "the unfinished marker or scratch stayed behind"
    serve = card["signatures"]["serve"]
    assert [spec["name"] for spec in serve["inputs"]] == ["patches"]
    assert sorted(spec["name"] for spec in serve["outputs"]) == ["hidden", "reconstruction"]


def test_cli_refuses_every_format_when_one_cannot_express_the_model(cli, tmp_path):
    set_seed(0)
    model = zoo.get("keras_rnn")
    model(np.zeros((1, 150, 3), np.float32))
    path = tmp_path / "keras_rnn.keras"
    model.save(path)
    model_dir = tmp_path / "saved_models" / "keras_rnn"
    model_dir.mkdir(parents=True)
    (model_dir / "1").write_text("not a version")
    code, out, err = cli("export", "keras_rnn", "--weights", path, "--format", "saved_model,litert")
    assert code == 1 and out == ""
    assert err.startswith("zoo: error: the litert format cannot express this model: ")
    assert err.count("\n") == 1, err
    assert sorted(p.name for p in model_dir.iterdir()) == ["1"], "a refused export wrote"
    assert (model_dir / "1").read_text() == "not a version"
    code, out, err = cli("export", "keras_rnn", "--weights", path, "--format", "saved_model,onxx")
    assert code == 1 and "unknown export format 'onxx'" in err and err.count("\n") == 1, err
