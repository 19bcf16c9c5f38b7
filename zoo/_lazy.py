"""Lazy exports for a package (PEP 562): names imported from their module on first use.

A family's `__init__` names its Keras classes without importing Keras, so that `import zoo`
(the registry's entries, hyperparameters, tasks and descriptions) stays free of TensorFlow:

```python
from zoo._lazy import lazy_exports

LAZY_EXPORTS = {"SequenceClassifier": "zoo.recurrent.model", ...}
__getattr__, __dir__ = lazy_exports(__name__, LAZY_EXPORTS)
```

`zoo.recurrent.SequenceClassifier` then imports `zoo.recurrent.model` the first time it is read.
`zoo.registry.import_keras_objects` imports every module a family's `LAZY_EXPORTS` names, which
registers the family's Keras classes for loading `.keras` files.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


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

    return __getattr__, __dir__
