"""The choices the convolutional models take, in one TensorFlow-free place: the registry's
hyperparameters (`zoo.convnets.entries`) name them without importing the models."""

__all__ = ["INITIALIZATIONS", "NORMALIZATIONS", "TEST_AUGMENTATIONS"]

#: Feature-map normalisation after a convolution (`zoo.convnets.model.normalization_layer`).
NORMALIZATIONS = ("none", "batch", "group")
#: TwoLayerNet's initial weights: N(0, weight_scale^2), or He's N(0, 2/fan_in).
INITIALIZATIONS = ("normal", "kaiming")
#: AirbenchNet's inference: plain, averaged with the mirror image, or also over 1-pixel shifts.
TEST_AUGMENTATIONS = ("none", "flip", "flip_translate")
