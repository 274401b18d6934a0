"""Resolve names, reference settings and overrides into a `Cell`: what to train, for how long, and
the identity (`run_id`) of its record."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from stabench.context import TrainingParams
from stabench.errors import StabenchError
from stabench.hyperparams import apply_overrides, defaults, environment, field_types, identity
from stabench.methods import METHODS, Method
from stabench.recipes import get_recipe
from stabench.references import reference
from stabench.seeds import Seeds, check_seed
from stabench.tasks import TASKS, Budget, Task


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


# The layers a hyperparameter's value can come from, each over the ones before it.
LAYERS = ("method default", "task default", "training default", "reference setting", "recipe", "budget", "record",
          "config file", "--set")


@dataclass(frozen=True)
class Setting:
    """One resolved hyperparameter: its value, the layer (one of `LAYERS`) that set it last, and that layer's
    source (the reference's paper, the recipe's or budget's name, the record's or config file's path)."""

    value: Any
    layer: str
    source: str = ""
    identity: bool = True  # False for where things live (`data_dir`): never part of a run's identity


@dataclass(frozen=True)
class Given:
    """The settings of one layer above the defaults (`LAYERS`), from `source` (a paper, a name, a path)."""

    layer: str
    settings: Mapping[str, Any]
    source: str = ""


@dataclass
class Resolution:
    """What `resolve_settings` found: the method, task, budget (its name and plan) and recipe, the typed
    hyperparameters of both, and every key's `Setting`, task and training keys first."""

    method: Method
    task: Task
    budget: str
    plan: Budget
    recipe: str | None
    method_params: Any
    task_params: Any
    settings: dict[str, Setting]


def resolve_settings(method, task, *, budget: str = "quick", recipe: str | None = None,
                     given: Sequence[Given] = ()) -> Resolution:
    """Every hyperparameter of `method` on `task` and the layer that set it: the method's defaults, the
    task's (or the training defaults it keeps), the reference settings of the method on the task
    (`stabench.references`) or those of `recipe` (`stabench.recipes`), the budget's, then each of `given`
    in order. `resolve` and `explain` both read it, so what is trained is what is explained."""
    method = METHODS.get(method) if isinstance(method, str) else method
    task = TASKS.get(task) if isinstance(task, str) else task
    shared = sorted(set(field_types(method.Params)) & set(field_types(task.Params)))
    if shared:
        raise StabenchError(f"method `{method.name}` and task `{task.name}` both declare `{shared[0]}`; "
                            "a method cannot run on a task that shares a hyperparameter name with it")
    chosen = get_recipe(recipe, method.name, task.name) if recipe is not None else None
    budgets = {**task.budgets, **(chosen.budgets if chosen else {})}
    if budget not in budgets:
        raise StabenchError(f"unknown budget `{budget}` for task `{task.name}`; choose from {', '.join(budgets)}")
    training = defaults(TrainingParams)
    set_by = {key: Setting(value, "training default" if key in training and training[key] == value else "task default")
              for key, value in defaults(task.Params).items()}
    set_by |= {key: Setting(value, "method default") for key, value in method.defaults().items()}
    if chosen:
        published = Given("recipe", chosen.settings_for(method.name), chosen.name)
    else:
        found = reference(method.name, task.name)
        published = Given("reference setting", found.settings if found else {}, found.source if found else "")
    sections = {"task": (task.Params, defaults(task.Params)), "method": (method.Params, method.defaults())}
    context = f"{method.name} on {task.name}"
    for layer in (published, Given("budget", budgets[budget].settings, budget), *given):
        # Each layer is checked on its own, so that a wrong key or value names where it came from.
        named = layer.layer in ("record", "config file")
        where = f"{context} ({layer.layer} {layer.source})" if named else context
        made = apply_overrides(sections, layer.settings, where)
        sections = {name: (sections[name][0], dataclasses.asdict(params)) for name, params in made.items()}
        set_by |= {key: Setting(None, layer.layer, layer.source) for key in layer.settings}
    identity_keys = {**identity(made["task"]), **identity(made["method"])}
    settings = {key: dataclasses.replace(set_by[key], value=value, identity=key in identity_keys)
                for params in (made["task"], made["method"]) for key, value in dataclasses.asdict(params).items()}
    return Resolution(method, task, budget, budgets[budget], recipe, made["method"], made["task"], settings)


def resolve(method, task, *, seed: int = 0, budget: str = "quick", steps: int | None = None,
            overrides: dict[str, Any] | None = None, recipe: str | None = None) -> Cell:
    """Look up names and merge settings (`resolve_settings`, with `overrides` last, as `--set`) into a cell."""
    seed = check_seed(seed)
    if steps is not None and steps < 1:
        raise StabenchError(f"`--steps` must be at least 1, got {steps}")
    found = resolve_settings(method, task, budget=budget, recipe=recipe, given=[Given("--set", overrides or {})])
    planned = steps or found.plan.steps
    return Cell(found.method, found.task, found.method_params, found.task_params, seed, budget, planned,
                min(found.plan.eval_every, planned), steps_overridden=steps is not None and steps != found.plan.steps,
                recipe=recipe)


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
