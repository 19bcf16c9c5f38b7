"""Convolutional family for CIFAR-10: the fully-connected baseline TwoLayerNet, ThreeLayerConvNet,
the course's challenge net, airbench's fast net, CIFAR-10 readers and pipeline, registry entries."""

from zoo.convnets.entries import (
    CIFAR10,
    cifar_airbench,
    cifar_small,
    three_layer_convnet,
    two_layer_fc,
)
from zoo.convnets.layers import FastShiftBatchNorm, PartialIdentity, PatchWhitening, RandomCropFlip
from zoo.convnets.model import AirbenchNet, CifarSmallNet, ThreeLayerConvNet, TwoLayerNet

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
    "cifar_small",
    "three_layer_convnet",
    "two_layer_fc",
]
