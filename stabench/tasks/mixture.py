"""Mixtures of 2-D Gaussians of one std (`mog`'s ring, `grid25`'s grid): data, the reference MLPs, the
VEEGAN/PacGAN mode metrics and drift diagnostics. A task only says where the modes are (`centres`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from stabench.game import Game
from stabench.hyperparams import hyperparameter
from stabench.metrics import LAST, mean_mode_distance, mode_metrics, tail_means
from stabench.plots import scatter_samples
from stabench.tasks.base import Budget, Task, TaskParams

MODE_DIRECTIONS = {"modes_captured": "max", "high_quality": "max", "kl": "min"}


@dataclass
class MixtureParams(TaskParams):
    """Settings of every mixture task, with mog's defaults; a task adds its geometry (and may change them)."""

    std: float = hyperparameter(0.02, above=0)
    latent_dim: int = hyperparameter(256, at_least=1)
    hidden: int = hyperparameter(128, at_least=1)  # width of every hidden layer of G and D
    g_layers: int = hyperparameter(2, at_least=1)  # hidden ReLU layers of G
    d_layers: int = hyperparameter(1, at_least=1)  # hidden ReLU layers of D
    # orthogonal (the reference code, scaled by init_gain), or he: He-uniform hidden and Glorot-uniform output
    # weights, as Gulrajani et al.'s gan_toy.py (init_gain unused); biases start at 0 either way
    init: Literal["orthogonal", "he"] = "orthogonal"
    init_gain: float = hyperparameter(0.8, above=0)
    # the reference D sees x / 4, which maps the ring's radius 2 to 0.5
    d_input_scale: float = hyperparameter(0.25, above=0)
    batch_size: int = hyperparameter(512, at_least=1)
    lr: float = hyperparameter(1e-4, above=0)
    eval_samples: int = hyperparameter(2500, at_least=1)


class ScaledInput(nn.Module):
    def __init__(self, scale: float):
        super().__init__()
        self.scale = scale

    def forward(self, x):
        return x * self.scale


def mlp(inputs: int, hidden: int, layers: int, outputs: int) -> list[nn.Module]:
    """`layers` hidden ReLU layers of width `hidden`, then a linear output."""
    sizes = [inputs] + [hidden] * layers
    modules: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes, sizes[1:]):
        modules += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    return modules + [nn.Linear(sizes[-1], outputs)]


def initialise(network: nn.Module, params, generator: torch.Generator) -> nn.Module:
    """`params.init` on every linear layer of `network`, in order, from `generator`."""
    linear = [module for module in network.modules() if isinstance(module, nn.Linear)]
    for index, module in enumerate(linear):
        if params.init == "orthogonal":
            nn.init.orthogonal_(module.weight, gain=params.init_gain, generator=generator)
        elif index < len(linear) - 1:
            nn.init.kaiming_uniform_(module.weight, nonlinearity="relu", generator=generator)
        else:
            nn.init.xavier_uniform_(module.weight, generator=generator)
        nn.init.zeros_(module.bias)
    return network


class GaussianMixture(Task):
    """Equal-weight Gaussians of std `params.std` at `centres(params)`; the MLPs of the reference code.

    `evaluate` gives the mode metrics (`stabench.metrics.mode_metrics`) and two drift diagnostics that
    are curve columns, not ranking metrics (so not in `metric_directions`): `mean_mode_distance`, the
    mean distance of the samples to their nearest mode (data units), and `critic_gap`, E D(x) − E D(G(z))
    of D's logits on as many real samples as generated ones.
    """

    Params = MixtureParams
    budgets = {
        "smoke": Budget(steps=300, eval_every=50),
        # tracked spectra cost about 10 s a point on one core (two Arnoldi searches on 50k parameters)
        "quick": Budget(steps=20_000, eval_every=250, spectrum_every=2500),
        "paper": Budget(steps=100_000, eval_every=1000, spectrum_every=10_000),
    }
    metric_directions = {
        **MODE_DIRECTIONS,
        "steps_to_all_modes": "min",
        "seconds_to_all_modes": "min",
        **{f"{name}_last{LAST}": direction for name, direction in MODE_DIRECTIONS.items()},
    }

    def centres(self, params) -> torch.Tensor:
        """The modes, (K, 2) in float64."""
        raise NotImplementedError

    def build(self, params, seeds, device):
        init = torch.Generator().manual_seed(seeds.init)
        generator = initialise(nn.Sequential(*mlp(params.latent_dim, params.hidden, params.g_layers, 2)), params, init)
        discriminator = initialise(
            nn.Sequential(ScaledInput(params.d_input_scale), *mlp(2, params.hidden, params.d_layers, 1)), params, init)
        sampling = torch.Generator(device=device).manual_seed(seeds.data)
        centres = self.centres(params).float().to(device)

        def sample_real(n):
            return _draw(centres, params.std, n, sampling)

        def sample_latent(n):
            return torch.randn(n, params.latent_dim, generator=sampling, device=device)

        return Game(discriminator.to(device), generator.to(device), sample_real, sample_latent, streams=(sampling,))

    def _samples(self, game, params, generator):
        device = next(game.generator.parameters()).device
        latent = torch.randn(params.eval_samples, params.latent_dim, generator=generator).to(device)
        with torch.no_grad():
            return game.generator(latent).cpu()

    def evaluate(self, game, params, generator):
        # Real samples are drawn after the generated ones, so the mode metrics' draws do not depend on them.
        samples = self._samples(game, params, generator)
        centres = self.centres(params)
        real = _draw(centres.float(), params.std, params.eval_samples, generator)
        device = next(game.discriminator.parameters()).device
        with torch.no_grad():
            logits_real = game.discriminate(game.point().d, real.to(device))
            logits_fake = game.discriminate(game.point().d, samples.to(device))
        return {**mode_metrics(samples, centres, params.std),
                "mean_mode_distance": mean_mode_distance(samples, centres),
                "critic_gap": float(logits_real.double().mean() - logits_fake.double().mean())}

    def summarize(self, curve, params):
        """The first evaluation at which every mode was captured (None if never), and the mode metrics'
        means over the last evaluations (`kl_last5_defined`: the share of them whose KL was measured)."""
        reached = next((row for row in curve if row["modes_captured"] == len(self.centres(params))), {})
        means = tail_means(curve, [*MODE_DIRECTIONS, "kl_defined"], LAST)
        return {"steps_to_all_modes": reached.get("step"), "seconds_to_all_modes": reached.get("wall_seconds"),
                **{f"{name}_last{LAST}": means[name] for name in MODE_DIRECTIONS},
                f"kl_last{LAST}_defined": means["kl_defined"]}

    def save_samples(self, game, params, path: Path, generator, title):
        samples = self._samples(game, params, generator)
        centres = self.centres(params)
        scatter_samples(samples, centres, path, title, float(centres.abs().max()))


def _draw(centres: torch.Tensor, std: float, n: int, generator: torch.Generator) -> torch.Tensor:
    """n samples of the mixture, on the centres' device: a uniform mode each, plus Gaussian noise."""
    which = torch.randint(len(centres), (n,), generator=generator, device=centres.device)
    return centres[which] + std * torch.randn(n, 2, generator=generator, device=centres.device)
