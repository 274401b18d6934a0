"""Trajectories and phase portraits of a method's field on a game with one scalar parameter per
player: the paper's Figure 3 (`lq1d`) and Mescheder et al. 2018's Dirac-GAN figure (`dirac`).

A phase portrait is drawn at points where no training happened, so a method that replays an
optimizer (unrolled GANs) replays plain gradient steps at the training lr there (`Context.replay`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stabench.cell import Cell, resolve
from stabench.errors import StabenchError
from stabench.methods import METHODS, Method
from stabench.spectra import FieldMap, analysis_field
from stabench.tasks.dirac import MESCHEDER_START


def trajectory(field_map: FieldMap, start: torch.Tensor, step_size: float, steps: int) -> torch.Tensor:
    """The points visited by simultaneous gradient steps θ ← θ + αh(θ) from `start`: (steps + 1) × n."""
    points = [start.detach()]
    for _ in range(steps):
        points.append(points[-1] + step_size * field_map.at(points[-1]))
    return torch.stack(points)


@dataclass
class PhasePanel:
    """The field of a two-parameter game on a grid, and gradient-step trajectories, ready to draw."""

    title: str
    labels: tuple[str, str]  # D's parameter (horizontal), G's (vertical)
    d_axis: np.ndarray
    g_axis: np.ndarray
    field: np.ndarray  # 2 × len(g_axis) × len(d_axis): h_D and h_G at every grid point
    trajectories: list[np.ndarray]
    equilibrium: tuple[float, float] | None
    step_size: float


def phase_panel(cell: Cell, title: str, *, span: float = 1.0, resolution: int = 21, step_size: float = 0.01,
                steps: int = 3000, from_start: bool = False) -> PhasePanel:
    """The field of `cell.method` on a game with one scalar parameter per player (like `lq1d`), on the
    square of half-width `span` around the known equilibrium (else the initial point), with the
    trajectories of two gradient-step runs started inside it, or with `from_start` one from the task's
    initial point."""
    field_map, equilibrium = analysis_field(cell)
    if field_map.sizes != [1, 1] or len(field_map.d_shapes) != 1:
        raise StabenchError(f"a phase portrait needs one scalar parameter per player (like `lq1d`); "
                            f"`{cell.task.name}` has {field_map.size} parameters")
    centre = field_map.flatten(equilibrium if equilibrium is not None else field_map.game.point())
    d_axis = np.linspace(centre[0].item() - span, centre[0].item() + span, resolution)
    g_axis = np.linspace(centre[1].item() - span, centre[1].item() + span, resolution)
    field = np.zeros((2, resolution, resolution))
    for row, g_value in enumerate(g_axis):
        for column, d_value in enumerate(d_axis):
            theta = torch.tensor([d_value, g_value], dtype=centre.dtype)
            field[:, row, column] = field_map.at(theta).numpy()
    if from_start:
        starts = [field_map.flatten(field_map.game.point())]
    else:
        starts = [centre + span * torch.tensor(offset, dtype=centre.dtype) for offset in ((0.0, -0.25), (-0.5, 0.5))]
    return PhasePanel(
        title=title, labels=(*field_map.d_shapes, *field_map.g_shapes), d_axis=d_axis, g_axis=g_axis, field=field,
        trajectories=[trajectory(field_map, start, step_size, steps).numpy() for start in starts],
        equilibrium=tuple(centre.tolist()) if equilibrium is not None else None, step_size=step_size,
    )


FIGURE_3 = [(loss, eta) for loss in ("gan", "wgan") for eta in (0.0, 0.25, 0.5, 1.0)]
DIRAC = "dirac"  # drawn as Mescheder et al. 2018 draw it: one trajectory from the start, steps of the training lr
DIRAC_SPAN = 2.0  # the square [-2, 2]² around (0, 0) holds the start (1, 1) and the first turns of a spiral
DIRAC_COLUMNS = 6


def method_title(method: Method, shown: str = "") -> str:
    """The method's name (and `shown` settings), with a second line where its update is no function of
    the point: then the field drawn is the one `stabench spectrum` analyses, named by `spectrum_note`."""
    title = method.name + (f", {shown}" if shown else "")
    # the note's first clause names that field ("spectrum of the plain GAN field")
    return f"{title}\n({method.spectrum_note.split(':')[0]})" if method.spectrum_note else title


def dirac_panel(cell: Cell, title: str, *, steps: int, resolution: int = 21) -> PhasePanel:
    """`cell.method`'s field on the Dirac-GAN's square around (0, 0), with the trajectory of simultaneous
    steps from the task's start at the task's lr."""
    return phase_panel(cell, title, span=DIRAC_SPAN, resolution=resolution, step_size=cell.task_params.lr,
                       steps=steps, from_start=True)


def every_method(task: str, *, overrides: dict, seed: int, steps: int, resolution: int = 21,
                 ) -> tuple[list[PhasePanel], dict[str, str]]:
    """Mescheder et al. 2018's figure: a `dirac_panel` per registered method, and the methods that
    cannot run on `task`, each with why."""
    panels, skipped = [], {}
    for name in METHODS.names():
        cell = resolve(name, task, seed=seed, overrides=overrides)  # a bad override is the user's, not the method's
        try:
            panels.append(dirac_panel(cell, method_title(cell.method), steps=steps, resolution=resolution))
        except StabenchError as error:  # refused by the method (spectral norm needs a linear layer in D)
            skipped[name] = str(error)
    return panels, skipped


def phase(task: str, method: str | None, path: str | Path, *, overrides: dict | None = None, seed: int = 0,
          grid: bool = False, steps: int = 3000, resolution: int = 21) -> Path:
    """Draw the phase portrait behind `stabench phase` into the PNG `path` (`resolution` grid points a side).

    With `grid`, the paper's Figure 3: `gradreg` with the GAN and the WGAN loss (rows) and
    η ∈ {0, 0.25, 0.5, 1} (columns); η = 0 is the plain GAN and WGAN field. On `dirac`, `grid` draws
    Mescheder et al. 2018's figure instead: every registered method's field with the trajectory of
    simultaneous steps from (1, 1); a method that cannot run there is left out with a warning and a
    note under the figure. `overrides` apply to every panel.
    """
    from stabench.plots import phase_portraits

    overrides = dict(overrides or {})
    if task == DIRAC:  # Mescheder et al.'s figure starts at (1, 1), not at a seed's start
        overrides = {**MESCHEDER_START, **overrides}
    if steps < 0:
        raise StabenchError(f"`--steps` must be at least 0, got {steps}")
    if resolution < 2:
        raise StabenchError(f"`--resolution` must be at least 2, got {resolution}")
    note = ""
    if grid and task == DIRAC:
        if method is not None:
            raise StabenchError(f"`--grid` on `{DIRAC}` draws every registered method; leave out `--method`")
        panels, skipped = every_method(task, overrides=overrides, seed=seed, steps=steps, resolution=resolution)
        if not panels:
            raise StabenchError(f"no registered method can run on `{task}`: "
                                + "; ".join(f"{name}: {reason}" for name, reason in skipped.items()))
        for name, reason in skipped.items():
            warnings.warn(f"`{name}` is not drawn: {reason}", stacklevel=2)
        note = dirac_note(panels, skipped, steps)
        columns = DIRAC_COLUMNS
    elif grid:
        if method not in (None, "gradreg"):
            raise StabenchError("`--grid` draws `gradreg` with both losses and four values of eta; leave out `--method`")
        taken = sorted({"eta", "loss"} & set(overrides))
        if taken:
            raise StabenchError(f"`--grid` sets {' and '.join(taken)} itself; leave {'them' if len(taken) > 1 else 'it'} out")
        cells = [(resolve("gradreg", task, seed=seed, overrides={**overrides, "loss": loss, "eta": eta}),
                  f"{loss.upper()}, η = {eta:g}") for loss, eta in FIGURE_3]
        panels = [phase_panel(cell, title, resolution=resolution, steps=steps) for cell, title in cells]
        columns = 4
    else:
        if method is None:
            raise StabenchError("name `--method` (or draw the paper's whole figure with `--grid`)")
        cell = resolve(method, task, seed=seed, overrides=overrides)
        title = method_title(cell.method, ", ".join(f"{key}={value}" for key, value in overrides.items()))
        panels = [dirac_panel(cell, title, steps=steps, resolution=resolution) if task == DIRAC
                  else phase_panel(cell, title, resolution=resolution, steps=steps)]
        columns = 1
    try:
        phase_portraits(panels, Path(path), columns, note=note)
    except (OSError, ValueError) as error:  # an unwritable folder, or a suffix that names no image format
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error).splitlines()[0]
        raise StabenchError(f"cannot write the phase portrait to `{path}`: {reason}") from None
    return Path(path)


def dirac_note(panels: list[PhasePanel], skipped: dict[str, str], steps: int) -> str:
    """What the Dirac-GAN figure draws, and which methods it leaves out."""
    start = panels[0].trajectories[0][0]
    note = (f"Each panel: the method's field h, the one `stabench spectrum` analyses (no weight clipping, no n_critic), "
            f"and {steps} simultaneous steps x ← x + αh(x) of x = (ψ, θ), α = lr = {panels[0].step_size:g}, "
            f"from ({start[0]:g}, {start[1]:g}); star: the equilibrium (0, 0).")
    if skipped:
        note += " Not drawn: " + "; ".join(f"{name} ({reason})" for name, reason in skipped.items()) + "."
    return note
