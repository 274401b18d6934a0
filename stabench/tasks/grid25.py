"""25 Gaussians on a 5×5 grid (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from stabench.hyperparams import hyperparameter
from stabench.tasks.mixture import GaussianMixture, MixtureParams

COORDINATES = (-4.0, -2.0, 0.0, 2.0, 4.0)


@dataclass
class Grid25Params(MixtureParams):
    std: float = hyperparameter(0.05, above=0)
    # mog's D sees x / 4, its ring's radius 2 mapped to 0.5; the grid reaches 4 on each axis, so x / 8
    # maps it to the same 0.5 and D starts with inputs of the scale it has on mog
    d_input_scale: float = hyperparameter(0.125, above=0)


def grid_centres() -> torch.Tensor:
    """The 25 modes, (25, 2) in float64, row by row from (−4, −4)."""
    axis = torch.tensor(COORDINATES, dtype=torch.float64)
    return torch.cartesian_prod(axis, axis)


class Grid25(GaussianMixture):
    """Modes at {−4, −2, 0, 2, 4}², std 0.05; mog's networks, metrics and budgets."""

    name = "grid25"
    version = 1
    description = "25 Gaussians on a 5x5 grid at {-4,-2,0,2,4}^2 (std 0.05), reference MLPs; modes captured of 25"
    Params = Grid25Params

    def centres(self, params):
        return grid_centres()
