"""8 Gaussians on a ring: the paper's Figure 1 and the toy of Metz et al. (2017)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from stabench.game import Game
from stabench.metrics import mode_metrics
from stabench.plots import scatter_samples
from stabench.tasks.base import Budget, Task, TaskParams


@dataclass
class MogParams(TaskParams):
    n_modes: int = 8
    radius: float = 2.0
    std: float = 0.02
    latent_dim: int = 256
    hidden: int = 128
    init_gain: float = 0.8
    d_input_scale: float = 0.25  # the reference D sees x / 4
    batch_size: int = 512
    lr: float = 1e-4
    eval_samples: int = 2500


class ScaledInput(nn.Module):
    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return x * self.scale


def orthogonal_init(network: nn.Module, gain: float, generator: torch.Generator) -> nn.Module:
    for module in network.modules():
        if isinstance(module, nn.Linear):
            nn.init.orthogonal_(module.weight, gain=gain, generator=generator)
            nn.init.zeros_(module.bias)
    return network


def ring_centres(n_modes: int, radius: float) -> torch.Tensor:
    angles = torch.arange(n_modes, dtype=torch.float64) * (2 * math.pi / n_modes)
    return torch.stack([radius * torch.cos(angles), radius * torch.sin(angles)], dim=1)


class MixtureOfGaussians(Task):
    """Modes at angles 2πk/8 on a circle of radius 2, std 0.02; MLPs of the reference code."""

    name = "mog"
    version = 1
    description = "8 Gaussians on a ring of radius 2 (std 0.02), reference MLPs; modes captured of 8"
    Params = MogParams
    budgets = {
        "smoke": Budget(steps=300, eval_every=50),
        "quick": Budget(steps=20_000, eval_every=250),
        "paper": Budget(steps=100_000, eval_every=1000),
    }
    metric_directions = {
        "modes_captured": "max",
        "high_quality": "max",
        "kl": "min",
        "steps_to_all_modes": "min",
        "seconds_to_all_modes": "min",
    }

    def defaults(self, method_name):
        return {
            "gradreg": {"eta": 0.5},
            # the original WGAN recipe
            "wgan": {"optimizer": "rmsprop", "lr": 5e-5, "clip": 0.01, "n_critic": 5},
            # the 8-Gaussians toy of the WGAN-GP reference code
            "wgan-gp": {"gp_weight": 0.1, "n_critic": 5, "beta1": 0.5, "beta2": 0.9},
        }.get(method_name, {})

    def build(self, params, seed, device):
        init = torch.Generator().manual_seed(seed)
        generator = orthogonal_init(
            nn.Sequential(
                nn.Linear(params.latent_dim, params.hidden), nn.ReLU(),
                nn.Linear(params.hidden, params.hidden), nn.ReLU(),
                nn.Linear(params.hidden, 2),
            ),
            params.init_gain, init,
        )
        discriminator = orthogonal_init(
            nn.Sequential(ScaledInput(params.d_input_scale), nn.Linear(2, params.hidden), nn.ReLU(), nn.Linear(params.hidden, 1)),
            params.init_gain, init,
        )
        sampling = torch.Generator(device=device).manual_seed(seed + 1)
        centres = ring_centres(params.n_modes, params.radius).float().to(device)

        def sample_real(n):
            which = torch.randint(params.n_modes, (n,), generator=sampling, device=device)
            return centres[which] + params.std * torch.randn(n, 2, generator=sampling, device=device)

        def sample_latent(n):
            return torch.randn(n, params.latent_dim, generator=sampling, device=device)

        return Game(discriminator.to(device), generator.to(device), sample_real, sample_latent)

    def _samples(self, game, params, generator):
        device = next(game.generator.parameters()).device
        latent = torch.randn(params.eval_samples, params.latent_dim, generator=generator).to(device)
        with torch.no_grad():
            return game.generator(latent).cpu()

    def evaluate(self, game, params, generator):
        samples = self._samples(game, params, generator)
        return mode_metrics(samples, ring_centres(params.n_modes, params.radius), params.std)

    def summarize(self, curve, params):
        """The first evaluation at which every mode was captured (None if never)."""
        for row in curve:
            if row["modes_captured"] == params.n_modes:
                return {"steps_to_all_modes": row["step"], "seconds_to_all_modes": row["wall_seconds"]}
        return {"steps_to_all_modes": None, "seconds_to_all_modes": None}

    def save_samples(self, game, params, path: Path, generator, title):
        samples = self._samples(game, params, generator)
        scatter_samples(samples, ring_centres(params.n_modes, params.radius), path, title, params.radius)
