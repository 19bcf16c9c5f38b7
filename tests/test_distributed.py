"""Distributed training (`zoo train --strategy`): a tiny model of each family trained by two
MultiWorkerMirroredStrategy workers on 127.0.0.1, and by MirroredStrategy over two logical CPU
devices, gives the losses and weights of a single-process run with the same global batch and
seed; a worker killed mid-run, and the job restarted, completes from the chief's checkpoint.

Every run trains on one global batch holding the whole training set for a few epochs (one
step each), with plain SGD and without the recurrent family's random augmentation: a wrongly
scaled or per-replica-clipped gradient shows in the weights, and the data order (which a
strategy's tf.data pipeline draws differently from Keras' array shuffling) cannot matter.

Tolerance: float32 sums over the batch are taken in another order when each replica sums its
half and an all-reduce adds the halves, so each step's loss and gradient differ from the
single device's in the last bits (~1e-7 relative); over three steps that stays far below
RTOL=1e-4 (ATOL=1e-6 for weights near zero). The recurrent training `macro_f1` is left out:
Keras reports a non-additive metric under a strategy as the mean of the replicas' values.

All processes of the comparison start at once (TensorFlow's start-up dominates on a small
machine); every process has a timeout and is killed in a `finally`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

EPOCHS = 3
RTOL, ATOL = 1e-4, 1e-6
TIMEOUT = 300  # seconds for any one process
# Random per replica (augmentation, dropout) draws differently from one device: off.
NO_AUGMENTATION = ["rotation=0", "scaling=0", "time_shift=0", "time_warp=0", "jitter=0",
                   "dropout=0"]
# name -> --set overrides: plain SGD (Adam's first steps would hide a gradient scale), the
# recurrent family's gradient clipping on and active (clip_norm small) so that clipping the
# all-reduced gradient is checked.
FAMILIES = {
    "sparse_autoencoder": ["optimizer=sgd", "learning_rate=0.1"],
    "lstm": ["optimizer=sgd", "learning_rate=0.5", "clip_norm=0.05", *NO_AUGMENTATION],
    "two_layer_fc": ["learning_rate=0.05"],
}
# name -> --load options: the LSTM trains on every subject by default; hold some out, so that
# the validation metrics are compared too.
LOAD = {"lstm": ["validation_fraction=0.1"]}
KILLED = "two_layer_fc"  # the family of the kill-and-restart test (the quickest)

MIRRORED = """
import sys
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from zoo.cli import main

# argument lists separated by "--": a single-device run, then a mirrored one, per family
commands, current = [], []
for argument in sys.argv[1:]:
    if argument == "--":
        commands.append(current)
        current = []
    else:
        current.append(argument)
for command in commands:
    code = main(command)
    if code:
        sys.exit(code)
"""


USED_PORTS: set[int] = set()


def free_ports(count: int) -> list[int]:
    """`count` free ports, none handed out before in this session: jobs started together must
    not share a port, or their workers would join each other's collectives."""
    probes, ports = [], []
    try:
        while len(ports) < count:
            probe = socket.socket()
            probes.append(probe)
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
            if port not in USED_PORTS:
                ports.append(port)
                USED_PORTS.add(port)
    finally:
        for probe in probes:
            probe.close()
    return ports


def tf_config(ports: list[int], index: int) -> str:
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
                       "task": {"type": "worker", "index": index}})


def train_arguments(name: str, data: Path, batch: int, run_dir: Path, epochs: int = EPOCHS):
    arguments = ["train", name, "--preset", "tiny", "--data", str(data), "--batch-size",
                 str(batch), "--epochs", str(epochs), "--run-dir", str(run_dir), "--seed", "0"]
    for pair in FAMILIES[name]:
        arguments += ["--set", pair]
    for pair in LOAD.get(name, []):
        arguments += ["--load", pair]
    return arguments


def workers(arguments, environment, extra=({}, {})):
    """Two worker processes of one multi-worker job running `zoo ARGUMENTS --strategy
    multi_worker`; `extra` adds environment variables per worker."""
    ports = free_ports(2)
    return [
        subprocess.Popen(
            [sys.executable, "-m", "zoo", *arguments, "--strategy", "multi_worker"],
            env={**environment, "TF_CONFIG": tf_config(ports, index), **extra[index]},
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for index in range(2)
    ]


def finish(processes, timeout=TIMEOUT):
    """Each process's (return code, output), waiting at most `timeout` seconds in all."""
    deadline, results = time.monotonic() + timeout, []
    for process in processes:
        output = process.communicate(timeout=max(1.0, deadline - time.monotonic()))[0]
        results.append((process.returncode, output))
    return results


def kill_all(processes):
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def history(run_dir: Path) -> dict[str, list[float]]:
    from zoo.training import read_history

    return read_history(run_dir / "history.csv")


def weights(run_dir: Path) -> list[np.ndarray]:
    import zoo

    return zoo.load_model(run_dir / "model.keras").get_weights()


def assert_same_run(run: Path, reference: Path, label: str) -> None:
    ours, theirs = history(run), history(reference)
    assert set(ours) == set(theirs), label
    for metric, values in theirs.items():
        if metric == "macro_f1":
            continue  # the mean of the replicas' F1s (see the module's docstring)
        np.testing.assert_allclose(ours[metric], values, rtol=RTOL, atol=ATOL,
                                   err_msg=f"{label}: {metric}")
    assert len(theirs["loss"]) == EPOCHS
    for index, (one, two) in enumerate(zip(weights(reference), weights(run), strict=True)):
        np.testing.assert_allclose(two, one, rtol=RTOL, atol=ATOL,
                                   err_msg=f"{label}: weights {index}")


@pytest.fixture(scope="module")
def runs(tmp_path_factory, subprocess_env):
    """Every family trained three ways at once: a single device and MirroredStrategy over two
    logical CPUs (one process), and two multi-worker workers. Returns the run directories."""
    import zoo

    root = tmp_path_factory.mktemp("distributed")
    environment = {**subprocess_env, "TMPDIR": str(root)}  # a killed worker's scratch stays here
    data, batches = {}, {}
    for name in FAMILIES:
        entry = zoo.get_entry(name)
        data[name] = entry.task.example(root / "data" / name, 0)
        batches[name] = len(entry.task.load(str(data[name]), seed=0).x_train)
        assert batches[name] % 2 == 0  # one global batch, split in equal halves
    mirrored_commands = []
    for name in FAMILIES:
        for label, extra in (("single", []), ("mirrored", ["--strategy", "mirrored"])):
            mirrored_commands += [*train_arguments(name, data[name], batches[name],
                                                   root / label / name), *extra, "--"]
    processes = [subprocess.Popen([sys.executable, "-c", MIRRORED, *mirrored_commands],
                                  env=environment, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)]
    try:
        for name in FAMILIES:
            processes += workers(train_arguments(name, data[name], batches[name],
                                                 root / "multi_worker" / name), environment)
        results = finish(processes)
    finally:
        kill_all(processes)
    return {"root": root, "data": data, "batches": batches, "results": results,
            "environment": environment}


def check_exit(results, which):
    for index in which:
        code, output = results[index]
        assert code == 0, output[-4000:]


@pytest.mark.parametrize("name", FAMILIES)
def test_multi_worker_equals_single_process(runs, name):
    index = 1 + 2 * list(FAMILIES).index(name)
    check_exit(runs["results"], [0, index, index + 1])
    chief, worker = runs["results"][index][1], runs["results"][index + 1][1]
    assert "strategy: multi_worker (2 replicas)" in chief
    assert "not the chief" in worker and "worker done" in worker
    root = runs["root"]
    assert_same_run(root / "multi_worker" / name, root / "single" / name, f"{name} multi_worker")
    record = json.loads((root / "multi_worker" / name / "run.json").read_text())
    assert record["status"] == "finished"
    assert record["distribution"] == {"strategy": "multi_worker", "replicas": 2}
    assert record["fit"]["batches_per_step"] == 1


@pytest.mark.parametrize("name", FAMILIES)
def test_mirrored_two_cpus_equals_single_device(runs, name):
    check_exit(runs["results"], [0])
    assert "strategy: mirrored (2 replicas)" in runs["results"][0][1]
    root = runs["root"]
    assert_same_run(root / "mirrored" / name, root / "single" / name, f"{name} mirrored")


def test_worker_killed_mid_run_and_job_restarted_completes(runs):
    """Worker 1 kills itself after its first epoch (`ZOO_KILL_AT=epoch-1`); the chief, left
    waiting in a collective, is stopped once its epoch-1 checkpoint is written, as a cluster
    manager restarts a failed job. The restarted workers both resume from the chief's
    checkpoint and finish with the uninterrupted run's weights."""
    name, root = KILLED, runs["root"]
    run_dir = root / "killed"
    arguments = train_arguments(name, runs["data"][name], runs["batches"][name], run_dir)
    environment = runs["environment"]
    processes = workers(arguments, environment, extra=({}, {"ZOO_KILL_AT": "epoch-1"}))
    try:
        chief, killed = processes
        killed.wait(timeout=TIMEOUT)
        assert killed.returncode == -signal.SIGKILL, killed.communicate()[0][-3000:]
        checkpoint = run_dir / ".zoo-checkpoints" / "epoch-0001.weights.h5"
        deadline = time.monotonic() + 120
        while not checkpoint.is_file() and chief.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert checkpoint.is_file(), "the chief wrote no epoch-1 checkpoint"
        if chief.poll() is None:
            os.kill(chief.pid, signal.SIGTERM)
        chief.communicate(timeout=60)
        assert json.loads((run_dir / "run.json").read_text())["status"] == "training"

        processes += workers(arguments, environment)
        results = finish(processes[2:])
    finally:
        kill_all(processes)
    for code, output in results:
        assert code == 0, output[-4000:]
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "finished" and record["epochs_trained"] == EPOCHS
    # The restarted job trained epochs 2 and 3 only.
    assert "epoch 1/" not in results[0][1] and f"epoch {EPOCHS}/{EPOCHS}" in results[0][1]
    assert_same_run(run_dir, root / "multi_worker" / name, f"{name} killed and restarted")


def test_tune_refuses_multi_worker_strategy(cli):
    code, _, err = cli("tune", "sparse_autoencoder", "--strategy", "multi_worker")
    assert code == 2 and "multi_worker is for zoo train" in err
