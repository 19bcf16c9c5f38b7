"""A distributed search's roles: the chief serves keras-tuner's oracle over gRPC, the workers
wait for it and run the trials, as keras-tuner's environment variables say.

    KERASTUNER_TUNER_ID     "chief" on the process that serves the search, "worker0", ... on
                            the others
    KERASTUNER_ORACLE_IP, KERASTUNER_ORACLE_PORT    the chief's address, on all of them
"""

from __future__ import annotations

import logging
import os
import time
from concurrent import futures

import keras_tuner as kt
from keras_tuner.src.distribute import utils as kt_distribute

from zoo import peers
from zoo.tuning.hypermodel import TuningError

_log = logging.getLogger(__name__)

__all__ = ["ORACLE_ADDRESS", "TUNER_ID", "is_chief", "role", "serve", "wait_for_chief"]

ORACLE_ADDRESS = ("KERASTUNER_ORACLE_IP", "KERASTUNER_ORACLE_PORT")
TUNER_ID = "KERASTUNER_TUNER_ID"


def is_chief() -> bool:
    """Whether this process is a distributed search's chief (keras-tuner's own test)."""
    return bool(kt_distribute.is_chief_oracle())


def role(distributed: bool) -> str:
    """The part this process plays in a search, from keras-tuner's environment variables.

    Args:
        distributed: whether the search was asked to be distributed.

    Returns:
        "single", "chief" or "worker".

    Raises:
        TuningError: the variables and `distributed` disagree (set without `distributed`, or
            missing with it).
    """
    if not distributed:
        present = [variable for variable in ORACLE_ADDRESS if variable in os.environ]
        if present:
            raise TuningError(
                f"{' and '.join(present)} set, which makes keras-tuner run a distributed search: "
                "pass --distributed (distributed=True) to join it, or unset them"
            )
        return "single"
    missing = [variable for variable in (TUNER_ID, *ORACLE_ADDRESS) if variable not in os.environ]
    if missing:
        raise TuningError(
            f"a distributed search needs {', '.join(missing)} in the environment: "
            f"{TUNER_ID}=chief on the process that serves the search, worker0, worker1, ... on "
            f"the others, and on all of them the chief's address in {' and '.join(ORACLE_ADDRESS)}"
        )
    return "chief" if is_chief() else "worker"


def _chief_address() -> str:
    return ":".join(os.environ[variable] for variable in ORACLE_ADDRESS)


def wait_for_chief() -> None:
    """Returns once the chief accepts connections. keras-tuner's client waits for it in C++,
    forever; this waits in Python, with `zoo.peers`' deadline.

    Raises:
        zoo.peers.PeerError: the chief did not answer within `$ZOO_PEER_TIMEOUT` seconds.
    """
    peers.wait_until_reachable([_chief_address()], "the search's chief")


def serve(oracle: kt.Oracle, poll_seconds: float = 0.2) -> None:
    """Serves `oracle` to the workers over gRPC until the search is over.

    keras-tuner's own chief (`oracle_chief.start_server`) checks only every 20 seconds whether
    the last worker has finished, and never stops its server; this is the same service with a
    short poll and a clean stop.

    Args:
        oracle: the search's oracle.
        poll_seconds: how often to check whether every worker is done.

    Raises:
        TuningError: the chief cannot listen on its address.
    """
    import grpc
    from keras_tuner.src import protos
    from keras_tuner.src.distribute import oracle_chief

    address = _chief_address()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    servicer = oracle_chief.OracleServicer(oracle)
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError as error:  # newer grpc raises where older returned 0
        raise TuningError(f"the chief cannot listen on {address}: {error}") from None
    if not bound:
        raise TuningError(f"the chief cannot listen on {address} (in use?)")
    server.start()
    _log.info("[chief] serving the search on %s", address)
    try:
        while not (servicer.stop_triggered and oracle_chief.exit_chief(oracle)):
            time.sleep(poll_seconds)
    finally:
        server.stop(grace=1.0)
