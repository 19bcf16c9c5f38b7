"""CIFAR-10 readers: python batches (restricted unpickler), binary batches, class folders, .npz;
held-out split; errors that name the problem; the tf.data pipeline."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo.convnets import data
from zoo.convnets.layers import RandomCropFlip
from zoo.data import DataError

SHARED_CIFAR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cifar10" / "train"


def rows(count, seed=0):
    """`count` images as CIFAR rows: 1024 red, 1024 green, 1024 blue values each."""
    return np.random.default_rng(seed).integers(0, 256, (count, 3072)).astype(np.uint8)


def write_python_batches(directory, per_batch=4, test=True):
    directory.mkdir()
    names = [f"data_batch_{i}" for i in range(1, 6)] + (["test_batch"] if test else [])
    written = {}
    for index, name in enumerate(names):
        content = {b"batch_label": name.encode(), b"data": rows(per_batch, index),
                   b"labels": [(index + k) % 10 for k in range(per_batch)],
                   b"filenames": [b"x.png"] * per_batch}
        with open(directory / name, "wb") as handle:
            pickle.dump(content, handle, protocol=2)  # as the course's files were written
        written[name] = content
    return written


def test_python_batches_are_read_channel_major_to_channels_last(tmp_path):
    written = write_python_batches(tmp_path / "cifar-10-batches-py")
    splits = data.read_python_batches(tmp_path / "cifar-10-batches-py")
    images, labels = splits["train"]
    assert images.shape == (20, 32, 32, 3) and images.dtype == np.uint8
    first = written["data_batch_1"][b"data"][0]
    np.testing.assert_array_equal(images[0, :, :, 0], first[:1024].reshape(32, 32))  # red plane
    np.testing.assert_array_equal(images[0, :, :, 2], first[2048:].reshape(32, 32))  # blue plane
    assert labels[:4].tolist() == written["data_batch_1"][b"labels"]
    assert splits["test"][0].shape == (4, 32, 32, 3)


def test_unpickler_refuses_anything_but_data(tmp_path):
    directory = tmp_path / "cifar-10-batches-py"
    write_python_batches(directory)

    class Exploit:
        def __reduce__(self):
            return (os.system, ("echo owned",))

    with open(directory / "data_batch_3", "wb") as handle:
        pickle.dump({b"data": Exploit(), b"labels": []}, handle, protocol=2)
    with pytest.raises(DataError, match=r"data_batch_3 is not a CIFAR python batch .*refusing"):
        data.read_python_batches(directory)


def test_binary_batches(tmp_path):
    directory = tmp_path / "cifar-10-batches-bin"
    directory.mkdir()
    for index, name in enumerate([f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]):
        records = np.concatenate([np.full((3, 1), index, np.uint8), rows(3, index)], axis=1)
        records.tofile(directory / f"{name}.bin")
    splits = data.read_binary_batches(directory)
    assert splits["train"][0].shape == (15, 32, 32, 3)
    assert splits["train"][1].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    assert splits["test"][1].tolist() == [5, 5, 5]
    (directory / "data_batch_2.bin").write_bytes(b"\x01" * 100)
    with pytest.raises(DataError, match="records of 1 \\+ 3072 bytes"):
        data.load(directory)


def write_folder(root, classes=("cat", "dog"), per_class=5, size=32):
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for index in range(per_class):
            pixels = rng.integers(0, 256, (size, size, 3)).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{index}.png")


def test_image_folder_labels_follow_cifar_classes_and_resizes(tmp_path):
    write_folder(tmp_path / "a", per_class=3)
    write_folder(tmp_path / "b", classes=("ship",), per_class=2, size=48)
    images, labels = data.read_image_folder(tmp_path / "a", data.CLASS_NAMES)
    assert images.shape == (6, 32, 32, 3) and images.dtype == np.uint8
    assert labels.tolist() == [3, 3, 3, 5, 5, 5]  # cat and dog in CIFAR-10's order
    assert data.read_image_folder(tmp_path / "a")[1].tolist() == [0, 0, 0, 1, 1, 1]  # its own
    original = np.asarray(Image.open(tmp_path / "a" / "cat" / "0.png"))
    np.testing.assert_array_equal(images[0], original)  # PNG: lossless
    resized, labels = data.read_image_folder(tmp_path / "b", data.CLASS_NAMES)
    assert resized.shape == (2, 32, 32, 3) and labels.tolist() == [8, 8]


def test_unknown_class_folders_are_named(tmp_path):
    write_folder(tmp_path, classes=("cat", "giraffe"), per_class=1)
    with pytest.raises(DataError, match=r"class folders \['giraffe'\] that are not classes"):
        data.load(tmp_path, classes="cifar10")


def test_folder_with_train_and_test_gives_a_test_split(tmp_path):
    write_folder(tmp_path / "train", classes=data.CLASS_NAMES, per_class=2)
    write_folder(tmp_path / "test", classes=("frog",), per_class=3)
    splits = data.load(tmp_path, seed=0)
    assert len(splits.x_train) + len(splits.x_val) == 20 and len(splits.x_val) == 2  # a tenth
    assert splits.x_test.shape == (3, 32, 32, 3)
    np.testing.assert_array_equal(splits.y_test.argmax(axis=1), [6, 6, 6])
    assert splits.y_train.shape == (18, 10) and splits.y_train.dtype == np.float32


def test_a_split_not_asked_for_is_not_decoded(tmp_path, monkeypatch):
    write_folder(tmp_path / "train", classes=("cat", "dog"), per_class=10)
    write_folder(tmp_path / "test", classes=("dog",), per_class=3)
    whole = data.load(tmp_path, seed=1, validation_size=4)
    decoded = []
    original = data.ImageFiles.decode

    def counted(files, indices=None):
        images = original(files, indices)
        decoded.append(len(images))
        return images

    monkeypatch.setattr(data.ImageFiles, "decode", counted)
    test_only = data.load(tmp_path, seed=1, validation_size=4, splits=["test"])
    assert sum(decoded) == 3 and len(test_only.x_train) == len(test_only.x_val) == 0
    np.testing.assert_array_equal(test_only.x_test, whole.x_test)
    np.testing.assert_array_equal(test_only.y_test, whole.y_test)
    decoded.clear()
    held_out = data.load(tmp_path, seed=1, validation_size=4, splits=["val"])
    assert sum(decoded) == 4 and held_out.x_test is None  # the same 4 images, not all 20
    np.testing.assert_array_equal(held_out.x_val, whole.x_val)
    np.testing.assert_array_equal(held_out.y_val, whole.y_val)
    with pytest.raises(DataError, match=r"splits must be among train, val and test, got \['dev'\]"):
        data.load(tmp_path, splits=["dev"])


def test_held_out_split_is_seeded_and_disjoint(tmp_path):
    x = rows(200).reshape(-1, 3, 32, 32)
    np.savez(tmp_path / "c.npz", x=x, y=np.arange(200) % 10)
    first, again, other = (data.load(tmp_path / "c.npz", seed=s) for s in (0, 0, 1))
    assert len(first.x_val) == 20
    np.testing.assert_array_equal(first.x_val, again.x_val)
    assert not np.array_equal(first.x_val, other.x_val)
    train = {image.tobytes() for image in first.x_train}
    assert not train & {image.tobytes() for image in first.x_val}
    with pytest.raises(DataError, match=r"validation_size must be in \[0, 200\)"):
        data.load(tmp_path / "c.npz", validation_size=200)


def test_npz_layouts_agree(tmp_path):
    flat = rows(6)
    first = flat.reshape(-1, 3, 32, 32)
    np.savez(tmp_path / "flat.npz", x_train=flat, y_train=np.arange(6), x_test=flat[:2], y_test=[1, 2])
    np.savez(tmp_path / "first.npz", x_train=first.astype(np.float32), y_train=np.arange(6))
    np.savez(tmp_path / "last.npz", x=first.transpose(0, 2, 3, 1), y=np.arange(6))
    read = [data.read_npz(tmp_path / f"{name}.npz")["train"][0] for name in ("flat", "first", "last")]
    np.testing.assert_array_equal(read[0], read[1])
    np.testing.assert_array_equal(read[0], read[2])
    assert data.read_npz(tmp_path / "flat.npz")["test"][1].tolist() == [1, 2]


@pytest.mark.parametrize(
    "arrays, message",
    [
        ({"x": np.zeros((4, 32, 32)), "y": np.zeros(4)}, r"must have shape \(N, 32, 32, 3\)"),
        ({"x": np.full((4, 32, 32, 3), np.nan), "y": np.zeros(4)}, "NaN/inf"),
        ({"x": np.full((4, 32, 32, 3), 9.0), "y": [0, 1, 2, 10]}, r"class indices in \[0, 9\], got 10"),
        ({"x": np.full((4, 32, 32, 3), 9.0), "y": np.zeros(3)}, r"labels .* must have shape \(4\)"),
        ({"x": np.full((4, 32, 32, 3), 0.5), "y": np.zeros(4)}, "scaled to \\[0, 1\\]"),
        ({"x": np.full((4, 32, 32, 3), 300.0), "y": np.zeros(4)}, "pixel values in \\[0, 255\\]"),
        ({"images": np.zeros((4, 32, 32, 3)), "y": np.zeros(4)}, "has no x; expected x_train"),
    ],
)
def test_bad_npz_is_refused_naming_the_problem(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DataError, match=message):
        data.load(tmp_path / "bad.npz")


def npy_renamed(path):
    np.save(path.with_suffix(".npy"), rows(4))
    path.with_suffix(".npy").rename(path)


@pytest.mark.parametrize(
    "write, message",
    [
        (npy_renamed, r"bad.npz is a single array \(.npy\), not an .npz archive.*np.savez"),
        (lambda path: path.write_bytes(b""), r"bad.npz is empty \(0 bytes\)"),
        (
            lambda path: np.savez(path, x=rows(4), y=np.array([1, "cat", None, 2], dtype=object)),
            r"y in .*bad.npz holds Python objects \(dtype object\).*pickle.*numeric",
        ),
    ],
)
def test_npz_that_numpy_cannot_read_safely_is_refused_naming_the_fix(tmp_path, write, message):
    write(tmp_path / "bad.npz")
    with pytest.raises(DataError, match=message) as error:
        data.load(tmp_path / "bad.npz")
    assert "\n" not in str(error.value)


def test_training_data_needs_two_classes_with_examples(tmp_path):
    np.savez(tmp_path / "one.npz", x=rows(20), y=np.zeros(20))
    with pytest.raises(DataError, match=r"one.npz.* only 1 class \(airplane\).*at least two"):
        data.load(tmp_path / "one.npz")
    write_folder(tmp_path / "cats", classes=("cat",), per_class=12)
    with pytest.raises(DataError, match=r"cats.* only 1 class \(cat\).*at least two"):
        data.load(tmp_path / "cats")
    write_folder(tmp_path / "pets", per_class=12)
    for image in (tmp_path / "pets" / "dog").iterdir():
        image.unlink()
    with pytest.raises(DataError, match=r"class folder .*pets/dog has no images"):
        data.load(tmp_path / "pets")


def test_an_undecodable_image_is_named_on_one_line(tmp_path):
    write_folder(tmp_path, per_class=5)
    (tmp_path / "dog" / "notes.jpg").write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"cannot decode image .*dog/notes.jpg: Unknown image") as error:
        data.load(tmp_path)
    assert "\n" not in str(error.value) and "{{" not in str(error.value)


def test_a_tiny_set_still_holds_out_one_image_by_default(tmp_path):
    np.savez(tmp_path / "five.npz", x=rows(5), y=np.arange(5))  # a tenth rounds down to none
    splits = data.load(tmp_path / "five.npz")
    assert len(splits.x_train) == 4 and len(splits.x_val) == 1
    splits = data.load(tmp_path / "five.npz", validation_size=0)  # asked for: no validation
    assert len(splits.x_train) == 5 and len(splits.x_val) == 0


def test_nothing_found_lists_where_it_looked_and_how_to_get_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.delenv("ZOO_CIFAR10", raising=False)
    with pytest.raises(DataError) as error:
        data.load(None)
    message = str(error.value)
    assert str(tmp_path / "keras" / "datasets" / "cifar-10-batches-py") in message
    assert str(tmp_path / "data" / "cifar10") in message and "cifar-10-python.tar.gz" in message
    with pytest.raises(DataError, match="no such file or folder"):
        data.load(tmp_path / "missing")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(DataError, match="not an .npz"):
        data.load(tmp_path / "notes.txt")


def test_environment_variable_points_at_the_data(tmp_path, monkeypatch):
    write_python_batches(tmp_path / "batches", per_batch=2, test=False)
    monkeypatch.setenv("ZOO_CIFAR10", str(tmp_path / "batches"))
    splits = data.load(None)
    assert splits.info["source"] == str(tmp_path / "batches") and splits.x_test is None


def test_dataset_batches_augments_and_reshuffles(tmp_path):
    images = rows(10).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    labels = np.eye(10, dtype=np.float32)
    plain = list(data.dataset(images, labels, 4).as_numpy_iterator())
    assert [len(x) for x, _ in plain] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([x for x, _ in plain]), images)
    shuffled = data.dataset(images, labels, 10, shuffle_seed=0, augment=RandomCropFlip(0))
    first, second = (next(iter(shuffled))[1].numpy().argmax(axis=1) for _ in range(2))
    assert sorted(first) == list(range(10)) and not np.array_equal(first, second)


@pytest.mark.skipif(not SHARED_CIFAR.is_dir(), reason="needs ../shared/data/cifar10")
def test_shared_folder_has_the_cifar_classes():
    assert sorted(p.name for p in SHARED_CIFAR.iterdir() if p.is_dir()) == sorted(data.CLASS_NAMES)
