"""Typed hyperparameters: what an entry's builder takes, with valid ranges and search spaces.

An `HParam` is one keyword argument of a builder: its default (whose Python type is the
parameter's type), the values it accepts, the keras-tuner search space (`Float`, `Int`,
`Choice`: plain descriptions that `zoo.tuning` turns into keras-tuner hyperparameters) and a
few words of help. It checks a value (`check`) and parses one from the command line (`parse`).
A boolean, in Python as on the command line (`--set`, `--load`), is one of `BOOLEAN_SPELLINGS`
(`to_bool`): anything else, "maybe" say, is refused rather than read as true.
Nothing here knows entries: `zoo.registry` gathers these into entries, and its namespace
offers them too (`from zoo.registry import HParam, register`), the vocabulary a family's
entries are written in.
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

from zoo.errors import UsageError

__all__ = ["BOOLEAN_SPELLINGS", "Choice", "Float", "HParam", "HyperparameterError", "Int",
           "to_bool"]


class HyperparameterError(UsageError, ValueError):
    """Raised for an unknown hyperparameter name or a value outside its valid range."""


#: What a boolean may be given as, and what it means: `True`/`False`, the integers 1/0 (what
#: the command line's `--load KEY=1` reads as), or these texts in any case.
BOOLEAN_SPELLINGS = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False}


def to_bool(name: str, value: Any) -> bool:
    """`value` as a boolean, by the one rule every boolean option follows (`BOOLEAN_SPELLINGS`).

    Args:
        name: what the value is for, named in the error ("whiten", "loader option whiten").
        value: `True`/`False`, 1/0, or a text "true"/"false", "yes"/"no", "1"/"0" (any case,
            spaces around ignored).

    Returns:
        The boolean.

    Raises:
        HyperparameterError: any other value ("maybe", 2, None), named with the accepted ones.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in BOOLEAN_SPELLINGS:
        return BOOLEAN_SPELLINGS[value.strip().lower()]
    raise HyperparameterError(
        f"{name} expects true or false (also yes/no, 1/0), got {value!r}"
    )


# --- search spaces: plain descriptions that zoo.tuning turns into keras-tuner hyperparameters ---


@dataclasses.dataclass(frozen=True)
class Float:
    """A continuous search range, sampled on a log scale when `log` is true."""

    low: float
    high: float
    log: bool = False


@dataclasses.dataclass(frozen=True)
class Int:
    """An integer search range, sampled on a log scale when `log` is true."""

    low: int
    high: int
    log: bool = False


@dataclasses.dataclass(frozen=True)
class Choice:
    """A finite set of values to search."""

    values: tuple[Any, ...]


_INTERVAL = re.compile(r"^\s*([\[(])\s*([^,]+?)\s*,\s*([^,]+?)\s*([\])])\s*$")


@dataclasses.dataclass(frozen=True)
class HParam:
    """One hyperparameter of an entry: default, valid range, search space and help.

    Args:
        default: the default value; its Python type (int, float, bool, str) is the parameter's type.
        valid: the valid interval in mathematical notation, e.g. `"(0, 1)"` or `"[0, inf)"`, for
            numbers; or a tuple of allowed values. `None` allows any value of the right type.
        search: the keras-tuner search space (`Float`, `Int` or `Choice`); `None` means not tuned.
        help: what the parameter is, in a few words.
    """

    default: Any
    valid: str | tuple[Any, ...] | None = None
    search: Float | Int | Choice | None = None
    help: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.valid, str) and not _INTERVAL.match(self.valid):
            raise ValueError(f"`valid` must look like '(0, 1)' or '[0, inf)', got {self.valid!r}")

    @property
    def type(self) -> type:
        """The parameter's type: the default's (int, float, bool or str)."""
        return type(self.default)

    def check(self, name: str, value: Any) -> Any:
        """Returns `value` converted to this parameter's type, or raises `HyperparameterError`."""
        expected = self.type
        if expected is bool:
            value = to_bool(name, value)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if expected is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, expected) or (expected is not bool and isinstance(value, bool)):
            raise HyperparameterError(
                f"{name} must be of type {expected.__name__}, got {value!r} ({type(value).__name__})"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise HyperparameterError(f"{name} must be finite, got {value!r}")
        if isinstance(self.valid, tuple):
            if value not in self.valid:
                raise HyperparameterError(f"{name} must be one of {list(self.valid)}, got {value!r}")
        elif isinstance(self.valid, str):
            opening, low, high, closing = _INTERVAL.match(self.valid).groups()
            low, high = float(low), float(high)
            too_low = value < low or (opening == "(" and value == low)
            too_high = value > high or (closing == ")" and value == high)
            if too_low or too_high:
                raise HyperparameterError(f"{name} must be in {self.valid}, got {value!r}")
        return value

    def parse(self, name: str, text: str) -> Any:
        """Parses a command-line string into this parameter's type, then checks it."""
        expected = self.type
        if expected is bool:
            return self.check(name, text)  # the spellings are to_bool's
        try:
            if expected is int:
                value: Any = int(float(text)) if float(text).is_integer() else float(text)
            else:
                value = expected(text)
        except ValueError:
            raise HyperparameterError(
                f"{name} expects a {expected.__name__}, got {text!r}"
            ) from None
        return self.check(name, value)

    def describe(self) -> dict[str, Any]:
        """The default, type, valid values and help as plain data (`zoo describe`)."""
        described: dict[str, Any] = {"default": self.default, "type": self.type.__name__}
        if self.valid is not None:
            described["valid"] = list(self.valid) if isinstance(self.valid, tuple) else self.valid
        if self.help:
            described["help"] = self.help
        return described
