"""The other processes of a distributed job: who they are, and waiting for them with a deadline.

keras-tuner's worker client waits for the search's chief inside a gRPC call that never times
out, so a `zoo tune --distributed` worker whose chief never starts hung silently. Here the wait
happens first, in Python: it ends with one line naming the address that never answered, after
`timeout()` seconds (`$ZOO_PEER_TIMEOUT`, default 300), and Ctrl-C ends it at once.
`MultiWorkerMirroredStrategy()` waits for its workers while holding the interpreter, so no
Python thread or signal handler can act meanwhile: `watchdog` guards it from a small process of
its own, which ends it after the same deadline, or on Ctrl-C, with the same one line.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from zoo.errors import UserError

__all__ = ["PeerError", "TIMEOUT_VARIABLE", "cluster_peers", "reachable", "timeout",
           "wait_until_reachable", "watchdog"]

TIMEOUT_VARIABLE = "ZOO_PEER_TIMEOUT"
DEFAULT_TIMEOUT = 300.0
_POLL_SECONDS = 0.25


class PeerError(UserError, ConnectionError):
    """A distributed job's peer that never answered, or a cluster description that is wrong."""


def timeout() -> float:
    """Seconds to wait for peers: `$ZOO_PEER_TIMEOUT`, else 300.

    Raises:
        PeerError: the variable is not a positive number.
    """
    text = os.environ.get(TIMEOUT_VARIABLE)
    if text is None:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise PeerError(f"${TIMEOUT_VARIABLE} must be a positive number of seconds, got {text!r}")
    return value


def cluster_peers() -> list[str]:
    """The `host:port` of every other task in `$TF_CONFIG`'s cluster.

    Raises:
        PeerError: `TF_CONFIG` is missing, not JSON, or lacks the cluster or this task.
    """
    text = os.environ.get("TF_CONFIG")
    example = ('{"cluster": {"worker": ["host0:12345", "host1:12345"]}, '
               '"task": {"type": "worker", "index": 0}}')
    if not text:
        raise PeerError(f"--strategy multi_worker needs TF_CONFIG, e.g. {example}")
    try:
        config = json.loads(text)
        cluster, task = config["cluster"], config["task"]
        own = cluster[task["type"]][int(task["index"])]
        addresses = [str(address) for tasks in cluster.values() for address in tasks]
    except (ValueError, TypeError, KeyError, IndexError) as error:
        raise PeerError(f"TF_CONFIG is not a cluster description ({type(error).__name__}: "
                        f"{error}); expected e.g. {example}") from None
    return [address for address in addresses if address != own]


def reachable(address: str, seconds: float = 1.0) -> bool:
    """Whether something accepts a TCP connection at `host:port`."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=seconds):
            return True
    except (OSError, ValueError):
        return False


def wait_until_reachable(addresses: Sequence[str], what: str, seconds: float | None = None) -> None:
    """Returns once every address accepts a TCP connection.

    Raises:
        PeerError: after `seconds` (default `timeout()`), naming the addresses that never did.
    """
    seconds = timeout() if seconds is None else seconds
    deadline = time.monotonic() + seconds
    waiting = list(addresses)
    while waiting:
        waiting = [address for address in waiting if not reachable(address)]
        if waiting and time.monotonic() > deadline:
            raise PeerError(f"{what}: no answer from {', '.join(waiting)} after {seconds:g} s; "
                            f"start them (or set ${TIMEOUT_VARIABLE} to wait longer)")
        if waiting:
            time.sleep(_POLL_SECONDS)


# Run by `watchdog` in a process of its own: the interpreter that starts the strategy is held
# by TensorFlow, so no thread of it could act, nor could its signal handlers.
_WATCHDOG = r"""
import os, signal, sys, time
sys.path[:0] = [os.environ["ZOO_WATCHDOG_PATH"]]
from zoo import peers
parent, seconds, what, addresses = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4:]
deadline = time.monotonic() + seconds

def alive():
    try:
        os.kill(parent, 0)
        return True
    except OSError:
        return False

try:
    while time.monotonic() < deadline:
        if not alive():
            sys.exit(0)
        time.sleep(0.25)
    silent = [address for address in addresses if not peers.reachable(address)] or addresses
    sys.stderr.write(f"zoo: error: {what}: no answer from {', '.join(silent)} after "
                     f"{seconds:g} s; start them (or set ${peers.TIMEOUT_VARIABLE} to wait "
                     "longer)\n")
except KeyboardInterrupt:  # Ctrl-C reaches the whole process group, this one included
    pass
if alive():
    os.kill(parent, signal.SIGKILL)
"""


@contextlib.contextmanager
def watchdog(addresses: Sequence[str], what: str, seconds: float | None = None) -> Iterator[None]:
    """Ends this process if the block has not finished after `seconds` (default `timeout()`),
    with one `zoo: error:` line naming the addresses that do not answer, or at once on Ctrl-C:
    for a wait inside TensorFlow that holds the interpreter (`MultiWorkerMirroredStrategy()`
    waiting for its workers), which no Python thread or signal handler could interrupt.

    The watchdog is a small process of its own, ended when the block finishes; the process it
    guards ends by SIGKILL (exit status 137), as nothing gentler reaches it there.
    """
    seconds = timeout() if seconds is None else seconds
    package_root = str(Path(__file__).resolve().parents[1])
    guard = subprocess.Popen(
        [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(seconds), what, *addresses],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        env={**os.environ, "ZOO_WATCHDOG_PATH": package_root},
    )
    try:
        yield
    finally:
        guard.terminate()
        guard.wait()
