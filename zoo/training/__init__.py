"""Training machinery shared by every family: seeding, resumable `fit`, a non-finite guard, and
`train_loop`, the same training written out as a `tf.GradientTape` loop.

The public names live here; the code lives in one module per concern:

    fitting.py       `fit` (resume, settings, the run's record) and `set_seed`
    chief.py         the chief/worker protocol: which process writes the run directory
    callbacks.py     checkpoints, per-epoch random seeds, the non-finite guard, progress lines;
                     `history.csv` read back
    feeding.py       mini-batches from memory, normalization statistics, label checks
    distribution.py  a strategy's record and the patch Keras' `fit` needs under multi-worker
    loop.py          `train_loop`, the written-out `tf.GradientTape` loop
    writing.py       the run's files written so that a failed write (disk full) leaves it resumable
"""

from zoo.training.callbacks import (
    EpochCheckpoint,
    EpochSeeds,
    NonFiniteLossError,
    Progress,
    StopOnNonFiniteLoss,
    epoch_seed_state,
    read_history,
    trim_torn_row,
)
from zoo.training.feeding import (
    adapt_preprocessing,
    check_labels,
    epoch_batches,
    steps_per_epoch,
    untuned,
)
from zoo.training.fitting import fit, set_seed
from zoo.training.loop import train_loop
from zoo.training.writing import RunWriteError

__all__ = [
    "EpochCheckpoint",
    "EpochSeeds",
    "NonFiniteLossError",
    "Progress",
    "RunWriteError",
    "StopOnNonFiniteLoss",
    "adapt_preprocessing",
    "check_labels",
    "epoch_batches",
    "epoch_seed_state",
    "fit",
    "read_history",
    "set_seed",
    "steps_per_epoch",
    "train_loop",
    "trim_torn_row",
    "untuned",
]
