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

This module is data: the entries and what they are made of (`HParam` and the search spaces
come from `zoo.hparams`). Building one with weights, listing and describing them is
`zoo.factory`'s, above both the registry and the weight sets (`zoo.weights`).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from zoo.errors import UsageError
from zoo import precision
# An entry's vocabulary, offered here too: `from zoo.registry import HParam, register`.
from zoo.hparams import Choice, Float, HParam, HyperparameterError, Int
from zoo.precision import DTYPE_POLICIES, policy_scope

__all__ = [
    "DTYPE_POLICY",
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
    "dtype_policy_hparam",
    "entries",
    "get_entry",
    "register",
]


class UnknownModelError(UsageError, LookupError):
    """Raised for a model name that is not registered."""


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
            A loader that takes `splits` (names among "train", "val", "test") may skip reading
            the others (`load_splits`).
        metric: the headline metric.
        figures: `figures(model, splits, out_dir, outputs=None) -> [paths]`, the task's own
            PNG figures and text reports (`.txt`, which the CLI also prints); `outputs`, when
            given, holds the model's outputs on some splits (`{split: array}`), which the
            figures use rather than running the model again.
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

    def load_splits(self, path: Any, splits: Sequence[str], **options: Any) -> Any:
        """`load(path, **options)` for a caller that uses only `splits`: passed on where the
        loader takes them, so it need not read the rest (a folder's 50,000 training images when
        only its test images are scored)."""
        if "splits" in inspect.signature(self.load).parameters:
            options["splits"] = list(splits)
        return self.load(path, **options)

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
                    if name not in ("path", "seed", "splits")  # not training options
                    and parameter.default is not parameter.empty}
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


def entries() -> list[Entry]:
    """Every registered entry, sorted by name."""
    return [_REGISTRY[name] for name in sorted(_REGISTRY)]
