"""The hooks shared machinery looks for on a model or layer, written down once.

`zoo.training` and `zoo.schedules` know no family: a family's model or layer opts into what they
offer by having these members, and each is optional (a model that lacks one is trained without
it). `isinstance(obj, Hook)` tells whether `obj` has one, as `typing.runtime_checkable` allows.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

__all__ = ["Adaptable", "Classifier", "PlannedTraining"]


@runtime_checkable
class Classifier(Protocol):
    """A model whose output is a distribution over classes."""

    num_classes: int
    """How many classes it outputs. `zoo.training.fit` and `zoo evaluate` refuse one-hot labels
    of another width before anything is written."""


@runtime_checkable
class PlannedTraining(Protocol):
    """A model whose training recipe depends on the run's length (`zoo.schedules.ScheduledModel`)."""

    planned_steps: int
    """The optimizer steps of the whole run, as last planned (`Lookahead` reads its progress)."""

    def plan_training(self, total_steps: int) -> None:
        """Sizes the recipe (a one-cycle schedule, say) to a run of `total_steps` steps.
        `zoo.training.train_loop` calls it; `ScheduledModel.fit` calls it for `fit`."""

    def training_callbacks(self) -> list[Any]:
        """Keras callbacks that belong to the model's recipe (Lookahead, say), which its `fit`
        and `zoo.training.train_loop` add to every run."""


@runtime_checkable
class Adaptable(Protocol):
    """A layer whose state is fitted to training data before training (patch whitening, say)."""

    is_adapted: bool
    """Whether it has been fitted; `zoo.training.adapt_preprocessing` fits it when false."""

    def adapt(self, data: Any) -> None:
        """Fits the layer to training inputs `data`."""
