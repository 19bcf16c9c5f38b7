"""The shipped weight sets (`zoo/<family>/weights/`): each verifies against its card, gives its
recorded outputs through every entry that loads it, reproduces its card's figures through `zoo
evaluate` on the data it was measured on (where ../shared/data has it), and all fit the budget.

Apart from tests/test_weights.py (the mechanics, on tiny sets) so that the parallel runner can
give these long checks a process of their own.
"""

import json
from pathlib import Path

import numpy as np
import pytest

import zoo
from test_weights import assert_recorded_outputs, outputs
from zoo import weights


@pytest.mark.parametrize("name,tag,path", weights.shipped())
def test_every_shipped_set_verifies_and_gives_its_recorded_outputs(name, tag, path):
    weights.verify(path, weights.card(name, tag))
    assert weights.check_file(name, tag) is not None, f"{path}: no .check.npz beside it"
    assert_recorded_outputs(name, tag)


SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def shipped_data(card):
    """The data a shipped set was measured on, here: `None` for embedded data, the file of that
    name under ../shared/data, or a skip where it is absent."""
    source = str(card["data"]["source"])
    if source.startswith("embedded"):
        return None
    found = sorted(SHARED.rglob(Path(source).name)) if SHARED.is_dir() else []
    if not found:
        pytest.skip(f"{Path(source).name} is not under {SHARED}")
    return found[0]


@pytest.mark.slow
@pytest.mark.parametrize("name,tag,path", weights.shipped())
def test_zoo_evaluate_reproduces_every_shipped_sets_recorded_metrics(name, tag, path, cli,
                                                                     tmp_path):
    card = weights.card(name, tag)
    data = shipped_data(card)
    split = "test" if card["data"]["measured_on"] == "the test split" else "val"
    recorded = card["metrics"]
    if "cross_validation" in card:  # trained on every example: its own windows reproduce
        split, recorded = "train", card["training_metrics"]
    # The conv sets were measured on 5,000 held-out images; `zoo evaluate` holds out the same
    # ones from the loader options in their cards.
    code, _, err = cli("evaluate", name, "--weights", tag, "--out", tmp_path / "evaluation",
                       "--splits", split, *(("--data", data) if data else ()))
    assert code == 0, err
    measured = json.loads((tmp_path / "evaluation" / "metrics.json").read_text())["metrics"][split]
    for metric, value in recorded.items():
        assert measured[metric] == pytest.approx(value, abs=1e-3), metric


@pytest.mark.parametrize("name,tag,path", [
    shipped for shipped in weights.shipped() if "cross_validation" in weights.card(*shipped[:2])
])
def test_a_set_trained_on_every_subject_quotes_its_cross_validation(name, tag, path):
    """Its headline figures are the cross-validation's, for people it did not see; the card
    says what it was trained on and gives every class's recall on people left out."""
    card = weights.card(name, tag)
    validated = card["cross_validation"]
    assert card["metrics"] == validated["metrics"]
    assert card["data"]["measured_on"] == validated["scheme"]
    assert card["data"]["trained_on"] and card["data"]["load_options"]["include_test"]
    assert set(validated["recall"]) == set(card["class_names"])
    assert validated["hyperparameters"] == card["recipe"]["hyperparameters"]
    assert card["training_metrics"]["accuracy"] > 0


def test_shipped_sets_fit_the_size_budget():
    total = sum(path.stat().st_size for _, _, path in weights.shipped())
    assert total <= weights.SIZE_BUDGET_BYTES, f"shipped weight sets take {total} bytes"


def loaders(name):
    """Every entry that loads `name`'s sets: itself and its `weights_from` twins."""
    return [name, *(other for other in zoo.list()
                    if zoo.get_entry(other).weights_from == name)]


@pytest.mark.slow
@pytest.mark.parametrize("name,tag,loader", [
    (name, tag, loader) for name, tag, _ in weights.shipped() for loader in loaders(name)
])
def test_every_entry_that_loads_a_shipped_set_gives_its_recorded_outputs(name, tag, loader):
    twin = zoo.get(loader, weights=tag, dtype_policy="float32")
    with np.load(weights.check_file(name, tag)) as check:
        np.testing.assert_allclose(outputs(twin, check["inputs"]), check["outputs"], atol=1e-5)
    data = shipped_data(weights.card(name, tag))
    if loader != name and data is not None:  # and on the real windows the set was measured on
        windows = zoo.get_entry(name).task.load(data).x_test
        own = zoo.get(name, weights=tag, dtype_policy="float32")
        np.testing.assert_allclose(twin.predict(windows, verbose=0),
                                   own.predict(windows, verbose=0), atol=1e-5)


