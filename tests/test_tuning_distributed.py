"""Distributed search: a chief and two workers on 127.0.0.1 run a tiny search together, through
keras-tuner's gRPC oracle, started as the README says (`zoo tune --distributed` with the
KERASTUNER_* environment variables). Every trial must be run by exactly one worker and recorded
exactly once."""

import csv
import re
import socket
import subprocess
import sys

NAME = "sparse_autoencoder"
TRIALS = 4


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_chief_and_two_workers_run_and_record_every_trial_once(
    patch_file, tmp_path, subprocess_env
):
    command = [
        sys.executable, "-m", "zoo", "tune", NAME, "--distributed", "--data", str(patch_file),
        "--directory", str(tmp_path), "--max-trials", str(TRIALS), "--epochs", "1",
        "--batch-size", "16",
    ]
    environment = {**subprocess_env, "KERASTUNER_ORACLE_IP": "127.0.0.1",
                   "KERASTUNER_ORACLE_PORT": str(free_port())}
    processes = {
        role: subprocess.Popen(command, env={**environment, "KERASTUNER_TUNER_ID": role},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for role in ("chief", "worker0", "worker1")
    }
    outputs = {}
    try:
        for role, process in processes.items():
            outputs[role] = process.communicate(timeout=400)[0]
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.kill()
    for role, process in processes.items():
        assert process.returncode == 0, f"{role}:\n{outputs[role][-3000:]}"

    # Each trial was started by one worker, and finished by it; the chief ran none.
    started = {
        role: re.findall(rf"^\[{role}\] trial (\d+): ", outputs[role], re.MULTILINE)
        for role in processes
    }
    finished = {
        role: re.findall(rf"^\[{role}\] trial (\d+) COMPLETED: ", outputs[role], re.MULTILINE)
        for role in processes
    }
    assert started["chief"] == [] and finished["chief"] == []
    every = sorted(started["worker0"] + started["worker1"])
    assert every == [str(trial) for trial in range(TRIALS)], started
    assert sorted(finished["worker0"] + finished["worker1"]) == every
    # The chief's oracle recorded each once, completed, and wrote the results.
    with open(tmp_path / NAME / "trials.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["trial"], row["status"]) for row in rows] == [
        (str(trial), "COMPLETED") for trial in range(TRIALS)
    ]
    assert f"{TRIALS} of {TRIALS} trials completed" in outputs["chief"]
    for trial in range(TRIALS):
        assert (tmp_path / NAME / f"trial_{trial}" / "run" / "model.keras").is_file()
    assert (tmp_path / NAME / "best" / "run.json").is_file()
