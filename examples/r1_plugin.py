"""A stabench plugin: the non-saturating GAN with the R1 penalty on D (Mescheder et al. 2018)."""
from dataclasses import dataclass

import torch
import torch.nn.functional as F

import stabench


@dataclass
class R1Params(stabench.MethodParams):
    gamma: float = stabench.hyperparameter(10.0, at_least=0)


class R1(stabench.Method):
    """Non-saturating GAN, D penalised by gamma/2*E|grad_x D(x_real)|^2."""

    Params = R1Params
    source = "Mescheder et al. 2018"

    def d_direction(self, game, point, batch, params, ctx):
        real = batch.real.detach().requires_grad_(True)
        (input_gradient,) = torch.autograd.grad(game.discriminate(point.d, real).sum(), real, create_graph=True)
        penalty = 0.5 * params.gamma * input_gradient.flatten(1).pow(2).sum(1).mean()
        return game.gradient(penalty - game.value(point, batch, "gan"), point.d)

    def g_direction(self, game, point, batch, params, ctx):
        fake_logits = game.discriminate(point.d, game.generate(point.g, batch.latent))
        return game.gradient(F.softplus(-fake_logits).mean(), point.g)


r1 = stabench.register_method(R1("r1", "non-saturating GAN, D penalised by gamma/2*E|grad_x D(x_real)|^2"))
