"""What a method is: typed hyperparameters, a schedule, a field, and optional constraints."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from stabench.game import Batch, Field, Game, Params, Point, negate
from stabench.hyperparams import defaults as declared_defaults


@dataclass
class MethodParams:
    """Hyperparameters every method has; a family's own dataclass extends this one."""

    schedule: Literal["alternating", "simultaneous"] = "alternating"
    n_critic: int = 1  # D steps per G step


@dataclass(frozen=True)
class Schedule:
    """How the two players take turns: `simultaneous`, or D `d_steps` times then G, fresh batches."""

    simultaneous: bool
    d_steps: int


class Method:
    """A family of stabilizers; an instance is a named variant with some defaults fixed.

    Subclasses set `Params` and implement `g_direction` (and `d_direction` where D differs from
    plain ascent on V). Variants are one line: `Unrolled("unrolled10", "...", k=10)`.
    """

    Params: ClassVar[type] = MethodParams

    def __init__(self, name: str, description: str, **fixed: Any):
        unknown = set(fixed) - set(declared_defaults(self.Params))
        if unknown:
            raise TypeError(f"{type(self).__name__} has no hyperparameters {sorted(unknown)}")
        self.name = name
        self.description = description
        self.fixed = fixed

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def defaults(self) -> dict[str, Any]:
        """The variant's default hyperparameters (before a task's reference settings)."""
        return {**declared_defaults(self.Params), **self.fixed}

    def loss(self, params) -> str:
        """The loss family f of V: `gan` unless the method's parameters say otherwise."""
        return getattr(params, "loss", "gan")

    def schedule(self, params) -> Schedule:
        return Schedule(simultaneous=params.schedule == "simultaneous", d_steps=params.n_critic)

    def d_direction(self, game: Game, point: Point, batch: Batch, params) -> Params:
        """D's descent direction: -∇_D V (D ascends V)."""
        return negate(game.gradient(game.value(point, batch, self.loss(params)), point.d))

    def g_direction(self, game: Game, point: Point, batch: Batch, params) -> Params:
        raise NotImplementedError

    def field(self, game: Game, point: Point, batch: Batch, params) -> Field:
        """Both descent directions on one batch: the simultaneous field the analysis linearises."""
        return Field(self.d_direction(game, point, batch, params), self.g_direction(game, point, batch, params))

    def constrain(self, game: Game, params) -> None:
        """Called after every D step (weight clipping); nothing by default."""
