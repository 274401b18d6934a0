"""8 Gaussians on a ring: the paper's Figure 1 and the toy of Metz et al. (2017)."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from stabench.game import Game
from stabench.hyperparams import hyperparameter
from stabench.metrics import mode_metrics
from stabench.plots import scatter_samples
from stabench.tasks.base import Budget, Task, TaskParams


@dataclass
class MogParams(TaskParams):
    n_modes: int = hyperparameter(8, at_least=1)
    radius: float = hyperparameter(2.0, above=0)
    std: float = hyperparameter(0.02, above=0)
    latent_dim: int = hyperparameter(256, at_least=1)
    hidden: int = hyperparameter(128, at_least=1)
    init_gain: float = hyperparameter(0.8, above=0)
    d_input_scale: float = hyperparameter(0.25, above=0)  # the reference D sees x / 4
    batch_size: int = hyperparameter(512, at_least=1)
    lr: float = hyperparameter(1e-4, above=0)
    eval_samples: int = hyperparameter(2500, at_least=1)


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
        # tracked spectra cost about 10 s a point on one core (two Arnoldi searches on 50k parameters)
        "quick": Budget(steps=20_000, eval_every=250, spectrum_every=2500),
        "paper": Budget(steps=100_000, eval_every=1000, spectrum_every=10_000),
    }
    metric_directions = {
        "modes_captured": "max",
        "high_quality": "max",
        "kl": "min",
        "steps_to_all_modes": "min",
        "seconds_to_all_modes": "min",
    }

    def build(self, params, seeds, device):
        init = torch.Generator().manual_seed(seeds.init)
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
        sampling = torch.Generator(device=device).manual_seed(seeds.data)
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
