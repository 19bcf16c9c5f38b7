"""airbench's pieces: patch whitening, partial-identity kernels, fast-shift batch norm, Lookahead,
freezing the whitening bias, the one-cycle shape and test-time augmentation, each against its
definition."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from gradients import assert_matches_finite_differences

from zoo.convnets.layers import FastShiftBatchNorm, PartialIdentity, PatchWhitening
from zoo.convnets.airbench import AirbenchNet
from zoo.schedules import FreezeAfter, Lookahead, OneCycle
from zoo.data import Splits
from zoo.training import adapt_preprocessing, set_seed, train_loop


def smooth_images(count, size=8, seed=0):
    """Images with correlated neighbouring pixels and channels, like photographs."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(count, size + 1, size + 1, 3))
    blurred = (noise[:, 1:, 1:] + noise[:, :-1, 1:] + noise[:, 1:, :-1] + noise[:, :-1, :-1]) / 4
    mixed = blurred @ np.array([[1.0, 0.8, 0.6], [0.0, 0.6, 0.5], [0.0, 0.0, 0.4]])
    return 128 + 40 * mixed


# --- patch whitening ---


def test_whitening_gives_training_patches_identity_second_moments_in_both_signs():
    images = smooth_images(64)
    layer = PatchWhitening(2, epsilon=1e-9)
    layer.adapt(images)
    outputs = keras.ops.convert_to_numpy(layer(images)).reshape(-1, 24)
    positive, negative = outputs[:, :12], outputs[:, 12:]
    np.testing.assert_allclose(negative, -positive, atol=1e-5)
    np.testing.assert_allclose(positive.T @ positive / len(positive), np.eye(12), atol=2e-3)
    assert layer.is_adapted
    np.testing.assert_allclose(layer.mean.numpy(), images.mean(axis=(0, 1, 2)), rtol=1e-5)


def test_whitening_reads_only_its_sample_and_refuses_bad_images():
    images = smooth_images(10)
    few = PatchWhitening(2, sample=4)
    few.adapt(images)
    same = PatchWhitening(2)
    same.adapt(images[:4])
    np.testing.assert_allclose(few.kernel.numpy(), same.kernel.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match=r"expected finite images \(N, H >= 2, W >= 2, C\), got shape \(10, 8, 8\)"):
        PatchWhitening(2).adapt(images[..., 0])
    broken = images.copy()
    broken[3, 2, 1, 0] = np.nan
    with pytest.raises(ValueError, match="expected finite images"):
        PatchWhitening(2).adapt(broken)
    with pytest.raises(ValueError, match="epsilon must be positive, got 0"):
        PatchWhitening(2, epsilon=0)


def test_whitening_gradient_matches_finite_differences_in_float64():
    layer = PatchWhitening(2, dtype="float64")
    layer.adapt(smooth_images(8, size=4))
    layer.bias.assign(np.random.default_rng(1).normal(size=24))
    x = tf.Variable(smooth_images(2, size=4, seed=2))

    def loss():
        return tf.reduce_sum(tf.sin(layer(x)))

    assert_matches_finite_differences(loss, [x, layer.bias])
    assert [w.name for w in layer.trainable_weights] == ["bias"]  # the kernel stays fixed


# --- partial-identity kernels ---


def test_partial_identity_passes_the_first_channels_through_and_draws_the_rest():
    kernel = keras.ops.convert_to_numpy(PartialIdentity(seed=0)((3, 3, 4, 64)))
    x = np.random.default_rng(0).normal(size=(2, 6, 6, 4)).astype("float32")
    outputs = keras.ops.convert_to_numpy(keras.ops.conv(x, kernel, padding="same"))
    np.testing.assert_allclose(outputs[..., :4], x, atol=1e-6)
    random = kernel[..., 4:]
    bound = 1 / np.sqrt(3 * 3 * 4)  # PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert np.abs(random).max() <= bound
    assert random.std() == pytest.approx(bound / np.sqrt(3), rel=0.05)
    narrow = keras.ops.convert_to_numpy(PartialIdentity(seed=0)((3, 3, 8, 2)))
    np.testing.assert_array_equal(narrow[1, 1], np.eye(8, 2))
    assert np.count_nonzero(narrow) == 2


# --- batch norm with a fast shift ---


def test_fast_shift_batch_norm_is_keras_batch_norm_with_a_reparametrised_shift():
    x = np.random.default_rng(0).normal(2.0, 3.0, size=(8, 5, 5, 6)).astype("float32")
    ours = FastShiftBatchNorm(momentum=0.6, epsilon=1e-5, shift_learning_rate=64.0)
    theirs = keras.layers.BatchNormalization(momentum=0.6, epsilon=1e-5, scale=False)
    ours.build(x.shape)
    theirs.build(x.shape)
    shift = np.random.default_rng(1).normal(size=6).astype("float32")
    ours.shift.assign(shift)
    theirs.beta.assign(8.0 * shift)
    for training in (True, False):  # batch statistics, then the running averages both updated
        np.testing.assert_allclose(ours(x, training=training), theirs(x, training=training),
                                   rtol=1e-5, atol=1e-5)
    for ours_average, theirs_average in ((ours.moving_mean, theirs.moving_mean), (ours.moving_variance, theirs.moving_variance)):
        np.testing.assert_allclose(ours_average.numpy(), theirs_average.numpy(), rtol=1e-5)

    # One SGD step moves the effective shift 64 times as far as Keras' beta moves.
    targets = np.random.default_rng(2).normal(size=x.shape).astype("float32")
    moves = []
    for layer, weight, factor in ((ours, ours.shift, 8.0), (theirs, theirs.beta, 1.0)):
        before = factor * weight.numpy()
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((layer(x, training=True) - targets) ** 2)
        keras.optimizers.SGD(0.01).apply_gradients([(tape.gradient(loss, weight), weight)])
        moves.append(factor * weight.numpy() - before)
    np.testing.assert_allclose(moves[0], 64.0 * moves[1], rtol=1e-4)


def test_fast_shift_batch_norm_fused_kernel_equals_the_separate_ops():
    # float32 and bfloat16 run the fused kernel; float64 (checked above) runs separate ops.
    x = tf.Variable(np.random.default_rng(0).normal(1.0, 2.0, size=(4, 3, 3, 5)).astype("float32"))
    fused = FastShiftBatchNorm()
    fused.build(x.shape)
    fused.shift.assign(np.random.default_rng(1).normal(size=5).astype("float32"))
    weights = tf.constant(np.random.default_rng(2).normal(size=x.shape).astype("float32"))
    results = []
    for call in (fused.call, lambda inputs, training: fused._unfused(inputs, 8.0 * fused.shift, training)):
        fused.moving_mean.assign(np.zeros(5, "float32"))
        fused.moving_variance.assign(np.ones(5, "float32"))
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(weights * tf.tanh(call(x, training=True)))
        gradients = tape.gradient(loss, [x, fused.shift])
        results.append([loss, *gradients, fused.moving_mean.numpy(), fused.moving_variance.numpy(),
                        call(x, training=False)])
    for ours, reference in zip(*results):
        np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-5)


def test_fast_shift_batch_norm_gradient_matches_finite_differences_in_float64():
    layer = FastShiftBatchNorm(dtype="float64")
    x = tf.Variable(np.random.default_rng(0).normal(size=(3, 2, 2, 4)))
    layer.build(x.shape)
    layer.shift.assign(np.random.default_rng(1).normal(size=4))
    weights = tf.constant(np.random.default_rng(2).normal(size=(3, 2, 2, 4)))

    def loss():
        return tf.reduce_sum(weights * tf.tanh(layer(x, training=True)))

    assert_matches_finite_differences(loss, [x, layer.shift], rtol=1e-5, atol=1e-8)


# --- Lookahead ---


def test_lookahead_averages_every_few_steps_and_at_each_epochs_end():
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    model.optimizer.build(model.trainable_variables)
    model.planned_steps = 20
    callback = Lookahead(every=5, decay=0.9, start=0.25)
    callback.set_model(model)
    callback.set_params({"steps": 8})
    callback.on_train_begin()
    kernel = model.layers[0].kernel

    def step_to(step, batch, value):
        model.optimizer.iterations.assign(step)
        kernel.assign(np.full((2, 1), value))
        callback.on_train_batch_end(batch)
        return kernel.numpy()[0, 0]

    assert step_to(4, 3, 1.0) == 1.0  # before 25% of training: nothing
    assert step_to(5, 4, 2.0) == 2.0  # the first update keeps a slow copy
    assert step_to(7, 6, 3.0) == 3.0  # between updates: nothing
    rho = 0.9**5 * (8 / 20) ** 3
    slow = 2.0 + (1 - rho) * (4.0 - 2.0)
    assert step_to(8, 7, 4.0) == pytest.approx(slow)  # the epoch's last step updates
    rho = 0.9**5 * (10 / 20) ** 3
    assert step_to(10, 1, 0.0) == pytest.approx(slow + (1 - rho) * (0.0 - slow))


# --- FreezeAfter ---


def test_freeze_after_trains_a_layer_for_its_epochs_then_freezes_it_until_the_run_ends():
    x = np.random.default_rng(0).normal(size=(32, 4)).astype("float32")
    y = np.random.default_rng(1).normal(size=(32, 1)).astype("float32")
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(3),
                              keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    first, user_frozen, last = model.layers
    user_frozen.trainable = False
    snapshots = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: snapshots.append([w.numpy() for w in model.weights]))
    model.fit(x, y, epochs=4, batch_size=8, verbose=0,
              callbacks=[FreezeAfter(first, 2), FreezeAfter(user_frozen, 2), record])

    def changed(layer_index, epoch):
        before = snapshots[epoch - 1] if epoch else None
        kernel = 2 * layer_index
        return before is not None and not np.array_equal(before[kernel], snapshots[epoch][kernel])

    assert [changed(0, epoch) for epoch in (1, 2, 3)] == [True, False, False]
    assert [changed(2, epoch) for epoch in (1, 2, 3)] == [True, True, True]
    assert not any(changed(1, epoch) for epoch in (1, 2, 3))
    assert first.trainable and not user_frozen.trainable  # as before the run
    with pytest.raises(ValueError, match="epochs must be a non-negative integer, got -1"):
        FreezeAfter(first, -1)


@pytest.mark.slow
def test_train_loop_runs_the_model_recipe_callbacks_as_fit_does():
    x = np.random.default_rng(0).integers(0, 256, (48, 16, 16, 3)).astype("uint8")
    y = np.eye(10, dtype="float32")[np.random.default_rng(1).integers(0, 10, 48)]
    splits = Splits(x_train=x[:40], y_train=y[:40], x_val=x[40:], y_val=y[40:])

    def build():
        set_seed(0)
        # The whitening bias freezes after one of the three epochs, in both loops.
        model = AirbenchNet(widths=(4, 8, 8), crop_padding=0, test_augmentation="none", seed=0,
                            whiten_bias_epochs=1)
        model.compile(keras.optimizers.SGD(0.05, momentum=0.85, nesterov=True),
                      keras.losses.CategoricalCrossentropy(label_smoothing=0.2))
        adapt_preprocessing(model, splits.x_train)
        return model

    with_fit = build()
    with_fit.fit(splits.x_train, splits.y_train, batch_size=8, epochs=3, shuffle=False, verbose=0)
    with_loop = build()
    train_loop(with_loop, splits, epochs=3, batch_size=8, verbose=False)
    assert with_loop.planned_steps == 15
    for a, b in zip(with_fit.weights, with_loop.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5, err_msg=a.path)


# --- schedule and test-time augmentation ---


def test_one_cycle_starts_and_ends_at_the_given_shares_of_its_peak():
    schedule = OneCycle(1.0, warmup=0.25, total_steps=100, initial=0.2, final=0.07)
    values = [float(schedule(step)) for step in (0, 25, 100, 200)]
    np.testing.assert_allclose(values, [0.2, 1.0, 0.07, 0.07], atol=1e-6)
    with pytest.raises(ValueError, match="initial and final must be shares of peak"):
        OneCycle(1.0, final=1.5)


@pytest.mark.slow
def test_test_time_augmentation_averages_logits_over_mirror_and_shifts():
    set_seed(0)
    x = smooth_images(3, size=16).astype("float32")
    models = {kind: AirbenchNet(widths=(4, 8, 8), test_augmentation=kind, seed=0)
              for kind in ("none", "flip", "flip_translate")}
    for model in models.values():
        adapt_preprocessing(model, x)

    def log_probabilities(images):
        return np.log(models["none"].predict(images, verbose=0))

    def mirror(images):
        return 0.5 * (log_probabilities(images) + log_probabilities(images[:, :, ::-1]))

    padded = np.pad(x, [(0, 0), (1, 1), (1, 1), (0, 0)], mode="reflect")
    expected = 0.5 * mirror(x) + 0.25 * (mirror(padded[:, :-2, :-2]) + mirror(padded[:, 2:, 2:]))
    expected = np.exp(expected) / np.exp(expected).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(models["flip_translate"].predict(x, verbose=0), expected, rtol=1e-4)
    flip = models["flip"]
    np.testing.assert_allclose(flip.predict(x, verbose=0), flip.predict(x[:, :, ::-1], verbose=0),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"widths": (8, 16)}, r"widths must be three positive integers, got \[8, 16\]"),
        ({"test_augmentation": "crop"}, "test_augmentation must be one of"),
        ({"weight_decay": -1.0}, "weight_decay must be non-negative, got -1.0"),
        ({"whiten_bias_epochs": -2}, "whiten_bias_epochs must be a non-negative integer, got -2"),
    ],
)
def test_bad_arguments_are_refused_naming_the_value(arguments, message):
    with pytest.raises(ValueError, match=message):
        AirbenchNet(**arguments)
