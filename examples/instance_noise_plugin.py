"""A stabench plugin: instance noise (Sønderby et al. 2016; Arjovsky & Bottou 2017).

D sees every sample, real and generated, with Gaussian noise of std `sigma` added; the game is the plain
GAN's otherwise. Smoothing both distributions by the same kernel makes their supports overlap, so D's
gradient reaches G even where the data and the generator's samples are apart; on the Dirac-GAN the
equilibrium's eigenvalues become -σ²/4 ± √(σ⁴/16 - 1/4) (Mescheder et al. 2018).
"""
from dataclasses import dataclass

import torch

import stabench


@dataclass
class InstanceNoiseParams(stabench.MethodParams):
    # In data units: 5 times `mog`'s mode std and a fifteenth of the gap between neighbouring modes, so a
    # generated sample near a mode overlaps it without the modes blurring into each other.
    sigma: float = stabench.hyperparameter(0.1, at_least=0)


class InstanceNoise(stabench.Method):
    """The plain GAN, D seeing real and generated samples plus N(0, sigma^2) noise."""

    Params = InstanceNoiseParams
    source = "Sønderby et al. 2016; Arjovsky & Bottou 2017; analysed by Mescheder et al. 2018"
    version = 1  # part of every run_id: bump it when a change makes old numbers incomparable

    def d_direction(self, game, point, batch, params, ctx):
        return stabench.negate(game.gradient(noisy_value(game, point, batch, params, ctx), point.d))

    def g_direction(self, game, point, batch, params, ctx):
        return game.gradient(noisy_value(game, point, batch, params, ctx), point.g)


def noisy_value(game, point, batch, params, ctx):
    """V with noise on every sample D sees, drawn from `ctx.noise(batch)`: both players' directions on one
    batch see the same noise, and the field is a function of the parameters, the batch and the seed."""
    noise = ctx.noise(batch)

    def noisy(x):
        return x + params.sigma * torch.randn(x.shape, generator=noise, dtype=x.dtype, device=x.device)

    return game.value_of_samples(point.d, noisy(batch.real), noisy(game.generate(point.g, batch.latent)), "gan")


instance_noise = stabench.register_method(InstanceNoise("instance-noise", "plain GAN, D sees every sample plus "
                                                        "N(0, sigma^2) noise"))
# Their Dirac-GAN figure: std 0.7, each step averaging 1000 noise draws (`dirac`'s batch is one point otherwise).
stabench.register_reference("instance-noise", "dirac", {"sigma": 0.7, "batch_size": 1000},
                            "Mescheder et al. 2018, notebooks/DiracGAN.ipynb (LMescheder/GAN_stability): "
                            "GAN_InstNoise(0.7)")
