"""Silencing what C++ libraries write straight to the process's standard error.

TensorFlow's C++ side writes its start-up lines (absl's "WARNING: All log messages before
absl::InitializeLog()...", oneDNN's and the CUDA stub's "I0000 ..." lines), and LiteRT's
interpreter its "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." line, to file
descriptor 2 itself: past `TF_CPP_MIN_LOG_LEVEL`, Python's `logging` and any `sys.stderr`
redirection. Only pointing the descriptor elsewhere for a while hides them.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

__all__ = ["stderr_discarded"]


@contextlib.contextmanager
def stderr_discarded() -> Iterator[None]:
    """File descriptor 2 goes to /dev/null inside the block, and back after it, error or not.

    Python's own `sys.stderr` is flushed on the way in and out, so that nothing it buffered
    before the block is lost and nothing written inside reaches the terminal late. Everything
    written to the descriptor inside the block is lost, errors included: keep the block to the
    call that talks too much, and let its exceptions carry the message.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, 2)
        finally:
            os.close(null)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
