"""Patch data: the course preprocessing, readers and their errors, the embedded default."""

import shutil

import h5py
import numpy as np
import pytest
import tensorflow as tf

from zoo.autoencoder import data
from zoo.data import DataError


def random_rgb_patches(count=200, seed=0):
    return np.random.default_rng(seed).uniform(0, 1, (count, 3, 16, 16))


def test_preprocessing_range_shape_and_dtype():
    x = data.preprocess_patches(random_rgb_patches())
    assert x.shape == (200, 256) and x.dtype == np.float32
    assert x.min() >= 0.1 - 1e-7 and x.max() <= 0.9 + 1e-7


def test_preprocessing_removes_each_patch_mean():
    centered = data.center_luminance(random_rgb_patches())
    np.testing.assert_allclose(centered.mean(axis=1), 0.0, atol=1e-12)
    # Where nothing is clipped, the [0.1, 0.9] mapping puts each patch's mean at 0.5.
    smooth = np.random.default_rng(1).normal(0, 1, (50, 16, 16)) * 0.01
    smooth[0] *= 1000  # one high-contrast patch sets the std, so the others stay inside +-3 std
    x = data.preprocess_patches(smooth)
    np.testing.assert_allclose(x[1:].mean(axis=1), 0.5, atol=1e-6)


def test_preprocessing_uses_luminance_weights():
    red = np.zeros((2, 3, 16, 16))
    red[:, 0, :8, :] = 1.0  # top half red
    np.testing.assert_allclose(
        data.center_luminance(red)[0].reshape(16, 16)[0, 0], 0.2126 / 2, rtol=1e-12
    )


def test_preprocessing_clips_at_three_standard_deviations():
    patches = np.random.default_rng(2).normal(0, 1, (400, 16, 16))
    patches[0, 0, 0] = 100.0  # an outlier far beyond 3 std
    centered = data.center_luminance(patches)
    std = centered.std()
    x = data.preprocess_patches(patches)
    assert x[0, 0] == pytest.approx(0.9)
    beyond = np.abs(centered) >= 3 * std
    assert beyond.any()
    np.testing.assert_allclose(np.abs(x[beyond] - 0.5), 0.4, atol=1e-6)
    inside = ~beyond
    np.testing.assert_allclose(x[inside], 0.5 + 0.4 * centered[inside] / (3 * std), atol=1e-6)


def test_preprocessing_with_a_given_std_reproduces_the_training_transform():
    patches = random_rgb_patches()
    std = data.center_luminance(patches).std()
    np.testing.assert_array_equal(
        data.preprocess_patches(patches[:10], std=std), data.preprocess_patches(patches)[:10]
    )


def test_preprocessing_rejects_flat_patches_and_bad_shapes():
    with pytest.raises(DataError, match="contrast"):
        data.preprocess_patches(np.ones((4, 16, 16)))
    with pytest.raises(DataError, match=r"\(N, 3, H, W\)"):
        data.preprocess_patches(np.ones((4, 2, 16, 16)))


def write_h5(path, **datasets):
    with h5py.File(path, "w") as handle:
        for key, value in datasets.items():
            handle[key] = value
    return path


def test_read_patch_file_reads_the_course_layout(tmp_path):
    patches = random_rgb_patches(32).astype(np.float32)
    path = write_h5(tmp_path / "patches.h5", data=patches, invXForm=np.eye(3), xForm=np.eye(3))
    np.testing.assert_array_equal(data.read_patch_file(path), patches)
    splits = data.load(path, validation_fraction=0.25)
    assert splits.x_train.shape == (24, 256) and splits.x_val.shape == (8, 256)
    assert "patch file" in splits.info["source"]


@pytest.mark.parametrize(
    "datasets, message",
    [
        ({"patches": np.zeros((4, 3, 16, 16))}, r"no dataset 'data'.*found patches"),
        ({"data": np.zeros((4, 16, 16, 3))}, r"shape \(N, 3, 16, 16\), got \(4, 16, 16, 3\)"),
        ({"data": np.zeros((4, 3, 8, 8))}, r"got \(4, 3, 8, 8\)"),
        ({"data": np.full((4, 3, 16, 16), np.nan)}, "NaN/inf"),
        ({"data": np.zeros((4, 3, 16, 16), dtype=np.uint8)}, "floating point"),
    ],
)
def test_read_patch_file_errors_name_the_problem(tmp_path, datasets, message):
    path = write_h5(tmp_path / "bad.h5", **datasets)
    with pytest.raises(DataError, match=message):
        data.read_patch_file(path)


def test_read_patch_file_rejects_non_hdf5_and_missing_files(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(DataError, match="not a readable HDF5"):
        data.read_patch_file(text)
    with pytest.raises(DataError, match="no such HDF5 file"):
        data.read_patch_file(tmp_path / "missing.h5")


def test_load_from_a_folder_of_images(tmp_path):
    rng = np.random.default_rng(3)
    for index in range(2):
        pixels = (rng.uniform(0, 255, (40, 48, 3))).astype(np.uint8)
        (tmp_path / f"photo{index}.png").write_bytes(tf.io.encode_png(pixels).numpy())
    splits = data.load(tmp_path, count=100, validation_fraction=0.2)
    assert splits.x_train.shape == (80, 256) and splits.x_val.shape == (20, 256)
    assert "2 images" in splits.info["source"]


def write_photographs(folder, shapes, seed=3):
    """Random-pixel PNGs, so that every 16x16 crop occurs once; returns them as RGB in [0, 1]."""
    rng = np.random.default_rng(seed)
    images = []
    for index, shape in enumerate(shapes):
        pixels = rng.integers(0, 256, (*shape, 3)).astype(np.uint8)
        (folder / f"photo{index}.png").write_bytes(tf.io.encode_png(pixels).numpy())
        images.append(pixels / 255.0)
    return images


def crop_position(images, patch):
    """(image, row, column) of the one crop of `images` equal to `patch`."""
    found = []
    for index, image in enumerate(images):
        if min(image.shape[:2]) < 16:
            continue
        windows = np.lib.stride_tricks.sliding_window_view(image, (16, 16), axis=(0, 1))
        rows, columns = np.nonzero((windows == patch.transpose(2, 0, 1)).all(axis=(2, 3, 4)))
        found += [(index, row, column) for row, column in zip(rows, columns)]
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("whiten", [False, True])
def test_colour_patches_of_photographs_are_where_the_grey_patches_were_cut(tmp_path, whiten):
    images = write_photographs(tmp_path, [(40, 48), (10, 10), (33, 60)])  # one too small
    splits = data.load(tmp_path, seed=5, count=300, whiten=whiten)
    colour, preprocessed = data.colour_patches(splits.info, count=50)
    assert colour.shape == (50, 16, 16, 3) and preprocessed.shape == (50, 256)
    std = splits.info["preprocessing"]["clip_std"]
    greys = [data.luminance(image) for image in images]
    if whiten:
        greys = [data.whiten_image(grey) for grey in greys]
    positions = [crop_position(images, patch) for patch in colour]
    assert len(set(positions)) > 40 and {image for image, _, _ in positions} == {0, 2}
    expected = np.stack([greys[image][row : row + 16, column : column + 16]
                         for image, row, column in positions])
    np.testing.assert_allclose(preprocessed, data.preprocess_patches(expected, std), atol=1e-6)
    if not whiten:  # then the grey patch is the colour patch's luminance
        np.testing.assert_allclose(
            preprocessed, data.preprocess_patches(colour.transpose(0, 3, 1, 2), std), atol=1e-6
        )
    trained = {row.tobytes() for row in np.concatenate([splits.x_train, splits.x_val])}
    assert all(row.tobytes() in trained for row in preprocessed)  # the very patches trained on


def test_colour_patches_of_a_patch_file_are_its_rgb_and_their_preprocessing(patch_file):
    splits = data.load(patch_file, seed=2)
    colour, preprocessed = data.colour_patches(splits.info)
    stored = data.read_patch_file(patch_file)
    indices = [int(np.flatnonzero((stored == patch.transpose(2, 0, 1)).all(axis=(1, 2, 3)))[0])
               for patch in colour]
    assert len(set(indices)) == 200  # 200 distinct patches of the 256
    std = splits.info["preprocessing"]["clip_std"]
    np.testing.assert_allclose(preprocessed, data.preprocess_patches(stored[indices], std),
                               atol=1e-6)
    trained = {row.tobytes() for row in np.concatenate([splits.x_train, splits.x_val])}
    assert all(row.tobytes() in trained for row in preprocessed)


def test_load_errors_say_where_they_looked(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        data.load(tmp_path / "nowhere")
    with pytest.raises(DataError, match="no images"):
        data.load(tmp_path)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"cannot decode image .*broken.png: Unknown") as error:
        data.load(tmp_path)
    assert "\n" not in str(error.value) and "{{" not in str(error.value)


def test_too_few_patches_for_a_validation_split_are_refused_up_front(tmp_path):
    path = write_h5(tmp_path / "three.h5", data=random_rgb_patches(3).astype(np.float32))
    with pytest.raises(DataError, match=r"three.h5.*: 3 patches .* 0 for validation.*at least 6"):
        data.load(path)
    assert len(data.load(path, validation_fraction=0.0).x_val) == 0  # asked for: no validation
    with pytest.raises(DataError, match=r"embedded photographs.*: 4 patches .* 0 for validation"):
        data.load(count=4)
    path = write_h5(tmp_path / "one.h5", data=random_rgb_patches(1).astype(np.float32))
    with pytest.raises(DataError, match=r"one.h5.*: 1 patches .* 0 for training"):
        data.load(path, validation_fraction=0.9)


def test_embedded_default_is_real_photographs_and_deterministic():
    photographs = data.embedded_photographs()
    assert any(p.name == "grace_hopper.jpg" for p in photographs)
    first = data.load(count=1024, seed=7)
    second = data.load(count=1024, seed=7)
    np.testing.assert_array_equal(first.x_train, second.x_train)
    assert first.x_train.shape == (922, 256) and first.x_val.shape == (102, 256)
    assert first.info["preprocessing"]["whitened_images"] is True
    other = data.load(count=1024, seed=8)
    assert not np.array_equal(first.x_train, other.x_train)


def test_whitening_flattens_the_spectrum():
    """Natural images have a ~1/f amplitude spectrum; whitening removes most of that slope."""
    image = data.read_images([data.embedded_photographs()[0]])[0]

    def slope(picture):
        amplitude = np.abs(np.fft.fft2(picture - picture.mean()))
        fy = np.fft.fftfreq(picture.shape[0])[:, None]
        fx = np.fft.fftfreq(picture.shape[1])[None, :]
        frequency = np.hypot(fx, fy)
        band = (frequency > 0.02) & (frequency < 0.15)
        return np.polyfit(np.log(frequency[band]), np.log(amplitude[band]), 1)[0]

    original, whitened = slope(image), slope(data.whiten_image(image))
    assert original < -1.0
    assert abs(whitened) < abs(original) / 2
    assert data.whiten_image(image).std() == pytest.approx(1.0)


def test_a_flat_image_stays_flat_and_spoils_no_other(tmp_path):
    """One image of one colour among photographs: zeros after whitening, not 0 / 0, whose NaNs
    once made every patch NaN ("no contrast (standard deviation nan)")."""
    assert np.array_equal(data.whiten_image(np.full((40, 48), 7.0)), np.zeros((40, 48)))
    from PIL import Image

    photograph = data.embedded_photographs()[0]
    shutil.copy(photograph, tmp_path / photograph.name)
    Image.new("RGB", (64, 64), (90, 90, 90)).save(tmp_path / "flat.png")
    splits = data.load(tmp_path, count=200, validation_fraction=0.1)
    assert np.isfinite(splits.x_train).all() and splits.x_train.std() > 0
