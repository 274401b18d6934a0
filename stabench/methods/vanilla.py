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
    source = "Goodfellow et al. 2014"

    def g_direction(self, game, point, batch, params, ctx):
        return game.gradient(generator_loss(game, point, batch, self.loss(params), params.nonsaturating), point.g)


def generator_loss(game, point, batch, loss: str, nonsaturating: bool):
    """What G descends: V, or with `nonsaturating` -E f(D(G(z))) (same fixed points, strong gradients
    where D rejects the fakes confidently)."""
    if nonsaturating:
        return -LOSSES[loss](game.discriminate(point.d, game.generate(point.g, batch.latent))).mean()
    return game.value(point, batch, loss)
