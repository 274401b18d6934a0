"""Resolve names, reference settings and overrides into a `Cell`: what to train, for how long, and
the identity (`run_id`) of its record."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import torch

from stabench.errors import StabenchError
from stabench.hyperparams import apply_overrides, defaults, environment, field_types, identity
from stabench.methods import METHODS, Method
from stabench.recipes import get_recipe
from stabench.references import settings_for
from stabench.seeds import Seeds, check_seed
from stabench.tasks import TASKS, Task


def run_id(identity_fields: dict[str, Any]) -> str:
    """A short, stable hash of what makes a run: task and version, method and version, config, seed, steps."""
    text = json.dumps(identity_fields, sort_keys=True, default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:10]


@dataclass
class Cell:
    """A fully resolved experiment: what to train, with which hyperparameters, for how long."""

    method: Method
    task: Task
    method_params: Any
    task_params: Any
    seed: int
    budget: str
    steps: int
    eval_every: int
    steps_overridden: bool = False  # `--steps` replaced the budget's number
    recipe: str | None = None  # the named recipe whose settings replaced the reference ones (`stabench.recipes`)

    @property
    def config(self) -> dict[str, Any]:
        """The identity hyperparameters, task and training first, then the method's."""
        return {**identity(self.task_params), **identity(self.method_params)}

    @property
    def environment(self) -> dict[str, Any]:
        """Settings that say where things live on this machine (`data_dir`): never part of identity."""
        return {**environment(self.task_params), **environment(self.method_params)}

    @functools.cached_property
    def seeds(self) -> Seeds:
        """The cell's random streams, derived once from its seed."""
        return Seeds.derive(self.seed)

    def build_game(self, device: torch.device, seeds: Seeds | None = None):
        """The task's game from the cell's seeds (or `seeds`), as the method trains it (`Method.prepare`)."""
        game = self.task.build(self.task_params, seeds or self.seeds, device)
        return self.method.prepare(game, self.method_params)

    @property
    def run_id(self) -> str:
        return run_id({
            "task": self.task.name, "task_version": self.task.version, "method": self.method.name,
            "method_version": self.method.version, "config": self.config, "seed": self.seed,
            "budget": self.budget, "steps": self.steps, **({"recipe": self.recipe} if self.recipe else {}),
        })


def resolve(method, task, *, seed: int = 0, budget: str = "quick", steps: int | None = None,
            overrides: dict[str, Any] | None = None, recipe: str | None = None) -> Cell:
    """Look up names and merge settings: the method's defaults, the task's, the reference settings of
    the method on the task (`stabench.references`) or those of `recipe` (`stabench.recipes`), the
    budget's, then `overrides`."""
    method = METHODS.get(method) if isinstance(method, str) else method
    task = TASKS.get(task) if isinstance(task, str) else task
    seed = check_seed(seed)
    shared = sorted(set(field_types(method.Params)) & set(field_types(task.Params)))
    if shared:
        raise StabenchError(f"method `{method.name}` and task `{task.name}` both declare `{shared[0]}`; "
                            "a method cannot run on a task that shares a hyperparameter name with it")
    chosen = get_recipe(recipe, method.name, task.name) if recipe is not None else None
    budgets = {**task.budgets, **(chosen.budgets if chosen else {})}
    if budget not in budgets:
        raise StabenchError(f"unknown budget `{budget}` for task `{task.name}`; choose from {', '.join(budgets)}")
    if steps is not None and steps < 1:
        raise StabenchError(f"`--steps` must be at least 1, got {steps}")
    sections = {"task": (task.Params, defaults(task.Params)), "method": (method.Params, method.defaults())}
    context = f"{method.name} on {task.name}"
    published = chosen.settings_for(method.name) if chosen else settings_for(method.name, task.name)
    reference = apply_overrides(sections, published, context)
    sections = {name: (sections[name][0], dataclasses.asdict(params)) for name, params in reference.items()}
    plan = budgets[budget]
    resolved = apply_overrides(sections, {**plan.settings, **(overrides or {})}, context)
    planned = steps or plan.steps
    return Cell(method, task, resolved["method"], resolved["task"], seed, budget, planned,
                min(plan.eval_every, planned), steps_overridden=steps is not None and steps != plan.steps, recipe=recipe)


def check_default_dtype() -> None:
    """Refuse to train under a torch default dtype other than float32 (a plugin may set it): every
    built-in network would be made in it, and change its numbers under the same run_id."""
    if torch.get_default_dtype() != torch.float32:
        raise StabenchError(f"torch's default dtype is {torch.get_default_dtype()}, not torch.float32 (did a plugin "
                            "call torch.set_default_dtype?): runs would change their numbers under the same run_id")


def pick_device(device: str) -> torch.device:
    """`auto` (CUDA when present), `cpu`, `cuda` or `cuda:N`, or a one-line error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise StabenchError("`--device cuda` was asked for, but no CUDA device is available")
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise StabenchError(f"unknown device `{device}`; use auto, cpu or cuda") from None
    if chosen.type not in ("cpu", "cuda"):
        raise StabenchError(f"device `{device}` cannot train; use auto, cpu or cuda")
    return chosen
