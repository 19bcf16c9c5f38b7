"""Every entry under Keras' "mixed_bfloat16" policy: builds, trains, agrees with float32, keeps
its policy through a `.keras` reload in a float32 process, exports float32/uint8 signatures.

Parametrized over `zoo.list()`, so a new entry is covered, each at its `tiny` preset. Inputs
come from each task's export signature.
"""

import logging
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import zoo
from zoo import precision, training
from zoo.export import export
from zoo.precision import DTYPE_POLICIES, policy_scope

MIXED = "mixed_bfloat16"
BATCH = 8
# Same weights, float32 against mixed_bfloat16, at inference. bfloat16 keeps 8 significant
# bits: each rounding is off by at most 2^-9 relative, each op by ~2^-8 = 0.0039. Outputs here
# are probabilities or sigmoid reconstructions in [0, 1], reached through at most ~10 rounded
# ops in sequence (the normalisation layers keep the scale near 1); added up in the worst case,
# 10 * 2^-8 = 0.04, so no output may differ by more than 0.05. (Measured: ~0.001-0.01.)
TOLERANCE = 0.05


def small(name):
    """The entry's `tiny` preset's hyperparameters (its fit settings left out)."""
    entry = zoo.get_entry(name)
    return {key: value for key, value in entry.presets["tiny"].items() if key in entry.hparams}


def example(name, model, seed=0):
    """A batch for `model` from its task's `serve` signature, and labels when it classifies."""
    (spec,) = zoo.get_entry(name).task.endpoints(model)["serve"][1]
    rng = np.random.default_rng(seed)
    shape = (BATCH, *spec.shape[1:])
    if spec.dtype.name == "uint8":
        x = rng.integers(0, 256, shape, dtype=np.uint8)
    else:
        x = rng.uniform(0.1, 0.9, shape).astype(spec.dtype.name)
    classes = getattr(model, "num_classes", None)
    y = None if classes is None else np.eye(classes, dtype="float32")[np.arange(BATCH) % classes]
    return x, y


def build(name, policy, seed=0):
    training.set_seed(seed)
    model = zoo.get(name, dtype_policy=policy, **small(name))
    x, y = example(name, model)
    training.adapt_preprocessing(model, x)
    return model, x, y


_TRAINED = {}


def trained(name):
    """The mixed_bfloat16 model of `name` after one training step (cached per entry)."""
    if name not in _TRAINED:
        model, x, y = build(name, MIXED)
        logs = model.train_on_batch(x, y, return_dict=True)
        _TRAINED[name] = model, x, y, logs
    return _TRAINED[name]


def kernel_layers(model):
    return [layer for layer in model._flatten_layers(include_self=False)
            if getattr(layer, "kernel", None) is not None or hasattr(layer, "cell")]


# The entries whose recipe is bfloat16 (bench/RESULTS.md); every other is float32.
BFLOAT16_RECIPES = {"cifar_airbench", "cifar_airbench_wide"}


def test_every_entry_has_the_dtype_policy_hyperparameter():
    native, _ = precision.bfloat16_support()
    for name in zoo.list():
        described = zoo.describe(name)
        recipe = MIXED if name in BFLOAT16_RECIPES else "float32"
        assert described["dtype_policy"]["recipe"] == recipe, name
        default = recipe if native else "float32"
        assert described["hyperparameters"]["dtype_policy"]["default"] == default, name
        assert described["dtype_policy"]["default"] == default, name
        assert described["hyperparameters"]["dtype_policy"]["valid"] == list(DTYPE_POLICIES)
    with pytest.raises(zoo.HyperparameterError, match="dtype_policy"):
        zoo.get("sparse_autoencoder", dtype_policy="mixed_float16")


@pytest.mark.parametrize("support,expected", [("native", MIXED), ("emulated", "float32")])
def test_a_bfloat16_recipe_builds_in_bfloat16_only_where_it_is_native(monkeypatch, support,
                                                                       expected):
    monkeypatch.setenv(precision.BFLOAT16_VARIABLE, support)
    choice = zoo.describe("cifar_airbench")["dtype_policy"]
    assert choice == {"recipe": MIXED, "default": expected,
                      "why": choice["why"]} and support in choice["why"]
    assert zoo.get("cifar_airbench", width=8).dtype_policy.name == expected
    assert zoo.get_entry("cifar_airbench").resolve("tiny")["dtype_policy"] == expected
    assert zoo.get("lstm", preset="tiny").dtype_policy.name == "float32"


def test_the_cpu_flags_decide_where_the_variable_is_unset(tmp_path, monkeypatch):
    monkeypatch.delenv(precision.BFLOAT16_VARIABLE, raising=False)
    flags = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma{}\n\nprocessor\t: 1\n"
    (tmp_path / "bf16").write_text(flags.format(" avx512f avx512_bf16"))
    (tmp_path / "avx2").write_text(flags.format(""))
    assert precision.bfloat16_support(str(tmp_path / "bf16")) == (True, "the CPU has avx512_bf16")
    native, why = precision.bfloat16_support(str(tmp_path / "avx2"))
    assert not native and "no bfloat16 units" in why
    native, why = precision.bfloat16_support(str(tmp_path / "missing"))
    assert not native and "unreadable" in why


def test_an_explicit_bfloat16_policy_is_obeyed_with_one_warning_where_emulated(monkeypatch,
                                                                               caplog):
    monkeypatch.setenv(precision.BFLOAT16_VARIABLE, "emulated")
    monkeypatch.setattr(precision, "_warned", set())
    with caplog.at_level(logging.WARNING, logger="zoo.precision"):
        models = [zoo.get("sparse_autoencoder", hidden_units=4, dtype_policy=MIXED)
                  for _ in range(2)]
    assert all(model.dtype_policy.name == MIXED for model in models)
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1 and "emulates" in warnings[0], warnings


def test_zoo_get_follows_keras_global_policy_when_none_is_given():
    with policy_scope(MIXED):
        assert zoo.get("sparse_autoencoder", hidden_units=4).dtype_policy.name == MIXED
        given = zoo.get("sparse_autoencoder", hidden_units=4, dtype_policy="float32")
        assert given.dtype_policy.name == "float32"
    assert zoo.get("sparse_autoencoder", hidden_units=4).dtype_policy.name == "float32"


def test_build_restores_the_global_policy():
    before = keras.config.dtype_policy().name
    model = zoo.get("sparse_autoencoder", dtype_policy=MIXED, hidden_units=4)
    assert model.dtype_policy.name == MIXED
    assert keras.config.dtype_policy().name == before


def test_cli_dtype_policy_flag_is_the_hyperparameter():
    from zoo.cli import build_parser

    for command in ("train", "tune"):
        args = build_parser().parse_args([command, "lstm", "--dtype-policy", MIXED])
        assert args.set == [f"dtype_policy={MIXED}"]
    assert zoo.get_entry("lstm").parse("dtype_policy", MIXED) == MIXED


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo.list())
def test_trains_one_step_in_bfloat16_with_float32_variables(name):
    model, _, _, logs = trained(name)
    assert np.isfinite(logs["loss"]), logs
    assert model.dtype_policy.name == MIXED
    assert model.compute_dtype == "bfloat16"
    floats = [w for w in model.weights if "float" in str(w.dtype)]
    assert floats and all(w.dtype == "float32" for w in floats), \
        sorted({(w.path, str(w.dtype)) for w in floats if w.dtype != "float32"})
    # The heavy layers compute in bfloat16; the float32 islands say so with dtype="float32".
    assert any(layer.compute_dtype == "bfloat16" for layer in kernel_layers(model))


@pytest.mark.slow
@pytest.mark.parametrize("name", zoo.list())
def test_same_weights_agree_under_float32_and_mixed_bfloat16(name):
    reference, x, _ = build(name, "float32")
    mixed, _, _ = build(name, MIXED)
    mixed.set_weights(reference.get_weights())
    expected = np.asarray(reference(x, training=False))
    got = mixed(x, training=False)
    assert got.dtype == "float32"  # outputs are float32 under any policy
    difference = np.max(np.abs(np.asarray(got) - expected))
    # (It may be 0: three_layer_convnet's 1e-3-scale weights give uniform probabilities.)
    assert difference <= TOLERANCE, difference


LOAD_IN_FLOAT32 = textwrap.dedent(
    """
    import sys, json
    import keras, numpy as np
    import zoo
    assert keras.config.dtype_policy().name == "float32"
    results, outputs = {}, {}
    for name in sys.argv[2:]:
        model = zoo.load_model(f"{sys.argv[1]}/{name}.keras")  # registers the classes first
        x = np.load(f"{sys.argv[1]}/{name}.npy")
        layers = [l for l in model._flatten_layers(include_self=False)
                  if getattr(l, "kernel", None) is not None]
        results[name] = {"model": model.dtype_policy.name,
                         "layers": sorted({l.dtype_policy.name for l in layers})}
        outputs[name] = np.asarray(model(x, training=False))
    np.savez(f"{sys.argv[1]}/outputs.npz", **outputs)
    print(json.dumps(results))
    """
)


def test_keras_file_keeps_the_policy_in_a_float32_process(tmp_path, subprocess_env):
    names = zoo.list()
    expected = {}
    for name in names:
        model, x, _, _ = trained(name)
        model.save(tmp_path / f"{name}.keras")
        np.save(tmp_path / f"{name}.npy", x)
        expected[name] = (np.asarray(model(x, training=False)),
                          sorted({layer.dtype_policy.name for layer in kernel_layers(model)
                                  if getattr(layer, "kernel", None) is not None}))
    script = tmp_path / "load.py"
    script.write_text(LOAD_IN_FLOAT32)
    result = subprocess.run([sys.executable, str(script), str(tmp_path), *names],
                            env=subprocess_env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    import json

    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    outputs = np.load(tmp_path / "outputs.npz")
    for name in names:
        assert loaded[name]["model"] == MIXED, name
        assert loaded[name]["layers"] == expected[name][1], name
        np.testing.assert_allclose(outputs[name], expected[name][0], atol=1e-6, err_msg=name)


# The SavedModels load with zoo unimportable (as tests/test_export.py).
LOAD_WITHOUT_ZOO = textwrap.dedent(
    """
    import sys, json
    sys.modules["zoo"] = None
    import numpy as np
    import tensorflow as tf
    root, names = sys.argv[1], sys.argv[2:]
    report, outputs = {}, {}
    for name in names:
        x = np.load(f"{root}/{name}.npy")
        loaded = tf.saved_model.load(f"{root}/export/{name}/1")
        for signature, function in loaded.signatures.items():
            (spec,) = function.structured_input_signature[1].values()
            result = function(tf.constant(x))
            # the model's own output, named by family; class_index is int64 by design
            value = next(result[key] for key in ("probabilities", "reconstruction", "hidden")
                         if key in result)
            report[f"{name}/{signature}"] = [spec.dtype.name, value.dtype.name]
            outputs[f"{name}/{signature}"] = value.numpy()
    np.savez(f"{root}/exported.npz", **outputs)
    print(json.dumps(report))
    """
)


def test_export_of_a_bfloat16_model_takes_and_returns_float32(tmp_path, subprocess_env):
    names = zoo.list()
    served = {}
    for name in names:
        model, x, _, _ = trained(name)
        entry = zoo.get_entry(name)
        endpoints = entry.task.endpoints(model)
        export(model, name, endpoints, {}, root=tmp_path / "export")
        np.save(tmp_path / f"{name}.npy", x)
        served[name] = (endpoints["serve"][1][0].dtype.name,
                        np.asarray(model(x.astype("float32"), training=False)))
    script = tmp_path / "load.py"
    script.write_text(LOAD_WITHOUT_ZOO)
    result = subprocess.run([sys.executable, str(script), str(tmp_path), *names],
                            env=subprocess_env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    import json

    report = json.loads(result.stdout.strip().splitlines()[-1])
    outputs = np.load(tmp_path / "exported.npz")
    for name in names:
        assert report[f"{name}/serve"] == [served[name][0], "float32"], name
        assert served[name][0] in ("float32", "uint8")
        # The same bfloat16 computation, but the SavedModel's graph may order or fuse its
        # roundings differently from eager calls: outputs rounded to bfloat16 (the
        # autoencoder's sigmoid) moved by 2 steps of 2^-9 at 0.5; allow 4 steps at 1, 2^-6.
        np.testing.assert_allclose(outputs[f"{name}/serve"], served[name][1], atol=2**-6,
                                   err_msg=name)
    assert all(output == "float32" for _, output in report.values()), report


def test_policy_scope_is_keras_own():
    with policy_scope(MIXED) as policy:
        assert isinstance(policy, keras.DTypePolicy)
        assert keras.config.dtype_policy().name == MIXED
        assert keras.layers.Dense(2).compute_dtype == "bfloat16"


@pytest.mark.parametrize("support,expected", [("native", MIXED), ("emulated", "float32")])
def test_zoo_describe_says_which_policy_and_why(cli, monkeypatch, support, expected):
    monkeypatch.setenv(precision.BFLOAT16_VARIABLE, support)
    code, out, err = cli("describe", "cifar_airbench")
    assert code == 0, err
    line = next(line for line in out.splitlines() if line.startswith("dtype:"))
    assert line.startswith(f"dtype:  {expected} (") and support in line, line
