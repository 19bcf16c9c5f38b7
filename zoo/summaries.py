"""TensorBoard logs for any entry: Keras' own per-epoch scalars, plus pictures of what a model
learned (a task's `images(model)`: first-layer filters, features) every few epochs.

    LOG_DIR/train/, LOG_DIR/validation/   keras.callbacks.TensorBoard's epoch scalars
    LOG_DIR/images/                       `ImageSummaries`: one tiled image per logged epoch

`zoo train NAME --tensorboard LOG_DIR` and `zoo tune NAME --tensorboard LOG_DIR` (one log dir
per trial, `LOG_DIR/trial_NN`, with keras-tuner's HParams) write them; in Python, pass
`callbacks(LOG_DIR, entry.task.images)` to `zoo.training.fit`. Knows no family.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.errors import UserError

if TYPE_CHECKING:
    import keras

# Keras and TensorFlow are imported when a callback is made, not with this module: the `zoo`
# command reads DEFAULT_EVERY and TensorBoardMissing before it knows whether it needs them.

__all__ = ["DEFAULT_EVERY", "IMAGES_DIR", "ImageSummaries", "TensorBoardMissing", "callbacks",
           "require", "scalars", "tile"]

IMAGES_DIR = "images"
#: Epochs between pictures by default.
DEFAULT_EVERY = 5
#: Each tile is drawn at least this many pixels wide (small filters are enlarged, no smoothing).
MIN_TILE_PIXELS = 24


class TensorBoardMissing(RuntimeError, UserError):
    """Raised for TensorBoard logging without the `tensorboard` package (TensorFlow 2.21 no
    longer installs it): tf.summary and keras.callbacks.TensorBoard need it."""


def require() -> None:
    """Raises `TensorBoardMissing`, saying how to install it, unless `tensorboard` imports."""
    if importlib.util.find_spec("tensorboard") is None:
        raise TensorBoardMissing(
            "TensorBoard logging needs the tensorboard package, which TensorFlow no longer "
            "installs: pip install tensorboard (or pip install 'zoo[tensorboard]')"
        )


def tile(images: Any, max_images: int = 100) -> np.ndarray:
    """`(N, H, W, C)` images of any range as one `(rows*(H+1)-1, cols*(W+1)-1, C)` float grid
    in [0, 1]: each image scaled to its own range (a constant image is mid-grey), at most
    `max_images`, enlarged by a whole factor so that a tile is `MIN_TILE_PIXELS` wide."""
    array = np.asarray(images, np.float32)[:max_images]
    if array.ndim != 4 or array.shape[-1] not in (1, 3, 4) or not len(array):
        raise ValueError(f"expected images (N, H, W, 1|3|4), got shape {array.shape}")
    array = np.nan_to_num(array)
    low = array.min(axis=(1, 2, 3), keepdims=True)
    span = array.max(axis=(1, 2, 3), keepdims=True) - low
    array = np.where(span > 0, (array - low) / np.where(span > 0, span, 1), 0.5)
    count, height, width, channels = array.shape
    columns = math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = np.ones((rows * (height + 1) - 1, columns * (width + 1) - 1, channels), np.float32)
    for index, image in enumerate(array):
        row, column = divmod(index, columns)
        grid[row * (height + 1):row * (height + 1) + height,
             column * (width + 1):column * (width + 1) + width] = image
    scale = max(1, math.ceil(MIN_TILE_PIXELS / max(height, width)))
    return np.repeat(np.repeat(grid, scale, axis=0), scale, axis=1)


@functools.cache
def _image_summaries() -> type:
    """`ImageSummaries`, defined on first use (it subclasses Keras' `Callback`)."""
    import keras
    import tensorflow as tf

    class ImageSummaries(keras.callbacks.Callback):
        """Writes `images(model)`, tiled into one picture (`tile`), with `tf.summary.image` into
        `log_dir/images/` every `every` epochs and after the last one (step: epochs trained).

        Args:
            log_dir: the TensorBoard log directory (the one given to `keras.callbacks.TensorBoard`).
            images: `images(model) -> (N, H, W, C)` array of any range (a `Task.images`).
            every: epochs between pictures; the last epoch is always drawn.
            name: the summary's tag.
        """

        def __init__(self, log_dir: str | Path, images: Callable[[Any], Any], every: int = DEFAULT_EVERY,
                     name: str = "learned") -> None:
            super().__init__()
            if not (isinstance(every, int) and every >= 1):
                raise ValueError(f"every must be an integer >= 1, got {every!r}")
            self.log_dir, self.images, self.every, self.name = str(log_dir), images, every, name
            self._writer: Any = None

        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            self._writer = tf.summary.create_file_writer(str(Path(self.log_dir) / IMAGES_DIR))

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            last = epoch + 1 == self.params.get("epochs")
            if (epoch + 1) % self.every and not last:
                return
            if self._writer is None:
                self.on_train_begin()
            with self._writer.as_default():
                tf.summary.image(self.name, tile(self.images(self.model))[None], step=epoch + 1)
            self._writer.flush()

        def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    ImageSummaries.__qualname__ = "ImageSummaries"
    return ImageSummaries


def __getattr__(name: str) -> Any:
    if name == "ImageSummaries":
        return _image_summaries()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def callbacks(
    log_dir: str | Path | None,
    images: Callable[[Any], Any] | None = None,
    every: int = DEFAULT_EVERY,
) -> list[keras.callbacks.Callback]:
    """The callbacks that log a training run to TensorBoard in `log_dir` (none when it is
    `None`): `keras.callbacks.TensorBoard`'s epoch scalars and, when `images` is given,
    `ImageSummaries`. `log_dir` becomes a folder zoo owns (`zoo.runs.claim_directory`): one
    holding files zoo did not write is refused, so no two sources' curves mix in it.

    Raises:
        RunError: `log_dir` is a file, or a folder that holds files zoo did not write.
    """
    if log_dir is None:
        return []
    require()
    from zoo import runs  # imported here: only logging runs need the owner check

    runs.claim_directory(log_dir, "TensorBoard log folder", "choose another --tensorboard")
    logged: list[keras.callbacks.Callback] = [scalars(log_dir)]
    if images is not None:
        logged.append(_image_summaries()(log_dir, images, every))
    return logged


def scalars(log_dir: str | Path) -> keras.callbacks.TensorBoard:
    """Keras' TensorBoard callback for per-epoch scalars only: no graph (subclassed models with
    their own `train_step` trace it poorly), no profiler, no weight histograms."""
    require()
    import keras

    return keras.callbacks.TensorBoard(str(log_dir), histogram_freq=0, write_graph=False,
                                       update_freq="epoch", profile_batch=0)
