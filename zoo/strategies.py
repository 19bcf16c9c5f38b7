"""tf.distribute strategies by name, as `zoo train --strategy` and `zoo tune --strategy` take
them; TensorFlow is imported only when a strategy is made."""

from __future__ import annotations

from typing import Any

from zoo import peers

__all__ = ["STRATEGIES", "is_chief", "make_strategy"]

STRATEGIES = ("one_device", "mirrored", "multi_worker")


_STRATEGY_CACHE: dict[str, Any] = {}


def make_strategy(name: str) -> Any:
    """The `tf.distribute` strategy `zoo train --strategy NAME` trains under.

    - "one_device": the first GPU, else the CPU (`OneDeviceStrategy`).
    - "mirrored": every GPU of this machine, or without GPUs every logical CPU device
      (`MirroredStrategy`; one CPU unless logical devices were configured).
    - "multi_worker": the workers the standard `TF_CONFIG` environment variable names
      (`MultiWorkerMirroredStrategy`); each runs the same command, worker 0 is the chief.
      Workers that do not all start within `$ZOO_PEER_TIMEOUT` seconds (default 300) end the
      command with one line naming the silent ones (`zoo.peers.watchdog`).

    Build and compile the model under `strategy.scope()`, then call `fit` outside it: `fit`
    reads the strategy from the model (`model.distribute_strategy`). The batch size stays the
    global batch, split across the replicas; the learning rate needs no change.

    A process makes one strategy of each kind and hands it out again: a second
    `MirroredStrategy` in one process can reuse the first one's collective instance keys,
    and its all-reduces then meet the wrong partners ("Shape mismatch in the collective").
    """
    if name not in _STRATEGY_CACHE:
        import tensorflow as tf  # only a command that trains under a strategy needs it

        _STRATEGY_CACHE[name] = _new_strategy(tf, name)
    return _STRATEGY_CACHE[name]


def _new_strategy(tf: Any, name: str) -> Any:
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([device.name for device in devices])
    if name == "multi_worker":
        others = peers.cluster_peers()  # a malformed TF_CONFIG: one line, not TensorFlow's
        # The constructor waits for every worker inside TensorFlow, with no deadline and deaf
        # to Ctrl-C: a watchdog process ends it after $ZOO_PEER_TIMEOUT seconds.
        with peers.watchdog(others, "the multi_worker strategy"):
            return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {name!r}")


def is_chief(strategy: Any = None) -> bool:
    """Whether this process writes the run directory: always, except on the non-chief workers
    of a `MultiWorkerMirroredStrategy` job."""
    import tensorflow as tf

    strategy = strategy or tf.distribute.get_strategy()
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return bool(strategy.extended.should_checkpoint)
    return True
