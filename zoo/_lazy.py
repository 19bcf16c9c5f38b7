"""Lazy exports for a package (PEP 562): names imported from their module on first use.

A family's `__init__` names its Keras classes without importing Keras, so that `import zoo`
(the registry's entries, hyperparameters, tasks and descriptions) stays free of TensorFlow:

```python
from zoo._lazy import lazy_exports

LAZY_EXPORTS = {"SequenceClassifier": "zoo.recurrent.model", ...}
__getattr__, __dir__ = lazy_exports(__name__, LAZY_EXPORTS)
```

`zoo.recurrent.SequenceClassifier` then imports `zoo.recurrent.model` the first time it is read.
A lazy name may be a submodule's name too (`zoo.tuning.search`, the function in
`zoo/tuning/search.py`): the name wins, as it did when the package imported it eagerly.
`zoo.registry.import_keras_objects` imports every module a family's `LAZY_EXPORTS` names, which
registers the family's Keras classes for loading `.keras` files.
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


class _LazyModule(types.ModuleType):
    """A package with lazy exports: importing its submodule `name` does not make the package's
    attribute `name` the submodule when `name` is a lazy export (the import system sets it)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if (
            isinstance(value, types.ModuleType)
            and value.__name__ == f"{self.__name__}.{name}"
            and name in vars(self).get("_lazy_exports", ())
        ):
            return
        super().__setattr__(name, value)


def lazy_exports(
    package: str, exports: Mapping[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for the module `package`: reading `name` imports
    `exports[name]` (a module's full name) and returns its `name`, kept on the package after."""

    def __getattr__(name: str) -> Any:
        try:
            module = exports[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(module), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *exports})

    module = sys.modules[package]
    module._lazy_exports = dict(exports)
    module.__class__ = _LazyModule
    return __getattr__, __dir__
