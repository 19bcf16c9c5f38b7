"""Recurrent cells against Keras' built-ins, finite differences, truncated BPTT, the classifier."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from gradients import assert_matches_finite_differences

import zoo
from zoo.training import set_seed
from zoo.recurrent import (
    GRUCell,
    LowPass,
    LSTMCell,
    Magnitude,
    Recurrent,
    RNNCell,
    SensorAugmentation,
    SequenceClassifier,
)

# (hand-written cell, the built-in layer with the same math) per variant.
VARIANTS = {
    "rnn": (lambda **kw: RNNCell(5, **kw), lambda **kw: keras.layers.SimpleRNN(5, **kw)),
    "lstm": (lambda **kw: LSTMCell(5, **kw), lambda **kw: keras.layers.LSTM(5, use_cudnn=False, **kw)),
    "gru": (lambda **kw: GRUCell(5, **kw), lambda **kw: keras.layers.GRU(5, use_cudnn=False, **kw)),
    "gru_classic": (
        lambda **kw: GRUCell(5, reset_after=False, **kw),
        lambda **kw: keras.layers.GRU(5, reset_after=False, use_cudnn=False, **kw),
    ),
}


def sequences(shape=(4, 9, 3), seed=0, dtype="float32"):
    return tf.constant(np.random.default_rng(seed).normal(size=shape).astype(dtype))


def output_and_gradients(layer, x):
    """The layer's output and the gradients of a non-trivial scalar of it, w.r.t. input and weights."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        output = layer(x)
        # Weighting by position keeps every output element in play, unlike a plain sum.
        loss = tf.reduce_sum(tf.sin(output * tf.range(1, output.shape[-1] + 1, dtype=output.dtype)))
    return output, tape.gradient(loss, [x, *layer.trainable_weights])


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_cells_equal_keras_built_ins_forward_and_gradients(variant, return_sequences, go_backwards):
    make_cell, make_keras = VARIANTS[variant]
    options = {"return_sequences": return_sequences, "go_backwards": go_backwards}
    ours, theirs = Recurrent(make_cell(), **options), make_keras(**options)
    x = sequences()
    ours.build(x.shape)
    theirs.build(x.shape)
    # Random biases too: Keras starts them at 0 (and the LSTM forget bias at 1).
    rng = np.random.default_rng(1)
    theirs.set_weights([rng.normal(0, 0.5, w.shape) for w in theirs.get_weights()])
    ours.set_weights(theirs.get_weights())

    our_output, our_gradients = output_and_gradients(ours, x)
    their_output, their_gradients = output_and_gradients(theirs, x)

    np.testing.assert_allclose(our_output, their_output, atol=1e-5)
    for ours_g, theirs_g in zip(our_gradients, their_gradients, strict=True):
        np.testing.assert_allclose(ours_g, theirs_g, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("return_sequences", [False, True])
def test_recurrent_compiles_under_xla_to_the_same_output_and_gradients(variant, return_sequences):
    layer = Recurrent(VARIANTS[variant][0](), return_sequences=return_sequences, truncate_steps=4)
    x = sequences()
    layer.build(x.shape)
    graph = tf.function(output_and_gradients)(layer, x)
    xla = tf.function(output_and_gradients, jit_compile=True)(layer, x)
    # XLA fuses and reorders float32 arithmetic: a few float32 roundings (~1e-7 relative) on
    # gradients that reach ~40 here.
    for graph_value, xla_value in zip(tf.nest.flatten(graph), tf.nest.flatten(xla), strict=True):
        np.testing.assert_allclose(xla_value, graph_value, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_weights_copy_from_zoo_to_keras(variant):
    make_cell, make_keras = VARIANTS[variant]
    ours, theirs = Recurrent(make_cell(seed=3)), make_keras()
    x = sequences()
    np.testing.assert_allclose(theirs(x) * 0, 0)  # builds it
    ours.build(x.shape)
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in theirs.get_weights()]
    theirs.set_weights(ours.get_weights())
    np.testing.assert_allclose(ours(x), theirs(x), atol=1e-5)


def test_lstm_initial_forget_bias_is_one_like_keras():
    ours, theirs = Recurrent(LSTMCell(4)), keras.layers.LSTM(4)
    x = sequences()
    ours.build(x.shape)
    theirs.build(x.shape)
    np.testing.assert_array_equal(ours.cell.bias, theirs.cell.bias)
    assert np.asarray(ours.cell.bias)[4:8].tolist() == [1.0] * 4


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_float64_finite_difference_gradients(variant):
    make_cell = VARIANTS[variant][0]
    layer = Recurrent(make_cell(seed=0, dtype="float64"), dtype="float64")
    x = tf.Variable(sequences((2, 4, 3), dtype="float64"))
    layer.build(x.shape)
    layer.set_weights([np.random.default_rng(2).normal(0, 0.5, w.shape) for w in layer.get_weights()])
    targets = tf.constant(np.random.default_rng(3).normal(size=(2, 5)))

    @tf.function  # one traced graph: hundreds of evaluations stay fast
    def loss():
        return tf.reduce_sum((layer(x) - targets) ** 2)

    assert_matches_finite_differences(loss, [x, *layer.trainable_weights], atol=1e-8)


def input_gradient(layer, x):
    with tf.GradientTape() as tape:
        tape.watch(x)
        output = layer(x)
        loss = tf.reduce_sum(output)
    return output, tape.gradient(loss, x).numpy()


@pytest.mark.parametrize("make_cell", [RNNCell, LSTMCell, GRUCell])
def test_truncated_bptt_stops_the_gradient_k_steps_back(make_cell):
    x = sequences((3, 10, 3))
    full = Recurrent(make_cell(4, seed=0))
    truncated = Recurrent(make_cell(4, seed=0), truncate_steps=3)
    full_output, full_gradient = input_gradient(full, x)
    truncated_output, truncated_gradient = input_gradient(truncated, x)

    np.testing.assert_array_equal(truncated_output, full_output)  # forward pass untouched
    np.testing.assert_array_equal(truncated_gradient[:, :7], 0.0)  # beyond the last chunk
    # Inside the last chunk the gradient is exactly that of full BPTT (no path leaves it).
    np.testing.assert_allclose(truncated_gradient[:, 7:], full_gradient[:, 7:], atol=1e-7)
    assert np.abs(full_gradient[:, :7]).min() > 0  # full BPTT reaches every step


def test_truncated_bptt_with_return_sequences_cuts_at_chunk_boundaries():
    x = sequences((2, 8, 3))
    layer = Recurrent(LSTMCell(4, seed=0), truncate_steps=4, return_sequences=True)
    with tf.GradientTape() as tape:
        tape.watch(x)
        output = layer(x)
        loss = tf.reduce_sum(output[:, 3])  # the last output of the first chunk
    gradient = tape.gradient(loss, x).numpy()
    assert np.abs(gradient[:, :4]).min() > 0  # within its own chunk, all steps
    np.testing.assert_array_equal(gradient[:, 4:], 0.0)  # the future has no influence


def test_truncation_of_at_least_the_sequence_length_is_full_bptt():
    x = sequences((2, 6, 3))
    _, full = input_gradient(Recurrent(GRUCell(4, seed=0)), x)
    _, truncated = input_gradient(Recurrent(GRUCell(4, seed=0), truncate_steps=6), x)
    np.testing.assert_allclose(truncated, full, atol=1e-7)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: RNNCell(0), "units must be a positive integer"),
        (lambda: Recurrent(RNNCell(3), truncate_steps=0), "truncate_steps"),
        (lambda: SensorAugmentation(rotation=200), "rotation"),
        (lambda: SensorAugmentation(scaling=1.5), "scaling"),
        (lambda: SensorAugmentation(gravity_rotation=-1.0), "gravity_rotation"),
        (lambda: SequenceClassifier("transformer"), "cell must be one of"),
        (lambda: SequenceClassifier("lstm", implementation="torch"), "implementation"),
        (lambda: SequenceClassifier("lstm", clip_norm=-1.0), "clip_norm"),
        (lambda: SequenceClassifier("lstm", pool_steps=0), "pool_steps"),
        (lambda: SequenceClassifier("lstm", implementation="keras", truncate_steps=5), "truncate"),
    ],
)
def test_bad_arguments_are_refused_with_the_value(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_recurrent_rejects_inputs_without_a_time_axis():
    with pytest.raises(ValueError, match="batch, steps, features"):
        Recurrent(LSTMCell(3))(np.zeros((2, 3), "float32"))


def test_augmentation_is_identity_outside_training_and_label_preserving_inside():
    x = sequences((8, 20, 3))
    np.testing.assert_array_equal(SensorAugmentation(rotation=30, jitter=1.0)(x), x)

    rotated = SensorAugmentation(rotation=30, seed=0)(x, training=True)
    np.testing.assert_allclose(tf.norm(rotated, axis=-1), tf.norm(x, axis=-1), rtol=1e-5)
    assert not np.allclose(rotated, x)

    shifted = SensorAugmentation(time_shift=5, seed=0)(x, training=True).numpy()
    for window, original in zip(shifted, x.numpy()):  # each window is a roll of itself
        assert any(np.array_equal(window, np.roll(original, k, axis=0)) for k in range(-5, 6))

    warped = SensorAugmentation(time_warp=0.3, seed=0)(x, training=True).numpy()
    assert warped.shape == x.shape and not np.allclose(warped, x)
    np.testing.assert_array_equal(warped[:, 0], x.numpy()[:, 0])  # time 0 is read at time 0
    line = tf.tile(tf.range(20, dtype=tf.float32)[None, :, None], [8, 1, 3])
    paced = SensorAugmentation(time_warp=0.3, seed=0)(line, training=True).numpy()
    rates = paced[:, 1, 0] - paced[:, 0, 0]  # a ramp read at pace p rises by p per step
    assert np.all(np.abs(rates - 1) <= 0.3 + 1e-6) and np.ptp(rates) > 0

    scaled = SensorAugmentation(scaling=0.2, seed=0)(x, training=True).numpy()
    factors = scaled / x.numpy()
    assert np.allclose(factors, factors[:, :1, :1]) and np.all(np.abs(factors - 1) <= 0.2 + 1e-6)


def test_gravity_rotation_turns_the_posture_less_than_the_motion():
    def angles(a, b):  # between matching vectors, degrees
        cosine = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
        return np.degrees(np.arccos(np.clip(cosine, -1, 1)))

    def augmented(x):  # the same draws for every input: a fresh layer, the same seed
        return SensorAugmentation(rotation=60, gravity_rotation=5, seed=0)(x, training=True).numpy()

    posture = np.tile(np.array([9.8, 0.0, 0.0], "float32"), (32, 64, 1))
    # Four steps a cycle: the 41-step low-pass filter leaves nothing of it (no gravity part).
    phase = 2 * np.pi * np.arange(64) / 4 + np.pi / 4
    motion = np.tile(np.stack([np.sin(phase)] * 3, -1).astype("float32"), (32, 1, 1))
    turned_posture, turned_motion = augmented(posture), augmented(motion)
    assert angles(turned_posture, posture).max() <= 5.0 + 1e-3
    np.testing.assert_allclose(np.linalg.norm(turned_posture, axis=-1), 9.8, rtol=1e-5)
    # One rotation per window; the ends, extended by the filter, keep a little gravity part.
    motion_turn = angles(turned_motion, motion)[:, 20:-20].max(axis=1)
    assert motion_turn.max() <= 60.0 + 0.1 and np.median(motion_turn) > 10.0
    # The layer is linear for given draws: a window is its posture and its motion, turned apart.
    np.testing.assert_allclose(augmented(posture + motion), turned_posture + turned_motion,
                               atol=1e-4)
    # Equal angles: one rotation of the whole window, the draws of the layer without the split.
    x = tf.constant(posture + motion)
    whole = SensorAugmentation(rotation=30, gravity_rotation=30, seed=3)(x, training=True)
    np.testing.assert_array_equal(whole, SensorAugmentation(rotation=30, seed=3)(x, training=True))
    layer = SensorAugmentation(rotation=60, gravity_rotation=5, gravity_width=21)
    again = keras.layers.deserialize(keras.layers.serialize(layer))
    assert again.get_config() == layer.get_config() and again.get_config()["gravity_width"] == 21


def tiny_classifier(**options):
    model = SequenceClassifier("lstm", units=4, head_units=4, num_classes=3, seed=0, **options)
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss="categorical_crossentropy")
    return model


def one_step_change(model, x, y):
    model(x)
    before = [w.numpy() for w in model.trainable_weights]
    model.fit(x, y, batch_size=len(x), epochs=1, verbose=0, shuffle=False)
    return [after.numpy() - b for after, b in zip(model.trainable_weights, before)]


def test_gradient_clipping_by_value_and_by_global_norm():
    x = sequences((4, 6, 3)) * 10
    y = np.eye(3, dtype="float32")[[0, 1, 2, 0]]
    unclipped = one_step_change(tiny_classifier(), x, y)
    assert max(np.abs(c).max() for c in unclipped) > 1e-3

    # With SGD at learning rate 1, a weight moves by minus its (clipped) gradient.
    by_value = one_step_change(tiny_classifier(clip_value=1e-3), x, y)
    assert max(np.abs(c).max() for c in by_value) <= 1e-3 + 1e-7

    by_norm = one_step_change(tiny_classifier(clip_norm=1e-2), x, y)
    norm = np.sqrt(sum((c**2).sum() for c in by_norm))
    assert abs(norm - 1e-2) < 1e-5
    unclipped_norm = np.sqrt(sum((c**2).sum() for c in unclipped))
    for clipped, full in zip(by_norm, unclipped):  # same direction, shorter
        np.testing.assert_allclose(clipped, full * (1e-2 / unclipped_norm), atol=1e-6)


def test_train_step_equals_keras_default_step_without_clipping():
    """The written-out BPTT step takes the same step as Keras' own `train_step`."""
    x, y = sequences((4, 6, 3)), np.eye(3, dtype="float32")[[0, 1, 2, 0]]
    ours = tiny_classifier()
    ours(x)
    default = tiny_classifier()
    default(x)
    default.train_step = super(SequenceClassifier, default).train_step
    changes = [one_step_change(model, x, y) for model in (ours, default)]
    for ours_change, default_change in zip(*changes, strict=True):
        np.testing.assert_allclose(ours_change, default_change, atol=1e-7)


def test_classifier_saves_and_loads_with_its_normalisation(tmp_path):
    from zoo.training import adapt_preprocessing

    x = sequences((8, 6, 3)).numpy() * 5 + 3
    model = tiny_classifier(normalize=True, bidirectional=True, num_layers=2, dropout=0.1,
                            augmentation={"rotation": 10.0, "jitter": 0.1}, pool_steps=2,
                            separate_gravity=True, input_shape=(6, 3))
    adapt_preprocessing(model, x)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.get_config() == model.get_config()
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_entries_cover_hand_written_and_built_in_cells():
    assert zoo.list("*lstm*") == ["keras_lstm", "lstm"]
    assert {"rnn", "gru", "keras_rnn", "keras_gru"} <= set(zoo.list())
    assert "truncate_steps" in zoo.describe("gru")["hyperparameters"]
    assert "truncate_steps" not in zoo.describe("keras_gru")["hyperparameters"]
    assert "reset_after" in zoo.describe("gru")["hyperparameters"]
    # A cell's own strong defaults hold for its Keras twin too; the course preset undoes them.
    for name in ("gru", "keras_gru"):
        assert zoo.get_entry(name).resolve()["bidirectional"] is True
        assert zoo.get_entry(name).resolve("course")["bidirectional"] is False
    assert zoo.get_entry("keras_lstm").resolve()["learning_rate"] == \
        zoo.get_entry("lstm").resolve()["learning_rate"] == 8.1e-3

    set_seed(0)
    ours = zoo.get("lstm", preset="course")
    set_seed(0)
    theirs = zoo.get("keras_lstm", preset="course")
    x = sequences((2, 150, 3))
    assert ours(x).shape == theirs(x).shape == (2, 6)
    assert isinstance(ours.recurrent_layers[0], Recurrent)
    assert isinstance(theirs.recurrent_layers[0], keras.layers.LSTM)
    assert ours.optimizer.learning_rate.numpy() == pytest.approx(0.1)
    # Same seeds, same math: the two start from the same weights.
    np.testing.assert_allclose(ours(x), theirs(x), atol=1e-5)


def test_lowpass_keeps_a_constant_and_removes_a_fast_sine():
    steps = np.arange(150, dtype="float32")
    constant = np.full((2, 150, 3), 9.81, "float32")
    np.testing.assert_allclose(LowPass(41)(constant), constant, rtol=1e-5)
    # 2 Hz at 20 Hz sampling (walking's pace) on top of a slow drift (posture).
    slow = np.linspace(-1, 1, 150, dtype="float32")
    fast = np.sin(2 * np.pi * steps / 10).astype("float32")
    x = np.stack([slow + fast, fast, 2 + 0 * fast], axis=-1)[None]
    gravity = LowPass(41)(x).numpy()
    assert gravity.shape == x.shape
    inner = slice(25, 125)  # the edge extension bends a drift near the ends
    assert np.abs(gravity[0, inner, 1]).max() < 0.02  # the sine alone: near zero
    np.testing.assert_allclose(gravity[0, inner, 0], slow[inner], atol=0.03)
    np.testing.assert_allclose(gravity[0, :, 2], 2.0, rtol=1e-5)


def test_magnitude_is_the_norm_of_the_channels():
    x = np.array([[[3.0, 4.0, 0.0], [0.0, 0.0, -2.0]]], "float32")
    np.testing.assert_allclose(Magnitude(epsilon=0.0)(x), [[[5.0], [2.0]]])
    assert Magnitude().compute_output_shape((None, 150, 3)) == (None, 150, 1)


@pytest.mark.parametrize("make, message", [
    (lambda: LowPass(4), "odd integer >= 3, got 4"),
    (lambda: LowPass(1), "odd integer >= 3, got 1"),
    (lambda: Magnitude(epsilon=-1.0), "epsilon must be >= 0"),
    (lambda: SequenceClassifier(gravity_filter="butter"), "gravity_filter must be one of"),
])
def test_gravity_and_magnitude_arguments_are_checked(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_lowpass_and_magnitude_serialise():
    for layer in (LowPass(21, name="g"), Magnitude(epsilon=1e-3)):
        again = keras.layers.deserialize(keras.layers.serialize(layer))
        assert type(again) is type(layer) and again.get_config() == layer.get_config()


@pytest.mark.slow
@pytest.mark.parametrize("options", [
    {"separate_gravity": True, "gravity_filter": "lowpass", "gravity_width": 5},
    {"magnitude": True},
    {"separate_gravity": True, "gravity_filter": "lowpass", "gravity_width": 5, "magnitude": True},
])
def test_classifier_builds_trains_and_reloads_with_gravity_options(tmp_path, options):
    x = sequences((4, 12, 3)).numpy() * 5
    y = np.eye(3, dtype="float32")[[0, 1, 2, 0]]
    model = tiny_classifier(normalize=True, pool_steps=2, input_shape=(12, 3), **options)
    model.normalization.adapt(x)
    changes = one_step_change(model, x, y)
    assert all(np.isfinite(c).all() for c in changes) and any(np.abs(c).max() > 0 for c in changes)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.get_config() == model.get_config()
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_entries_take_the_gravity_and_magnitude_options():
    set_seed(0)
    model = zoo.get("rnn", units=4, head_units=4, separate_gravity=True, gravity_filter="lowpass",
                    magnitude=True)
    assert model.get_config()["gravity_filter"] == "lowpass" and model.magnitude
    assert model(sequences((2, 150, 3))).shape == (2, 6)
    # The search chose the low-pass filter for every cell, and no magnitude channels.
    defaults = zoo.get_entry("rnn").resolve()
    assert defaults["gravity_filter"] == "lowpass" and defaults["magnitude"] is False


class RecordWeights(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.steps = []

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append([w.numpy() for w in self.model.trainable_weights])


def ema_classifier(momentum):
    model = SequenceClassifier("lstm", units=4, head_units=4, num_classes=3, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.5, use_ema=True, ema_momentum=momentum),
                  loss="categorical_crossentropy")
    return model


def test_ema_ends_training_on_the_moving_average_of_the_steps(tmp_path):
    x, y = sequences((4, 6, 3)), np.eye(3, dtype="float32")[[0, 1, 2, 0]]
    model, recorder = ema_classifier(0.6), RecordWeights()
    model.fit(x, y, batch_size=4, epochs=3, verbose=0, shuffle=False, callbacks=[recorder])
    # Keras' EMA starts at the first step's weights, then a <- m a + (1 - m) w after each step.
    average = recorder.steps[0]
    for weights in recorder.steps[1:]:
        average = [0.6 * a + 0.4 * w for a, w in zip(average, weights)]
    assert len(recorder.steps) == 3
    assert not np.allclose(recorder.steps[-1][0], average[0])  # not the last step's weights
    for final, expected in zip(model.trainable_weights, average, strict=True):
        np.testing.assert_allclose(final.numpy(), expected, atol=1e-6)

    # Saved and loaded, the model keeps the averaged weights and the optimizer its EMA.
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.optimizer.use_ema and loaded.optimizer.ema_momentum == 0.6
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


@pytest.mark.slow
def test_ema_state_is_checkpointed_so_a_resumed_run_continues_the_average(tmp_path):
    """Two epochs, a checkpoint (zoo.training.EpochCheckpoint's save_weights), a fresh model
    restored from it and one more epoch end where three uninterrupted epochs do."""
    x, y = sequences((4, 6, 3)), np.eye(3, dtype="float32")[[0, 1, 2, 0]]
    straight = ema_classifier(0.6)
    straight.fit(x, y, batch_size=4, epochs=3, verbose=0, shuffle=False)

    first = ema_classifier(0.6)
    checkpoint = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: epoch == 1 and first.save_weights(tmp_path / "e.weights.h5"))
    first.fit(x, y, batch_size=4, epochs=3, verbose=0, shuffle=False, callbacks=[checkpoint])
    resumed = ema_classifier(0.6)
    resumed(x)
    resumed.optimizer.build(resumed.trainable_variables)  # as EpochCheckpoint.restore does
    resumed.load_weights(tmp_path / "e.weights.h5")
    assert int(resumed.optimizer.iterations.numpy()) == 2
    resumed.fit(x, y, batch_size=4, epochs=3, initial_epoch=2, verbose=0, shuffle=False)
    for a, b in zip(resumed.trainable_weights, straight.trainable_weights, strict=True):
        np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)


def test_entries_take_an_ema_momentum_off_by_default():
    set_seed(0)
    assert not zoo.get("rnn", units=4).optimizer.use_ema
    for optimizer in ("adam", "sgd"):
        averaged = zoo.get("rnn", units=4, ema_momentum=0.99, optimizer=optimizer).optimizer
        assert averaged.use_ema and averaged.ema_momentum == 0.99


@pytest.mark.slow  # three runs of the 150-step LSTM: ~30 s on 2 loaded cores (the inner loop has
# tests/test_training.py's small twin)
def test_a_run_killed_after_an_epoch_resumes_to_the_uninterrupted_run(
        tmp_path, killed_after_first_checkpoint):
    """Augmentation and dropout draw the same numbers in a resumed run as in an uninterrupted
    one (zoo.training.EpochSeeds), so the histories and final weights agree exactly."""
    from zoo.recurrent.data import example
    from zoo.runs import HISTORY_FILE

    data = example(tmp_path / "data", per_class=10)
    settings = dict(preset="tiny", epochs=3, seed=3)
    straight = zoo.train("lstm", data, run_dir=tmp_path / "straight", **settings)
    with killed_after_first_checkpoint():
        zoo.train("lstm", data, run_dir=tmp_path / "resumed", **settings)
    resumed = zoo.train("lstm", data, run_dir=tmp_path / "resumed", **settings)

    assert len(straight.history["loss"]) == 3
    assert resumed.history == straight.history
    rows = (tmp_path / "resumed" / HISTORY_FILE).read_text().splitlines()
    assert rows == (tmp_path / "straight" / HISTORY_FILE).read_text().splitlines()
    for ours, theirs in zip(resumed.model.get_weights(), straight.model.get_weights(), strict=True):
        np.testing.assert_array_equal(ours, theirs)
