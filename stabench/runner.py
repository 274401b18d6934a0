"""Train one (method, task, seed) cell, measure it, and write its run record."""
from __future__ import annotations

import csv
import dataclasses
import platform
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

import stabench
from stabench.errors import StabenchError
from stabench.hyperparams import apply_overrides, defaults, field_types
from stabench.methods import METHODS, Method
from stabench.spectra import SpectrumTooSlow, game_spectrum
from stabench.store import run_directory, run_id, to_json, write_atomically
from stabench.tasks import TASKS, Task

EVAL_SEED_OFFSET = 10_007  # evaluation latents come from their own stream, the same at every eval
NOISE_SEED_OFFSET = 20_011  # a method's own random draws (game.noise) get a third stream
# The end-of-run spectrum of a large game (Arnoldi) gets about this long; `stabench spectrum --at RUN_DIR`
# has no limit. The `mog` games take 13 to 130 s for their top 20 on one CPU core.
SPECTRUM_SECONDS = 120.0


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

    @property
    def config(self) -> dict[str, Any]:
        """Every resolved hyperparameter, task and training first, then the method's."""
        return {**dataclasses.asdict(self.task_params), **dataclasses.asdict(self.method_params)}

    @property
    def run_id(self) -> str:
        return run_id({
            "task": self.task.name, "task_version": self.task.version, "method": self.method.name,
            "config": {**_identity(self.task_params), **_identity(self.method_params)}, "seed": self.seed,
            "budget": self.budget, "steps": self.steps,
        })


def _identity(params) -> dict[str, Any]:
    """The hyperparameters that make a run what it is: all but fields marked `identity=False` (where
    data lives, which differs between machines and not between results)."""
    return {f.name: getattr(params, f.name) for f in dataclasses.fields(params) if f.metadata.get("identity", True)}


def resolve(method, task, *, seed: int = 0, budget: str = "quick", steps: int | None = None,
            overrides: dict[str, Any] | None = None) -> Cell:
    """Look up names and merge defaults: the method's, the task's reference settings, then `overrides`."""
    method = METHODS.get(method) if isinstance(method, str) else method
    task = TASKS.get(task) if isinstance(task, str) else task
    shared = set(field_types(method.Params)) & set(field_types(task.Params))
    if shared:
        raise TypeError(f"{method} and {task} both declare hyperparameters {sorted(shared)}")
    if budget not in task.budgets:
        raise StabenchError(f"unknown budget `{budget}` for task `{task.name}`; choose from {', '.join(task.budgets)}")
    if steps is not None and steps < 1:
        raise StabenchError(f"`--steps` must be at least 1, got {steps}")
    sections = {"task": (task.Params, defaults(task.Params)), "method": (method.Params, method.defaults())}
    context = f"{method.name} on {task.name}"
    reference = apply_overrides(sections, task.defaults(method.name), context)
    sections = {name: (sections[name][0], dataclasses.asdict(params)) for name, params in reference.items()}
    plan = task.budgets[budget]
    resolved = apply_overrides(sections, {**plan.settings, **(overrides or {})}, context)
    return Cell(method, task, resolved["method"], resolved["task"], int(seed), budget,
                steps or plan.steps, min(plan.eval_every, steps or plan.steps))


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise StabenchError("`--device cuda` was asked for, but no CUDA device is available")
    try:
        return torch.device(device)
    except RuntimeError:
        raise StabenchError(f"unknown device `{device}`; use auto, cpu or cuda") from None


def make_optimizer(parameters, params) -> torch.optim.Optimizer:
    if params.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=params.lr, betas=(params.beta1, params.beta2), eps=params.eps)
    if params.optimizer == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=params.lr, eps=params.eps)
    return torch.optim.SGD(parameters, lr=params.lr)


def _step(optimizer: torch.optim.Optimizer, module: torch.nn.Module, direction: dict) -> None:
    for name, parameter in module.named_parameters():
        parameter.grad = direction[name]
    optimizer.step()


def _parameters_finite(game) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in (*game.discriminator.parameters(), *game.generator.parameters()))


def _all_finite(game, cell: Cell, batch) -> bool:
    """Parameters and the value V on the last training batch are finite (a generator can blow up
    to ±inf while its weights stay finite)."""
    with torch.no_grad():
        value = game.value(game.point(), batch, cell.method.loss(cell.method_params))
    return _parameters_finite(game) and bool(torch.isfinite(value))


def versions() -> dict[str, str]:
    return {"python": platform.python_version(), "torch": torch.__version__, "stabench": stabench.__version__}


class Diverged(Exception):
    """Parameters or the value of the game stopped being finite."""


def _evaluate(cell: Cell, game) -> dict[str, float]:
    generator = torch.Generator().manual_seed(cell.seed + EVAL_SEED_OFFSET)
    return cell.task.evaluate(game, cell.task_params, generator)


class Trainer:
    """One training iteration of a cell: D's steps and one G step, by the method's schedule.

    The optimizers are made from the task's settings; `game.d_optimizer` exposes D's to methods
    (unrolled GANs replay its update rule and state).
    """

    def __init__(self, cell: Cell, game):
        self.cell, self.game, self.hp = cell, game, cell.method_params
        self.d_optimizer = game.d_optimizer = make_optimizer(game.discriminator.parameters(), cell.task_params)
        self.g_optimizer = make_optimizer(game.generator.parameters(), cell.task_params)
        game.noise.manual_seed(cell.seed + NOISE_SEED_OFFSET)
        self.schedule = cell.method.schedule(self.hp)
        self.batch_size = cell.task_params.batch_size

    def d_step(self) -> None:
        method, game = self.cell.method, self.game
        direction = method.d_direction(game, game.point(), game.sample_batch(self.batch_size), self.hp)
        _step(self.d_optimizer, game.discriminator, direction)
        method.constrain(game, self.hp)

    def step(self):
        """One iteration; returns the batch of its last (G) step."""
        method, game, hp = self.cell.method, self.game, self.hp
        d_steps = self.schedule.d_steps - 1 if self.schedule.simultaneous else self.schedule.d_steps
        for _ in range(d_steps):
            self.d_step()
        batch = game.sample_batch(self.batch_size)
        if self.schedule.simultaneous:
            field = method.field(game, game.point(), batch, hp)
            _step(self.d_optimizer, game.discriminator, field.d)
            _step(self.g_optimizer, game.generator, field.g)
            method.constrain(game, hp)
        else:
            _step(self.g_optimizer, game.generator, method.g_direction(game, game.point(), batch, hp))
        return batch


def train(cell: Cell, game, device: torch.device, record: dict[str, Any], curve: list, progress: bool) -> None:
    """The training loop: updates `game` in place and appends an evaluation to `curve` every so often.

    Raises `Diverged` when the game stops being finite (checked at evaluations, where the loop
    synchronises anyway, so a GPU is never stalled every step).
    """
    trainer = Trainer(cell, game)

    def evaluate(step: int, wall_seconds: float, batch):
        if not _all_finite(game, cell, batch):
            record["diverged_at_step"] = step
            raise Diverged
        metrics = _evaluate(cell, game)
        curve.append({"step": step, "wall_seconds": wall_seconds, **metrics})
        return metrics

    evaluate(0, 0.0, game.sample_batch(trainer.batch_size))
    wall_seconds = 0.0
    bar = tqdm(total=cell.steps, disable=not progress, desc=f"{cell.method.name} on {cell.task.name}",
               unit="step", mininterval=0.5, dynamic_ncols=True)
    started = time.perf_counter()
    try:
        for step in range(1, cell.steps + 1):
            batch = trainer.step()
            bar.update()
            if step % cell.eval_every == 0 or step == cell.steps:
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                wall_seconds += time.perf_counter() - started
                record["timing"]["steps"] = step
                record["timing"]["wall_seconds"] = wall_seconds
                metrics = evaluate(step, wall_seconds, batch)
                bar.set_postfix({k: f"{v:.3g}" for k, v in metrics.items()}, refresh=False)
                started = time.perf_counter()
    finally:
        bar.close()


def run(method, task, *, seed: int = 0, budget: str = "quick", steps: int | None = None,
        overrides: dict[str, Any] | None = None, device: str = "auto", out: str | Path = "results/runs",
        progress: bool = True, spectrum: bool = True) -> dict[str, Any]:
    """Train one cell and write its record under `out`; return the record (with its `path`).

    A run that diverges or raises is still recorded, with `status` `diverged` or `failed`. Unless it
    failed, the record keeps the final parameters (state.pt) and, with `spectrum`, the Jacobian
    spectrum of the method's field there (summary in run.json, eigenvalues in spectrum.csv).
    """
    cell = resolve(method, task, seed=seed, budget=budget, steps=steps, overrides=overrides)
    torch_device = pick_device(device)
    directory = run_directory(Path(out), cell.task.name, cell.method.name, cell.run_id)
    record: dict[str, Any] = {
        "run_id": cell.run_id, "method": cell.method.name, "task": cell.task.name,
        "task_version": cell.task.version, "seed": cell.seed, "budget": cell.budget,
        "steps_planned": cell.steps, "config": cell.config, "status": "completed", "metrics": {},
        "timing": {"wall_seconds": 0.0, "steps": 0, "steps_per_second": None},
        "device": str(torch_device) if torch_device.type != "cuda" else torch.cuda.get_device_name(torch_device),
        "versions": versions(), "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "data": {},
    }
    curve: list[dict[str, float]] = []
    game = None
    began = time.perf_counter()
    try:
        game = cell.task.build(cell.task_params, cell.seed, torch_device)
        record["data"] = cell.task.provenance(cell.task_params)
        train(cell, game, torch_device, record, curve, progress)
    except Diverged:
        record["status"] = "diverged"
    except KeyboardInterrupt:
        record["status"] = "failed"
        record["error"] = f"interrupted (Ctrl-C or SIGTERM); last evaluated at step {record['timing']['steps']}"
        _write(directory, record, curve, cell, None)
        raise
    except Exception as error:  # a failed run is data: record it, do not lose it
        record["status"], record["error"] = "failed", f"{type(error).__name__}: {error}"
        record["traceback"] = traceback.format_exc()
    timing = record["timing"]
    timing["total_seconds"] = time.perf_counter() - began
    if timing["wall_seconds"] > 0:
        timing["steps_per_second"] = timing["steps"] / timing["wall_seconds"]
    if record["status"] == "diverged":  # evaluated as it is: non-finite samples count as misses
        record["metrics"] = _evaluate(cell, game)
    elif curve:
        record["metrics"] = {k: v for k, v in curve[-1].items() if k not in ("step", "wall_seconds")}
    if curve:
        record["metrics"].update(cell.task.summarize(curve, cell.task_params))
    eigenvalues = None
    if spectrum and record["status"] != "failed":
        record["spectrum"], eigenvalues = _spectrum(cell, game)
    _write(directory, record, curve, cell, game if record["status"] != "failed" else None, eigenvalues)
    record["path"] = str(directory)
    return record


def _spectrum(cell: Cell, game) -> tuple[dict[str, Any], list[dict[str, float]] | None]:
    """The spectrum at the final parameters: its summary (or why there is none) and its eigenvalues."""
    if not _parameters_finite(game):
        return {"error": "the final parameters are not finite"}, None
    try:
        result = game_spectrum(cell, game, seconds=SPECTRUM_SECONDS)
    except SpectrumTooSlow as reason:  # the record says how to get it without the time limit
        return {"skipped": f"{reason}; run `stabench spectrum --at RUN_DIR`"}, None
    except Exception as error:  # the analysis failing must not lose the run it analyses
        return {"error": f"{type(error).__name__}: {error}"}, None
    return result.summary, result.rows()


def _write(directory: Path, record: dict, curve: list, cell: Cell, game, eigenvalues=None) -> None:
    def fill(folder: Path):
        (folder / "run.json").write_text(to_json(record) + "\n")
        if curve:
            with open(folder / "curve.csv", "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(curve[0]))
                writer.writeheader()
                writer.writerows(curve)
        if eigenvalues:
            with open(folder / "spectrum.csv", "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=["real", "imag"])
                writer.writeheader()
                writer.writerows(eigenvalues)
        if game is not None:
            state = {"discriminator": game.discriminator.state_dict(), "generator": game.generator.state_dict()}
            if game.d_optimizer is not None:  # unrolled GANs' field depends on D's optimizer state
                state["d_optimizer"] = game.d_optimizer.state_dict()
            torch.save(state, folder / "state.pt")
            title = f"{cell.method.name} on {cell.task.name}, seed {cell.seed}, step {record['timing']['steps']}"
            generator = torch.Generator().manual_seed(cell.seed + EVAL_SEED_OFFSET)
            cell.task.save_samples(game, cell.task_params, folder / "samples.png", generator, title)

    write_atomically(directory, fill)
