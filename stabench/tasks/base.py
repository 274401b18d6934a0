"""What a task is: data, default networks, training settings, budgets and metrics."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch

from stabench.context import TrainingParams
from stabench.errors import StabenchError
from stabench.game import Batch, Game, Point
from stabench.hyperparams import check_params_class
from stabench.names import check_name
from stabench.seeds import Seeds


@dataclass
class TaskParams(TrainingParams):
    """Training settings every task has; a task's own dataclass extends this one."""


@dataclass(frozen=True)
class Budget:
    """How long a run trains (G steps), how often it is evaluated, how often the Jacobian spectrum is
    tracked (0: only at the end), and task settings that come with it (a smaller evaluation sample for
    `smoke`, say); `--set` and `--spectrum-every` still override those."""

    steps: int
    eval_every: int
    settings: dict[str, Any] = dataclasses.field(default_factory=dict)
    spectrum_every: int = 0


class Task:
    """A data set with its default networks and metrics.

    `version` is stored in every run record: bump it whenever a change makes old numbers
    incomparable (data, networks, metric definitions). Reference settings of methods on a task live
    in `stabench.references`, not here.
    """

    name: ClassVar[str]
    version: ClassVar[int] = 1
    description: ClassVar[str]
    Params: ClassVar[type] = TaskParams
    budgets: ClassVar[dict[str, Budget]]
    # For each metric: "max" if larger is better, "min" if smaller is better. Stored in every record.
    metric_directions: ClassVar[dict[str, str]] = {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def build(self, params, seeds: Seeds, device: torch.device) -> Game:
        """The networks (initialised from `seeds.init`) and samplers (drawing from `seeds.data`) on `device`;
        the game's `streams` name the generators the samplers draw from, so a stopped run can resume."""
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
        """Flat metrics of the current generator, drawn with `generator`; with `summarize`'s, its keys are
        `metric_directions`'."""
        raise NotImplementedError

    def summarize(self, curve: list[dict[str, float]], params) -> dict[str, float | None]:
        """Metrics read off the whole curve (for example the first step reaching a goal)."""
        return {}

    def save_samples(self, game: Game, params, path: Path, generator: torch.Generator, title: str) -> None:
        """A picture of generated samples."""
        raise NotImplementedError


def check_task(task: Task) -> None:
    """What registration refuses, in one line, beside a name outside `names.NAME` (the registry checks names):
    a Params type `--set` cannot parse, metric directions other than max and min, budgets that are not
    `Budget`s or not named by the same rule."""
    owner = f"task `{getattr(task, 'name', task)}`"
    check_params_class(task.Params, owner)
    if not issubclass(task.Params, TrainingParams):
        raise StabenchError(f"{owner}: Params must extend stabench.TaskParams (the training settings)")
    wrong = {metric: d for metric, d in task.metric_directions.items() if d not in ("max", "min")}
    if wrong:
        raise StabenchError(f"{owner}: metric directions are `max` or `min`, got {wrong}")
    if not task.budgets or not all(isinstance(b, Budget) for b in task.budgets.values()):
        raise StabenchError(f"{owner}: `budgets` must map names to stabench.Budget")
    for budget in task.budgets:  # a budget's name is stored in records and read back as a name
        check_name("budget", budget)
