"""Extragradient (Korpelevich 1976) and Extra-Adam (Gidel et al. 2019, "A Variational Inequality
Perspective on Generative Adversarial Networks")."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stabench.game import Field, Point
from stabench.hyperparams import hyperparameter
from stabench.methods.vanilla import JointFieldMethod, PlainGameParams, plain_field


@dataclass
class ExtragradientParams(PlainGameParams):
    schedule: Literal["alternating", "simultaneous"] = "simultaneous"  # both players extrapolate together
    extrapolation: float | None = hyperparameter(None, above=0)  # η of x - ηF(x); none: the training lr
    with_optimizer: bool = False  # extrapolate with the optimizer's own update rule and state (Extra-Adam)


class Extragradient(JointFieldMethod):
    """Both players' field taken at the extrapolated point x' = x - ηF(x), applied at x.

    With `with_optimizer` (Extra-Adam), x' is one step of each player's own optimizer from a copy of
    its state (Adam's moments included), so the extrapolation moves as far as the update does. At an
    equilibrium the field's Jacobian becomes J + ηJ² (J the plain one): -ηf'(0)² ± i f'(0) on the Dirac-GAN.
    """

    Params = ExtragradientParams
    batchable = True  # not capturable: Extra-Adam replays the optimizers from their step count
    source = "Korpelevich 1976; Gidel et al. 2019 (Extra-Adam, Algorithm 4)"

    def field(self, game, point, batch, params, ctx):
        loss = self.loss(params)
        here = plain_field(game, point, batch, loss, params.nonsaturating)
        if params.with_optimizer:
            ahead = Point(ctx.replay("d").step(point.d, here.d), ctx.replay("g").step(point.g, here.g))
        else:
            eta = params.extrapolation if params.extrapolation is not None else ctx.settings.lr
            ahead = Point({name: p - eta * here.d[name] for name, p in point.d.items()},
                          {name: p - eta * here.g[name] for name, p in point.g.items()})
        there = plain_field(game, ahead, batch, loss, params.nonsaturating)
        return Field(there.d, there.g)
