"""Spectral normalization of the discriminator (Miyato et al. 2018)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from stabench.errors import NotApplicable
from stabench.hyperparams import hyperparameter
from stabench.methods.vanilla import PlainGameParams, Vanilla

NORMALISED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
WARM_UP_ITERATIONS = 20  # at the start, so σ is near the top singular value before the first step


class SpectralNormalisation(nn.Module):
    """W / σ with σ = uᵀ W v from stored singular-vector estimates u, v (W flattened to out × rest).

    u and v move only in `refresh` (a power iteration after each D step), so the normalised weight is a
    function of W alone between steps: the field, its spectrum and a reloaded run all see the same D.
    """

    u: torch.Tensor  # buffers, registered in __init__
    v: torch.Tensor

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        matrix = weight.detach().flatten(1)
        start = torch.Generator().manual_seed(0)
        self.register_buffer("u", F.normalize(torch.randn(matrix.shape[0], generator=start, dtype=matrix.dtype), dim=0))
        self.register_buffer("v", F.normalize(torch.randn(matrix.shape[1], generator=start, dtype=matrix.dtype), dim=0))
        self.refresh(weight, WARM_UP_ITERATIONS)

    @torch.no_grad()
    def refresh(self, weight: torch.Tensor, iterations: int) -> None:
        def power_iteration(weight, u, v):
            matrix = weight.flatten(1)
            for _ in range(iterations):
                v = F.normalize(matrix.T @ u, dim=0)
                u = F.normalize(matrix @ v, dim=0)
            return u, v

        # A stacked model of many seeds (`stabench.batched`) holds one estimate per seed along a leading axis.
        iterate = torch.func.vmap(power_iteration) if self.u.dim() > 1 else power_iteration
        u, v = iterate(weight.detach(), self.u, self.v)
        self.u.copy_(u)
        self.v.copy_(v)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight / (self.u @ weight.flatten(1) @ self.v)


@dataclass
class SpectralNormParams(PlainGameParams):
    power_iterations: int = hyperparameter(1, at_least=1)  # per D step, as the paper


class SpectralNorm(Vanilla):
    """The plain GAN with every linear and convolutional weight of D divided by its largest singular
    value; the trained parameters (and the spectrum's coordinates) are the unnormalised weights."""

    Params = SpectralNormParams
    batchable = capturable = True
    source = "Miyato et al. 2018 (one power iteration per step)"

    def prepare(self, game, params):
        layers = [module for module in game.discriminator.modules() if isinstance(module, NORMALISED)]
        if not layers:
            raise NotApplicable(f"spectral normalization needs a linear or convolutional layer in D; this task's D "
                                f"({type(game.discriminator).__name__}) has none")
        for layer in layers:
            parametrize.register_parametrization(layer, "weight", SpectralNormalisation(layer.weight))
        return dataclasses.replace(game)  # the live point now holds the unnormalised weights

    def constrain(self, game, params):
        for module in game.discriminator.modules():
            if parametrize.is_parametrized(module, "weight"):
                normalisation = module.parametrizations.weight[0]
                normalisation.refresh(module.parametrizations.weight.original, params.power_iterations)
