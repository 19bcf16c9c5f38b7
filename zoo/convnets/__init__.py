"""Convolutional family for CIFAR-10: ThreeLayerConvNet, the course's challenge net, a small
residual net, CIFAR-10 readers and pipeline, registry entries."""

from zoo.convnets.entries import CIFAR10, cifar_resnet, cifar_small, three_layer_convnet
from zoo.convnets.model import (
    CifarResNet,
    CifarSmallNet,
    OneCycle,
    RandomCropFlip,
    ThreeLayerConvNet,
)

__all__ = [
    "CIFAR10",
    "CifarResNet",
    "CifarSmallNet",
    "OneCycle",
    "RandomCropFlip",
    "ThreeLayerConvNet",
    "cifar_resnet",
    "cifar_small",
    "three_layer_convnet",
]
