"""The plain GAN of Goodfellow et al. (2014): G descends the same V that D ascends."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stabench.game import LOSSES, Field, negate
from stabench.methods.base import Method, MethodParams


@dataclass
class VanillaParams(MethodParams):
    nonsaturating: bool = False  # G maximises E f(D(G(z))) instead of descending V


@dataclass
class PlainGameParams(VanillaParams):
    """The plain GAN's settings for methods that change how its field is followed, not the game."""

    loss: Literal["gan", "wgan"] = "gan"  # f of V: the GAN loss, or the identity of the WGAN's


class Vanilla(Method):
    """The saturating minimax GAN the paper analyses; `nonsaturating=True` is Goodfellow's variant."""

    Params = VanillaParams
    source = "Goodfellow et al. 2014"
    batchable = capturable = True

    def g_direction(self, game, point, batch, params, ctx):
        return game.gradient(generator_loss(game, point, batch, self.loss(params), params.nonsaturating), point.g)


def generator_loss(game, point, batch, loss: str, nonsaturating: bool):
    """What G descends: V, or with `nonsaturating` -E f(D(G(z))) (same fixed points, strong gradients
    where D rejects the fakes confidently)."""
    if nonsaturating:
        return -game.mean(LOSSES[loss](game.discriminate(point.d, game.generate(point.g, batch.latent))))
    return game.value(point, batch, loss)


def plain_field(game, point, batch, loss: str, nonsaturating: bool, create_graph: bool = False) -> Field:
    """The plain GAN's descent directions (D: -∇_D V; G: ∇_G of V or of the non-saturating loss), with
    `create_graph` for methods that differentiate the field itself (consensus, SGA)."""
    value = game.value(point, batch, loss)
    if nonsaturating:
        d = negate(game.gradient(value, point.d, create_graph=create_graph))
        g_loss = generator_loss(game, point, batch, loss, True)
        return Field(d, game.gradient(g_loss, point.g, create_graph=create_graph))
    players = {**{("d", k): v for k, v in point.d.items()}, **{("g", k): v for k, v in point.g.items()}}
    both = game.gradient(value, players, create_graph=create_graph)  # one backward pass for both players
    return Field({name: -both["d", name] for name in point.d}, {name: both["g", name] for name in point.g})


class JointFieldMethod(Vanilla):
    """A method defined by one field over both players (consensus, SGA, extragradient): each player's
    direction is its half of `field`. Simultaneous schedules (their default) compute the field once."""

    batchable = capturable = True  # its hooks only split `field`: a subclass's `field` says what it is

    def d_direction(self, game, point, batch, params, ctx):
        return self.field(game, point, batch, params, ctx).d

    def g_direction(self, game, point, batch, params, ctx):
        return self.field(game, point, batch, params, ctx).g


def plain_spectrum_field(method, game, point, batch, params, ctx) -> Field:
    """`spectrum_field` for methods whose update is no function of the current point (optimism,
    lookahead): the plain GAN field, which their `spectrum_note` names."""
    return plain_field(game, point, batch, method.loss(params), params.nonsaturating)

