"""Convolutional family for CIFAR-10: the fully-connected baseline TwoLayerNet, ThreeLayerConvNet,
the course's challenge net, airbench's fast net, CIFAR-10 readers and pipeline, registry entries.

The Keras classes are imported on first use (`zoo._lazy`): `import zoo` needs no TensorFlow."""

from zoo._lazy import lazy_exports
from zoo.convnets.entries import (
    CIFAR10,
    cifar_airbench,
    cifar_airbench_wide,
    cifar_small,
    three_layer_convnet,
    two_layer_fc,
)

#: Names read from their module on first use; `zoo.saving.import_keras_objects` imports them.
LAZY_EXPORTS = {
    **dict.fromkeys(("FastShiftBatchNorm", "PartialIdentity", "PatchWhitening", "RandomCropFlip"),
                    "zoo.convnets.layers"),
    **dict.fromkeys(("CifarSmallNet", "ThreeLayerConvNet", "TwoLayerNet"), "zoo.convnets.model"),
    "AirbenchNet": "zoo.convnets.airbench",
}
__getattr__, __dir__ = lazy_exports(__name__, LAZY_EXPORTS)

__all__ = [
    "CIFAR10",
    "AirbenchNet",
    "CifarSmallNet",
    "FastShiftBatchNorm",
    "PartialIdentity",
    "PatchWhitening",
    "RandomCropFlip",
    "ThreeLayerConvNet",
    "TwoLayerNet",
    "cifar_airbench",
    "cifar_airbench_wide",
    "cifar_small",
    "three_layer_convnet",
    "two_layer_fc",
]
