"""The base classes of the errors a user can cause, in a module that imports nothing heavy.

The `zoo` command tells a `UserError` in one `zoo: error:` line (a `UsageError`, a wrong name or
value on the command line, exits 2; any other 1) without importing the modules that raise them:
`zoo.training.NonFiniteLossError` and `zoo.tuning.TuningError` need TensorFlow, `zoo list` does
not. Each error keeps its own built-in base too (`ValueError`, `FloatingPointError`, ...).
"""

from __future__ import annotations

__all__ = ["UsageError", "UserError"]


class UserError(Exception):
    """An error in what the user asked for or provided, told in one line, not a bug."""


class UsageError(UserError):
    """A `UserError` in the command line itself (a name, an option's value)."""
