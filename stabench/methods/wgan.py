"""Wasserstein GANs: weight clipping (Arjovsky et al. 2017) and the gradient penalty (Gulrajani et al. 2017)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from stabench.game import Game, Params
from stabench.hyperparams import hyperparameter
from stabench.methods.base import Method, MethodParams


@dataclass
class CriticParams(MethodParams):
    n_critic: int = hyperparameter(5, at_least=1)


@dataclass
class WGANParams(CriticParams):
    # clip every D parameter to [-clip, clip] after each D step; 0 turns it off
    clip: float = hyperparameter(0.01, at_least=0)


@dataclass
class WGANGPParams(CriticParams):
    gp_weight: float = hyperparameter(10.0, at_least=0)  # λ of the gradient penalty


class Critic(Method):
    """V with f(t) = t: D (the critic) ascends E D(x) - E D(G(z)), G descends it."""

    Params = CriticParams
    batchable = capturable = True

    def loss(self, params) -> str:
        return "wgan"

    def g_direction(self, game, point, batch, params, ctx):
        return game.gradient(game.value(point, batch, self.loss(params)), point.g)


class WGAN(Critic):
    """The original WGAN: a critic kept (roughly) Lipschitz by clipping its weights."""

    Params = WGANParams
    source = "Arjovsky et al. 2017"
    batchable = capturable = True

    def constrain(self, game, params):
        if params.clip > 0:
            with torch.no_grad():
                for parameter in game.discriminator.parameters():
                    parameter.clamp_(-params.clip, params.clip)


def interpolation_weights(game: Game, ctx, batch) -> Tensor:
    """α ~ U[0, 1], one per sample (from the batch's noise), shaped to broadcast over a sample's dimensions."""
    real = batch.real
    samples = game.per_sample(real).shape[-2]
    alpha = ctx.random(batch, lambda generator: torch.rand(samples, generator=generator, device=real.device,
                                                           dtype=real.dtype))
    return alpha.reshape(alpha.shape + (1,) * (real.dim() - alpha.dim()))


def gradient_penalty(game: Game, d: Params, real: Tensor, fake: Tensor, alpha: Tensor) -> Tensor:
    """E (‖∇_x D(x̂)‖₂ - 1)² over x̂ = α x + (1 - α) G(z), the norm taken per sample.

    The input gradient keeps its graph: the penalty is differentiated again, with respect to D.
    """
    input_gradient = game.input_gradient(d, alpha * real + (1 - alpha) * fake)
    return game.mean((game.per_sample(input_gradient).norm(dim=-1) - 1) ** 2)


class WGANGP(Critic):
    """WGAN-GP: the critic descends -V + λ E(‖∇_x D(x̂)‖₂ - 1)² on per-sample interpolates x̂."""

    Params = WGANGPParams
    source = "Gulrajani et al. 2017; igul222/improved_wgan_training"
    batchable = True  # not capturable: the interpolation weights are drawn from each batch's own generator

    def d_direction(self, game, point, batch, params, ctx):
        fake = game.generate(point.g, batch.latent)
        value = game.value_of_samples(point.d, batch.real, fake, self.loss(params))
        alpha = interpolation_weights(game, ctx, batch)
        penalty = gradient_penalty(game, point.d, batch.real, fake, alpha)
        return game.gradient(params.gp_weight * penalty - value, point.d)
