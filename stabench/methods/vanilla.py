"""The plain GAN of Goodfellow et al. (2014): G descends the same V that D ascends."""
from __future__ import annotations

from dataclasses import dataclass

from stabench.game import LOSSES
from stabench.methods.base import Method, MethodParams


@dataclass
class VanillaParams(MethodParams):
    nonsaturating: bool = False  # G maximises E f(D(G(z))) instead of descending V


class Vanilla(Method):
    """The saturating minimax GAN the paper analyses; `nonsaturating=True` is Goodfellow's variant."""

    Params = VanillaParams

    def g_direction(self, game, point, batch, params):
        if params.nonsaturating:
            f = LOSSES[self.loss(params)]
            objective = -f(game.discriminate(point.d, game.generate(point.g, batch.latent))).mean()
        else:
            objective = game.value(point, batch, self.loss(params))
        return game.gradient(objective, point.g)
