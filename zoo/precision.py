"""Dtype policies: every entry trains in float32 or in Keras' "mixed_bfloat16".

Under `"mixed_bfloat16"` (Keras' own `keras.DTypePolicy`) layers keep float32 variables and
compute in bfloat16, which CPUs with AVX512_BF16 units run up to twice as fast as float32
(bench/RESULTS.md, "bfloat16 against float32"). Nothing is cast by hand: a model is built while
Keras' global policy is the chosen one, so the model and every layer it creates take that policy.

Three pieces, all knowing no family:

- `default_policy(preferred)`: the policy an entry whose recipe prefers `preferred` is built
  with when none is given: bfloat16 only where this machine computes it natively
  (`bfloat16_support`); elsewhere TensorFlow emulates it, many times slower than float32
  (bench/RESULTS.md, "bfloat16 against float32"), so float32.
- `policy_scope(policy)`: Keras' global dtype policy set to `policy` for a `with` block, and
  restored afterwards. `zoo.registry.Entry.build` runs an entry's builder in it.
- `@keeps_dtype_policy`: a class decorator for subclassed models. Keras serialises a model's
  own policy (`get_config()["dtype"]`), but on load it rebuilds the sublayers from the model's
  `__init__`, under whatever global policy is current then. The decorator runs `__init__` in
  `policy_scope(dtype)` when a `dtype` is given, so a `.keras` file of a mixed_bfloat16 model
  loads as mixed_bfloat16 in a process whose global policy is float32.

Parts that must keep full precision (softmax outputs, losses, input normalisation,
augmentation, statistics) say so in their own docstrings, and take the policy's variable dtype
(`dtype=self.variable_dtype`: float32 under "mixed_bfloat16", float64 in the float64 gradient
checks), never a hard-coded "float32".
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

__all__ = [
    "BFLOAT16_VARIABLE",
    "DTYPE_POLICIES",
    "bfloat16_support",
    "default_policy",
    "keeps_dtype_policy",
    "policy_name",
    "policy_scope",
    "warn_if_emulated",
]

#: The dtype policies an entry may be built with.
DTYPE_POLICIES = ("float32", "mixed_bfloat16")

#: Overrides the CPU check: "native" or "emulated" (for a machine whose accelerator computes
#: bfloat16, or to try the other default).
BFLOAT16_VARIABLE = "ZOO_BFLOAT16"
_CPUINFO = "/proc/cpuinfo"
_NATIVE_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 CPU flags of bfloat16 arithmetic units
_log = logging.getLogger(__name__)
_warned: set[str] = set()


def bfloat16_support(cpuinfo: str = _CPUINFO) -> tuple[bool, str]:
    """Whether this machine computes bfloat16 natively, and why it is thought so.

    `$ZOO_BFLOAT16` ("native" or "emulated") decides when set; otherwise the CPU's flags in
    `cpuinfo` (Linux): AVX-512 BF16 or AMX BF16 units. Anywhere else bfloat16 counts as
    emulated: a wrong "native" costs 15x, a wrong "emulated" 1.5x.

    Returns:
        `(native, reason)`, the reason one short clause, e.g. "the CPU has avx512_bf16".
    """
    forced = os.environ.get(BFLOAT16_VARIABLE, "").strip().lower()
    if forced in ("native", "emulated"):
        return forced == "native", f"${BFLOAT16_VARIABLE}={forced}"
    flags = _cpu_flags(cpuinfo)
    if flags is None:
        return False, f"{cpuinfo} is unreadable, so bfloat16 units are not known to be there"
    found = [flag for flag in _NATIVE_FLAGS if flag in flags]
    if found:
        return True, f"the CPU has {' and '.join(found)}"
    return False, f"the CPU has no bfloat16 units ({' or '.join(_NATIVE_FLAGS)})"


@functools.lru_cache(maxsize=None)
def _cpu_flags(cpuinfo: str) -> frozenset[str] | None:
    """The first processor's flags in a Linux `/proc/cpuinfo`, `None` where it is unreadable."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        return None
    return frozenset()


def default_policy(preferred: str) -> tuple[str, str]:
    """The policy to build with when none is given, for a recipe that prefers `preferred`, and
    why: bfloat16 only where it is native (`bfloat16_support`), else float32."""
    if preferred == "float32":
        return preferred, "the recipe's policy"
    native, reason = bfloat16_support()
    if native:
        return preferred, f"the recipe's policy; {reason}"
    return "float32", f"the recipe prefers {preferred}, but {reason}: TensorFlow would emulate it"


def warn_if_emulated(policy: str) -> None:
    """Logs one warning per process and policy when `policy` computes in bfloat16 on a machine
    that emulates it (an explicit choice is obeyed, but it will be slow)."""
    native, reason = bfloat16_support()
    if "bfloat16" in policy and not native and policy not in _warned:
        _warned.add(policy)
        _log.warning("dtype_policy=%s: this machine emulates bfloat16 (%s), many times slower "
                     "than float32", policy, reason)


def policy_name(policy: Any) -> str:
    """The name of a policy given as a name, a `keras.DTypePolicy` or its serialised dict."""
    import keras  # here, not at the top: `zoo.registry` imports this module without Keras

    return keras.dtype_policies.get(policy).name


@contextlib.contextmanager
def policy_scope(policy: Any) -> Iterator[keras.DTypePolicy]:
    """Keras' global dtype policy is `policy` inside the block, and what it was after it.

    Keras keeps the global policy per thread, so a scope affects only the current thread.
    """
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(keras.dtype_policies.get(policy))
    try:
        yield keras.config.dtype_policy()
    finally:
        keras.config.set_dtype_policy(previous)


def keeps_dtype_policy(cls: type) -> type:
    """Class decorator: `cls.__init__(..., dtype=policy)` builds every sublayer under `policy`.

    A model constructed without `dtype` takes the global policy as usual (Keras' default), and
    its `get_config` records it; `from_config` passes it back as `dtype`, and so the sublayers
    that `__init__` creates get it too, whatever the global policy is at load time.
    """
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("dtype") is None:
            init(self, *args, **kwargs)
            return
        with policy_scope(kwargs["dtype"]):
            init(self, *args, **kwargs)

    # Keras reads `__init__`'s argument list (`inspect.getfullargspec`, which does not follow
    # `__wrapped__` but honours `__signature__`): it must stay the model's own.
    __init__.__signature__ = inspect.signature(init)
    cls.__init__ = __init__
    return cls
