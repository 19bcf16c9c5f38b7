"""Registry entries of the convolutional family, with their shared task: CIFAR-10 classification.

There is no embedded default data set (50,000 images are too many to ship): without `--data`,
`CIFAR10.load` looks in the usual places (`zoo.convnets.data.default_locations`) and otherwise
fails with a `DataError` that says where it looked and how to provide CIFAR-10.

Keras, TensorFlow and the models are imported inside the functions that use them, so that the
entries register without them (`zoo list` and `zoo describe` need no TensorFlow).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.convnets import data
from zoo.convnets.options import INITIALIZATIONS, NORMALIZATIONS, TEST_AUGMENTATIONS
from zoo.convnets.predict import predict
from zoo.data import Splits
from zoo.registry import Choice, Float, HParam, HyperparameterError, Int, Metric, Task, register

if TYPE_CHECKING:
    import keras
    import numpy as np

    from zoo.convnets.airbench import AirbenchNet
    from zoo.convnets.model import CifarSmallNet, ThreeLayerConvNet, TwoLayerNet

__all__ = [
    "CIFAR10", "cifar_airbench", "cifar_airbench_wide", "cifar_small", "three_layer_convnet",
    "two_layer_fc",
]


def _figures(model: keras.Model, splits: Splits, out_dir: Path,
             outputs: Mapping[str, np.ndarray] | None = None) -> list[Path]:
    import keras

    from zoo import classification, plots

    filters = keras.ops.convert_to_numpy(model.first_filters())
    title = f"{model.name}: first-layer filters ({len(filters)}, {filters.shape[1]}x{filters.shape[2]} RGB)"
    # The data's classes (a cat/dog folder has two), in the labels' order.
    names = list(splits.info.get("classes") or data.CLASS_NAMES)
    what = "CIFAR-10" if tuple(names) == data.CLASS_NAMES else f"{len(names)} classes"
    return [
        plots.image_grid(filters, out_dir / "filters.png", title),
        *classification.report(model, splits, names, out_dir, f"{model.name}: {what}", outputs),
    ]


def _endpoints(model: keras.Model) -> dict[str, Any]:
    # uint8 pixels in, named outputs out (probabilities, class_index): the scaling to zero mean
    # and unit variance is a layer of the model, so it is part of the exported graph.
    import tensorflow as tf

    from zoo import classification

    signature = [tf.TensorSpec([None, *data.IMAGE_SHAPE], tf.uint8, name="images")]

    def serve(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return classification.serving_outputs(model(tf.cast(images, tf.float32), training=False))

    return {"serve": (serve, signature)}


def _images(model: keras.Model) -> Any:
    """The first-layer filters, `(N, size, size, 3)`, for TensorBoard."""
    import keras

    return keras.ops.convert_to_numpy(model.first_filters())


def _panel(model: keras.Model, axis: Any) -> None:
    import keras

    from zoo import plots

    plots.draw_image_grid(axis, keras.ops.convert_to_numpy(model.first_filters()))


CIFAR10 = Task(
    name="CIFAR-10 classification",
    family="convnets",
    data=(
        "CIFAR-10 32x32 RGB images in 10 classes, from --data: a class-folder tree "
        "(DIR/<class>/*.jpg, or DIR/train/<class> with an optional DIR/test/<class> that becomes "
        "the test split; any class names, sorted, the model built with --set num_classes=K for "
        "K folders), a cifar-10-batches-py or -bin directory, or an .npz (x_train, y_train "
        "[, x_test, y_test]); 1,000 training images are held out for validation. No embedded "
        "default: without --data it looks in $ZOO_CIFAR10, ~/.keras/datasets, data/cifar10 and "
        "../shared/data/cifar10"
    ),
    load=data.load,
    metric=Metric("val_accuracy", "max", "accuracy on the held-out training images"),
    figures=_figures,
    endpoints=_endpoints,
    panel=_panel,
    example=data.example,
    predict=predict,
    class_names=data.CLASS_NAMES,
    images=_images,
)

_REG = HParam(0.0, "[0, 10]", Float(1e-5, 1e-1, log=True), "L2: 0.5 reg sum W^2")
_LEARNING_RATE = HParam(1e-3, "(0, 10]", Float(1e-4, 1e-2, log=True), "Adam step size")
_NORMALIZATION = HParam("none", NORMALIZATIONS, Choice(NORMALIZATIONS),
                        "feature-map normalisation after each convolution")
_GROUPS = HParam(4, "[1, 1024]", None, "channel groups of group normalisation (divides filters)")
# Not searched: the class count is the data's, not a choice. With --weights, another count
# re-initialises only the classifier head (fine-tuning; see zoo.weights.load).
_NUM_CLASSES = HParam(len(data.CLASS_NAMES), "[2, 100000]", None,
                      "classes of the softmax output: the data's class count")


def _check_groups(normalization: str, groups: int, filters: tuple[int, ...]) -> None:
    if normalization == "group" and any(count % groups for count in filters):
        raise HyperparameterError(
            f"groups must divide every convolution's filters {list(filters)}, got {groups}"
        )


def _compile(model: keras.Model, optimizer: keras.optimizers.Optimizer,
             label_smoothing: float = 0.0) -> keras.Model:
    from zoo import classification

    model.compile(
        optimizer=optimizer,
        # One-hot rows or class indices (`model.fit(x, labels)`): see zoo.classification.
        loss=classification.loss(label_smoothing),
        metrics=classification.metrics(),
    )
    return model


# For smoke tests and tests/test_contract.py: seconds to build, train, export and tune.
_TINY_FIT = {"epochs": 1, "batch_size": 8}


@register(
    task=CIFAR10,
    hparams={
        # Powers of two, so that every searched value has the default 4 groups for group norm.
        "num_filters": HParam(32, "[1, 1024]", Choice((8, 16, 32, 64, 128)), "convolution filters"),
        "filter_size": HParam(7, "[1, 31]", Choice((3, 5, 7)), "filter side (odd keeps the size)"),
        "hidden_dim": HParam(100, "[1, 65536]", Int(32, 1024, log=True), "hidden affine units"),
        "weight_scale": HParam(1e-3, "(0, 10]", None, "std of the N(0, s^2) initial weights"),
        "reg": _REG,
        "normalization": _NORMALIZATION,
        "groups": _GROUPS,
        "learning_rate": _LEARNING_RATE,
        "num_classes": _NUM_CLASSES,
    },
    fit={"epochs": 10, "batch_size": 50},
    presets={"one_epoch": {"hidden_dim": 500, "reg": 1e-3, "epochs": 1, "batch_size": 50},
             "tiny": {"num_filters": 4, "filter_size": 3, "hidden_dim": 8, **_TINY_FIT}},
    sweep={"normalization": NORMALIZATIONS, "reg": (0.0, 1e-3, 1e-2)},
)
def three_layer_convnet(
    num_filters: int,
    filter_size: int,
    hidden_dim: int,
    weight_scale: float,
    reg: float,
    normalization: str,
    groups: int,
    learning_rate: float,
    num_classes: int,
) -> ThreeLayerConvNet:
    """cs231n's ThreeLayerConvNet: conv 7x7 - ReLU - 2x2 pool - affine 100 - ReLU - affine 10 - softmax.

    The course's defaults: 32 filters of 7x7, 100 hidden units, weights from N(0, 1e-3^2), zero
    biases, L2 0.5 reg sum W^2, Adam 1e-3, batch 50. Optional spatial batch or group
    normalisation after the convolution. Takes channels-last or channels-first (N, 3, 32, 32)
    pixels. The `one_epoch` preset is the course's run: hidden 500, reg 1e-3, one epoch.
    """
    import keras

    from zoo.convnets.model import ThreeLayerConvNet

    _check_groups(normalization, groups, (num_filters,))
    model = ThreeLayerConvNet(
        num_filters=num_filters, filter_size=filter_size, hidden_dim=hidden_dim,
        num_classes=num_classes, weight_scale=weight_scale, reg=reg, normalization=normalization,
        groups=groups, name="three_layer_convnet",
    )
    return _compile(model, keras.optimizers.Adam(learning_rate))


@register(
    task=CIFAR10,
    hparams={
        "hidden_dim": HParam(1000, "[1, 65536]", Int(100, 4000, log=True), "hidden affine units"),
        "weight_scale": HParam(1e-3, "(0, 10]", Float(1e-4, 1e-1, log=True),
                               "std of the N(0, s^2) initial weights (init normal)"),
        "init": HParam("normal", INITIALIZATIONS, Choice(INITIALIZATIONS),
                       "initial weights: N(0, weight_scale^2), or He's N(0, 2/fan_in)"),
        "reg": _REG,
        "learning_rate": HParam(1e-2, "(0, 10]", Float(1e-3, 1e-1, log=True), "SGD step size"),
        "momentum": HParam(0.9, "[0, 1)", Float(0.5, 0.99), "SGD momentum; 0 is plain SGD"),
        "num_classes": _NUM_CLASSES,
    },
    fit={"epochs": 10, "batch_size": 64},
    presets={"course": {"hidden_dim": 4000, "init": "kaiming", "learning_rate": 1e-2,
                        "momentum": 0.0, "epochs": 1, "batch_size": 64},
             "tiny": {"hidden_dim": 8, **_TINY_FIT}},
)
def two_layer_fc(
    hidden_dim: int,
    weight_scale: float,
    init: str,
    reg: float,
    learning_rate: float,
    momentum: float,
    num_classes: int,
) -> TwoLayerNet:
    """The course's fully-connected baseline: flatten - affine (1000; the course's 4000) - ReLU - affine 10 - softmax.

    The `course` preset is the course's run: 4000 hidden units, He-initialised weights
    N(0, 2/fan_in), zero biases, plain SGD 1e-2, batch 64, one epoch. The defaults train
    longer: SGD 1e-2 with momentum 0.9 for 10 epochs, weights from N(0, 1e-3^2) as cs231n's
    TwoLayerNet, L2 0.5 reg sum W^2 on both weight matrices, and 1000 hidden units, chosen over
    4000 on held-out images at a quarter of the time and size (`python bench/convnets.py
    accuracy two_layer_fc [--set hidden_dim=4000]`; the figures are in bench/RESULTS.md).
    Takes channels-last or channels-first (N, 3, 32, 32) pixels. The filter figure shows the
    first 100 hidden units' weights as 32x32 RGB images.
    """
    import keras

    from zoo.convnets.model import TwoLayerNet

    model = TwoLayerNet(hidden_dim=hidden_dim, num_classes=num_classes, weight_scale=weight_scale,
                        init=init, reg=reg, name="two_layer_fc")
    return _compile(model, keras.optimizers.SGD(learning_rate, momentum=momentum))


@register(
    task=CIFAR10,
    hparams={
        "filters": HParam(16, "[1, 1024]", Choice((8, 16, 32)),
                          "first convolution's filters; the next two have 2x and 4x"),
        "normalization": HParam("batch", NORMALIZATIONS, Choice(NORMALIZATIONS),
                                "feature-map normalisation after each convolution"),
        "groups": _GROUPS,
        "crop_padding": HParam(2, "[0, 16]", None, "random shift (pixels) and flips in training; 0: none"),
        "schedule": HParam("one_cycle", ("one_cycle", "constant"), Choice(("one_cycle", "constant")),
                           "learning rate: short warm-up then linear decay to 0, or constant"),
        "learning_rate": _LEARNING_RATE,
        "num_classes": _NUM_CLASSES,
    },
    fit={"epochs": 10, "batch_size": 64},
    presets={"course": {"crop_padding": 0, "schedule": "constant"},
             "tiny": {"filters": 4, **_TINY_FIT}},
)
def cifar_small(
    filters: int,
    normalization: str,
    groups: int,
    crop_padding: int,
    schedule: str,
    learning_rate: float,
    num_classes: int,
) -> CifarSmallNet:
    """The course's CIFAR-10 challenge net: (conv-BN-ReLU-2x2 pool) x 3 (16 5x5, 32 3x3, 64 3x3), dense 10.

    Adam 1e-3, batch 64, 10 epochs as in the course. By default
    training adds 2-pixel random shifts with horizontal flips and a one-cycle learning rate
    (peak `learning_rate`); the `course` preset is the course's plain recipe.
    """
    import keras

    from zoo.convnets.model import CifarSmallNet
    from zoo.schedules import OneCycle

    widths = (filters, 2 * filters, 4 * filters)
    _check_groups(normalization, groups, widths)
    model = CifarSmallNet(
        filters=widths, kernel_sizes=(5, 3, 3), normalization=normalization, groups=groups,
        crop_padding=crop_padding, num_classes=num_classes, name="cifar_small",
    )
    rate = OneCycle(learning_rate, warmup=0.1) if schedule == "one_cycle" else learning_rate
    return _compile(model, keras.optimizers.Adam(rate))


_AIRBENCH_HPARAMS = {
    "width": HParam(64, "[1, 1024]", Choice((32, 48, 64, 96)),
                    "first block's filters; the second and third have `expansion` times as many"),
    "expansion": HParam(2, "[1, 8]", Choice((2, 3, 4)),
                        "second and third blocks' filters per first-block filter"),
    "crop_padding": HParam(2, "[0, 15]", None, "random shift in training, pixels"),
    "test_augmentation": HParam("flip_translate", TEST_AUGMENTATIONS, None,
                                "inference averages over mirror ('flip') and 1-pixel shifts"),
    "label_smoothing": HParam(0.2, "[0, 1)", Float(0.0, 0.3), "label smoothing"),
    "learning_rate": HParam(0.75, "(0, 10]", Float(0.2, 2.0, log=True),
                            "peak SGD step size of the one-cycle schedule, for batch 512"),
    "momentum": HParam(0.85, "[0, 1)", Float(0.8, 0.95), "Nesterov momentum"),
    "warmup": HParam(0.23, "(0, 1)", None, "share of training spent warming up"),
    "weight_decay": HParam(1.3e-3, "[0, 1]", Float(1e-4, 1e-2, log=True), "L2 on kernels"),
    "lookahead": HParam(True, None, None, "average the weights every 5 steps (Lookahead)"),
    "whiten_bias_epochs": HParam(3, "[0, 1000]", None,
                                 "epochs the whitening bias trains before it freezes"),
    "num_classes": _NUM_CLASSES,
}
_AIRBENCH_RECIPE = """
Identity-initialised convolutions; batch norms without scale whose shifts learn 64x faster;
2-pixel mirrored shifts and flips; label smoothing 0.2; SGD with Nesterov momentum 0.85, batch
512, weight decay 1.3e-3, one-cycle learning rate (0.15 -> 0.75 over 23% of the steps -> 0.05);
Lookahead every 5 steps after 30% of training; the whitening bias frozen after 3 epochs;
inference averaged over mirror and 1-pixel shifts. The recipe trains in `mixed_bfloat16`
(float32 weights, statistics, whitening, logits) where the CPU has bfloat16 units, and in
float32 where TensorFlow would emulate bfloat16 (`zoo describe` says which and why); an explicit
`dtype_policy` is always obeyed.
"""


def _airbench(name: str, width: int, expansion: int, crop_padding: int, test_augmentation: str,
              label_smoothing: float, learning_rate: float, momentum: float, warmup: float,
              weight_decay: float, lookahead: bool, whiten_bias_epochs: int,
              num_classes: int) -> AirbenchNet:
    import keras

    from zoo.convnets.airbench import AirbenchNet
    from zoo.schedules import OneCycle

    model = AirbenchNet(
        widths=(width, expansion * width, expansion * width), crop_padding=crop_padding,
        test_augmentation=test_augmentation, weight_decay=weight_decay, lookahead=lookahead,
        whiten_bias_epochs=whiten_bias_epochs, num_classes=num_classes, name=name,
    )
    schedule = OneCycle(learning_rate, warmup, initial=0.2, final=0.07)
    return _compile(model, keras.optimizers.SGD(schedule, momentum=momentum, nesterov=True),
                    label_smoothing)


@register(
    task=CIFAR10,
    hparams=_AIRBENCH_HPARAMS,
    fit={"epochs": 10, "batch_size": 512},
    presets={"tiny": {"width": 8, **_TINY_FIT}},
    notes=_AIRBENCH_RECIPE,
    dtype_policy="mixed_bfloat16",
)
def cifar_airbench(**hparams: Any) -> AirbenchNet:
    """airbench's CIFAR-10 net for 10 epochs on 2 CPU cores: whitened 2x2 patches, (conv-pool-BN-GELU-conv-BN-GELU) x 3.

    Widths 64, 128, 128 (airbench93's): the fast one of the two airbench entries. Its held-out
    accuracy over seeds and its minutes, in each dtype policy, are measured by `python
    bench/convnets.py accuracy cifar_airbench --seed S [--set dtype_policy=...]` and `python
    bench/dtype_policy.py --models cifar_airbench` (bench/RESULTS.md, "CIFAR-10 conv nets"); the
    shipped `cifar10` set's card holds its own (`zoo describe cifar_airbench`).
    """
    return _airbench("cifar_airbench", **hparams)


@register(
    task=CIFAR10,
    hparams={**_AIRBENCH_HPARAMS,
             "expansion": dataclasses.replace(_AIRBENCH_HPARAMS["expansion"], default=4)},
    fit={"epochs": 10, "batch_size": 512},
    presets={"tiny": {"width": 8, **_TINY_FIT}},
    notes=_AIRBENCH_RECIPE,
    dtype_policy="mixed_bfloat16",
)
def cifar_airbench_wide(**hparams: Any) -> AirbenchNet:
    """cifar_airbench at airbench94's widths 64, 256, 256: 2.3x the multiply-adds, more accurate.

    The recipe is cifar_airbench's; the larger widths buy held-out accuracy with time, both
    measured by `python bench/convnets.py accuracy cifar_airbench_wide --seed S` and by the
    50,000-image run `zoo train cifar_airbench_wide --load validation_size=0` (bench/RESULTS.md,
    "CIFAR-10 conv nets"). Its float32 accuracy was not measured.
    """
    return _airbench("cifar_airbench_wide", **hparams)
