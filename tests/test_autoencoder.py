"""Sparse autoencoder: cost and gradient against NumPy and finite differences, the KL layer."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from zoo.autoencoder import KLSparsity, SparseAutoencoder, kl_divergence
from zoo.autoencoder.reference import cost_and_gradient

HYPERPARAMETERS = {"weight_decay": 3e-3, "sparsity_weight": 0.7, "sparsity_target": 0.15}


@pytest.fixture
def float64():
    previous_floatx, previous_policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx("float64")
    keras.config.set_dtype_policy("float64")
    yield
    keras.config.set_floatx(previous_floatx)
    keras.config.set_dtype_policy(previous_policy)


def tiny_model(seed=0, inputs=9, hidden=4):
    model = SparseAutoencoder(input_dim=inputs, hidden_units=hidden, seed=seed, **HYPERPARAMETERS)
    rng = np.random.default_rng(seed)
    # Non-zero biases so their gradients are exercised too.
    model.encoder.bias.assign(rng.normal(0, 0.3, hidden))
    model.decoder.bias.assign(rng.normal(0, 0.3, inputs))
    return model


def params_of(model):
    return {
        "w1": model.encoder.kernel.numpy(),
        "b1": model.encoder.bias.numpy(),
        "w2": model.decoder.kernel.numpy(),
        "b2": model.decoder.bias.numpy(),
    }


def model_cost_and_gradient(model, x):
    with tf.GradientTape() as tape:
        terms = model.cost(tf.constant(x))
    variables = [model.encoder.kernel, model.encoder.bias, model.decoder.kernel, model.decoder.bias]
    gradients = tape.gradient(terms["loss"], variables)
    return float(terms["loss"]), dict(zip(["w1", "b1", "w2", "b2"], (g.numpy() for g in gradients)))


def test_cost_and_gradient_equal_numpy_formula(float64):
    model = tiny_model()
    x = np.random.default_rng(1).uniform(0.1, 0.9, (6, 9))
    cost, gradient = model_cost_and_gradient(model, x)
    expected_cost, expected_gradient = cost_and_gradient(params_of(model), x, **HYPERPARAMETERS)
    assert cost == pytest.approx(expected_cost, rel=1e-12)
    for name in expected_gradient:
        np.testing.assert_allclose(gradient[name], expected_gradient[name], rtol=1e-9, atol=1e-12)


def test_cost_terms_follow_the_formula(float64):
    model = tiny_model()
    x = np.random.default_rng(2).uniform(0.1, 0.9, (5, 9))
    terms = {k: float(v) for k, v in model.cost(tf.constant(x)).items()}
    p = params_of(model)
    hidden = 1 / (1 + np.exp(-(x @ p["w1"] + p["b1"])))
    output = 1 / (1 + np.exp(-(hidden @ p["w2"] + p["b2"])))
    rho, rho_hat = HYPERPARAMETERS["sparsity_target"], hidden.mean(0)
    assert terms["reconstruction"] == pytest.approx(np.sum((x - output) ** 2) / (2 * len(x)))
    assert terms["weight_decay"] == pytest.approx(
        HYPERPARAMETERS["weight_decay"] / 2 * (np.sum(p["w1"] ** 2) + np.sum(p["w2"] ** 2))
    )
    kl = rho * np.log(rho / rho_hat) + (1 - rho) * np.log((1 - rho) / (1 - rho_hat))
    assert terms["sparsity"] == pytest.approx(HYPERPARAMETERS["sparsity_weight"] * kl.sum())
    assert terms["mean_activation"] == pytest.approx(hidden.mean())
    assert terms["loss"] == pytest.approx(
        terms["reconstruction"] + terms["weight_decay"] + terms["sparsity"]
    )


def test_model_losses_hold_the_sparsity_term(float64):
    """Calling the model leaves the KL penalty in `model.losses`, equal to the cost's term."""
    model = tiny_model()
    x = tf.constant(np.random.default_rng(3).uniform(0.1, 0.9, (5, 9)))
    model(x)
    terms = model.cost(x)
    assert len(model.losses) == 1
    assert float(model.losses[0]) == pytest.approx(float(terms["sparsity"]), rel=1e-12)


@pytest.mark.parametrize("implementation", ["keras", "numpy"])
def test_gradient_matches_finite_differences(float64, implementation):
    model = tiny_model(seed=4)
    x = np.random.default_rng(5).uniform(0.1, 0.9, (7, 9))
    params = params_of(model)

    def cost_at(values):
        if implementation == "numpy":
            return cost_and_gradient(values, x, **HYPERPARAMETERS)[0]
        for variable, name in zip(model.trainable_variables, ["w1", "b1", "w2", "b2"]):
            variable.assign(values[name])
        return float(model.cost(tf.constant(x))["loss"])

    if implementation == "numpy":
        _, gradient = cost_and_gradient(params, x, **HYPERPARAMETERS)
    else:
        _, gradient = model_cost_and_gradient(model, x)
    step = 1e-6
    for name, value in params.items():
        numeric = np.zeros_like(value)
        for index in np.ndindex(value.shape):
            plus = {k: v.copy() for k, v in params.items()}
            minus = {k: v.copy() for k, v in params.items()}
            plus[name][index] += step
            minus[name][index] -= step
            numeric[index] = (cost_at(plus) - cost_at(minus)) / (2 * step)
        error = np.linalg.norm(numeric - gradient[name]) / np.linalg.norm(numeric + gradient[name])
        assert error < 1e-7, f"{name}: relative error {error}"


def test_kl_divergence_is_zero_at_target_and_positive_elsewhere():
    assert float(kl_divergence(0.2, np.float64(0.2))) == pytest.approx(0.0, abs=1e-15)
    values = np.asarray(kl_divergence(0.2, np.array([0.01, 0.1, 0.5, 0.99])))
    assert np.all(values > 0)


def test_kl_sparsity_layer_on_any_layer_adds_the_penalty():
    inputs = keras.Input((6,))
    hidden = keras.layers.Dense(5, activation="sigmoid")(inputs)
    hidden = KLSparsity(target=0.1, weight=2.0)(hidden)
    model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
    x = np.random.default_rng(0).normal(size=(8, 6)).astype("float32")
    model(x)
    activations = keras.Model(inputs, model.layers[2].output)(x).numpy()
    rho_hat = activations.mean(axis=0)
    expected = 2.0 * np.sum(0.1 * np.log(0.1 / rho_hat) + 0.9 * np.log(0.9 / (1 - rho_hat)))
    assert len(model.losses) == 1
    assert float(model.losses[0]) == pytest.approx(expected, rel=1e-5)


def test_kl_sparsity_is_finite_for_saturated_units():
    layer = KLSparsity(target=0.05, weight=1.0)
    penalty = float(layer.penalty(tf.constant([[1.0, 0.0], [1.0, 0.0]])))
    assert np.isfinite(penalty) and penalty > 0


def test_kl_sparsity_serializes():
    layer = KLSparsity(target=0.3, weight=0.5, name="kl")
    restored = keras.layers.deserialize(keras.layers.serialize(layer))
    assert isinstance(restored, KLSparsity)
    assert (restored.target, restored.weight, restored.name) == (0.3, 0.5, "kl")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"target": 0.0}, "target"),
        ({"target": 1.0}, "target"),
        ({"weight": -1.0}, "weight"),
    ],
)
def test_kl_sparsity_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        KLSparsity(**kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"hidden_units": 0}, "hidden_units"),
        ({"input_dim": -3}, "input_dim"),
        ({"weight_decay": -1e-3}, "weight_decay"),
        ({"sparsity_target": 1.5}, "target"),
        ({"sparsity_weight": -0.1}, "weight"),
    ],
)
def test_autoencoder_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SparseAutoencoder(**kwargs)


def test_features_are_encoder_weights_per_hidden_unit():
    model = SparseAutoencoder(input_dim=256, hidden_units=10, seed=0)
    features = np.asarray(model.features())
    assert features.shape == (10, 256)
    np.testing.assert_array_equal(features[3], model.encoder.kernel.numpy()[:, 3])


def test_strong_sparsity_drives_mean_activation_to_target():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).uniform(0.1, 0.9, (256, 16)).astype("float32")
    model = SparseAutoencoder(input_dim=16, hidden_units=8, sparsity_weight=3.0,
                              sparsity_target=0.1, weight_decay=1e-4)
    model.compile(optimizer=keras.optimizers.Adam(0.02))
    start = float(model.cost(x)["mean_activation"])
    model.fit(x, epochs=30, batch_size=32, verbose=0)
    end = float(model.cost(x)["mean_activation"])
    assert abs(start - 0.1) > 0.2
    assert abs(end - 0.1) < 0.02
