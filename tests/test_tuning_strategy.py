"""Training under tf.distribute: the sparse autoencoder's custom train step under
MirroredStrategy over two logical CPU devices gives the single-device loss and weights for the
same global batch. The devices must be configured before TensorFlow starts, so the comparison runs
in a fresh Python process."""

import json
import subprocess
import sys

import numpy as np
import pytest

SCRIPT = """
import json, sys
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras_tuner as kt
import numpy as np
from zoo import tuning
from zoo.data import Splits

x = np.random.default_rng(0).uniform(0.1, 0.9, (64, 256)).astype("float32")
splits = Splits(x_train=x[:32], x_val=x[32:])
# Plain SGD, so that a wrongly scaled gradient shows in the weights (Adam's first steps would
# hide a factor). Two epochs of one 32-patch batch: two steps on the same global batch.
hypermodel = tuning.hypermodel(
    "sparse_autoencoder",
    fixed={"optimizer": "sgd", "learning_rate": 0.1, "hidden_units": 8},
    fit={"epochs": 2, "batch_size": 32},
)
hp = kt.HyperParameters()
results = {}
for label in ("single", "mirrored"):
    if label == "mirrored":
        with tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]).scope():
            model = hypermodel.build(hp)
    else:
        model = hypermodel.build(hp)
    metrics = hypermodel.fit(hp, model, splits, run_dir=f"{sys.argv[1]}/{label}")
    results[label] = {
        "replicas": model.distribute_strategy.num_replicas_in_sync,
        "metrics": {k: v for k, v in metrics.items() if k != "seconds"},
        "weights": [w.tolist() for w in model.get_weights()],
    }
print("RESULTS " + json.dumps(results))
"""


def test_mirrored_strategy_loss_and_weights_equal_single_device(tmp_path, subprocess_env):
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], env=subprocess_env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(l for l in result.stdout.splitlines() if l.startswith("RESULTS "))
    results = json.loads(line.removeprefix("RESULTS "))
    single, mirrored = results["single"], results["mirrored"]
    assert (single["replicas"], mirrored["replicas"]) == (1, 2)
    assert set(single["metrics"]) == set(mirrored["metrics"])
    for name, value in single["metrics"].items():
        assert mirrored["metrics"][name] == pytest.approx(value, rel=1e-5, abs=1e-7), name
    # The sparsity and weight decay terms are the ones a wrong split would get wrong.
    assert single["metrics"]["train_sparsity"] > 0.1 and single["metrics"]["train_weight_decay"] > 0
    for one, two in zip(single["weights"], mirrored["weights"]):
        np.testing.assert_allclose(two, one, rtol=1e-5, atol=1e-7)
