"""Dtype policies: every entry trains in float32 or in Keras' "mixed_bfloat16".

Under `"mixed_bfloat16"` (Keras' own `keras.DTypePolicy`) layers keep float32 variables and
compute in bfloat16, which these CPUs' AVX512_BF16 units run about twice as fast as float32
(see PERF_NOTES.md). Nothing is cast by hand: a model is built while Keras' global policy is
the chosen one, so the model and every layer it creates take that policy.

Two pieces, both knowing no family:

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
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import keras

__all__ = ["DTYPE_POLICIES", "keeps_dtype_policy", "policy_name", "policy_scope"]

#: The dtype policies an entry may be built with.
DTYPE_POLICIES = ("float32", "mixed_bfloat16")


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
