"""The registry: lookup, listing, description, overrides, validation and registration errors."""

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import zoo
from zoo.autoencoder import PATCH_RECONSTRUCTION, SparseAutoencoder
from zoo.registry import _REGISTRY, Choice, Float, HParam, Int, register


@pytest.fixture
def scratch_entry():
    """Registers throwaway entries with one hyperparameter, `size`, and removes them afterwards."""
    names = []

    def make(name, size):
        def builder(size):
            """A scratch entry."""
            return {"size": size}

        register(name, task=PATCH_RECONSTRUCTION, hparams={"size": size})(builder)
        names.append(name)
        return zoo.get_entry(name)

    yield make
    for name in names:
        _REGISTRY.pop(name, None)


def test_get_returns_a_compiled_model_with_defaults():
    model = zoo.get("sparse_autoencoder")
    assert isinstance(model, SparseAutoencoder)
    assert model.optimizer is not None and model.compiled
    assert (model.hidden_units, model.weight_decay) == (64, 5e-4)
    assert (model.sparsity_weight, model.sparsity_target) == (3.0, 0.02)


def test_course_preset_sets_the_course_values_and_fit_settings():
    model = zoo.get("sparse_autoencoder", preset="course")
    assert (model.sparsity_weight, model.sparsity_target, model.weight_decay) == (0.01, 0.2, 5e-4)
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    entry = zoo.get_entry("sparse_autoencoder")
    assert entry.fit_settings("course")["batch_size"] == 16
    assert entry.fit_settings()["batch_size"] == 128


def test_loader_options_for_training_are_the_loaders_the_entrys_then_the_presets():
    lstm = zoo.get_entry("lstm")
    # Trains on every training subject; the test windows stay out unless asked for.
    assert lstm.load_settings() == {"validation_fraction": 0.0, "include_test": False}
    assert lstm.load_settings("course") == {"validation_fraction": 0.1,  # its early stopping's
                                            "include_test": False}
    assert zoo.get_entry("cifar_small").load_settings() == {"validation_size": None,
                                                           "classes": None}
    assert zoo.describe("lstm")["load"] == {"validation_fraction": 0.0, "include_test": False}


def test_overrides_and_presets_apply_in_order():
    model = zoo.get("sparse_autoencoder", preset="course", hidden_units=25, learning_rate=0.5)
    assert model.hidden_units == 25
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.5)


def test_list_matches_wildcards():
    assert "sparse_autoencoder" in zoo.list()
    assert zoo.list("*auto*") == ["sparse_autoencoder"]
    assert zoo.list("*lstm*") == ["keras_lstm", "lstm"]
    assert zoo.list("*transformer*") == []


def test_list_filters_by_family_and_an_unknown_family_names_the_families():
    assert zoo.list(family="autoencoder") == ["sparse_autoencoder"]
    assert {"lstm", "keras_lstm"} <= set(zoo.list(family="recurrent"))
    assert zoo.families() == ["autoencoder", "convnets", "recurrent"]
    with pytest.raises(zoo.UnknownModelError, match="unknown family 'transformer'.*convnets"):
        zoo.list(family="transformer")


def test_describe_has_everything_a_user_and_tuner_need():
    described = zoo.describe("sparse_autoencoder")
    assert described["hyperparameters"]["sparsity_target"] == {
        "default": 0.02,
        "type": "float",
        "valid": "(0, 1)",
        "help": "rho: target mean hidden activation",
    }
    assert described["search_space"]["sparsity_weight"]["log"] is True
    assert set(described["search_space"]) >= {
        "hidden_units", "weight_decay", "sparsity_weight", "sparsity_target"
    }
    assert described["metric"]["name"] == "val_reconstruction"
    assert "HDF5" in described["data"]
    assert described["description"].startswith("Sparse autoencoder")
    assert described["presets"]["course"]["optimizer"] == "sgd"


def test_unknown_name_suggests_close_matches():
    with pytest.raises(zoo.UnknownModelError, match="did you mean 'sparse_autoencoder'"):
        zoo.get("sparse_autoencodr")
    with pytest.raises(zoo.UnknownModelError, match="available: .*sparse_autoencoder"):
        zoo.describe("resnet")


def test_unknown_override_names_the_valid_keys():
    with pytest.raises(zoo.HyperparameterError, match="'beta'.*valid keys are: hidden_units, "):
        zoo.get("sparse_autoencoder", beta=3.0)


def test_unknown_preset_lists_presets():
    with pytest.raises(zoo.HyperparameterError, match="presets are: course"):
        zoo.get("sparse_autoencoder", preset="fast")


@pytest.mark.parametrize(
    "override, message",
    [
        ({"sparsity_target": 0.0}, r"sparsity_target must be in \(0, 1\), got 0.0"),
        ({"sparsity_target": 1.0}, r"sparsity_target must be in \(0, 1\), got 1.0"),
        ({"sparsity_weight": -1.0}, r"sparsity_weight must be in \[0, 1000\], got -1.0"),
        ({"weight_decay": -1e-4}, r"weight_decay must be in \[0, 1\]"),
        ({"hidden_units": 0}, r"hidden_units must be in \[1, 65536\], got 0"),
        ({"hidden_units": -5}, r"hidden_units must be in \[1, 65536\]"),
        ({"hidden_units": 2.5}, r"hidden_units must be of type int, got 2.5"),
        ({"hidden_units": True}, r"hidden_units must be of type int"),
        ({"learning_rate": float("nan")}, "learning_rate must be finite"),
        ({"optimizer": "rmsprop"}, r"optimizer must be one of \['adam', 'sgd'\]"),
    ],
)
def test_out_of_range_values_are_refused_with_the_reason(override, message):
    with pytest.raises(zoo.HyperparameterError, match=message):
        zoo.get("sparse_autoencoder", **override)


def test_ints_are_accepted_for_floats_and_integral_floats_for_ints():
    model = zoo.get("sparse_autoencoder", weight_decay=0, hidden_units=32.0)
    assert model.weight_decay == 0.0 and model.hidden_units == 32


def test_parse_converts_command_line_text():
    entry = zoo.get_entry("sparse_autoencoder")
    assert entry.parse("hidden_units", "100") == 100
    assert entry.parse("sparsity_target", "0.05") == 0.05
    with pytest.raises(zoo.HyperparameterError, match="expects a float"):
        entry.parse("sparsity_target", "lots")
    with pytest.raises(zoo.HyperparameterError, match="valid keys are"):
        entry.parse("rho", "0.1")
    with pytest.raises(zoo.HyperparameterError, match=r"must be in \(0, 1\)"):
        entry.parse("sparsity_target", "2")


def test_parse_settings_reads_key_value_texts():
    entry = zoo.get_entry("sparse_autoencoder")
    assert entry.parse_settings(["hidden_units=100", "sparsity_target=0.05"]) == {
        "hidden_units": 100, "sparsity_target": 0.05}
    assert entry.parse_settings([]) == {}
    with pytest.raises(zoo.HyperparameterError, match="expects KEY=VALUE, got 'hidden_units'"):
        entry.parse_settings(["hidden_units"])
    with pytest.raises(zoo.HyperparameterError, match="valid keys are"):
        entry.parse_settings(["rho=0.1"])


def test_registering_a_name_twice_is_an_error(scratch_entry):
    scratch_entry("scratch_model", HParam(3, "[1, 10]"))
    with pytest.raises(ValueError, match="already registered"):
        scratch_entry("scratch_model", HParam(3, "[1, 10]"))


def test_registration_refuses_presets_with_unknown_keys():
    def builder(size):
        return size

    with pytest.raises(ValueError, match="unknown keys"):
        register("bad_preset", task=PATCH_RECONSTRUCTION, hparams={"size": HParam(3)},
                 presets={"p": {"colour": 1}})(builder)
    assert "bad_preset" not in zoo.list()


def test_registration_checks_hparams_against_the_builder():
    def builder(units):
        return units

    with pytest.raises(ValueError, match="do not match the builder's arguments"):
        register("mismatched", task=PATCH_RECONSTRUCTION, hparams={"width": HParam(3)})(builder)
    assert "mismatched" not in zoo.list()


def test_a_registered_entry_is_listed_and_built(scratch_entry):
    entry = scratch_entry("scratch_other", HParam(3, "[1, 10]", Int(1, 10)))
    assert "scratch_other" in zoo.list("scratch_*")
    assert zoo.get("scratch_other", size=7) == {"size": 7}
    assert entry.search_space() == {"size": Int(1, 10)}


def test_hparam_interval_syntax_is_checked():
    with pytest.raises(ValueError, match="valid"):
        HParam(1.0, "0 to 1")
    assert HParam(0.5, "(0, 1]", Float(0.1, 1.0)).check("x", 1.0) == 1.0
    assert HParam("a", ("a", "b"), Choice(("a", "b"))).check("x", "b") == "b"


WITHOUT_TENSORFLOW = textwrap.dedent(
    """
    import sys
    import zoo

    def heavy():
        return sorted(m for m in ("tensorflow", "keras", "matplotlib") if m in sys.modules)

    names = zoo.list()
    described = [zoo.describe(name) for name in names]
    entry = zoo.get_entry("three_layer_convnet")
    assert entry.hparams["normalization"].valid == ("none", "batch", "group")
    assert "SequenceClassifier" in dir(zoo.recurrent) and "AirbenchNet" in dir(zoo.convnets)
    assert not heavy(), heavy()

    model = zoo.load_model(sys.argv[1])  # registers the families' Keras classes first
    assert type(model).__name__ == "SparseAutoencoder", type(model)
    assert zoo.recurrent.SequenceClassifier.__module__ == "zoo.recurrent.model"
    assert zoo.convnets.AirbenchNet is zoo.convnets.airbench.AirbenchNet
    print(len(names), model.hidden_units)
    """
)


def test_import_zoo_needs_no_tensorflow_and_load_model_registers_the_classes(tmp_path,
                                                                           subprocess_env):
    model = zoo.get("sparse_autoencoder", hidden_units=4)
    model(np.zeros((1, 256), "float32"))
    model.save(tmp_path / "model.keras")
    result = subprocess.run([sys.executable, "-c", WITHOUT_TENSORFLOW, tmp_path / "model.keras"],
                            env=subprocess_env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == [str(len(zoo.list())), "4"]


def test_lazy_family_names_are_the_model_modules_classes():
    import zoo.recurrent.cells

    assert zoo.recurrent.LSTMCell is zoo.recurrent.cells.LSTMCell
    assert SparseAutoencoder is zoo.autoencoder.model.SparseAutoencoder
    with pytest.raises(AttributeError, match="no attribute 'Missing'"):
        zoo.recurrent.Missing  # noqa: B018


def test_a_lazy_name_wins_over_its_namesake_submodule():
    # zoo.tuning.search and .hypermodel are functions, in modules of the same names.
    import zoo.tuning.hypermodel
    import zoo.tuning.search

    assert zoo.tuning.search.__name__ == "search" and callable(zoo.tuning.search)
    assert zoo.tuning.hypermodel.__name__ == "hypermodel" and callable(zoo.tuning.hypermodel)
