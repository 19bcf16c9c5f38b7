"""Training machinery shared by every family: seeding, resumable `fit`, a non-finite guard, and
`train_loop`, the same training written out as a `tf.GradientTape` loop.

The public names live here; the code lives in the package's modules, one concern each."""

from zoo.training.fitting import (
    EpochCheckpoint,
    NonFiniteLossError,
    Progress,
    StopOnNonFiniteLoss,
    adapt_preprocessing,
    check_labels,
    epoch_batches,
    fit,
    read_history,
    set_seed,
    steps_per_epoch,
    train_loop,
    trim_torn_row,
    untuned,
)

__all__ = [
    "EpochCheckpoint",
    "NonFiniteLossError",
    "Progress",
    "StopOnNonFiniteLoss",
    "adapt_preprocessing",
    "check_labels",
    "epoch_batches",
    "fit",
    "read_history",
    "set_seed",
    "steps_per_epoch",
    "train_loop",
    "trim_torn_row",
    "untuned",
]
