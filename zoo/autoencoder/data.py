"""Natural-image patches for the sparse autoencoder: readers, sampling and the course preprocessing.

Three sources, all local:
- the course's HDF5 patch file (dataset `data`, shape (N, 3, 16, 16), float RGB);
- a folder of the user's own photographs (JPEG, PNG, BMP or GIF), cut into random patches;
- with no path, an embedded default: patches cut from real photographs that ship inside installed
  packages (see `embedded_photographs`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zoo.data import (
    DataError,
    Splits,
    check_array,
    check_split,
    decode_image,
    fewest_for_split,
    open_hdf5,
    read_hdf5_dataset,
)

__all__ = [
    "LUMA_WEIGHTS",
    "center_luminance",
    "colour_patches",
    "cut_patches",
    "embedded_photographs",
    "example",
    "load",
    "luminance",
    "patch_positions",
    "preprocess_patches",
    "read_images",
    "read_patch_file",
    "sample_patches",
    "scale_to_unit_interval",
    "whiten_image",
]

LUMA_WEIGHTS = (0.2126, 0.7152, 0.0722)  # ITU-R BT.709 luminance, as the course used
PATCH_SIZE = 16
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif")

# Photographs inside packages that are installed with zoo. matplotlib ships one portrait;
# scikit-image ships a varied set of scenes (people, a cat, objects, a rocket launch), which the
# features need: one face alone gives blobs rather than edge detectors. Its close-up textures
# (brick, grass, gravel) are left out: they pull the features towards noisy high frequencies.
_PACKAGED_PHOTOGRAPHS = {
    "matplotlib": ("mpl-data/sample_data/grace_hopper.jpg",),
    "skimage": tuple(
        f"data/{name}"
        for name in (
            "astronaut.png",
            "camera.png",
            "chelsea.png",
            "coffee.png",
            "motorcycle_left.png",
            "rocket.jpg",
        )
    ),
}


def center_luminance(patches: np.ndarray) -> np.ndarray:
    """Luminance of each patch with the patch's own mean removed, flattened to `(N, H * W)`.

    Args:
        patches: `(N, 3, H, W)` RGB in the course's channels-first layout, or `(N, H, W)` grey.
    """
    patches = np.asarray(patches, dtype=np.float64)
    if patches.ndim == 4:
        if patches.shape[1] != 3:
            raise DataError(f"RGB patches must be (N, 3, H, W), got {patches.shape}")
        patches = np.tensordot(patches, LUMA_WEIGHTS, axes=([1], [0]))
    elif patches.ndim != 3:
        raise DataError(f"patches must be (N, 3, H, W) RGB or (N, H, W) grey, got {patches.shape}")
    flat = patches.reshape(len(patches), -1)
    return flat - flat.mean(axis=1, keepdims=True)


def scale_to_unit_interval(centered: np.ndarray, std: float) -> np.ndarray:
    """Clips to +-3 `std` and maps linearly to [0.1, 0.9], the range of the sigmoid outputs."""
    if not std > 0:
        raise DataError(f"patches have no contrast (standard deviation {std!r}); nothing to learn")
    limit = 3.0 * std
    return ((np.clip(centered, -limit, limit) / limit + 1.0) * 0.4 + 0.1).astype(np.float32)


def preprocess_patches(patches: np.ndarray, std: float | None = None) -> np.ndarray:
    """The course preprocessing, `(N, 3, H, W)` RGB or `(N, H, W)` grey -> `(N, H * W)` float32.

    Luminance Y = 0.2126 R + 0.7152 G + 0.0722 B; each patch minus its own mean; clipped to
    +-3 standard deviations measured across all patches (or the given `std`, to preprocess new
    patches like the training set); mapped linearly to [0.1, 0.9].
    """
    centered = center_luminance(patches)
    return scale_to_unit_interval(centered, float(centered.std()) if std is None else std)


def read_patch_file(path: str | Path) -> np.ndarray:
    """Reads the course's HDF5 patch file: dataset `data`, `(N, 3, 16, 16)` float RGB.

    Other datasets in the file (the course's `invXForm`, `xForm`) are ignored.
    """
    with open_hdf5(path, required=["data"]) as handle:
        dataset = handle["data"]
        if not np.issubdtype(dataset.dtype, np.floating):
            raise DataError(f"'data' in {path} must be floating point RGB, got dtype {dataset.dtype}")
        patches = read_hdf5_dataset(handle, "data")
    return check_array(patches, "'data'", (None, 3, PATCH_SIZE, PATCH_SIZE), source=str(path))


def luminance(rgb: np.ndarray) -> np.ndarray:
    """Luminance `(H, W)` of a channels-last RGB image `(H, W, 3)`."""
    return rgb @ np.asarray(LUMA_WEIGHTS)


def read_images(paths: Sequence[str | Path], colour: bool = False) -> list[np.ndarray]:
    """Decodes image files to greyscale luminance arrays `(H, W)` in [0, 1], or with `colour`
    to RGB arrays `(H, W, 3)` in [0, 1] (whose `luminance` is the greyscale image)."""
    images = []
    for path in paths:
        rgb = decode_image(path).astype(np.float64) / 255.0
        images.append(rgb if colour else luminance(rgb))
    return images


def _image_paths(path: str | Path | None) -> tuple[list[Path], str]:
    """The photographs `load` cuts patches from, and a description of them for `Splits.info`."""
    if path is None:
        image_paths = embedded_photographs()
        return image_paths, "embedded photographs: " + ", ".join(p.name for p in image_paths)
    folder = Path(path)
    if not folder.is_dir():
        raise DataError(
            f"{folder} does not exist; give the course's HDF5 patch file, a folder of "
            "images, or nothing for the embedded photographs"
        )
    image_paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not image_paths:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found under {folder}")
    return image_paths, f"{len(image_paths)} images under {folder.resolve()}"


def embedded_photographs() -> list[Path]:
    """Paths of the real photographs that ship inside installed packages."""
    found = []
    for package, relative_paths in _PACKAGED_PHOTOGRAPHS.items():
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        root = Path(next(iter(spec.submodule_search_locations)))
        found += [root / path for path in relative_paths if (root / path).is_file()]
    if not found:
        raise DataError(
            "no embedded photographs found (looked for matplotlib's and scikit-image's sample "
            "photographs); pass a patch file or a folder of images instead"
        )
    return found


WHITENING_CUTOFF = 0.4  # f0 as a fraction of the Nyquist frequency


def whiten_image(image: np.ndarray, cutoff: float = WHITENING_CUTOFF) -> np.ndarray:
    """Flattens a greyscale image's 1/f amplitude spectrum, as Olshausen & Field (1996) did.

    Multiplies the spectrum by R(f) = f exp(-(f / f0)^4), f in cycles per pixel and
    f0 = `cutoff` x the Nyquist frequency (0.5), which whitens natural images and rolls off the
    noisiest high frequencies. The result has unit standard deviation; a flat image (one
    colour) stays flat, zeros, rather than 0 / 0 (its NaNs would spread to every patch).
    """
    image = np.asarray(image, dtype=np.float64)
    fy = np.fft.fftfreq(image.shape[0])[:, None]
    fx = np.fft.fftfreq(image.shape[1])[None, :]
    frequency = np.hypot(fx, fy)
    response = frequency * np.exp(-((frequency / (0.5 * cutoff)) ** 4))
    whitened = np.real(np.fft.ifft2(np.fft.fft2(image - image.mean()) * response))
    std = whitened.std()
    return whitened / std if std > 0 else np.zeros_like(whitened)


def patch_positions(
    shapes: Sequence[tuple[int, ...]], count: int, seed: int = 0, size: int = PATCH_SIZE
) -> np.ndarray:
    """Where `sample_patches` cuts: `(count, 3)` rows of (image index, top row, left column),
    images drawn evenly among those of `shapes` at least `size` x `size`.

    Depends on the images' shapes only, so the same positions can be cut from the photographs'
    colour and from their (whitened) luminance.
    """
    usable = [index for index, shape in enumerate(shapes) if min(shape[:2]) >= size]
    if not usable:
        raise DataError(f"no image is at least {size}x{size} pixels")
    rng = np.random.default_rng(seed)
    positions = np.empty((count, 3), dtype=np.int64)
    for index, usable_index in enumerate(rng.integers(len(usable), size=count)):
        height, width = shapes[usable[usable_index]][:2]
        positions[index] = (
            usable[usable_index], rng.integers(height - size + 1), rng.integers(width - size + 1)
        )
    return positions


def cut_patches(
    images: Sequence[np.ndarray], positions: np.ndarray, size: int = PATCH_SIZE
) -> np.ndarray:
    """The `size` x `size` crops at `positions` (from `patch_positions`): `(N, size, size)` from
    greyscale images, `(N, size, size, 3)` from colour ones."""
    return np.stack([
        images[image][row : row + size, column : column + size] for image, row, column in positions
    ])


def sample_patches(
    images: Sequence[np.ndarray], count: int, seed: int = 0, size: int = PATCH_SIZE
) -> np.ndarray:
    """`count` random `size` x `size` crops, `(count, size, size)`, drawn evenly from `images`."""
    positions = patch_positions([image.shape for image in images], count, seed, size)
    return cut_patches(images, positions, size)


def load(
    path: str | Path | None = None,
    seed: int = 0,
    count: int = 10_240,
    validation_fraction: float = 0.1,
    whiten: bool = True,
) -> Splits:
    """Patches ready for the autoencoder, split into training and validation sets.

    Args:
        path: the course's HDF5 patch file, a folder of images, or `None` for the embedded
            photographs.
        seed: seeds patch sampling and the split.
        count: patches to cut from images (ignored for a patch file, which is used whole).
        validation_fraction: share of patches held out for validation, in [0, 1); 0 for no
            validation set.
        whiten: whiten images before cutting patches (`whiten_image`); the course's patch file
            is used as stored.

    Returns:
        `Splits` of `(N, 256)` float32 patches in [0.1, 0.9]; `info` records source, sampling
        and preprocessing.

    Raises:
        DataError: unreadable or malformed data, `count` or `validation_fraction` out of
            range, or a split (when `validation_fraction` > 0) that leaves no validation or no
            training patch.
    """
    if not 0.0 <= validation_fraction < 1.0:
        raise DataError(f"validation_fraction must be in [0, 1), got {validation_fraction!r}")
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise DataError(f"count must be a whole number of patches, at least 1, got {count!r}")
    info: dict[str, Any] = {}
    if path is not None and Path(path).is_file():
        patches: np.ndarray = read_patch_file(path)
        info["source"] = f"patch file {Path(path).resolve()}"
        whiten = False
    else:
        image_paths, info["source"] = _image_paths(path)
        images = read_images(image_paths)
        if whiten:
            images = [whiten_image(image) for image in images]
        patches = sample_patches(images, count, seed)
    # Enough to cut the same patches again, in colour (`colour_patches`), without keeping
    # arrays in `info`, which model cards copy.
    info["sampling"] = {
        "path": None if path is None else str(Path(path).resolve()),
        "seed": seed,
        "count": len(patches),
    }
    centered = center_luminance(patches)
    std = float(centered.std())
    inputs = scale_to_unit_interval(centered, std)
    order = np.random.default_rng(seed).permutation(len(inputs))
    validation_size = int(round(validation_fraction * len(inputs)))
    if validation_fraction > 0:
        check_split(
            len(inputs), validation_size, what="patches", source=info["source"],
            fix=f"give at least {fewest_for_split(validation_fraction)} patches (a larger count, "
            "or a bigger patch file)",
        )
    info["preprocessing"] = {
        "whitened_images": whiten,
        "whitening": (
            f"R(f) = f exp(-(f/f0)^4), f0 = {WHITENING_CUTOFF} x Nyquist, unit std per image"
            if whiten
            else None
        ),
        "luminance_weights": LUMA_WEIGHTS,
        "per_patch_mean_removed": True,
        "clip": "+-3 std across all patches",
        "clip_std": std,
        "output_range": [0.1, 0.9],
        "patch_size": int(np.sqrt(inputs.shape[1])),
    }
    return Splits(
        x_train=inputs[order[validation_size:]],
        x_val=inputs[order[:validation_size]],
        info=info,
    )


def example(directory: str | Path, seed: int = 0, count: int = 96) -> Path:
    """Writes a small course-style patch file, `directory/example_patches.h5` (dataset 'data',
    `(count, 3, 16, 16)` float32 RGB in [0, 1], seeded), and returns its path for `load`.

    Smooth random blobs rather than white noise, so that there is something to reconstruct.
    For smoke tests and tests/test_contract.py; `count` >= 10 keeps a validation patch.
    """
    import h5py  # imported here: only HDF5 readers and writers need it

    rng = np.random.default_rng(seed)
    grid = np.linspace(-1.0, 1.0, PATCH_SIZE)
    centres = rng.uniform(-1.0, 1.0, (count, 2, 1, 1))
    blobs = np.exp(-((grid[None, :, None] - centres[:, 0]) ** 2
                     + (grid[None, None, :] - centres[:, 1]) ** 2) / 0.3)
    colours = rng.uniform(0.2, 1.0, (count, 3, 1, 1))
    patches = colours * blobs[:, None] + rng.normal(0.0, 0.05, (count, 3, PATCH_SIZE, PATCH_SIZE))
    path = Path(directory) / "example_patches.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle["data"] = np.clip(patches, 0.0, 1.0).astype(np.float32)
    return path


def colour_patches(info: dict[str, Any], count: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """`count` random patches of the data `load` described in `info`, in colour and as the
    autoencoder sees them.

    From the course's patch file the colour is its RGB data; from photographs, the colour crops
    at the positions the greyscale patches were cut from (before any whitening). Both are cut
    again from the source, with `load`'s seed, so nothing but `info` needs keeping.

    Args:
        info: `Splits.info` of `load`, with its "sampling" and "preprocessing" records.
        count: how many patches (all, if there are fewer); chosen with `load`'s seed.

    Returns:
        `(colour, preprocessed)`: RGB `(count, 16, 16, 3)` (the patch file's values as stored,
        photographs in [0, 1]) and the same patches preprocessed exactly as in the splits,
        `(count, 256)` float32 in [0.1, 0.9].
    """
    sampling, preprocessing = info["sampling"], info["preprocessing"]
    total, seed = sampling["count"], sampling["seed"]
    chosen = np.random.default_rng(seed).choice(total, size=min(count, total), replace=False)
    path = sampling["path"]
    if path is not None and Path(path).is_file():
        rgb = read_patch_file(path)[chosen]  # (count, 3, 16, 16)
        colour, grey = rgb.transpose(0, 2, 3, 1), rgb
    else:
        images = read_images(_image_paths(path)[0], colour=True)
        greys = [luminance(image) for image in images]
        if preprocessing["whitened_images"]:
            greys = [whiten_image(grey) for grey in greys]
        positions = patch_positions([image.shape for image in images], total, seed)[chosen]
        colour, grey = cut_patches(images, positions), cut_patches(greys, positions)
    return colour, scale_to_unit_interval(center_luminance(grey), preprocessing["clip_std"])
