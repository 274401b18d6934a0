"""Pictures of results: sample scatters over the true modes, phase portraits, image grids.

Figures are drawn with matplotlib's object API (`Figure`, no pyplot), imported when a picture is
made: importing stabench neither pays for matplotlib nor switches a notebook's backend.
"""
from __future__ import annotations

from pathlib import Path


def new_figure(**options):
    """A matplotlib Figure that belongs to no GUI backend (saved to files only)."""
    from matplotlib.figure import Figure

    return Figure(**options)


def subplots(rows: int = 1, columns: int = 1, **options):
    """(figure, axes) like pyplot's `subplots`, without pyplot."""
    made = new_figure(figsize=options.pop("figsize", None))
    return made, made.subplots(rows, columns, **options)


def scatter_samples(samples, centres, path: Path, title: str, radius: float) -> None:
    """Generated 2-D samples (blue dots) over the mode centres (red crosses)."""
    figure, axes = subplots(figsize=(4.5, 4.5))
    axes.scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.4, color="tab:blue", label="samples")
    axes.scatter(centres[:, 0], centres[:, 1], s=60, marker="x", color="tab:red", label="modes")
    limit = 1.5 * radius
    axes.set_xlim(-limit, limit)
    axes.set_ylim(-limit, limit)
    axes.set_aspect("equal")
    axes.set_title(title, fontsize=9)
    axes.legend(loc="upper right", fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def compare_samples(real, fake, path: Path, title: str) -> None:
    """Generated against real samples: histograms in 1-D, else a scatter of the first two coordinates."""
    figure, axes = subplots(figsize=(4.5, 4.5))
    if real.shape[1] == 1:
        finite = fake[:, 0][fake[:, 0].isfinite()]  # a diverged generator may have none
        axes.hist(real[:, 0].numpy(), bins=50, density=True, alpha=0.5, color="tab:red", label="real")
        if len(finite):
            axes.hist(finite.numpy(), bins=50, density=True, alpha=0.5, color="tab:blue", label="generated")
    else:
        axes.scatter(real[:, 0], real[:, 1], s=2, alpha=0.3, color="tab:red", label="real")
        axes.scatter(fake[:, 0], fake[:, 1], s=2, alpha=0.3, color="tab:blue", label="generated")
        axes.set_aspect("equal", adjustable="datalim")
    axes.set_title(title, fontsize=9)
    axes.legend(loc="upper right", fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


NOTE_HEIGHT = 0.4  # inches under the panels for a figure's note


def phase_portraits(panels, path: Path, columns: int, note: str = ""):
    """Streamlines of each panel's field, its gradient-step trajectories (red) and equilibrium (star),
    `note` under them; returns the Figure (one visible Axes per panel)."""
    rows = -(-len(panels) // columns)
    below = NOTE_HEIGHT if note else 0.0
    figure, grid = subplots(rows, columns, figsize=(3.3 * columns, 3.3 * rows + below), squeeze=False)
    for axes, panel in zip(grid.flat, panels):
        axes.streamplot(panel.d_axis, panel.g_axis, panel.field[0], panel.field[1], color="tab:blue",
                        density=1.0, linewidth=0.6, arrowsize=0.8)
        for index, points in enumerate(panel.trajectories):
            label = f"gradient steps, α = {panel.step_size:g}" if index == 0 else None
            axes.plot(points[:, 0], points[:, 1], color="tab:red", linewidth=1.0, label=label)
            axes.plot(points[0, 0], points[0, 1], marker="o", markersize=3, color="tab:red")
        if panel.equilibrium is not None:
            axes.plot(*panel.equilibrium, marker="*", markersize=10, color="black")
        axes.set_xlim(panel.d_axis[0], panel.d_axis[-1])
        axes.set_ylim(panel.g_axis[0], panel.g_axis[-1])
        axes.set_xlabel(panel.labels[0])
        axes.set_ylabel(panel.labels[1])
        axes.set_title(panel.title, fontsize=9)
    grid.flat[0].legend(loc="lower right", fontsize=6)
    for axes in list(grid.flat)[len(panels):]:
        axes.remove()  # no empty frames: the figure's axes are the panels
    if note:
        figure.text(0.01, 0.005, note, fontsize=7, va="bottom", ha="left", wrap=True)
    figure.tight_layout(rect=(0, below / figure.get_figheight(), 1, 1))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return figure


def save_grid(images, path: Path, title: str, nrow: int = 10) -> None:
    """Images (n, C, H, W) with values in [-1, 1] tiled in rows of `nrow`, `title` above them."""
    from torchvision.utils import make_grid  # torchvision's import is slow; only image tasks need it

    grid = make_grid(images.detach().float().nan_to_num(0.0).clamp(-1, 1), nrow=nrow, padding=2,
                     normalize=True, value_range=(-1, 1), pad_value=1.0)
    figure, axes = subplots(figsize=(6, 6.4))
    axes.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    axes.set_axis_off()
    axes.set_title(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def path_angle_axes(axes) -> None:
    """The frame of a path-angle plot: the final parameters (α = 1) dotted, zero marked, the y axis
    symmetric about 0 and zoomed to the data (in many dimensions |cos| is small)."""
    axes.axvline(1.0, color="black", linestyle=":", linewidth=0.8)
    axes.axhline(0.0, color="grey", linewidth=0.5)
    bottom, top = axes.get_ylim()
    axes.set_ylim(-max(abs(bottom), abs(top)), max(abs(bottom), abs(top)))


def interval_plot(labels, values, lows, highs, xlabel: str, title: str, reference: float | None = None,
                  limits: tuple[float, float] = (0.0, 1.0)):
    """A point and its interval bar for each of `labels`, one row each from the top; a dotted vertical line at
    `reference` (no difference) where given; returns the Figure. A missing bound draws the point alone."""
    import numpy as np

    values, lows, highs = (np.asarray(a, dtype=float) for a in (values, lows, highs))
    figure, axes = subplots(figsize=(6, 0.9 + 0.32 * len(labels)))
    rows = np.arange(len(labels))[::-1]
    has = np.isfinite(lows) & np.isfinite(highs)
    axes.hlines(rows[has], lows[has], highs[has], color="tab:blue", linewidth=2.5, alpha=0.5)
    axes.plot(values, rows, "o", color="tab:blue", markersize=5)
    if reference is not None:
        axes.axvline(reference, color="black", linestyle=":", linewidth=0.8)
    axes.set_yticks(rows, labels, fontsize=8)
    axes.set_ylim(-0.7, len(labels) - 0.3)
    margin = 0.03 * (limits[1] - limits[0])  # a point at a limit (P = 1) drawn whole
    axes.set_xlim(limits[0] - margin, limits[1] + margin)
    axes.set_xlabel(xlabel)
    axes.set_title(title, fontsize=9)
    axes.grid(True, axis="x", linewidth=0.3, alpha=0.5)
    figure.tight_layout()
    return figure


def profile_plot(thresholds, curves: dict, xlabel: str, title: str):
    """Performance profiles (Agarwal et al. 2021): for each label of `curves`, (share, low, high) against
    `thresholds`: the share of runs scoring above τ as a step line, its interval shaded; returns the Figure."""
    from matplotlib import rcParams

    colours = rcParams["axes.prop_cycle"].by_key()["color"]
    figure, axes = subplots(figsize=(6.5, 4.5))
    for index, (label, (share, low, high)) in enumerate(curves.items()):
        colour = colours[index % len(colours)]
        axes.step(thresholds, share, where="post", color=colour, linewidth=1.4, label=label)
        axes.fill_between(thresholds, low, high, step="post", color=colour, alpha=0.15, linewidth=0)
    axes.set_xlim(thresholds[0], thresholds[-1])
    axes.set_ylim(0.0, 1.02)
    axes.set_xlabel(xlabel)
    axes.set_ylabel("share of runs with score > τ")
    axes.set_title(title, fontsize=9)
    axes.grid(True, linewidth=0.3, alpha=0.5)
    axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))
    figure.tight_layout()
    return figure
