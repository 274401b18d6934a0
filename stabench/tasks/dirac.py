"""The Dirac-GAN of Mescheder, Geiger & Nowozin (2018), "Which training methods for GANs do actually
converge?": real data is the single point x = 0, G(z) = θ (z ignored), D(x) = ψx. The equilibrium is
(ψ, θ) = (0, 0), where the plain GAN's Jacobian has eigenvalues ±i f'(0): the one-dimensional game on
which each stabilizer's local behaviour can be written down.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from stabench.game import Batch, Game, Point
from stabench.hyperparams import hyperparameter
from stabench.plots import compare_samples
from stabench.tasks.base import Budget, Task, TaskParams

CONVERGED = 1e-3  # (ψ, θ) within this distance of (0, 0) counts as at the equilibrium


@dataclass
class DiracParams(TaskParams):
    init_psi: float = hyperparameter(1.0)  # Mescheder et al. start their trajectories at (ψ, θ) = (1, 1)
    init_theta: float = hyperparameter(1.0)
    batch_size: int = hyperparameter(1, at_least=1)  # every sample is the same point: one is the whole batch
    optimizer: Literal["adam", "rmsprop", "sgd"] = "sgd"
    lr: float = hyperparameter(0.1, above=0)


class Position(nn.Module):
    """G(z) = θ for every z."""

    def __init__(self, theta: float):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor([theta]))

    def forward(self, z):
        return self.theta.expand(len(z), 1)


class Slope(nn.Module):
    """D(x) = ψx, one parameter, no bias."""

    def __init__(self, psi: float):
        super().__init__()
        self.psi = nn.Parameter(torch.tensor([psi]))

    def forward(self, x):
        return x * self.psi


class DiracGan(Task):
    """Data at 0, G(z) = θ, D(x) = ψx; equilibrium (0, 0); the metrics are the distances to it."""

    name = "dirac"
    version = 1
    description = "Dirac-GAN (Mescheder et al. 2018): data at 0, G = theta, D(x) = psi*x; equilibrium (0, 0)"
    Params = DiracParams
    budgets = {
        "smoke": Budget(steps=200, eval_every=10, spectrum_every=50),
        "quick": Budget(steps=5000, eval_every=10, spectrum_every=250),
        "paper": Budget(steps=20_000, eval_every=20, spectrum_every=1000),
    }
    metric_directions = {"theta_distance": "min", "psi_distance": "min", "steps_to_converge": "min"}

    def build(self, params, seeds, device):
        # Nothing is random: the start is the task's (ψ, θ), the data one point, the latents unused.
        discriminator, generator = Slope(params.init_psi), Position(params.init_theta)

        def zeros(n):
            return torch.zeros(n, 1, device=device)

        return Game(discriminator.to(device), generator.to(device), zeros, zeros, streams=())

    def equilibrium(self, game, params, generator):
        parameter = next(game.generator.parameters())
        point = Point({"psi": torch.zeros(1, dtype=parameter.dtype, device=parameter.device)},
                      {"theta": torch.zeros(1, dtype=parameter.dtype, device=parameter.device)})
        latent = torch.zeros(params.batch_size, 1, dtype=parameter.dtype, device=parameter.device)
        return point, Batch(torch.zeros_like(latent), latent)

    def evaluate(self, game, params, generator):
        theta, psi = float(game.generator.theta.detach()), float(game.discriminator.psi.detach())
        return {"theta_distance": abs(theta), "psi_distance": abs(psi)}

    def summarize(self, curve, params):
        """The first evaluation from which (ψ, θ) stays within CONVERGED of (0, 0) to the end (None if never)."""
        converged_from = None
        for row in curve:
            inside = math.hypot(row["theta_distance"], row["psi_distance"]) <= CONVERGED
            converged_from = (converged_from if converged_from is not None else row["step"]) if inside else None
        return {"steps_to_converge": converged_from}

    def save_samples(self, game, params, path: Path, generator, title):
        theta = game.generator.theta.detach().double().cpu()
        compare_samples(torch.zeros(1, 1, dtype=torch.float64), theta.reshape(1, 1), path, title)
