"""Trajectories and phase portraits of a method's field on a game with one scalar parameter per
player: the paper's Figure 3 (`lq1d`).

A phase portrait is drawn at points where no training happened, so a method that replays an
optimizer (unrolled GANs) replays plain gradient steps at the training lr there (`Context.replay`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from stabench.cell import Cell, resolve
from stabench.errors import StabenchError
from stabench.spectra import FieldMap, analysis_field


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
                steps: int = 3000) -> PhasePanel:
    """The field of `cell.method` on a game with one scalar parameter per player (like `lq1d`), on the
    square of half-width `span` around the known equilibrium (else the initial point), with the
    trajectories of two gradient-step runs started inside it."""
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
    starts = [centre + span * torch.tensor(offset, dtype=centre.dtype) for offset in ((0.0, -0.25), (-0.5, 0.5))]
    return PhasePanel(
        title=title, labels=(*field_map.d_shapes, *field_map.g_shapes), d_axis=d_axis, g_axis=g_axis, field=field,
        trajectories=[trajectory(field_map, start, step_size, steps).numpy() for start in starts],
        equilibrium=tuple(centre.tolist()) if equilibrium is not None else None, step_size=step_size,
    )


FIGURE_3 = [(loss, eta) for loss in ("gan", "wgan") for eta in (0.0, 0.25, 0.5, 1.0)]


def phase(task: str, method: str | None, path: str | Path, *, overrides: dict | None = None, seed: int = 0,
          grid: bool = False, steps: int = 3000) -> Path:
    """Draw the phase portrait behind `stabench phase` into the PNG `path`.

    With `grid`, the paper's Figure 3: `gradreg` with the GAN and the WGAN loss (rows) and
    η ∈ {0, 0.25, 0.5, 1} (columns); η = 0 is the plain GAN and WGAN field. `overrides` apply to every panel.
    """
    from stabench.plots import phase_portraits

    overrides = dict(overrides or {})
    if steps < 0:
        raise StabenchError(f"`--steps` must be at least 0, got {steps}")
    if grid:
        if method not in (None, "gradreg"):
            raise StabenchError("`--grid` draws `gradreg` with both losses and four values of eta; leave out `--method`")
        taken = sorted({"eta", "loss"} & set(overrides))
        if taken:
            raise StabenchError(f"`--grid` sets {' and '.join(taken)} itself; leave {'them' if len(taken) > 1 else 'it'} out")
        cells = [(resolve("gradreg", task, seed=seed, overrides={**overrides, "loss": loss, "eta": eta}),
                  f"{loss.upper()}, η = {eta:g}") for loss, eta in FIGURE_3]
        columns = 4
    else:
        if method is None:
            raise StabenchError("name `--method` (or draw the paper's whole figure with `--grid`)")
        cell = resolve(method, task, seed=seed, overrides=overrides)
        shown = ", ".join(f"{key}={value}" for key, value in overrides.items())
        cells, columns = [(cell, f"{cell.method.name}" + (f", {shown}" if shown else ""))], 1
    panels = [phase_panel(cell, title, steps=steps) for cell, title in cells]
    try:
        phase_portraits(panels, Path(path), columns)
    except (OSError, ValueError) as error:  # an unwritable folder, or a suffix that names no image format
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error).splitlines()[0]
        raise StabenchError(f"cannot write the phase portrait to `{path}`: {reason}") from None
    return Path(path)
