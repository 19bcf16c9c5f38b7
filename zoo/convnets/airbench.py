"""airbench's fast CIFAR-10 net (Jordan, 2024), sized for two CPU cores: `AirbenchNet`.

Its pieces are in `zoo.convnets.layers` (patch whitening, partial-identity kernels, fast-shift
batch norm, random crops and flips) and `zoo.schedules` (Lookahead, freezing the whitening
bias); the course's nets are in `zoo.convnets.model`.

As those nets, it takes channels-last images with pixel values in [0, 255] and ends in a softmax
over the classes. Under a mixed dtype policy (`dtype="mixed_bfloat16"`, see `zoo.precision`)
the convolutions compute in bfloat16 with float32 weights; the pixels, the augmentation, the
`PatchWhitening`, the logits and the softmax stay float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
from keras import ops

from zoo.convnets.layers import (
    FastShiftBatchNorm, PartialIdentity, PatchWhitening, RandomCropFlip, course_l2,
)
from zoo.convnets.options import TEST_AUGMENTATIONS
from zoo.precision import keeps_dtype_policy
from zoo.schedules import FreezeAfter, Lookahead, ScheduledModel

__all__ = ["TEST_AUGMENTATIONS", "AirbenchNet"]


@keras.saving.register_keras_serializable(package="zoo")
@keeps_dtype_policy
class AirbenchNet(ScheduledModel):
    """The airbench CIFAR-10 net (Jordan, 2024), sized for two CPU cores.

    `PatchWhitening` (2x2, frozen filters, a bias trained for the first epochs) - GELU, then
    three blocks of conv 3x3 - 2x2 max pool - BN - GELU - conv 3x3 - BN - GELU, global max
    pool, a bias-free dense layer whose logits are scaled by 1/9, softmax. Convolutions start
    as partial identities (`PartialIdentity`), batch norms have no scale and a fast shift
    (`FastShiftBatchNorm`). Training augments with `RandomCropFlip(crop_padding)`; `fit` adds
    `Lookahead` and `FreezeAfter`. At inference, `test_augmentation` averages the logits of
    each image's mirror ("flip") and of its 1-pixel shifts ("flip_translate", 6 passes).

    Args:
        widths: filters of the three blocks.
        crop_padding: largest random translation in training, in pixels (mirrored border).
        test_augmentation: "none", "flip" or "flip_translate".
        weight_decay: L2 strength on the kernels; the loss adds 0.5 * weight_decay * sum W^2,
            so the gradient gains weight_decay * W (PyTorch's `weight_decay`).
        lookahead: pull the weights toward a slow average every 5 steps during `fit`.
        whiten_bias_epochs: train the whitening bias for this many epochs of each run, then
            freeze it (`FreezeAfter`): airbench's recipe, which measured no loss of accuracy,
            and the later steps skip the backward pass into the first convolution's input.
        num_classes: classes.
        seed: seeds the initial weights.

    Call arguments:
        inputs: images `(N, 32, 32, 3)`, pixel values in [0, 255].
        training: augment and use batch statistics.

    Example:

    >>> model = AirbenchNet(widths=(64, 128, 128))
    >>> zoo.training.adapt_preprocessing(model, x_train)  # fits the whitening
    ['patch_whitening...']
    >>> probabilities = model(images)  # averaged over mirror and shifts
    >>> probabilities.shape
    TensorShape([8, 10])
    """

    def __init__(
        self,
        widths: Sequence[int] = (64, 128, 128),
        crop_padding: int = 2,
        test_augmentation: str = "flip_translate",
        weight_decay: float = 5e-4,
        lookahead: bool = True,
        whiten_bias_epochs: int = 3,
        num_classes: int = 10,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if len(widths) != 3 or min(widths) < 1:
            raise ValueError(f"widths must be three positive integers, got {list(widths)}")
        if test_augmentation not in TEST_AUGMENTATIONS:
            raise ValueError(
                f"test_augmentation must be one of {list(TEST_AUGMENTATIONS)}, got {test_augmentation!r}"
            )
        if weight_decay < 0:
            raise ValueError(f"weight_decay must be non-negative, got {weight_decay}")
        if whiten_bias_epochs < 0:
            raise ValueError(
                f"whiten_bias_epochs must be a non-negative integer, got {whiten_bias_epochs}"
            )
        self.widths, self.crop_padding = tuple(widths), crop_padding
        self.test_augmentation, self.weight_decay = test_augmentation, weight_decay
        self.lookahead, self.whiten_bias_epochs = lookahead, whiten_bias_epochs
        self.num_classes, self.seed = num_classes, seed
        regularizer = course_l2(weight_decay)
        seeds = iter(range(seed, seed + 7) if seed is not None else [None] * 7)

        def conv(filters: int) -> keras.layers.Conv2D:
            return keras.layers.Conv2D(
                filters, 3, padding="same", use_bias=False, kernel_regularizer=regularizer,
                kernel_initializer=PartialIdentity(next(seeds)),
            )

        # float32: the pixels, and the whitening (eigenvalue-scaled filters with gains up to
        # 1/sqrt(epsilon) ~ 45) before the first bfloat16 layer.
        self.augment = RandomCropFlip(crop_padding, dtype=self.variable_dtype)
        self.whiten = PatchWhitening(2, dtype=self.variable_dtype)
        self.blocks = [[conv(filters), FastShiftBatchNorm(), conv(filters), FastShiftBatchNorm()]
                       for filters in self.widths]
        self.pool = keras.layers.MaxPooling2D(2, 2)
        self.head = keras.layers.Dense(  # float32 logits: averaged over test-time views, softmax
            num_classes, use_bias=False, kernel_regularizer=regularizer, dtype=self.variable_dtype,
            kernel_initializer=keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform", next(seeds)),
        )

    def build(self, input_shape: Any) -> None:
        shape = (None, *input_shape[1:])
        layers = [self.whiten]
        for first, first_norm, second, second_norm in self.blocks:
            layers += [first, self.pool, first_norm, second, second_norm]
        for layer in layers:  # the whitening may already be built, by `adapt`
            if not layer.built:
                layer.build(shape)
            shape = layer.compute_output_shape(shape)
        self.head.build((None, self.widths[-1]))

    def _logits(self, x: Any, training: bool | None) -> Any:
        x = ops.gelu(self.whiten(x))
        for first, first_norm, second, second_norm in self.blocks:
            x = ops.gelu(first_norm(self.pool(first(x)), training=training))
            x = ops.gelu(second_norm(second(x), training=training))
        # A small scale keeps the logits in softmax's sensitive range early in training.
        return self.head(ops.max(x, axis=(1, 2))) / 9.0

    def _mirror_logits(self, x: Any) -> Any:
        logits = self._logits(x, False)
        if self.test_augmentation == "none":
            return logits
        return 0.5 * (logits + self._logits(ops.flip(x, axis=2), False))

    def call(self, inputs: Any, training: bool | None = None) -> Any:
        x = ops.cast(inputs, self.variable_dtype)  # pixels: full precision until whitened
        if training:
            return ops.softmax(self._logits(self.augment(x, training=True), True))
        logits = self._mirror_logits(x)
        if self.test_augmentation == "flip_translate":
            padded = ops.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], mode="reflect")
            shifted = [padded[:, :-2, :-2], padded[:, 2:, 2:]]  # one pixel up-left, down-right
            logits = 0.5 * logits + 0.25 * sum(self._mirror_logits(s) for s in shifted)
        return ops.softmax(logits)

    def training_callbacks(self) -> list[keras.callbacks.Callback]:
        """`Lookahead` when `lookahead` is set, and the whitening bias's `FreezeAfter`: `fit` and
        `zoo.training.train_loop` add them."""
        return [*([Lookahead()] if self.lookahead else []),
                FreezeAfter(self.whiten, self.whiten_bias_epochs)]

    def first_filters(self) -> Any:
        """The whitening filters as images, `(24, 2, 2, 3)` (after `adapt`)."""
        return ops.transpose(self.whiten.kernel, (3, 0, 1, 2))

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "widths": list(self.widths),
            "crop_padding": self.crop_padding,
            "test_augmentation": self.test_augmentation,
            "weight_decay": self.weight_decay,
            "lookahead": self.lookahead,
            "whiten_bias_epochs": self.whiten_bias_epochs,
            "num_classes": self.num_classes,
            "seed": self.seed,
        }
