"""The Dirac-GAN of Mescheder, Geiger & Nowozin (2018), "Which training methods for GANs do actually
converge?": real data is the single point x = 0, G(z) = θ (z ignored), D(x) = ψx. The equilibrium is
(ψ, θ) = (0, 0), where the plain GAN's Jacobian has eigenvalues ±i f'(0): the one-dimensional game on
which each stabilizer's local behaviour can be written down.

Nothing in the game is random, so the seed chooses the start: a point on the circle of radius `init_radius`
around the equilibrium at an angle drawn from the seed's init stream (version 2; version 1 started every
seed at (1, 1), so its 10 seeds were one trajectory). `init_psi` and `init_theta` fix the start instead, as
Mescheder et al.'s figure does at (1, 1).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from stabench.errors import StabenchError
from stabench.game import Batch, Game, Point
from stabench.hyperparams import hyperparameter
from stabench.plots import compare_samples
from stabench.tasks.base import Budget, Task, TaskParams

CONVERGED = 1e-3  # (ψ, θ) within this distance of (0, 0) counts as at the equilibrium
MESCHEDER_START = {"init_psi": 1.0, "init_theta": 1.0}  # where Mescheder et al.'s figure starts its trajectories


@dataclass
class DiracParams(TaskParams):
    init_radius: float = hyperparameter(1.0, above=0)  # the seeded start's distance from the equilibrium
    init_psi: float | None = hyperparameter(None)  # both set: a fixed start (Mescheder et al.'s figure: 1, 1)
    init_theta: float | None = hyperparameter(None)
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


def start(params: DiracParams, seed: int) -> tuple[float, float]:
    """(ψ, θ) to start from: the fixed `init_psi`, `init_theta` where both are set, else the point at
    `init_radius` from (0, 0) at an angle uniform in [0, 2π) drawn from `seed`."""
    if (params.init_psi is None) != (params.init_theta is None):
        raise StabenchError("set both `init_psi` and `init_theta` for a fixed start, or neither for a seeded one")
    if params.init_psi is not None and params.init_theta is not None:
        return params.init_psi, params.init_theta
    angle = float(np.random.default_rng(seed).uniform(0.0, 2 * math.pi))
    return params.init_radius * math.cos(angle), params.init_radius * math.sin(angle)


class DiracGan(Task):
    """Data at 0, G(z) = θ, D(x) = ψx; equilibrium (0, 0); the metrics are the distances to it."""

    name = "dirac"
    version = 2
    description = ("Dirac-GAN (Mescheder et al. 2018): data at 0, G = theta, D(x) = psi*x; equilibrium (0, 0); "
                   "each seed starts at distance 1 at its own angle")
    Params = DiracParams
    budgets = {
        "smoke": Budget(steps=200, eval_every=10, spectrum_every=50),
        "quick": Budget(steps=5000, eval_every=10, spectrum_every=250),
        "paper": Budget(steps=20_000, eval_every=20, spectrum_every=1000),
    }
    metric_directions = {"theta_distance": "min", "psi_distance": "min", "steps_to_converge": "min"}

    def build(self, params, seeds, device):
        # The start is the only random thing: the data is one point, the latents unused.
        psi, theta = start(params, seeds.init)
        discriminator, generator = Slope(psi), Position(theta)

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
