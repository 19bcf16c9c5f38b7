"""PNG figures shared by every family: learning curves, image grids, side-by-side comparisons,
confusion matrices.

The figures are `matplotlib.figure.Figure`s drawn on their own Agg canvas (`figure`), not through
`pyplot`: writing a PNG needs no backend, so zoo neither selects one (`matplotlib.use`) nor
opens windows, and a notebook's or script's own backend and figures stay as they were.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from zoo.files import atomic_path

__all__ = [
    "CONTRASTS",
    "confusion_matrix",
    "draw_image_grid",
    "image_grid",
    "learning_curves",
    "panel_grid",
    "save",
    "side_by_side",
    "subplots",
]


def subplots(rows: int = 1, columns: int = 1, **options: Any) -> tuple[Figure, Any]:
    """A new figure and its axes, as `pyplot.subplots(rows, columns, **options)` gives, but
    on its own Agg canvas: nothing of pyplot's (its backend, its list of open figures) is used
    or changed, and nothing needs closing."""
    squeeze = options.pop("squeeze", True)
    drawing = Figure(**options)
    FigureCanvasAgg(drawing)
    return drawing, drawing.subplots(rows, columns, squeeze=squeeze)


def save(figure: Figure, path: str | Path) -> Path:
    """Writes `figure` to `path` as a PNG, atomically."""
    path = Path(path)
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=120, bbox_inches="tight")
    return path


def learning_curves(history: Mapping[str, Sequence[float]], path: str | Path, title: str) -> Path:
    """One panel per metric, training and validation values against epoch."""
    metrics = [name for name in history if not name.startswith("val_")]
    columns = min(3, len(metrics))
    rows = math.ceil(len(metrics) / columns)
    figure, axes = subplots(rows, columns, figsize=(4.5 * columns, 3.2 * rows), squeeze=False)
    for axis, metric in zip(axes.flat, metrics):
        epochs = np.arange(1, len(history[metric]) + 1)
        axis.plot(epochs, history[metric], label="training")
        if f"val_{metric}" in history:
            axis.plot(epochs, history[f"val_{metric}"], label="validation")
        values = np.concatenate([history[m] for m in (metric, f"val_{metric}") if m in history])
        if values.min() > 0 and values.max() > 20 * values.min():
            axis.set_yscale("log")  # a steep first epoch would flatten the rest of the curve
        axis.set_title(metric.replace("_", " "))
        axis.set_xlabel("epoch")
        axis.grid(alpha=0.3)
        axis.legend()
    for axis in list(axes.flat)[len(metrics) :]:
        axis.set_visible(False)
    figure.suptitle(title)
    figure.tight_layout()
    return save(figure, path)


CONTRASTS = ("each", "shared")


def _mosaic(images: np.ndarray, columns: int | None = None, contrast: str = "each") -> np.ndarray:
    """Tiles `(K, H, W)` or RGB `(K, H, W, 3)` images, scaled to [-1, 1], with 1-pixel gaps (NaN).

    `contrast` "each" stretches each image about its own mean (weights, filters: only their
    pattern matters); "shared" maps the smallest and largest value of all images to -1 and 1, so
    that brightness can be compared between images (data, say).
    """
    if contrast not in CONTRASTS:
        raise ValueError(f"contrast must be one of {list(CONTRASTS)}, got {contrast!r}")
    count, height, width = images.shape[:3]
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    mosaic = np.full(
        (rows * (height + 1) + 1, columns * (width + 1) + 1, *images.shape[3:]), np.nan
    )
    low, high = float(np.min(images)), float(np.max(images))
    for index, image in enumerate(images):
        if contrast == "each":
            center = image.mean()
            scale = np.abs(image - center).max() or 1.0
        else:
            center, scale = (low + high) / 2, (high - low) / 2 or 1.0
        row, column = divmod(index, columns)
        top, left = 1 + row * (height + 1), 1 + column * (width + 1)
        mosaic[top : top + height, left : left + width] = (image - center) / scale
    return mosaic


def draw_image_grid(axis: Any, images: np.ndarray, title: str = "", contrast: str = "each") -> None:
    """Draws `(K, H, W)` images as a grey mosaic on `axis`, or `(K, H, W, 3)` as a colour one
    (first-layer filters of a conv net, say); `contrast` "each" stretches each image on its
    own, "shared" puts all on one scale."""
    mosaic = _mosaic(np.asarray(images), contrast=contrast)
    if mosaic.ndim == 3:  # RGB: [-1, 1] to [0, 1], white gaps
        axis.imshow(np.nan_to_num((mosaic + 1) / 2, nan=1.0), interpolation="nearest")
    else:
        colormap = matplotlib.colormaps["gray"].with_extremes(bad="white")  # white gaps
        axis.imshow(mosaic, cmap=colormap, vmin=-1, vmax=1, interpolation="nearest")
    axis.set_xticks([])
    axis.set_yticks([])
    if title:
        axis.set_title(title)


def image_grid(
    images: np.ndarray | Mapping[str, np.ndarray],
    path: str | Path,
    title: str,
    contrast: str = "each",
) -> Path:
    """Saves `(K, H, W)` grey or `(K, H, W, 3)` colour images as one mosaic PNG (features,
    filters, samples), or a mapping of label -> images as labelled mosaics side by side (the
    same patches in colour and after preprocessing, say). `contrast` as in `draw_image_grid`."""
    if not isinstance(images, Mapping):
        figure, axis = subplots(figsize=(7, 7))
        draw_image_grid(axis, images, title, contrast)
        return save(figure, path)
    figure, axes = subplots(1, len(images), figsize=(6.5 * len(images), 7), squeeze=False)
    for axis, (label, grid) in zip(axes.flat, images.items()):
        draw_image_grid(axis, grid, label, contrast)
    figure.suptitle(title)
    figure.tight_layout()
    return save(figure, path)


def side_by_side(
    rows: Mapping[str, np.ndarray], path: str | Path, title: str
) -> Path:
    """One row of images per entry of `rows` (e.g. originals over reconstructions), same scale."""
    labels = list(rows)
    count = len(next(iter(rows.values())))
    figure, axes = subplots(
        len(labels), count, figsize=(1.3 * count, 1.5 * len(labels)), squeeze=False
    )
    low = min(float(np.min(images)) for images in rows.values())
    high = max(float(np.max(images)) for images in rows.values())
    for row, label in enumerate(labels):
        for column in range(count):
            axis = axes[row, column]
            axis.imshow(rows[label][column], cmap="gray", vmin=low, vmax=high)
            axis.set_xticks([])
            axis.set_yticks([])
        axes[row, 0].set_ylabel(label, rotation=0, ha="right", va="center")
    figure.suptitle(title)
    return save(figure, path)


def panel_grid(
    row_labels: Sequence[str],
    column_labels: Sequence[str],
    draw: Callable[[Any, int, int], None],
    path: str | Path,
    title: str,
) -> Path:
    """A labelled grid of panels; `draw(axis, row, column)` fills each (sweeps, say)."""
    figure, axes = subplots(
        len(row_labels),
        len(column_labels),
        figsize=(3.4 * len(column_labels), 3.4 * len(row_labels)),
        squeeze=False,
    )
    for row, row_label in enumerate(row_labels):
        for column, column_label in enumerate(column_labels):
            draw(axes[row, column], row, column)
            axes[row, column].set_title(f"{row_label}, {column_label}", fontsize=10)
    figure.suptitle(title, fontsize=14)
    figure.tight_layout()
    return save(figure, path)


def confusion_matrix(
    matrix: np.ndarray, class_names: Sequence[str], path: str | Path, title: str
) -> Path:
    """A confusion matrix (rows actual, columns predicted) as counts, shaded by row share.

    Shading by the share of each actual class keeps small classes as readable as large ones.
    """
    matrix = np.asarray(matrix)
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    size = 1.6 + 0.55 * len(class_names)
    figure, axis = subplots(figsize=(size + 1.2, size))
    image = axis.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for (row, column), count in np.ndenumerate(matrix):
        color = "white" if shares[row, column] > 0.6 else "black"
        axis.text(column, row, str(count), ha="center", va="center", color=color, fontsize=8)
    ticks = np.arange(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=45, ha="right")
    axis.set_yticks(ticks, class_names)
    axis.set_xlabel("predicted class")
    axis.set_ylabel("actual class")
    figure.colorbar(image, ax=axis, fraction=0.046, pad=0.04, label="share of actual class")
    axis.set_title(title)
    return save(figure, path)
