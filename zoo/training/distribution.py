"""`fit` under a `tf.distribute` strategy: the strategy's entry in the run record, with the
check that a batch splits evenly across the replicas (`_distribution`), and the patch that lets
Keras' `fit` run under `MultiWorkerMirroredStrategy` (`_reduce_nests`).

Which process of a multi-worker job writes the run directory is `zoo.training.chief`'s.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from zoo.data import DataError


def _distribution(model: keras.Model, batch_size: int) -> dict[str, Any] | None:
    """The model's strategy, for the run record (`None` without one); checks the batch splits
    evenly across the replicas."""
    strategy = model.distribute_strategy
    if strategy is tf.distribute.get_strategy() and not tf.distribute.has_strategy():
        return None  # built outside any strategy's scope
    replicas = strategy.num_replicas_in_sync
    if batch_size % replicas:
        # Keras divides each replica's mean loss by the replica count: that is the mean over the
        # global batch only when every replica holds as many examples.
        raise DataError(
            f"batch_size {batch_size} does not split evenly across {replicas} replicas; "
            f"give a multiple of {replicas}"
        )
    kinds = ((tf.distribute.MultiWorkerMirroredStrategy, "multi_worker"),
             (tf.distribute.MirroredStrategy, "mirrored"),
             (tf.distribute.OneDeviceStrategy, "one_device"))
    kind = next((kind for cls, kind in kinds if isinstance(strategy, cls)), type(strategy).__name__)
    return {"strategy": kind, "replicas": replicas}


def _reduce_nests(strategy: tf.distribute.Strategy) -> None:
    """Lets `strategy.reduce` take a nest of values, as Keras' `fit` asks of it.

    Keras 3.15's `fit` under `MultiWorkerMirroredStrategy` asks two things of
    `strategy.reduce` that it cannot do: to reduce the first distributed batch, an `(x, y)`
    tuple, in one call ("Attempt to convert a value (PerReplica...) to a Tensor"), and to
    average each step's scalar metrics "along axis 0" ("Invalid reduction dimension 0 for
    input with 0 dimensions"). This answers a nest (only the build batch, of which Keras uses
    the shapes and dtypes) with this worker's slice, and reduces a scalar across the replicas
    (an all-reduce that every worker joins). Set once on the strategy object; other strategies
    are left alone.
    """
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return
    if getattr(strategy, "_zoo_reduces_nests", False):
        return
    reduce = strategy.reduce

    def reduce_nest(reduce_op: Any, value: Any, axis: Any = None) -> Any:
        if axis is None and tf.nest.is_nested(value):
            # Keras' build batch: it needs only its shapes and dtypes, which every replica's
            # slice has (an all-reduce would also refuse integer images).
            return tf.nest.map_structure(
                lambda item: strategy.experimental_local_results(item)[0], value)
        local = strategy.experimental_local_results(value)
        if axis is not None and local and getattr(local[0], "shape", None) is not None and (
            local[0].shape.rank == 0
        ):
            axis = None  # a scalar (a step's metric) has no axis 0: reduce across replicas
        return reduce(reduce_op, value, axis=axis)

    strategy.reduce = reduce_nest
    strategy._zoo_reduces_nests = True
