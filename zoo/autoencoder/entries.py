"""Registry entry for the sparse autoencoder, with its task: data, metric, figures, export.

Keras, TensorFlow, the model and the plots are imported inside the functions that use them, so
that the entry registers without them (`zoo list` and `zoo describe` need no TensorFlow).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from zoo.autoencoder import data
from zoo.autoencoder.objective import sparse_code
from zoo.data import Splits
from zoo.registry import Float, HParam, Int, Metric, Task, register

if TYPE_CHECKING:
    from zoo.autoencoder.model import SparseAutoencoder

__all__ = ["PATCH_RECONSTRUCTION", "sparse_autoencoder"]

INPUT_DIM = data.PATCH_SIZE * data.PATCH_SIZE


def _as_patches(rows: Any) -> np.ndarray:
    return np.asarray(rows).reshape(-1, data.PATCH_SIZE, data.PATCH_SIZE)


def _patches_figure(info: dict[str, Any], out_dir: Path) -> Path:
    """The course's first figure: random patches in colour beside what the autoencoder sees."""
    from zoo import plots

    colour, preprocessed = data.colour_patches(info)
    grey = "whitened luminance" if info["preprocessing"]["whitened_images"] else "luminance"
    preprocessing = f"after preprocessing\n({grey}, patch mean removed, +-3 std clip, [0.1, 0.9])"
    return plots.image_grid(
        {"colour": colour, preprocessing: _as_patches(preprocessed)},
        out_dir / "patches.png",
        f"{len(colour)} random patches: colour (left) and after preprocessing (right)",
        contrast="shared",  # one scale: the patches' brightness and the clipping stay visible
    )


def _figures(model: SparseAutoencoder, splits: Splits, out_dir: Path,
             outputs: Mapping[str, np.ndarray] | None = None) -> list[Path]:
    """The task's figures; `outputs` (reconstructions) are not among what they draw."""
    from zoo import plots

    # The first split there is (`zoo evaluate --splits` may have left only one).
    split, shown = next((name, x) for name, x in (("validation", splits.x_val),
                                                  ("training", splits.x_train),
                                                  ("test", splits.x_test))
                        if x is not None and len(x))
    originals = shown[:10]
    hidden = model.encode(shown).numpy()
    # Splits built by hand (not by `data.load`) have no record to cut colour patches from.
    patches = [_patches_figure(splits.info, out_dir)] if "sampling" in splits.info else []
    return [
        *patches,
        plots.image_grid(
            _as_patches(model.features()),
            out_dir / "features.png",
            f"Hidden features: encoder weights of {model.hidden_units} units "
            f"(mean activation {hidden.mean():.3f} on {split} patches, target "
            f"{model.sparsity_target})",
        ),
        plots.side_by_side(
            {
                "original": _as_patches(originals),
                "reconstruction": _as_patches(model.predict(originals, verbose=0)),
            },
            out_dir / "reconstructions.png",
            f"{split.capitalize()} patches and their reconstructions",
        ),
    ]


def _endpoints(model: SparseAutoencoder) -> dict[str, Any]:
    import tensorflow as tf

    signature = [tf.TensorSpec([None, model.input_dim], tf.float32, name="patches")]
    # Named outputs: the serving signature gives both the reconstruction and the hidden code.
    return {
        "serve": (lambda patches: {"reconstruction": model(patches),
                                   "hidden": model.encode(patches)}, signature),
        "encode": (lambda patches: {"hidden": model.encode(patches)}, signature),
        "reconstruct": (lambda patches: {"reconstruction": model(patches)}, signature),
    }


def _images(model: SparseAutoencoder) -> np.ndarray:
    """The hidden units' features as 16x16 grey patches, `(hidden_units, 16, 16, 1)`, for
    TensorBoard."""
    import keras

    return _as_patches(keras.ops.convert_to_numpy(model.features()))[..., None]


def _panel(model: SparseAutoencoder, axis: Any) -> None:
    from zoo import plots

    plots.draw_image_grid(axis, _as_patches(model.features()))


def _predict(model: SparseAutoencoder, inputs: list[str], options: dict[str, Any]) -> list[Any]:
    """Image files (any size): the luminance, whitened when the weights were trained on
    whitened images (the default), is cut into non-overlapping 16x16 patches (a 16x16 image is
    one patch; the right and bottom remainders are dropped), each preprocessed as in training
    (patch mean removed, clipped at +-3 std with the training data's std when the weights record
    it, else the image's own, mapped to [0.1, 0.9]). Writes `OUT/<stem>.code.npy` (patches x
    hidden units), `OUT/<stem>.reconstruction.npy` (patches x 256) and
    `OUT/<stem>.reconstruction.png` (up to 16 patches over their reconstructions). Inputs that
    share a stem (`a/photo.png`, `b/photo.jpg`) are written as `<parent>-<stem>` instead, so no
    output is ever written twice; OUT must be new, empty, or a folder zoo wrote before."""
    import keras

    from zoo import plots
    from zoo.data import DataError
    from zoo.files import atomic_path
    from zoo.predicting import Prediction, expand, output_folder, unique_stems

    preprocessing = options.get("preprocessing") or {}
    whiten = preprocessing.get("whitened_images", True)
    out = output_folder(options.get("out") or "predictions")  # before any work: refused early
    size = data.PATCH_SIZE
    paths = expand(inputs, data.IMAGE_SUFFIXES)
    results = []
    for path, name in zip(paths, unique_stems(paths)):
        try:
            image = data.read_images([path])[0]
            if min(image.shape) < size:
                raise DataError(f"{path}: the image is {image.shape[1]}x{image.shape[0]}, smaller "
                                f"than one {size}x{size} patch")
            if whiten and min(image.shape) >= 2 * size:
                image = data.whiten_image(image)
            rows, columns = image.shape[0] // size, image.shape[1] // size
            patches = (image[: rows * size, : columns * size]
                       .reshape(rows, size, columns, size).swapaxes(1, 2).reshape(-1, size, size))
            centered = data.center_luminance(patches)
            std = preprocessing.get("clip_std") or float(centered.std())
            x = data.scale_to_unit_interval(centered, std)
        except (DataError, OSError) as error:
            results.append(Prediction(str(path), error=str(error)))
            continue
        code = keras.ops.convert_to_numpy(model.encode(x))
        reconstruction = keras.ops.convert_to_numpy(model(x))
        stem = out / name
        for suffix, array in ((".code.npy", code), (".reconstruction.npy", reconstruction)):
            with atomic_path(f"{stem}{suffix}") as temporary:
                np.save(temporary, array)  # the temporary name ends in .npy: kept as it is
        plots.side_by_side({"input": _as_patches(x[:16]), "reconstruction": _as_patches(reconstruction[:16])},
                           Path(f"{stem}.reconstruction.png"), f"{Path(path).name}: patches and reconstructions")
        error = float(np.mean(np.sum((x - reconstruction) ** 2, axis=1)) / 2)
        results.append(Prediction(
            str(path), f"{len(x)} patches, reconstruction error {error:.4g}, mean activation "
            f"{code.mean():.3f}; {stem}.code.npy, .reconstruction.npy, .reconstruction.png",
            {"input": str(path), "patches": len(x), "reconstruction_error": error,
             "code": f"{stem}.code.npy"},
        ))
    return results


PATCH_RECONSTRUCTION = Task(
    name="patch reconstruction",
    family="autoencoder",
    data=(
        "16x16 natural-image patches: the course's HDF5 file (dataset 'data', (N, 3, 16, 16) "
        "float RGB), a folder of photographs to cut patches from, or by default patches from "
        "photographs shipped in installed packages; preprocessed to (N, 256) in [0.1, 0.9]"
    ),
    load=data.load,
    metric=Metric(
        "val_reconstruction",
        "min",
        "validation reconstruction error 1/(2N) sum ||x - o||^2 (lower is better)",
    ),
    figures=_figures,
    endpoints=_endpoints,
    panel=_panel,
    # The reconstruction error alone is won by switching the regularisers off (see sparse_code).
    objective=sparse_code(),
    example=data.example,
    predict=_predict,
    images=_images,
)


@register(
    task=PATCH_RECONSTRUCTION,
    hparams={
        "hidden_units": HParam(
            64, "[1, 65536]", Int(16, 256, log=True), "hidden units (Lhid)"
        ),
        "weight_decay": HParam(
            5e-4, "[0, 1]", Float(1e-6, 1e-2, log=True), "lambda: L2 weight decay"
        ),
        "sparsity_weight": HParam(
            3.0, "[0, 1000]", Float(1e-3, 10.0, log=True), "beta: weight of the KL sparsity term"
        ),
        "sparsity_target": HParam(
            0.02, "(0, 1)", Float(0.005, 0.3, log=True), "rho: target mean hidden activation"
        ),
        "optimizer": HParam("adam", ("adam", "sgd"), None, "adam, or plain SGD as the course"),
        "learning_rate": HParam(
            3e-3, "(0, 10]", Float(1e-4, 1e-1, log=True), "optimizer step size"
        ),
    },
    # 1024 mini-batches a step: a whole epoch in one compiled step for these patches (80
    # batches at 128, 640 at the course's 16), 10-16% faster per epoch than 64 a step
    # (bench/RESULTS.md).
    fit={"epochs": 400, "batch_size": 128, "batches_per_step": 1024},
    presets={
        "course": {
            "sparsity_weight": 0.01,
            "sparsity_target": 0.2,
            "optimizer": "sgd",
            "learning_rate": 0.01,
            "epochs": 80,
            "batch_size": 16,
        },
        # For smoke tests and tests/test_contract.py: seconds to build, train, export and tune.
        "tiny": {"hidden_units": 8, "epochs": 1, "batch_size": 8},
    },
    sweep={"hidden_units": (16, 49, 100), "weight_decay": (0.0, 3e-4, 1e-3)},
)
def sparse_autoencoder(
    hidden_units: int,
    weight_decay: float,
    sparsity_weight: float,
    sparsity_target: float,
    optimizer: str,
    learning_rate: float,
) -> SparseAutoencoder:
    """Sparse autoencoder for 16x16 natural-image patches (256 -> hidden -> 256, sigmoid).

    Cost J = reconstruction 1/(2N) sum ||x - o||^2 + lambda/2 (sum W1^2 + sum W2^2)
    + beta sum KL(rho || rho_hat). The defaults (64 units, lambda 5e-4, beta 3, rho 0.02, Adam
    3e-3, batch 128, 400 epochs on whitened patches) learn localized, oriented edge detectors,
    the classic result, in about a minute on 2 CPU cores. The course's values (beta 0.01,
    rho 0.2, SGD) are the `course` preset: with them the mean activation stays near 0.3 and the
    features are blobs, since a target of 0.2 is too dense and beta 0.01 too weak to enforce it.
    The features, one 16x16 image per hidden unit, are the encoder weights.
    """
    import keras

    from zoo.autoencoder.model import SparseAutoencoder

    model = SparseAutoencoder(
        input_dim=INPUT_DIM,
        hidden_units=hidden_units,
        weight_decay=weight_decay,
        sparsity_weight=sparsity_weight,
        sparsity_target=sparsity_target,
    )
    optimizers = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD}
    # XLA compiles each stack of mini-batches into one loop (see SparseAutoencoder.train_step).
    model.compile(optimizer=optimizers[optimizer](learning_rate), jit_compile=True)
    return model
