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
`zoo.saving.import_keras_objects` imports every module a family's `LAZY_EXPORTS` names, which
registers the family's Keras classes for loading `.keras` files.

Keras itself must find those classes too, when a user loads a zoo `.keras` file with
`keras.saving.load_model` after a bare `import zoo`. Keras looks a saved class up by its
registered name ("zoo>AirbenchNet") in its global registry of custom objects, and imports a
config's "module" only for its own packages (keras, keras_hub, ...), so the class must be in
the registry before loading, while `import zoo` may import neither Keras nor the classes.
`defer_keras_objects` bridges the two: once Keras is imported (`when_imported`: at once if it
is already, else right after `import keras` finishes), each of zoo's names enters Keras'
registry as a `DeferredKerasObject`, whose `from_config`, on the first load that needs one,
imports zoo's Keras modules (whose decorators put the real classes in place of every stand-in)
and builds the real object. Nothing else of Keras is patched: the registry is its public
`keras.saving.get_custom_objects()`, and `import keras` alone imports no zoo model.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import logging
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["DeferredKerasObject", "defer_keras_objects", "lazy_exports", "when_imported"]

_log = logging.getLogger(__name__)


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


class _CallingLoader(importlib.abc.Loader):
    """Loads a module with its own loader, then calls `callback(module)`."""

    def __init__(self, loader: importlib.abc.Loader, callback: Callable[[types.ModuleType], None]):
        self.loader, self.callback = loader, callback

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: types.ModuleType) -> None:
        # The module keeps its own loader (for its resources, `inspect`, reloading).
        module.__spec__.loader = module.__loader__ = self.loader
        self.loader.exec_module(module)
        self.callback(module)


class _ImportWatcher(importlib.abc.MetaPathFinder):
    """A finder that finds nothing itself: for the watched top-level module, it asks the other
    finders and wraps the spec's loader so that the callbacks run once the module is loaded."""

    def __init__(self, name: str) -> None:
        self.name, self.callbacks = name, []
        self._searching = False

    def find_spec(self, fullname: str, path: Any = None, target: Any = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if fullname != self.name or self._searching:
            return None
        self._searching = True
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            self._searching = False
        if spec is None or spec.loader is None:
            return None  # not installed: the import fails as it would without zoo
        sys.meta_path.remove(self)  # once: the module is about to be loaded
        spec.loader = _CallingLoader(spec.loader, self.run)
        return spec

    def run(self, module: types.ModuleType) -> None:
        for callback in self.callbacks:
            _call(callback, module)


def _call(callback: Callable[[types.ModuleType], None], module: types.ModuleType) -> None:
    # A hook must not break the user's import: a failure is logged, and the import goes on.
    try:
        callback(module)
    except Exception:  # noqa: BLE001
        _log.warning("after importing %s, %r failed", module.__name__, callback, exc_info=True)


def when_imported(name: str, callback: Callable[[types.ModuleType], None]) -> None:
    """Calls `callback(module)` once the top-level module `name` is imported: now if it is, or
    right after the import that first loads it finishes (a `sys.meta_path` finder, removed
    then; the module keeps its own loader). An exception in `callback` is logged as a warning,
    never raised into the user's `import`.

    Args:
        name: a top-level module's name ("keras").
        callback: called with the module, once.
    """
    if "." in name:
        raise ValueError(f"when_imported watches top-level modules, got {name!r}")
    module = sys.modules.get(name)
    if module is not None:
        _call(callback, module)
        return
    watcher = next((finder for finder in sys.meta_path
                    if isinstance(finder, _ImportWatcher) and finder.name == name), None)
    if watcher is None:
        watcher = _ImportWatcher(name)
        sys.meta_path.insert(0, watcher)
    watcher.callbacks.append(callback)


class DeferredKerasObject:
    """Stands in Keras' registry of custom objects for a registered class of zoo not imported
    yet: Keras' deserialization calls `from_config`, which imports zoo's Keras modules
    (`resolve`), whose decorators replace every stand-in with its class, and builds the object
    with the real class.

    Args:
        name: the registered name, "package>Class".
        resolve: imports the modules that register the real classes.
        registry: Keras' live registry (`keras.saving.get_custom_objects()`).
    """

    def __init__(self, name: str, resolve: Callable[[], None], registry: dict[str, Any]) -> None:
        self.name, self._resolve, self._registry = name, resolve, registry

    def resolve(self) -> Any:
        """The real class, imported first if needed.

        Raises:
            TypeError: importing zoo's Keras modules registered no class by this name.
        """
        if self._registry.get(self.name) is self:
            self._resolve()
            # Stand-ins left are names nothing registered: drop them all, as the import would
            # have left the registry without them.
            for key, value in list(self._registry.items()):
                if isinstance(value, DeferredKerasObject):
                    del self._registry[key]
        found = self._registry.get(self.name)
        if found is None or isinstance(found, DeferredKerasObject):
            raise TypeError(f"zoo registers no Keras object named {self.name!r}")
        return found

    def from_config(self, config: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        """The real class's `from_config(config)`."""
        return self.resolve().from_config(config, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}, imported on first use>"


def defer_keras_objects(names: Callable[[], Iterable[str]], resolve: Callable[[], None]) -> None:
    """Makes the registered names `names()` loadable by Keras before their classes are imported:
    once Keras is imported (`when_imported`), each name missing from Keras' registry enters it
    as a `DeferredKerasObject` whose first use calls `resolve` (see this module's docstring).

    Args:
        names: the registered names ("zoo>AirbenchNet"), read when Keras is imported.
        resolve: imports the modules that register them.
    """

    def install(keras: types.ModuleType) -> None:
        registry = importlib.import_module(f"{keras.__name__}.saving").get_custom_objects()
        for name in names():
            if name not in registry:
                registry[name] = DeferredKerasObject(name, resolve, registry)

    when_imported("keras", install)
