"""The workflow at a terminal: its progress shown as plain lines, TensorFlow started quietly.

The workflow's functions report through `logging` (INFO on the `zoo` loggers: epochs, trials,
predictions' progress), which Python shows only from WARNING unless configured.
`console_logging()` shows them for the length of a block as the `zoo` command does, each
message alone on its line; `start_tensorflow()` imports TensorFlow ahead of the work with its
C++ start-up lines hidden.

>>> import logging
>>> with console_logging():
...     logging.getLogger("zoo.example").info("epoch 1/1: loss 0.5")
epoch 1/1: loss 0.5
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
from collections.abc import Iterator

from zoo._quiet import stderr_discarded

__all__ = ["ConsoleHandler", "console_logging", "info_on_stderr", "start_tensorflow"]


class ConsoleHandler(logging.Handler):
    """zoo's log lines as a command's own output, as if printed: the message alone, INFO and
    below to standard output, warnings and errors to standard error. The streams are looked up
    per line, so that a caller's redirection (`contextlib.redirect_stdout`) holds."""

    info_to_stderr = False

    def emit(self, record: logging.LogRecord) -> None:
        quiet_stdout = record.levelno >= logging.WARNING or self.info_to_stderr
        stream = sys.stderr if quiet_stdout else sys.stdout
        stream.write(self.format(record) + "\n")
        stream.flush()


@contextlib.contextmanager
def info_on_stderr() -> Iterator[None]:
    """INFO lines go to standard error too inside the block (`zoo predict`: standard output
    carries the predictions alone)."""
    ConsoleHandler.info_to_stderr = True
    try:
        yield
    finally:
        ConsoleHandler.info_to_stderr = False


@contextlib.contextmanager
def console_logging() -> Iterator[None]:
    """Shows the `zoo` loggers' INFO lines (training progress, tuning trials) for the length of
    the block through a `ConsoleHandler`, and leaves the `zoo` logger as it found it."""
    logger = logging.getLogger("zoo")
    handler, saved = ConsoleHandler(), (logger.level, logger.propagate)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # once, here, whatever handlers the root logger has
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def start_tensorflow(verbose: bool = False) -> None:
    """Imports TensorFlow and Keras ahead of a workflow function and lists the devices (where
    some machines log a failed `cuInit`), hiding their C++ start-up lines unless `verbose`.

    An import error is raised as usual, after the descriptor is back. Library users
    (`import zoo`, then `zoo.get`) see TensorFlow's lines as TensorFlow prints them.

    Args:
        verbose: let TensorFlow's start-up lines through.
    """
    if "tensorflow" in sys.modules:  # started already: nothing left to hide
        return
    with contextlib.nullcontext() if verbose else stderr_discarded():
        importlib.import_module("keras")  # for its start-up lines alone
        import tensorflow as tf

        tf.config.list_physical_devices()
