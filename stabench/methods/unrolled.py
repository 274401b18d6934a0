"""Unrolled GANs (Metz et al. 2017): G descends V(D_k, G), D_k being k steps of D's own optimizer.

The unroll replays the update rule of the discriminator's real optimizer (`ctx.replay("d")`) on
tensors, from a copy of its state (Adam's moments and step count included), so the generator's
gradient flows through every step and through the optimizer state.
"""
from __future__ import annotations

from dataclasses import dataclass

from stabench.game import LOSSES, negate
from stabench.hyperparams import hyperparameter
from stabench.methods.base import Method, MethodParams


@dataclass
class UnrolledParams(MethodParams):
    k: int = hyperparameter(1, at_least=0)  # D optimizer steps unrolled inside G's objective
    nonsaturating: bool = False  # G descends -E f(D_k(G(z))) instead of V(D_k, G)


class Unrolled(Method):
    """G descends V(D_k, G), D_k = k steps of D's optimizer from the current D on the same batch.

    The generator's gradient flows through all k steps; D itself takes ordinary steps. k = 0 is the
    plain GAN.
    """

    Params = UnrolledParams
    batchable = True  # not capturable: the replay reads D's step count
    source = "Metz et al. 2017 (unrolled through D's optimizer state, as their code)"

    def g_direction(self, game, point, batch, params, ctx):
        loss = self.loss(params)
        fake = game.generate(point.g, batch.latent)  # G runs once: every unrolled step sees the same fakes
        d = point.d
        if params.k > 0:
            optimizer = ctx.replay("d")
            for _ in range(params.k):
                ascent = game.gradient(game.value_of_samples(d, batch.real, fake, loss), d, create_graph=True)
                d = optimizer.step(d, negate(ascent))
        if params.nonsaturating:
            return game.gradient(-game.mean(LOSSES[loss](game.discriminate(d, fake))), point.g)
        return game.gradient(game.value_of_samples(d, batch.real, fake, loss), point.g)
