"""Distributed start-up never hangs: a multi-worker job whose peer never starts, or a tuning
worker whose chief never does, ends in one line after `$ZOO_PEER_TIMEOUT` seconds, and a
malformed `TF_CONFIG` is refused at once."""

import json
import socket
import subprocess
import sys
import time

import pytest

from zoo import peers
from zoo.recurrent import data as har


def free_port():
    with socket.socket() as handle:
        handle.bind(("127.0.0.1", 0))
        return handle.getsockname()[1]


def run_zoo(args, env, seconds=240):
    started = time.monotonic()
    completed = subprocess.run([sys.executable, "-m", "zoo", *map(str, args)], env=env,
                               capture_output=True, text=True, timeout=seconds)
    return completed, time.monotonic() - started


@pytest.mark.slow
def test_multi_worker_without_its_peer_ends_in_one_line(tmp_path, subprocess_env):
    data = har.example(tmp_path / "data", seed=0)
    silent = f"127.0.0.1:{free_port()}"
    config = {"cluster": {"worker": [f"127.0.0.1:{free_port()}", silent]},
              "task": {"type": "worker", "index": 0}}
    env = {**subprocess_env, "TF_CONFIG": json.dumps(config), peers.TIMEOUT_VARIABLE: "5"}
    completed, seconds = run_zoo(["train", "lstm", "--preset", "tiny", "--data", data,
                                  "--strategy", "multi_worker", "--run-dir", tmp_path / "run"],
                                 env)
    assert completed.returncode == -9, (completed.returncode, completed.stderr[-2000:])
    lines = [line for line in completed.stderr.splitlines() if line.startswith("zoo: error:")]
    assert lines == [f"zoo: error: the multi_worker strategy: no answer from {silent} after 5 s; "
                     f"start them (or set ${peers.TIMEOUT_VARIABLE} to wait longer)"], \
        completed.stderr[-2000:]
    assert "Traceback" not in completed.stderr and seconds < 120
    assert not (tmp_path / "run").exists()  # nothing was written


@pytest.mark.slow
def test_a_tuning_worker_without_its_chief_ends_in_one_line(tmp_path, subprocess_env):
    data = har.example(tmp_path / "data", seed=0)
    port = free_port()
    env = {**subprocess_env, "KERASTUNER_TUNER_ID": "worker0",
           "KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(port),
           peers.TIMEOUT_VARIABLE: "3"}
    completed, seconds = run_zoo(["tune", "lstm", "--preset", "tiny", "--data", data,
                                  "--distributed", "--directory", tmp_path / "tuning"], env)
    assert completed.returncode == 1, completed.stderr[-2000:]
    assert completed.stderr == (f"zoo: error: the search's chief: no answer from 127.0.0.1:{port} "
                                f"after 3 s; start them (or set ${peers.TIMEOUT_VARIABLE} to "
                                "wait longer)\n")
    assert seconds < 120


@pytest.mark.parametrize("config, message", [
    ("{not json", "TF_CONFIG is not a cluster description"),
    (json.dumps({"cluster": {"worker": ["a:1"]}}), "TF_CONFIG is not a cluster description"),
    (json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 3}}),
     "TF_CONFIG is not a cluster description (IndexError"),
])
def test_a_malformed_tf_config_is_refused_naming_it(monkeypatch, config, message):
    monkeypatch.setenv("TF_CONFIG", config)
    with pytest.raises(peers.PeerError) as raised:
        peers.cluster_peers()
    assert str(raised.value).startswith(message) and "expected e.g." in str(raised.value)


def test_the_peers_are_the_other_tasks(monkeypatch):
    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": {"chief": ["c:1"], "worker": ["w:1", "w:2"]},
         "task": {"type": "worker", "index": 0}}))
    assert peers.cluster_peers() == ["c:1", "w:2"]


def test_waiting_names_the_silent_address_at_the_deadline():
    silent = f"127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(peers.PeerError, match=f"the chief: no answer from {silent} after 0.5 s"):
        peers.wait_until_reachable([silent], "the chief", seconds=0.5)
    assert time.monotonic() - started < 5
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        peers.wait_until_reachable([f"127.0.0.1:{server.getsockname()[1]}"], "up", seconds=5)


@pytest.mark.parametrize("text", ["0", "-3", "soon"])
def test_a_bad_timeout_is_refused(monkeypatch, text):
    monkeypatch.setenv(peers.TIMEOUT_VARIABLE, text)
    with pytest.raises(peers.PeerError, match="must be a positive number of seconds"):
        peers.timeout()
