"""What a task is: data, default networks, training settings, budgets and metrics."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch

from stabench.game import Batch, Game, Point


@dataclass
class TaskParams:
    """Training hyperparameters every task has; a task's own dataclass extends this one."""

    batch_size: int = 64
    optimizer: Literal["adam", "rmsprop", "sgd"] = "adam"
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    eps: float = 1e-8


@dataclass(frozen=True)
class Budget:
    """How long a run trains (G steps), how often it is evaluated, and task settings that come with
    it (a smaller evaluation sample for `smoke`, say); `--set` still overrides those."""

    steps: int
    eval_every: int
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)


class Task:
    """A data set with its default networks, per-method reference settings and metrics.

    `version` is stored in every run record: bump it whenever a change makes old numbers
    incomparable (data, networks, metric definitions).
    """

    name: ClassVar[str]
    version: ClassVar[int] = 1
    description: ClassVar[str]
    Params: ClassVar[type] = TaskParams
    budgets: ClassVar[dict[str, Budget]]
    # For each metric: "max" if larger is better, "min" if smaller is better.
    metric_directions: ClassVar[dict[str, str]] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def defaults(self, method_name: str) -> dict[str, Any]:
        """Reference hyperparameters for a method on this task (method or task keys)."""
        return {}

    def build(self, params, seed: int, device: torch.device) -> Game:
        """The networks (initialised from `seed`) and seeded samplers on `device`."""
        raise NotImplementedError

    def equilibrium(self, game: Game, params, generator: torch.Generator) -> tuple[Point, Batch] | None:
        """A known equilibrium, in the dtype and on the device of `game`'s networks, and an evaluation
        batch (drawn with `generator`) on which it is exact: its generated samples equal the real ones,
        so the field is zero there. None when no equilibrium is known."""
        return None

    def describe(self, params) -> dict[str, Any]:
        """The task hyperparameters as plain data for reports; values encoded in strings come parsed."""
        return dataclasses.asdict(params)

    def provenance(self, params) -> dict[str, Any]:
        """Facts behind the metrics that are not hyperparameters (which copy of a data set, how many
        samples, a classifier's accuracy), for the run record's `data`; called after `build`."""
        return {}

    def evaluate(self, game: Game, params, generator: torch.Generator) -> dict[str, float]:
        """Flat metrics of the current generator, drawn with `generator`."""
        raise NotImplementedError

    def summarize(self, curve: list[dict[str, float]], params) -> dict[str, float | None]:
        """Metrics read off the whole curve (for example the first step reaching a goal)."""
        return {}

    def save_samples(self, game: Game, params, path: Path, generator: torch.Generator, title: str) -> None:
        """A picture of generated samples."""
        raise NotImplementedError
