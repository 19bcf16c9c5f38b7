"""The workflow at a terminal: its progress shown as plain lines, TensorFlow started quietly.

The workflow's functions report through `logging` (INFO on the `zoo` loggers: epochs, trials,
predictions' progress), which Python shows only from WARNING unless configured.
`console_logging()` shows them for the length of a block as the `zoo` command does, each
message alone on its line; `start_tensorflow()` imports TensorFlow ahead of the work with its
C++ start-up lines hidden; `Interrupts()` makes SIGTERM stop the work as Ctrl-C does, so that
either leaves the run directory as a rerun takes it up, and tells the command's exit status.

>>> import logging
>>> with console_logging():
...     logging.getLogger("zoo.example").info("epoch 1/1: loss 0.5")
epoch 1/1: loss 0.5
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from zoo._quiet import stderr_discarded

__all__ = ["ConsoleHandler", "Interrupts", "console_logging", "info_on_stderr",
           "start_tensorflow"]


class Interrupts:
    """For the length of a `with` block, SIGTERM (what `kill`, `timeout` and job schedulers
    send) stops the work as Ctrl-C (SIGINT) does: a `KeyboardInterrupt` raised in the main
    thread, so that every `finally` runs (the run directory's lock released, temporaries
    removed) and the run resumes. Python delivers it between bytecodes: a long TensorFlow op
    ends first, so a step finishes, never an epoch. A signal the process ignores (SIGINT under
    `nohup`) stays ignored; the earlier handlers are back when the block ends.

    Example:

    >>> interrupts = Interrupts()
    >>> with interrupts:
    ...     pass  # the work
    >>> interrupts.signal is None, interrupts.exit_status
    (True, 130)

    Attributes:
        signal: the signal that stopped the work, or `None`.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signal: int | None = None
        self._saved: dict[int, Any] = {}

    def _stop(self, number: int, frame: FrameType | None) -> None:
        self.signal = self.signal or number
        raise KeyboardInterrupt

    def __enter__(self) -> "Interrupts":
        if threading.current_thread() is threading.main_thread():  # only it may set handlers
            for number in self.SIGNALS:
                if signal.getsignal(number) is not signal.SIG_IGN:
                    self._saved[number] = signal.signal(number, self._stop)
        return self

    def __exit__(self, *exception: object) -> None:
        for number, handler in self._saved.items():
            signal.signal(number, signal.SIG_DFL if handler is None else handler)
        self._saved.clear()

    @property
    def exit_status(self) -> int:
        """What a shell reports for a process its signal ended: 128 + the signal's number (130
        for Ctrl-C, 143 for SIGTERM), Ctrl-C's where the interrupt came otherwise."""
        return 128 + (self.signal or signal.SIGINT)

    @staticmethod
    def message(interrupt: KeyboardInterrupt) -> str:
        """The one line `zoo` ends with: `zoo: interrupted`, and what the same command does
        with the run it left where the work says (`zoo.workflow.fitting.Interrupted`)."""
        return f"zoo: interrupted; {interrupt}" if str(interrupt) else "zoo: interrupted"


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
