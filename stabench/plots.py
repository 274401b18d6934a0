"""Pictures of results: sample scatters over the true modes."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: runs happen on headless machines
import matplotlib.pyplot as plt  # noqa: E402


def scatter_samples(samples, centres, path: Path, title: str, radius: float) -> None:
    """Generated 2-D samples (blue dots) over the mode centres (red crosses)."""
    figure, axes = plt.subplots(figsize=(4.5, 4.5))
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
    plt.close(figure)
