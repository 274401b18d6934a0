"""8 Gaussians on a ring: the paper's Figure 1 and the toy of Metz et al. (2017)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from stabench.hyperparams import hyperparameter
from stabench.tasks.mixture import GaussianMixture, MixtureParams


@dataclass
class MogParams(MixtureParams):
    n_modes: int = hyperparameter(8, at_least=1)
    radius: float = hyperparameter(2.0, above=0)


def ring_centres(n_modes: int, radius: float) -> torch.Tensor:
    angles = torch.arange(n_modes, dtype=torch.float64) * (2 * math.pi / n_modes)
    return torch.stack([radius * torch.cos(angles), radius * torch.sin(angles)], dim=1)


class MixtureOfGaussians(GaussianMixture):
    """Modes at angles 2πk/8 on a circle of radius 2, std 0.02; MLPs of the reference code."""

    name = "mog"
    version = 1
    description = "8 Gaussians on a ring of radius 2 (std 0.02), reference MLPs; modes captured of 8"
    Params = MogParams

    def centres(self, params):
        return ring_centres(params.n_modes, params.radius)
