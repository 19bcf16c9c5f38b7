"""Registry entries of the recurrent family, with their task: activity recognition from
accelerometer windows.

Six entries, one per cell and implementation: "rnn", "lstm", "gru" (hand-written cells) and
"keras_rnn", "keras_lstm", "keras_gru" (Keras' built-in layers), all with the same head,
hyperparameters and recipes, so that every comparison is one call:
`zoo.get("lstm", preset="course")` against `zoo.get("keras_lstm", preset="course")`.

Keras, TensorFlow and the model are imported inside the functions that use them, so that the
entries register without them (`zoo list` and `zoo describe` need no TensorFlow).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.data import Splits
from zoo.recurrent import data
from zoo.recurrent.predict import predict
from zoo.registry import Choice, Float, HParam, Int, Metric, Task, register

if TYPE_CHECKING:
    import numpy as np

    from zoo.recurrent.model import SequenceClassifier

__all__ = [
    "ACTIVITY_RECOGNITION",
    "entry_hparams",
    "gru",
    "keras_gru",
    "keras_lstm",
    "keras_rnn",
    "lstm",
    "rnn",
]


def _figures(model: SequenceClassifier, splits: Splits, out_dir: Path,
             outputs: Mapping[str, np.ndarray] | None = None) -> list[Path]:
    from zoo import classification

    return classification.report(
        model, splits, splits.info["classes"], out_dir, f"{model.name}: activity recognition",
        outputs,
    )


def _endpoints(model: SequenceClassifier) -> dict[str, Any]:
    import tensorflow as tf

    from zoo import classification

    signature = [tf.TensorSpec([None, data.STEPS, data.AXES], tf.float32, name="windows")]
    # Named outputs: probabilities and the int64 class_index.
    return {"serve": (lambda windows: classification.serving_outputs(model(windows)), signature)}


ACTIVITY_RECOGNITION = Task(
    name="activity recognition",
    family="recurrent",
    data=(
        f"accelerometer windows ({data.STEPS} steps x {data.AXES} axes) in the course's HDF5 "
        f"layout: {', '.join(data.KEYS)}, labels one-hot; class names from the file's 'classes' "
        f"attribute, else {', '.join(data.COURSE_CLASSES)}. With subject ids (optional trS, "
        "tstS) whole subjects, about 10% of the windows, are held out for validation; without, "
        "10% of each training class (overlapping training windows)."
    ),
    load=data.load,
    metric=Metric("val_accuracy", "max", "validation accuracy (higher is better)"),
    figures=_figures,
    endpoints=_endpoints,
    example=data.example,
    predict=predict,
    class_names=data.COURSE_CLASSES,
)

HPARAMS = {
    "num_classes": HParam(len(data.COURSE_CLASSES), "[2, 10000]", None, "activities to classify"),
    "units": HParam(128, "[1, 4096]", Int(16, 256, log=True), "hidden units per recurrent layer"),
    "num_layers": HParam(1, "[1, 8]", Int(1, 3), "stacked recurrent layers"),
    "bidirectional": HParam(False, None, Choice((False, True)), "read the window both ways"),
    "head_layers": HParam(1, "[0, 8]", Int(0, 2), "ReLU dense layers before the softmax"),
    "head_units": HParam(128, "[1, 4096]", None, "units per head layer"),
    "dropout": HParam(0.0, "[0, 1)", Float(0.0, 0.5), "dropout before each dense layer"),
    "normalize": HParam(True, None, None, "standardise each axis (fitted on training data)"),
    "rotation": HParam(10.0, "[0, 180]", Float(0.0, 45.0),
                       "augmentation: largest rotation of the body's motion, degrees"),
    "gravity_rotation": HParam(180.0, "[0, 180]", Float(0.0, 45.0),
                               "augmentation: largest rotation of gravity (the posture), degrees, "
                               "at most rotation; at rotation or above the window turns as one"),
    "scaling": HParam(0.1, "[0, 1)", None, "augmentation: largest relative magnitude change"),
    "time_shift": HParam(30, "[0, 1000]", None, "augmentation: largest circular time shift, steps"),
    "time_warp": HParam(0.1, "[0, 1)", None, "augmentation: largest relative change of pace"),
    "jitter": HParam(0.05, "[0, inf)", None, "augmentation: noise std, input units"),
    "separate_gravity": HParam(True, None, None, "feed window mean and motion separately"),
    "gravity_filter": HParam("window_mean", ("window_mean", "lowpass"),
                             Choice(("window_mean", "lowpass")),
                             "gravity for separate_gravity: the window mean, or a low-pass filter"),
    "gravity_width": HParam(41, "[3, 149]", None, "low-pass kernel length in steps (odd)"),
    "magnitude": HParam(False, None, Choice((False, True)),
                        "append the norm of the acceleration (per part)"),
    "pool_steps": HParam(3, "[1, 150]", Choice((1, 2, 3, 5)), "average every k time steps before the RNN"),
    "optimizer": HParam("adam", ("adam", "sgd"), None, "Adam, or SGD with momentum"),
    "learning_rate": HParam(2e-3, "(0, 10]", Float(1e-4, 0.3, log=True), "optimizer step size"),
    "momentum": HParam(0.85, "[0, 1)", Float(0.5, 0.99), "SGD momentum"),
    "clip_value": HParam(0.0, "[0, inf)", None, "clip gradient elements to +-this (0: off)"),
    "clip_norm": HParam(1.0, "[0, inf)", Float(0.1, 10.0, log=True),
                        "clip the gradient's global norm to this (0: off)"),
    "label_smoothing": HParam(0.0, "[0, 1)", Float(0.0, 0.2), "cross-entropy label smoothing"),
    "ema_momentum": HParam(0.0, "[0, 1)", Choice((0.0, 0.99, 0.998)),
                           "keep an exponential moving average of the weights with this momentum "
                           "per step and end training on it (0: off, the last step's weights)"),
}
HAND_WRITTEN_ONLY = {
    "truncate_steps": HParam(0, "[0, 100000]", None, "truncated BPTT chunk length (0: full BPTT)"),
}
GRU_ONLY = {
    "reset_after": HParam(True, None, None, "Keras/cuDNN GRU variant (False: the paper's)"),
}

FIT = {
    "epochs": 40,
    "batch_size": 32,
    "early_stopping_patience": None,
    "learning_rate_schedule": "cosine",
}
PRESETS = {
    # The defaults; named so that comparisons read `preset="strong"` against `preset="course"`.
    "strong": {},
    # The course's recipe: raw windows, SGD, early stopping on 10% of the training windows.
    "course": {
        "normalize": False,
        "separate_gravity": False,
        "rotation": 0.0,
        "scaling": 0.0,
        "time_shift": 0,
        "time_warp": 0.0,
        "jitter": 0.0,
        "pool_steps": 1,
        "bidirectional": False,
        "dropout": 0.0,
        "label_smoothing": 0.0,
        "ema_momentum": 0.0,
        "gravity_filter": "window_mean",
        "optimizer": "sgd",
        "learning_rate": 0.1,
        "momentum": 0.85,
        "clip_norm": 0.0,
        "epochs": 50,
        "early_stopping_patience": 10,
        "learning_rate_schedule": "constant",
        "validation_fraction": 0.1,  # the early stopping's
    },
    # For smoke tests and tests/test_contract.py: seconds to build, train, export and tune.
    "tiny": {"units": 8, "head_units": 8, "epochs": 1, "batch_size": 8},
}


def _build(cell: str, implementation: str, name: str, **hparams: Any) -> SequenceClassifier:
    import keras

    from zoo import classification
    from zoo.recurrent.model import SequenceClassifier

    augmentation = {
        key: hparams.pop(key)
        for key in ("rotation", "gravity_rotation", "scaling", "time_shift", "time_warp", "jitter")
    }
    # The posture turns by at most as much as the motion: `rotation=0` turns nothing.
    augmentation["gravity_rotation"] = min(augmentation["gravity_rotation"], augmentation["rotation"])
    if any(augmentation.values()):
        augmentation["gravity_width"] = hparams["gravity_width"]  # gravity as the model finds it
    else:
        augmentation = None
    optimizer, learning_rate, momentum = (
        hparams.pop(key) for key in ("optimizer", "learning_rate", "momentum")
    )
    label_smoothing = hparams.pop("label_smoothing")
    ema_momentum = hparams.pop("ema_momentum")
    # Keras' optimizer EMA: updated by every optimizer.apply (the written-out train_step's too),
    # saved with the optimizer's variables (checkpoints resume it), and written over the model's
    # weights when fit ends (finalize_variable_values). Validation during training sees the raw
    # weights; early stopping's restore_best_weights, when on, replaces the averaged ones.
    averaging = {"use_ema": True, "ema_momentum": ema_momentum} if ema_momentum else {}
    off_if_zero = {key: hparams.pop(key) or None for key in ("clip_value", "clip_norm", "truncate_steps")
                   if key in hparams}
    model = SequenceClassifier(
        cell=cell,
        implementation=implementation,
        augmentation=augmentation,
        # Drawn from Python's generator, which zoo.training.set_seed (`--seed`) seeds: runs repeat,
        # and a hand-written entry and its Keras twin built after the same seed start alike.
        seed=random.randrange(2**31 - 1000),
        input_shape=(data.STEPS, data.AXES),
        name=name,
        **off_if_zero,
        **hparams,
    )
    if optimizer == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate, momentum=momentum, **averaging)
    else:
        optimizer = keras.optimizers.Adam(learning_rate, **averaging)
    model.compile(
        optimizer=optimizer,
        # One-hot rows or class indices (`model.fit(x, labels)`): see zoo.classification.
        loss=classification.loss(label_smoothing),
        metrics=classification.metrics(),
    )
    return model


RECIPE = """
Window (150 x 3) -> recurrent layer -> ReLU dense head -> softmax over the activities, trained
by backpropagation through time with a written-out tf.GradientTape step (optional clipping by
value and by global norm; the hand-written cells also truncated BPTT).

The defaults (preset `strong`) are built for people the model has not seen: the raw window is
augmented (a rotation about a random axis, magnitude +-10%, pace +-10%, circular shift up to 30
steps, noise 0.05 m/s^2; `gravity_rotation` can turn the posture less than the motion; by
default both turn alike), each axis standardised with training statistics kept in the model, each
channel split into gravity (a 41-step low-pass filter) and body motion, every 3 steps averaged
(50 steps), label smoothing and dropout in the head; Adam with global-norm clipping at 1,
batch 32, 40 epochs with a cosine learning-rate decay. The rotation's largest angle, the gravity
filter, dropout, label smoothing and learning rate were chosen per cell by a 12-trial random
search scored on whole held-out training subjects (`zoo tune`), never on the test subjects; the
GRU reads the window both ways. The RNN's rotation (25 degrees; its trial's was 6) was then
chosen by cross-validation over the training subjects (`python bench/har.py cv`). `zoo train`
trains on every training subject: with nine people, each one more in training is worth more on
new people than a validation curve. The shipped `usc_had` sets were trained on all 11 of the
file's subjects (`--load include_test=true`); what the recipe scores on people it has not seen
is its leave-one-subject-out cross-validation (`python bench/har.py loso`), which their cards
quote (`zoo describe CELL`); bench/RESULTS.md, "Activity recognition: leave one subject out
over all 11", has the table.

Preset `course`: the course's recipe: raw windows, 128 units, Xavier-uniform input weights,
SGD lr 0.1 momentum 0.85, batch 32, at most 50 epochs with early stopping on validation
cross-entropy (patience 10, best epoch kept), one dense layer in the head.
"""


def entry_hparams(cell: str, implementation: str) -> dict[str, HParam]:
    """The hyperparameters of the `cell` entry of `implementation` ("zoo" or "keras"): the
    shared ones, the hand-written loop's and the GRU's own, at the cell's defaults."""
    chosen = {**HPARAMS, **(HAND_WRITTEN_ONLY if implementation == "zoo" else {}),
              **(GRU_ONLY if cell == "gru" else {})}
    for key, default in CELL_DEFAULTS[cell].items():
        chosen[key] = dataclasses.replace(chosen[key], default=default)
    return chosen


# Each cell's strong recipe: the best of 12 random-search trials per cell (`zoo tune CELL --tuner
# random --max-trials 12 --epochs 40 --seed 0 --search rotation,gravity_filter,magnitude,
# ema_momentum,dropout,label_smoothing,learning_rate` on USC-HAD's training subjects), scored on
# the whole subjects the reader holds out for validation, never on the test subjects.
CELL_DEFAULTS = {
    # The RNN's rotation is 25 degrees, not its best trial's 6: it won 3-fold cross-validation
    # over the training subjects (`python bench/har.py cv --cells rnn --seeds 0 1 [--set
    # rotation=25]`, bench/RESULTS.md); the trial's two validation subjects were too few to tell.
    "rnn": {"rotation": 25.0, "gravity_filter": "lowpass", "dropout": 0.31,
            "label_smoothing": 0.16, "learning_rate": 1.3e-3},
    # The LSTM's best trial (lr 0.06 with an EMA of the weights) reached 0.898 on the validation
    # subjects of seed 0 but 0.19 on seed 1's: it diverges. Its runner-up, the GRU's best, does not.
    "lstm": {"rotation": 24.7, "gravity_filter": "lowpass", "dropout": 0.29,
             "label_smoothing": 0.11, "learning_rate": 8.1e-3},
    "gru": {"bidirectional": True, "rotation": 24.7, "gravity_filter": "lowpass", "dropout": 0.29,
            "label_smoothing": 0.11, "learning_rate": 8.1e-3},
}

# Training (`zoo train`) uses every training subject: the recipes were selected on held-out
# subjects already, and with nine people, holding one or two out costs more on new people than
# any recipe change won (bench/RESULTS.md, "Activity recognition on unseen people").
# `--load validation_fraction=0.1` holds subjects out to watch; `zoo tune` always does.
LOAD = {"validation_fraction": 0.0}

_ENTRY = {"task": ACTIVITY_RECOGNITION, "fit": FIT, "presets": PRESETS, "notes": RECIPE,
          "load": LOAD}


@register(hparams=entry_hparams("rnn", "zoo"), **_ENTRY)
def rnn(**hparams: Any) -> SequenceClassifier:
    """Vanilla tanh RNN written from its equations (zoo.recurrent.RNNCell)."""
    return _build("rnn", "zoo", "rnn", **hparams)


@register(hparams=entry_hparams("lstm", "zoo"), **_ENTRY)
def lstm(**hparams: Any) -> SequenceClassifier:
    """LSTM written from its equations (zoo.recurrent.LSTMCell)."""
    return _build("lstm", "zoo", "lstm", **hparams)


@register(hparams=entry_hparams("gru", "zoo"), **_ENTRY)
def gru(**hparams: Any) -> SequenceClassifier:
    """GRU written from its equations (zoo.recurrent.GRUCell)."""
    return _build("gru", "zoo", "gru", **hparams)


@register(hparams=entry_hparams("rnn", "keras"), weights_from="rnn", **_ENTRY)
def keras_rnn(**hparams: Any) -> SequenceClassifier:
    """Keras' built-in SimpleRNN (keras.layers.SimpleRNN), with rnn's head and recipe."""
    return _build("rnn", "keras", "keras_rnn", **hparams)


@register(hparams=entry_hparams("lstm", "keras"), weights_from="lstm", **_ENTRY)
def keras_lstm(**hparams: Any) -> SequenceClassifier:
    """Keras' built-in LSTM (keras.layers.LSTM), with lstm's head and recipe."""
    return _build("lstm", "keras", "keras_lstm", **hparams)


@register(hparams=entry_hparams("gru", "keras"), weights_from="gru", **_ENTRY)
def keras_gru(**hparams: Any) -> SequenceClassifier:
    """Keras' built-in GRU (keras.layers.GRU), with gru's head and recipe."""
    return _build("gru", "keras", "keras_gru", **hparams)
