"""Every docstring example (`>>>`) under `zoo/` runs and shows what it claims.

Each module of the package is imported, its examples are collected with `doctest.DocTestFinder`
and each docstring's examples run as one test, named by the docstring's qualified name, in an
empty temporary working directory. An example sees its module's globals plus `NAMESPACE` below:
the tiny, seeded stand-ins for the data a reader would have at hand. The examples are kept
small (a few epochs, two trials, tiny presets) so that the whole file runs in about a minute.
"""

import copy
import doctest
import importlib
import pkgutil
import types

import numpy as np
import pytest

import zoo


def _namespace():
    """The names docstring examples may use without defining them: tiny, seeded arrays shaped
    as each family's data.

        np, keras, zoo      the modules
        windows             (8, 150, 3) float32 sensor windows (the recurrent family's input)
        one_hot_labels      (8, 6) float32 one-hot activity labels for `windows`
        images              (8, 32, 32, 3) uint8 CIFAR-style images
        train_images        (64, 32, 32, 3) uint8 training images; `x_train` is the same array
        patches             (64, 256) float32 autoencoder patches in [0.1, 0.9]
        splits              a `zoo.data.Splits` of tiny CIFAR-style data: `train_images` and 16
                            validation images, with one-hot (N, 10) labels
        x, y                (32, 8) float32 inputs and (32, 1) float32 targets for a dense model
    """
    import keras

    rng = np.random.default_rng(0)
    train_images = rng.integers(0, 256, (64, 32, 32, 3), dtype=np.uint8)
    return {
        "np": np,
        "keras": keras,
        "zoo": zoo,
        "windows": rng.normal(size=(8, 150, 3)).astype(np.float32),
        "one_hot_labels": np.eye(6, dtype=np.float32)[rng.integers(0, 6, 8)],
        "images": rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8),
        "train_images": train_images,
        "x_train": train_images,
        "patches": rng.uniform(0.1, 0.9, (64, 256)).astype(np.float32),
        "splits": zoo.data.Splits(
            x_train=train_images,
            y_train=np.eye(10, dtype=np.float32)[rng.integers(0, 10, 64)],
            x_val=rng.integers(0, 256, (16, 32, 32, 3), dtype=np.uint8),
            y_val=np.eye(10, dtype=np.float32)[rng.integers(0, 10, 16)],
        ),
        "x": rng.normal(size=(32, 8)).astype(np.float32),
        "y": rng.normal(size=(32, 1)).astype(np.float32),
    }


NAMESPACE = _namespace()


def _modules():
    yield zoo
    for info in pkgutil.walk_packages(zoo.__path__, "zoo."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue  # running it runs the command line
        yield importlib.import_module(info.name)


def _examples():
    finder = doctest.DocTestFinder(exclude_empty=True)
    seen = set()
    for module in _modules():
        for test in finder.find(module, module.__name__):
            if test.examples and test.name not in seen:
                seen.add(test.name)
                yield test


EXAMPLES = sorted(_examples(), key=lambda test: test.name)


def test_the_package_has_examples():
    assert len(EXAMPLES) >= 20


@pytest.mark.slow
@pytest.mark.parametrize("test", EXAMPLES, ids=[test.name for test in EXAMPLES])
def test_docstring_examples(test, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # A fresh copy of the data for each docstring, so that no example sees another's changes.
    data = {name: value if isinstance(value, types.ModuleType) else copy.deepcopy(value)
            for name, value in NAMESPACE.items()}
    test.globs = {**test.globs, **data}
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    report = []
    failed, _ = runner.run(test, out=report.append)
    assert failed == 0, "".join(report)
