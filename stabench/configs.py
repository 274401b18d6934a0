"""A run's settings from a TOML file (`--config`) or a run record (`--like`), under the command line's.

A config file holds the keys of `--set` plus `method`, `task`, `seed`, `budget`, `steps` and `recipe`, one
`KEY = VALUE` line each. A record gives its identity: method, task, seed, budget, recipe, steps where they
were overridden, and every identity hyperparameter, never its environment settings (`data_dir`). The
layers stack record, then file, then command line; `explain` says which one set each hyperparameter.
"""
from __future__ import annotations

import tomllib
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stabench.cell import Given, Resolution, resolve_settings
from stabench.errors import StabenchError
from stabench.hyperparams import field_types, type_name
from stabench.methods import METHODS
from stabench.records import RUN_FILE, CorruptRecord, is_record, read_record
from stabench.tasks import TASKS

NAMES = {"method": str, "task": str, "seed": int, "budget": str, "steps": int, "recipe": str}
DEFAULTS = {"seed": 0, "budget": "quick"}


@dataclass
class RunConfig:
    """What one layer says of a run: any of `NAMES` (None where it says nothing) and hyperparameters."""

    method: str | None = None
    task: str | None = None
    seed: int | None = None
    budget: str | None = None
    steps: int | None = None
    recipe: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)
    layer: str = "--set"  # as `stabench.cell.LAYERS` names it
    source: str = ""  # the file or record folder

    @property
    def given(self) -> Given:
        return Given(self.layer, self.settings, self.source)


@dataclass
class ChosenRun:
    """The run the layers add up to: every name, and the settings of each layer in order."""

    method: str
    task: str
    seed: int
    budget: str
    steps: int | None
    recipe: str | None
    given: list[Given]

    @property
    def overrides(self) -> dict[str, Any]:
        """The given settings as one dict, later layers winning: what `resolve` takes."""
        merged: dict[str, Any] = {}
        for layer in self.given:
            merged |= layer.settings
        return merged

    @property
    def arguments(self) -> dict[str, Any]:
        """Keyword arguments of `stabench.run` (with `seed=`) and of `run_seeds` (with `seeds=`)."""
        return {"method": self.method, "task": self.task, "budget": self.budget, "steps": self.steps,
                "recipe": self.recipe, "overrides": self.overrides}


def read_config(path: str | Path) -> RunConfig:
    """A TOML config file as a layer, or a one-line error naming the file and what is wrong."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as error:
        raise StabenchError(f"config file `{path}` cannot be read: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise StabenchError(f"config file `{path}` is not valid TOML: {error}") from None
    names: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(value, (str, int, float, bool)):
            raise StabenchError(f"config file `{path}`: `{key}` should be one value (KEY = VALUE, as with --set), "
                                f"got {value!r}")
        if key in NAMES:
            if not isinstance(value, NAMES[key]) or isinstance(value, bool):
                raise StabenchError(f"config file `{path}`: `{key}` expects {type_name(NAMES[key])}, got {value!r}")
            names[key] = value
        else:
            settings[key] = value
    return RunConfig(**names, settings=settings, layer="config file", source=str(path))


def record_config(run_dir: str | Path) -> RunConfig:
    """The identity of the record in `run_dir` as a layer; a warning when the installed method or task
    has another version than the one that made it (a rerun is then another run, with other numbers)."""
    run_dir = Path(run_dir)
    if not is_record(run_dir):
        raise StabenchError(f"`{run_dir}` is not a run record (no {RUN_FILE})")
    try:
        record = read_record(run_dir)
    except CorruptRecord as error:
        raise StabenchError(str(error)) from None
    for kind, registry, made_by in (("method", METHODS, record.method_version), ("task", TASKS, record.task_version)):
        installed = registry.get(getattr(record, kind)).version
        if installed != made_by:
            warnings.warn(f"the record at `{run_dir}` was made by {kind} `{getattr(record, kind)}` version {made_by}; "
                          f"version {installed} is installed, so the rerun is another run", stacklevel=2)
    return RunConfig(record.method, record.task, record.seed, record.budget,
                     record.steps_planned if record.steps_overridden else None, record.recipe, dict(record.config),
                     layer="record", source=str(run_dir))


def choose(layers: list[RunConfig]) -> ChosenRun:
    """The run `layers` add up to, each over the ones before it; seed 0 and budget quick where none says.
    A record's settings carry to another method only where they are its task's; its task cannot change.
    Every layer's keys and values are checked here, and a wrong one is a one-line error naming its layer."""
    names: dict[str, Any] = dict(DEFAULTS)
    for layer in layers:
        names |= {name: getattr(layer, name) for name in NAMES if getattr(layer, name) is not None}
    missing = [name for name in ("method", "task") if name not in names]
    if missing:
        raise StabenchError(f"name the {' and the '.join(missing)} (`--{missing[0]}`, or in a --config file "
                            "or a --like record)")
    given = []
    for layer in layers:
        settings = layer.settings
        if layer.layer == "record" and layer.task != names["task"]:
            raise StabenchError(f"the record at `{layer.source}` is on task `{layer.task}`: its settings do not "
                                f"carry to task `{names['task']}`")
        if layer.layer == "record" and layer.method != names["method"]:
            task_keys = field_types(TASKS.get(names["task"]).Params)
            settings = {key: value for key, value in settings.items() if key in task_keys}
        given.append(Given(layer.layer, settings, layer.source))
    chosen = ChosenRun(names["method"], names["task"], names["seed"], names["budget"], names.get("steps"),
                       names.get("recipe"), given)
    resolve_settings(chosen.method, chosen.task, budget=chosen.budget, recipe=chosen.recipe, given=given)
    return chosen


def run_config(*, like: str | Path | None = None, config: str | Path | None = None, method: str | None = None,
               task: str | None = None, seed: int | None = None, budget: str | None = None, steps: int | None = None,
               recipe: str | None = None, overrides: dict[str, Any] | None = None) -> ChosenRun:
    """The run of `stabench run`: the record at `like`, then the config file, then the other arguments
    (the command line's options), each where it says something."""
    layers = [record_config(like)] if like is not None else []
    layers += [read_config(config)] if config is not None else []
    layers.append(RunConfig(method, task, seed, budget, steps, recipe, dict(overrides or {})))
    return choose(layers)


def explain(method: str | None = None, task: str | None = None, *, budget: str | None = None,
            recipe: str | None = None, overrides: dict[str, Any] | None = None, config: str | Path | None = None,
            like: str | Path | None = None) -> Resolution:
    """Every hyperparameter of the run these arguments describe (as `run_config` reads them), with its
    value and the layer that set it (`Resolution.settings`): what `stabench run` would train."""
    chosen = run_config(like=like, config=config, method=method, task=task, budget=budget, recipe=recipe,
                        overrides=overrides)
    return resolve_settings(chosen.method, chosen.task, budget=chosen.budget, recipe=chosen.recipe,
                            given=chosen.given)
