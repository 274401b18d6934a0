"""A stabench plugin: the non-saturating GAN plus the paper's gradient penalty on G."""
from dataclasses import dataclass

import torch.nn.functional as F

import stabench
from stabench.game import squared_norm


@dataclass
class NsGradRegParams(stabench.MethodParams):
    eta: float = 0.5


class NonSaturatingGradReg(stabench.Method):
    Params = NsGradRegParams

    def g_direction(self, game, point, batch, params):
        value = game.value(point, batch, "gan")
        d_gradient = game.gradient(value, point.d, create_graph=True)  # differentiated again below
        fake_logits = game.discriminate(point.d, game.generate(point.g, batch.latent))
        objective = F.softplus(-fake_logits).mean() + params.eta * squared_norm(d_gradient)
        return game.gradient(objective, point.g)


stabench.register_method(NonSaturatingGradReg("ns-gradreg", "non-saturating G loss plus eta*|grad_D V|^2"))
