"""Zero-centred gradient penalties R1 and R2 (Mescheder, Geiger & Nowozin 2018, "Which training
methods for GANs do actually converge?")."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stabench.hyperparams import hyperparameter
from stabench.methods.vanilla import PlainGameParams, Vanilla


@dataclass
class ZeroCentredParams(PlainGameParams):
    gamma: float = hyperparameter(10.0, at_least=0)  # their value on CelebA, LSUN and ImageNet
    penalised: Literal["real", "fake"] = "real"  # R1 on the data, R2 on the generator's samples


class ZeroCentred(Vanilla):
    """D ascends V - γ/2 E‖∇ₓD(x)‖² (D's logit), x real (R1) or generated (R2); G is the plain GAN's.

    The penalty vanishes wherever D is flat on the penalised samples, so the equilibrium stays where it
    was; on the Dirac-GAN its eigenvalues become -γ/2 ± √(γ²/4 - f'(0)²).
    """

    Params = ZeroCentredParams
    batchable = capturable = True
    source = "Mescheder et al. 2018 (LMescheder/GAN_stability)"

    def d_direction(self, game, point, batch, params, ctx):
        fake = game.generate(point.g, batch.latent)
        value = game.value_of_samples(point.d, batch.real, fake, self.loss(params))
        penalised = batch.real if params.penalised == "real" else fake
        penalty = game.mean(game.per_sample(game.input_gradient(point.d, penalised)).pow(2).sum(-1))
        return game.gradient(params.gamma / 2 * penalty - value, point.d)
