"""`zoo predict`: batched conv-net predictions, bounded inputs refused by name before decoding,
outputs that never replace what zoo did not write, windows read from the test split and
summarised, autoencoder outputs that never collide.

Weight sets are tests/test_weights.py's tiny ones (seeded initial weights, no training).
"""

import logging
import os

import numpy as np
import pytest
import tensorflow as tf
from test_weights import har_file, make_set, tiny_model, weight_dir  # noqa: F401 (a fixture)

from zoo import data as shared_data
from zoo.convnets.predict import predict_images
from zoo.files import OutputError, atomic_path
from zoo.predicting import Prediction, Progress, group_counts, unique_stems


def write_png(path, image):
    path.write_bytes(tf.io.encode_png(np.asarray(image, np.uint8)).numpy())
    return path


def images_folder(folder, count=7, seed=0):
    """`count` PNGs, some 32x32, some larger (resized on reading)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        size = 32 if index % 2 else 40 + index
        write_png(folder / f"image{index}.png", rng.integers(0, 256, (size, size + 1, 3)))
    return sorted(folder.glob("*.png"))


def huge_png(path, side=10000):
    """A PNG whose header declares side x side pixels: a 1-bit blank image compresses to a few
    kB, but decoding it would take side * side * 3 bytes."""
    from PIL import Image

    Image.new("1", (side, side)).save(path)
    return path


def one_at_a_time(model, paths):
    from zoo.convnets import data

    rows = []
    for path in paths:
        image = data.fit_image(shared_data.decode_image(path)).numpy()
        rows.append(np.asarray(model(image[None].astype("float32"), training=False))[0])
    return np.stack(rows)


# --- batching ------------------------------------------------------------------------------


def test_batches_give_the_probabilities_of_one_image_at_a_time(tmp_path):
    model = tiny_model("two_layer_fc")
    paths = images_folder(tmp_path / "images")
    expected = one_at_a_time(model, paths)
    for batch_size in (3, 256):  # a last, shorter batch; everything in one
        predictions = predict_images(model, paths, batch_size=batch_size)
        assert [p.input for p in predictions] == [str(p) for p in paths]
        assert all(p.error is None for p in predictions)
        got = np.array([[float(p.row[name]) for name in list(p.row)[2:]] for p in predictions])
        np.testing.assert_allclose(got, expected, atol=2e-6)


def test_a_bad_image_among_good_is_refused_alone(tmp_path):
    model = tiny_model("two_layer_fc")
    paths = images_folder(tmp_path / "images", count=5)
    broken = tmp_path / "images" / "image2.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    predictions = predict_images(model, paths, batch_size=2)
    assert [p.error is not None for p in predictions] == [False, False, True, False, False]
    assert str(broken) in predictions[2].error
    good = [path for path in paths if path != broken]
    expected = one_at_a_time(model, good)
    got = [[float(p.row[name]) for name in list(p.row)[2:]] for p in predictions if not p.error]
    np.testing.assert_allclose(np.array(got), expected, atol=2e-6)


def test_progress_is_logged_on_long_inputs(caplog, monkeypatch):
    clock = iter([0.0, 12.0, 13.0, 30.0])
    monkeypatch.setattr("zoo.predicting.time.monotonic", lambda: next(clock))
    progress = Progress(2000, "images")
    with caplog.at_level(logging.INFO, logger="zoo.predicting"):
        progress.update(512)  # 12 s: due
        progress.update(768)  # 1 s later: not yet
        progress.update(2000)  # done: the command's own output says so
    assert [r.getMessage() for r in caplog.records] == ["predicted 512/2000 images, 35 s left"]


# --- inputs refused by name, before decoding -----------------------------------------------


def test_devices_fifos_and_huge_images_are_refused_by_name_before_decoding(
        cli, weight_dir, tmp_path, monkeypatch):
    make_set("two_layer_fc", weight_dir)
    good = write_png(tmp_path / "good.png", np.full((32, 32, 3), 90))
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)  # reading it would block forever
    huge = huge_png(tmp_path / "huge.png")
    assert huge.stat().st_size < 100_000
    big = write_png(tmp_path / "big.png", np.random.default_rng(0).integers(0, 256, (64, 64, 3)))
    monkeypatch.setattr(shared_data, "MAX_INPUT_BYTES", big.stat().st_size - 1)
    decoded = []
    real_decode = tf.io.decode_image
    monkeypatch.setattr(tf.io, "decode_image",
                        lambda content, **kw: decoded.append(1) or real_decode(content, **kw))

    code, out, err = cli("predict", "two_layer_fc", "--weights", "tiny", "/dev/zero", fifo, huge,
                         big, good)
    assert code == 1 and "good.png: " in out and "refused" not in out
    assert "/dev/zero: refused: /dev/zero is not a regular file" in err
    assert f"{fifo}: refused: {fifo} is not a regular file" in err
    assert f"declares 10000x10000 pixels, over the {shared_data.MAX_IMAGE_PIXELS:,}-pixel limit" in err
    assert f"{big}: refused: {big} has" in err and "zoo.data.MAX_INPUT_BYTES" in err
    assert "4 of 5 inputs refused" in err
    assert len(decoded) == 1  # only good.png reached the decoder


def test_training_loaders_refuse_huge_images_by_name(tmp_path):
    from zoo.autoencoder.data import read_images
    from zoo.convnets.data import read_image_folder

    for name in ("cat", "dog"):
        write_png((tmp_path / "tree" / name).mkdir(parents=True) or tmp_path / "tree" / name / "a.png",
                  np.zeros((32, 32, 3)))
    huge = huge_png(tmp_path / "tree" / "dog" / "b.png")
    with pytest.raises(shared_data.DataError, match="b.png declares 10000x10000 pixels"):
        read_image_folder(tmp_path / "tree", ("cat", "dog"))
    with pytest.raises(shared_data.DataError, match="b.png declares 10000x10000 pixels"):
        read_images([huge])


# --- outputs: never replace what zoo did not write -----------------------------------------


def snapshot(folder):
    return {path.name: path.read_bytes() for path in folder.iterdir() if path.is_file()}


def test_output_on_a_folder_is_refused_and_its_files_survive(cli, weight_dir, tmp_path,
                                                             monkeypatch):
    make_set("two_layer_fc", weight_dir)
    image = write_png(tmp_path / "cat.png", np.full((32, 32, 3), 30))
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "notes.txt").write_text("mine")
    (folder / "data.bin").write_bytes(bytes(range(256)))
    before = snapshot(folder)
    code, _, err = cli("predict", "two_layer_fc", "--weights", "tiny", image, "--output", folder)
    assert code == 1 and f"--output {folder} is a folder" in err
    assert snapshot(folder) == before

    # `--output ..` from a subfolder: the parent and its files are left alone.
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    parent = snapshot(tmp_path)
    code, _, err = cli("predict", "two_layer_fc", "--weights", "tiny", image, "--output", "..")
    assert code == 1 and "--output .. is a folder" in err
    assert snapshot(tmp_path) == parent and snapshot(folder) == before


def test_output_replaces_only_zoos_own_csv(cli, weight_dir, tmp_path):
    make_set("two_layer_fc", weight_dir)
    image = write_png(tmp_path / "cat.png", np.full((32, 32, 3), 30))
    foreign = tmp_path / "table.csv"
    foreign.write_text("name,value\na,1\n")
    code, _, err = cli("predict", "two_layer_fc", "--weights", "tiny", image, "--output", foreign)
    assert code == 1 and "is not a prediction CSV zoo wrote" in err
    assert foreign.read_text() == "name,value\na,1\n"

    ours = tmp_path / "new" / "predictions.csv"  # a parent that does not exist yet is made
    for _ in range(2):  # the second run replaces the first run's CSV
        code, out, err = cli("predict", "two_layer_fc", "--weights", "tiny", image, "--output",
                             ours)
        assert code == 0, err
        assert ours.read_text().startswith("input,prediction,airplane")
    assert len(ours.read_text().splitlines()) == 2


def test_atomic_path_never_removes_a_directory_or_replaces_a_device(tmp_path):
    target = tmp_path / "version"
    target.mkdir()
    (target / "old").write_text("old")
    with pytest.raises(OutputError, match="version is a directory"):
        with atomic_path(target) as temporary:
            temporary.write_text("new")
    assert (target / "old").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["version"]  # no temporary left

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OutputError, match="pipe is not a regular file"):
        with atomic_path(fifo):
            pass
    file = tmp_path / "file"
    file.write_text("a file")
    with pytest.raises(OutputError, match="zoo writes a directory only where nothing is"):
        with atomic_path(file) as temporary:  # a directory never replaces a file either
            temporary.mkdir()
    assert file.read_text() == "a file"


# --- windows -------------------------------------------------------------------------------


def test_windows_default_to_the_test_split_and_say_so(cli, weight_dir, tmp_path):
    make_set("lstm", weight_dir)
    har = har_file(tmp_path / "har.h5", classes=6, per_class=2)  # trX 12 windows, tstX 6
    code, out, err = cli("predict", "lstm", "--weights", "tiny", har)
    assert code == 0, err
    assert "har.h5[5]: " in out and "har.h5[6]: " not in out
    assert "6 windows from dataset 'tstX' (the test split)" in err


def test_windows_with_output_print_counts_per_class(cli, weight_dir, tmp_path):
    make_set("lstm", weight_dir)
    har = har_file(tmp_path / "har.h5", classes=6, per_class=2)
    code, out, err = cli("predict", "lstm", "--weights", "tiny", har, "--key", "trX",
                         "--output", tmp_path / "windows.csv")
    assert code == 0, err
    assert "[0]: " not in out  # no line per window
    assert "predicted classes of 12 inputs:" in out and "12 predictions in" in out
    counts = [int(line.split(":")[1].split("(")[0]) for line in out.splitlines()
              if line.startswith("  ")]
    assert sum(counts) == 12
    assert "12 windows from dataset 'trX' (the training split)" in err
    assert len((tmp_path / "windows.csv").read_text().splitlines()) == 13


def test_group_counts_need_every_prediction_grouped():
    grouped = [Prediction("a", group="walk"), Prediction("b", group="sit"),
               Prediction("c", group="walk"), Prediction("d", error="bad")]
    assert group_counts(grouped) == {"walk": 2, "sit": 1}
    assert group_counts([*grouped, Prediction("e")]) is None  # images: a line each


# --- autoencoder outputs -------------------------------------------------------------------


def test_same_named_autoencoder_inputs_get_distinct_outputs(cli, weight_dir, tmp_path):
    make_set("sparse_autoencoder", weight_dir)
    rng = np.random.default_rng(0)
    inputs = []
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        inputs.append(write_png(tmp_path / folder / "photo.png", rng.integers(0, 256, (32, 48, 3))))
    inputs.append(write_png(tmp_path / "photo.png", rng.integers(0, 256, (16, 16, 3))))
    out = tmp_path / "out"
    code, stdout, err = cli("predict", "sparse_autoencoder", "--weights", "tiny", *inputs,
                            "--out", out)
    assert code == 0, err
    codes = sorted(p.name for p in out.glob("*.code.npy"))
    assert len(codes) == 3 and len(set(codes)) == 3
    shapes = sorted(np.load(out / name).shape[0] for name in codes)
    assert shapes == [1, 6, 6]  # each input's own patches: none overwrote another's

    # A folder zoo wrote is reused; a non-empty one it did not write is refused, untouched.
    code, _, err = cli("predict", "sparse_autoencoder", "--weights", "tiny", inputs[0],
                       "--out", out)
    assert code == 0, err
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "photo.code.npy").write_bytes(b"precious")
    code, _, err = cli("predict", "sparse_autoencoder", "--weights", "tiny", inputs[0],
                       "--out", foreign)
    assert code == 1 and "is not empty and is not a zoo prediction folder" in err
    assert (foreign / "photo.code.npy").read_bytes() == b"precious"


def test_unique_stems(tmp_path):
    paths = [tmp_path / "a" / "photo.png", tmp_path / "b" / "photo.jpg", tmp_path / "c.png",
             tmp_path / "a" / "photo.jpg", tmp_path / "a-photo.png"]
    # A unique stem keeps its name; shared ones take their folder's, numbered where that repeats.
    assert unique_stems(paths) == ["a-photo-2", "b-photo", "c", "a-photo-3", "a-photo"]
