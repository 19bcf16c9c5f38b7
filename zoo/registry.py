"""The model registry: named entries that build ready-to-train Keras models.

An entry is a builder function plus everything a user or a tuner needs to know about it: default
hyperparameters with their valid ranges, a keras-tuner search space, the task (its family, data,
headline metric, tuning objective, figures, export endpoints) and a description. Every entry is
one function registered with `@register(...)`, in the style of timm's `register_model`:

```python
@register(task=PATCH_RECONSTRUCTION, hparams={"hidden_units": HParam(64, "[1, 4096]")})
def sparse_autoencoder(hidden_units: int) -> keras.Model:
    '''One-paragraph description shown by `zoo describe`.'''
    ...
```

and users build them with `zoo.get("sparse_autoencoder", hidden_units=100)`.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import importlib
import inspect
import math
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo.errors import UsageError
from zoo import precision
from zoo.precision import DTYPE_POLICIES, policy_scope

__all__ = [
    "Choice",
    "Entry",
    "Float",
    "HParam",
    "HyperparameterError",
    "Int",
    "Metric",
    "Objective",
    "Task",
    "UnknownModelError",
    "describe",
    "families",
    "get",
    "get_entry",
    "import_keras_objects",
    "list_models",
    "load_model",
    "register",
]


class UnknownModelError(UsageError, LookupError):
    """Raised for a model name that is not registered."""


class HyperparameterError(UsageError, ValueError):
    """Raised for an unknown hyperparameter name or a value outside its valid range."""


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
        return type(self.default)

    def check(self, name: str, value: Any) -> Any:
        """Returns `value` converted to this parameter's type, or raises `HyperparameterError`."""
        expected = self.type
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
        try:
            if expected is bool:
                lowered = text.strip().lower()
                if lowered not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(text)
                value: Any = lowered in ("true", "1", "yes")
            elif expected is int:
                value = int(float(text)) if float(text).is_integer() else float(text)
            else:
                value = expected(text)
        except ValueError:
            raise HyperparameterError(
                f"{name} expects a {expected.__name__}, got {text!r}"
            ) from None
        return self.check(name, value)

    def describe(self) -> dict[str, Any]:
        described: dict[str, Any] = {"default": self.default, "type": self.type.__name__}
        if self.valid is not None:
            described["valid"] = list(self.valid) if isinstance(self.valid, tuple) else self.valid
        if self.help:
            described["help"] = self.help
        return described


DIRECTIONS = ("min", "max")


@dataclasses.dataclass(frozen=True)
class Metric:
    """A number that judges a trained model, as Keras logs it (e.g. "val_loss").

    Args:
        name: the metric's name in Keras' logs and in trial tables.
        direction: "min" or "max": which way is better (keras-tuner's `Objective` takes it as is).
        description: what the number means, for reports and model cards.
    """

    name: str
    direction: str
    description: str = ""

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction must be 'min' or 'max', got {self.direction!r}")

    def describe(self) -> dict[str, str]:
        return {"name": self.name, "direction": self.direction, "description": self.description}


@dataclasses.dataclass(frozen=True)
class Objective(Metric):
    """What a hyperparameter search optimises: a `Metric`, read from a trained trial's logs or
    computed from the trained model when `compute` is given.

    A family whose headline metric would be won by switching its regularisers off gives its
    `Task` a better objective (the sparse autoencoder's `sparse_code`).

    Args:
        name: the value's name in trial tables and keras-tuner's records.
        direction: "min" or "max".
        description: what the value means.
        compute: `compute(metrics, model, splits) -> {name: value, ...}` from a trained trial:
            its final metrics as Keras logs them (validation ones measured on the trained
            model), the model and the data. It returns the objective under `name` and any other
            numbers worth a column in the trial table. `None` reads the objective from the
            metrics.
    """

    compute: Callable[..., Mapping[str, float]] | None = None

    @classmethod
    def of(cls, metric: Metric) -> Objective:
        """The objective that is `metric` itself, as the model logs it."""
        return metric if isinstance(metric, Objective) else cls(**dataclasses.asdict(metric))

    def evaluate(self, metrics: Mapping[str, float], model: Any, splits: Any) -> dict[str, float]:
        """The objective and any extra values for one trained trial (see `compute`).

        Raises:
            KeyError: the objective is a metric the model does not log.
        """
        if self.compute is None:
            if self.name not in metrics:
                raise KeyError(
                    f"the objective {self.name!r} is not among the trained model's metrics "
                    f"({', '.join(sorted(metrics))})"
                )
            return {self.name: float(metrics[self.name])}
        values = {key: float(value) for key, value in self.compute(metrics, model, splits).items()}
        if self.name not in values:
            raise KeyError(f"objective {self.name!r}: compute() returned only {sorted(values)}")
        return values


@dataclasses.dataclass(frozen=True)
class Task:
    """What a family of entries learns from and how its results are shown; shared by its entries.

    Args:
        name: short name of the task, e.g. "patch reconstruction".
        family: the model family whose entries solve it ("autoencoder", "recurrent", ...), the
            package under `zoo/` that owns them; `zoo list --family` filters by it.
        data: what data the entries expect, for `zoo describe` and error messages.
        load: `load(path_or_None, seed) -> Splits`; `None` loads the embedded default data.
        metric: the headline metric.
        figures: `figures(model, splits, out_dir) -> [paths]`, the task's own PNG figures and
            text reports (`.txt`, which the CLI also prints).
        endpoints: `endpoints(model) -> {name: (tf.function-able callable, [TensorSpec])}` for
            export; the first is exported as `serve`.
        panel: `panel(model, axes)` draws one small picture of a trained model (for sweeps).
        objective: what `zoo tune` optimises; `None` tunes on `metric`.
        example: `example(directory, seed) -> path` writes a small data file or folder in the
            family's own format under `directory`, seeded, and returns the path to give as
            `--data` / `load(path)`; it must load with `load`'s default validation split. Not
            optional by contract: tests/test_contract.py trains, exports and tunes every entry
            on its task's example, so a task without one fails there.
        predict: `predict(model, inputs, options) -> [zoo.predicting.Prediction]` reads input
            files the family's way and describes the outputs (`zoo predict`); one failed input
            is one failed `Prediction`, not an exception. `options`: `class_names`, `key`, `out`.
        class_names: a classification task's default class names, in output order (the model
            card's when the data does not name its classes); `None` for other tasks.
        images: `images(model) -> (N, H, W, C)` array, any range (normalised for display), a
            few pictures of what the model learned (first-layer filters, features) that
            `--tensorboard` logs every few epochs (`zoo.summaries`); `None` logs none.
    """

    name: str
    family: str
    data: str
    load: Callable[..., Any]
    metric: Metric
    figures: Callable[..., list[Path]]
    endpoints: Callable[[Any], dict[str, Any]]
    panel: Callable[..., None] | None = None
    objective: Objective | None = None
    example: Callable[[Path, int], Path] | None = None
    predict: Callable[..., Any] | None = None
    class_names: Sequence[str] | None = None
    images: Callable[[Any], Any] | None = None

    @property
    def tuning_objective(self) -> Objective:
        """The objective a search optimises: `objective`, else the headline metric."""
        return self.objective or Objective.of(self.metric)


@dataclasses.dataclass(frozen=True)
class Entry:
    """A registered model: how to build it and what it needs."""

    name: str
    builder: Callable[..., Any]
    hparams: Mapping[str, HParam]
    task: Task
    description: str
    fit: Mapping[str, Any]
    presets: Mapping[str, Mapping[str, Any]]
    sweep: Mapping[str, Sequence[Any]]
    weights_from: str | None = None  # the entry whose weight sets this one loads too
    load: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # training's loader options

    @property
    def family(self) -> str:
        return self.task.family

    def _check_names(self, names: Iterable[str]) -> None:
        unknown = sorted(set(names) - set(self.hparams))
        if unknown:
            raise HyperparameterError(
                f"{self.name} has no hyperparameter {', '.join(map(repr, unknown))}; "
                f"valid keys are: {', '.join(self.hparams)}"
            )

    def parse(self, name: str, text: str) -> Any:
        """Parses command-line `text` as hyperparameter `name`, checked like an override."""
        self._check_names([name])
        return self.hparams[name].parse(name, text)

    def parse_settings(self, pairs: Iterable[str]) -> dict[str, Any]:
        """Parses command-line `KEY=VALUE` texts (`--set`) into typed, checked overrides.

        Raises:
            HyperparameterError: a text without `=`, an unknown key or a bad value.
        """
        overrides = {}
        for pair in pairs:
            key, separator, text = pair.partition("=")
            if not separator:
                raise HyperparameterError(f"--set expects KEY=VALUE, got {pair!r}")
            overrides[key] = self.parse(key, text)
        return overrides

    def _preset(self, preset: str | None) -> Mapping[str, Any]:
        if preset is None:
            return {}
        if preset not in self.presets:
            raise HyperparameterError(
                f"{self.name} has no preset {preset!r}; presets are: "
                f"{', '.join(self.presets) or '(none)'}"
            )
        return self.presets[preset]

    def resolve(self, preset: str | None = None, **overrides: Any) -> dict[str, Any]:
        """Returns the full, validated hyperparameters: defaults <- preset <- overrides, the
        default `dtype_policy` the one this machine runs well (`dtype_policy_choice`)."""
        self._check_names(overrides)
        values = {name: hp.default for name, hp in self.hparams.items()}
        values[DTYPE_POLICY] = self.dtype_policy_choice()["default"]
        values.update((k, v) for k, v in self._preset(preset).items() if k in self.hparams)
        values.update(overrides)
        return {name: self.hparams[name].check(name, value) for name, value in values.items()}

    def fit_settings(self, preset: str | None = None) -> dict[str, Any]:
        """The `fit` arguments (epochs, batch size, ...): the entry's, updated by the preset's."""
        return {**self.fit, **{k: v for k, v in self._preset(preset).items() if k in self.fit}}

    def load_settings(self, preset: str | None = None) -> dict[str, Any]:
        """The task loader's options for training (`zoo train`): the loader's defaults, updated
        by the entry's, then the preset's. Searches and sweeps keep the loader's own defaults:
        they select on its validation split."""
        defaults = {name: parameter.default
                    for name, parameter in inspect.signature(self.task.load).parameters.items()
                    if name not in ("path", "seed") and parameter.default is not parameter.empty}
        return {**defaults, **self.load,
                **{k: v for k, v in self._preset(preset).items() if k in self.load}}

    def build(self, hyperparameters: Mapping[str, Any]) -> Any:
        """The built model of resolved `hyperparameters` (see `resolve`): the builder called
        with all but `dtype_policy`, under that Keras dtype policy
        (`zoo.precision.policy_scope`), so the model and every layer it creates take the policy;
        builders never see it."""
        arguments = dict(hyperparameters)
        policy = arguments.pop(DTYPE_POLICY, self.dtype_policy_choice()["default"])
        precision.warn_if_emulated(policy)
        with policy_scope(policy):
            return self.ensure_built(self.builder(**arguments))

    def ensure_built(self, model: Any) -> Any:
        """`model`, built: a model whose variables are created on its first call (the
        subclassed ones) is called once on zeros shaped like the task's first export signature,
        so that `summary()`, `load_weights` and `set_weights` work at once, as for Keras' own."""
        if not hasattr(model, "built") or (model.built and model.weights):  # not Keras, or built
            return model
        import numpy as np

        _, signature = next(iter(self.task.endpoints(model).values()))
        # float32 whatever the signature's dtype: the models take float pixels (serve casts).
        model(np.zeros([1 if size is None else size for size in signature[0].shape], np.float32),
              training=False)
        return model

    def search_space(self) -> dict[str, Float | Int | Choice]:
        return {name: hp.search for name, hp in self.hparams.items() if hp.search is not None}

    def describe(self) -> dict[str, Any]:
        choice = self.dtype_policy_choice()
        hyperparameters = {name: hp.describe() for name, hp in self.hparams.items()}
        hyperparameters[DTYPE_POLICY]["default"] = choice["default"]
        return {
            "name": self.name,
            "family": self.family,
            "description": self.description,
            "task": self.task.name,
            "data": self.task.data,
            "metric": self.task.metric.describe(),
            "tuning_objective": self.task.tuning_objective.describe(),
            "hyperparameters": hyperparameters,
            "search_space": {
                name: {"kind": type(space).__name__.lower(), **dataclasses.asdict(space)}
                for name, space in self.search_space().items()
            },
            "presets": {name: dict(values) for name, values in self.presets.items()},
            "fit": dict(self.fit),
            "load": self.load_settings(),
            "dtype_policy": choice,
        }

    def dtype_policy_choice(self) -> dict[str, str]:
        """The recipe's dtype policy, the default this machine builds with, and why."""
        recipe = self.hparams[DTYPE_POLICY].default
        chosen, why = precision.default_policy(recipe)
        return {"recipe": recipe, "default": chosen, "why": why}


_REGISTRY: dict[str, Entry] = {}

#: The hyperparameter every entry has: the Keras dtype policy it is built under.
DTYPE_POLICY = "dtype_policy"


def dtype_policy_hparam(recipe: str = "float32") -> HParam:
    """The shared `dtype_policy` hyperparameter, its default the recipe's policy: an entry
    resolves it to what this machine runs well (`Entry.dtype_policy_choice`)."""
    help_ = "Keras dtype policy: float32, or mixed_bfloat16 (float32 weights, bfloat16 compute)"
    if recipe != "float32":
        help_ += f"; the recipe's {recipe} is the default only where bfloat16 is native"
    return HParam(recipe, DTYPE_POLICIES, None, help_)


def register(
    name: str | None = None,
    *,
    task: Task,
    hparams: Mapping[str, HParam],
    fit: Mapping[str, Any] | None = None,
    presets: Mapping[str, Mapping[str, Any]] | None = None,
    sweep: Mapping[str, Sequence[Any]] | None = None,
    notes: str = "",
    dtype_policy: str = "float32",
    weights_from: str | None = None,
    load: Mapping[str, Any] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator that registers a builder function as a zoo entry.

    The function's name is the entry's name and its docstring the entry's description, so
    `grep "def lstm"` finds an entry. Entries that share most hyperparameters (the recurrent
    family's six) pass one `hparams` mapping and take `**hparams`.

    Args:
        name: the entry's name; defaults to the function's name.
        task: the `Task` the entry solves (and so its family).
        hparams: the builder's keyword arguments as `HParam`s; they must match its signature,
            unless it takes `**hparams`.
        fit: default `fit` arguments (`epochs`, `batch_size`).
        presets: named sets of hyperparameter values, `fit` arguments and `load` options, e.g.
            `{"course": {"sparsity_weight": 0.01, "batch_size": 16}}`.
        sweep: the default grid for `zoo sweep`, two hyperparameters with their values.
        notes: text several entries share (a family's recipe), appended to the description.
        dtype_policy: the recipe's policy ("float32" or "mixed_bfloat16"), the default of the
            `dtype_policy` hyperparameter the registry adds to every entry where this machine
            computes it natively (else float32: `zoo.precision.default_policy`); `Entry.build`
            applies it, so the builder does not take it.
        weights_from: an entry with the same variables in the same order whose weight sets
            this one loads too (`keras_lstm` loads `lstm`'s).
        load: options of the task's loader for training, which presets may change, e.g.
            `{"validation_fraction": 0.0}`: the recipe was selected on held-out data (by
            `zoo tune`, which keeps the loader's validation split), so training uses it all.

    Returns:
        The builder, unchanged.
    """

    def decorator(builder: Callable[..., Any]) -> Callable[..., Any]:
        entry_name = name or builder.__name__
        if entry_name in _REGISTRY:
            raise ValueError(f"a model named {entry_name!r} is already registered")
        if DTYPE_POLICY in hparams:
            raise ValueError(f"{entry_name}: {DTYPE_POLICY!r} is the registry's; pass "
                             f"register(..., dtype_policy=...) for its default")
        signature = inspect.signature(builder).parameters.values()
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature)
        parameters = {p.name for p in signature if p.kind is not inspect.Parameter.VAR_KEYWORD}
        if parameters != set(hparams) and not (takes_any and parameters <= set(hparams)):
            raise ValueError(
                f"{entry_name}: hparams {sorted(hparams)} do not match the builder's "
                f"arguments {sorted(parameters)}"
            )
        description = inspect.cleandoc(builder.__doc__ or "")
        entry = Entry(
            name=entry_name,
            builder=builder,
            hparams={**hparams, DTYPE_POLICY: dtype_policy_hparam(dtype_policy)},
            task=task,
            description="\n\n".join(part for part in (description, inspect.cleandoc(notes)) if part),
            fit=dict(fit or {}),
            presets={key: dict(values) for key, values in (presets or {}).items()},
            sweep={key: tuple(values) for key, values in (sweep or {}).items()},
            weights_from=weights_from,
            load=dict(load or {}),
        )
        for preset, values in entry.presets.items():  # fail at import, not in a user's hands
            stray = sorted(set(values) - set(entry.hparams) - set(entry.fit) - set(entry.load))
            if stray:
                raise ValueError(f"{entry_name}: preset {preset!r} sets unknown keys {stray}")
            entry.resolve(preset)
        _REGISTRY[entry_name] = entry
        return builder

    return decorator


def get_entry(name: str) -> Entry:
    """Returns the registry entry `name`, or raises `UnknownModelError` with close matches."""
    if not isinstance(name, str):
        raise UnknownModelError(f"a model name is a string (see zoo.list()), got {name!r}")
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise UnknownModelError(
            f"unknown model {name!r}{hint} (available: {', '.join(sorted(_REGISTRY))})"
        ) from None


def get(name: str, preset: str | None = None, weights: Any = None, **overrides: Any) -> Any:
    """Builds the registered model `name`, compiled and ready for `fit`.

    Args:
        name: a registered name (see `zoo.list()`).
        preset: an optional named preset of the entry.
        weights: a weight set's tag (`zoo.weights.available(name)`) or a path (run directory,
            `.keras`, `.weights.h5`, export directory) to load; see `zoo.weights.load`.
        **overrides: hyperparameters that replace the defaults (with weights that record their
            hyperparameters, only those that keep every weight's shape, and `num_classes`,
            which re-initialises a classifier's head). Every entry has `dtype_policy`
            ("float32" or "mixed_bfloat16"); without it, Keras' global policy
            (`keras.config.set_dtype_policy`) when that is one of these and not float32, else
            the entry's default (`zoo describe NAME` says which and why).

    Returns:
        A compiled, built `keras.Model`.

    Example:

    >>> model = zoo.get("sparse_autoencoder", hidden_units=100)
    """
    global_policy = _keras_global_policy()
    if DTYPE_POLICY not in overrides and global_policy is not None:
        overrides[DTYPE_POLICY] = global_policy
    if weights is not None:
        from zoo import weights as weight_sets  # TensorFlow and h5py: only when loading

        return weight_sets.load(name, weights, preset, **overrides)
    entry = get_entry(name)
    return entry.build(entry.resolve(preset, **overrides))


def _keras_global_policy() -> str | None:
    """Keras' global dtype policy when a user set one zoo builds with (not float32), else
    `None`; Keras not imported yet means nobody set one."""
    keras = sys.modules.get("keras")
    if keras is None:
        return None
    name = keras.config.dtype_policy().name
    return name if name in DTYPE_POLICIES and name != "float32" else None


def list_models(pattern: str = "*", family: str | None = None, pretrained: bool = False) -> list[str]:
    """Registered names matching the fnmatch-style `pattern` (and `family`, when given; with
    `pretrained`, only those with weight sets to load), sorted.

    Raises:
        UnknownModelError: `family` is not a registered family.
    """
    if family is not None and family not in families():
        raise UnknownModelError(
            f"unknown family {family!r} (families: {', '.join(families())})"
        )
    names = sorted(
        name for name, entry in _REGISTRY.items()
        if fnmatch.fnmatchcase(name, pattern) and family in (None, entry.family)
    )
    if pretrained:
        from zoo import weights as weight_sets

        names = [name for name in names if weight_sets.available(name)]
    return names


def families() -> list[str]:
    """The families that have registered entries, sorted."""
    return sorted({entry.family for entry in _REGISTRY.values()})


#: zoo's Keras classes outside the families (the classifiers' loss and metrics, the one-cycle
#: schedule), by module; all are registered as "zoo>Name".
SHARED_KERAS_OBJECTS = {
    "zoo.classification": ("Accuracy", "Crossentropy", "MacroF1"),
    "zoo.schedules": ("OneCycle",),
}


def keras_objects() -> dict[str, str]:
    """The names of zoo's Keras objects and their modules, without importing them: every
    registered family's `LAZY_EXPORTS` (see `zoo._lazy`) and `SHARED_KERAS_OBJECTS`."""
    objects = {name: module for module, names in SHARED_KERAS_OBJECTS.items() for name in names}
    for entry in _REGISTRY.values():
        # The builder's package (imported already, with the builder's module).
        package = sys.modules.get(entry.builder.__module__.rpartition(".")[0])
        objects.update(getattr(package, "LAZY_EXPORTS", {}))
    return objects


def import_keras_objects() -> None:
    """Imports the Keras classes of every registered family and the shared ones
    (`keras_objects`), which registers them with Keras
    (`@keras.saving.register_keras_serializable(package="zoo")`).

    `import zoo` does not import them (it needs no TensorFlow), and Keras can load a zoo `.keras`
    file only once they are registered: zoo's loading paths call this first, and Keras' own
    `keras.saving.load_model` calls it through the stand-ins `zoo._lazy.defer_keras_objects`
    puts in Keras' registry.
    """
    for module in sorted(set(keras_objects().values())):
        importlib.import_module(module)


def load_model(path: str | Path, **kwargs: Any) -> Any:
    """A zoo `.keras` file loaded by Keras in safe mode (no arbitrary code), after
    `import_keras_objects`: `keras.saving.load_model(path, safe_mode=True, **kwargs)`.

    Example:

    >>> zoo.get("lstm", preset="tiny").save("lstm.keras")
    >>> zoo.load_model("lstm.keras").units
    8
    """
    import keras

    import_keras_objects()
    return keras.saving.load_model(path, safe_mode=True, **kwargs)


def describe(name: str) -> dict[str, Any]:
    """Defaults, valid ranges, search space, data, metric and description of entry `name`, and
    the cards of its weight sets."""
    from zoo import weights as weight_sets

    return {**get_entry(name).describe(), "weights": weight_sets.available(name)}
