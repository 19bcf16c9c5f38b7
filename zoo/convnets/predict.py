"""`zoo predict` for the CIFAR-10 conv nets: image files in batches through the compiled
`model.predict`, a bad image refused alone, progress on long inputs.

One image at a time through the eager model cost 9x `model.predict`'s time (2,000 images: 737 s
against 82 s); decoding a batch, then one compiled call over it, keeps the model's throughput
(bench/predict.py measures it against `model.predict` on the same images).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.convnets import data

if TYPE_CHECKING:
    import keras

    from zoo.predicting import Prediction

__all__ = ["BATCH_SIZE", "MODEL_BATCH_SIZE", "predict", "predict_images", "read_batch"]

# Images decoded, then predicted, together: large enough that Keras' per-call cost vanishes
# (a batch takes seconds), small enough that memory stays flat (256 x 32 x 32 x 3 floats, 3 MB)
# and that progress comes every few seconds.
BATCH_SIZE = 256
# What `model.predict` feeds the model at once: Keras' default, the baseline's. Fed 256 at once,
# cifar_airbench ran 15.0 images/s against model.predict's 24.3 at 32 (one round on 2 busy CPU
# cores, bench/predict.py); at 32 the two match (bench/RESULTS.md).
MODEL_BATCH_SIZE = 32


def read_batch(paths: Sequence[Path]) -> tuple[np.ndarray, list[int], dict[int, str]]:
    """Decodes image files and resizes them to 32x32 as class-folder images are.

    Args:
        paths: the image files.

    Returns:
        The images that could be read, float32 `(M, 32, 32, 3)` in [0, 255]; the index into
        `paths` of each; and the refusal of each other index.
    """
    from zoo.data import DataError, decode_image

    images, kept, refused = [], [], {}
    for index, path in enumerate(paths):
        try:
            image = decode_image(path)
            # Most inputs are 32x32 already: skip the TensorFlow resize and its per-call cost.
            images.append(image if image.shape == data.IMAGE_SHAPE else data.fit_image(image).numpy())
            kept.append(index)
        except (DataError, OSError) as error:
            refused[index] = str(error)
    stacked = np.stack(images).astype(np.float32) if images else np.zeros(
        (0, *data.IMAGE_SHAPE), np.float32)
    return stacked, kept, refused


def predict_images(model: keras.Model, paths: Sequence[Path], batch_size: int = BATCH_SIZE,
                   class_names: Sequence[str] = data.CLASS_NAMES) -> list[Prediction]:
    """One `Prediction` per image file, in order: the top-3 classes with their probabilities,
    or why the file was refused.

    Args:
        model: a CIFAR-10 classifier (softmax outputs).
        paths: the image files.
        batch_size: images decoded together, then predicted by one `model.predict` call.
        class_names: the output classes' names.

    Returns:
        One prediction per path.
    """
    from zoo.predicting import Prediction, Progress, class_rows

    results: list[Prediction] = []
    progress = Progress(len(paths), "images")
    for start in range(0, len(paths), batch_size):
        chunk = paths[start:start + batch_size]
        images, kept, refused = read_batch(chunk)
        probabilities = (model.predict(images, batch_size=MODEL_BATCH_SIZE, verbose=0)
                         if len(images) else np.zeros((0, len(class_names))))
        rows = dict(zip(kept, np.asarray(probabilities, np.float32)))
        for index, path in enumerate(chunk):
            if index in refused:
                results.append(Prediction(str(path), error=refused[index]))
            else:
                results.append(class_rows(str(path), rows[index], class_names))
        progress.update(start + len(chunk))
    return results


def predict(model: keras.Model, inputs: list[str], options: dict[str, Any]) -> list[Prediction]:
    """Image files (any size, resized to 32x32 as class-folder images are) or folders of them:
    the top-3 classes with their probabilities, per image. `Task.predict` of the conv nets.

    Args:
        model: a CIFAR-10 classifier.
        inputs: image files and folders (searched recursively for image suffixes).
        options: `class_names` (the weights' classes, default CIFAR-10's).

    Returns:
        One prediction per image, refused ones with their reason.
    """
    from zoo.predicting import expand

    names = options.get("class_names") or data.CLASS_NAMES
    return predict_images(model, expand(inputs, data.IMAGE_SUFFIXES), class_names=names)
