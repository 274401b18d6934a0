"""Optimistic gradient descent and Optimistic Adam (Daskalakis et al. 2018, "Training GANs with Optimism")."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from stabench.methods.vanilla import PlainGameParams, Vanilla, plain_spectrum_field


@dataclass
class OptimisticParams(PlainGameParams):
    schedule: Literal["alternating", "simultaneous"] = "simultaneous"
    on: Literal["gradient", "update"] = "gradient"  # what is extrapolated: the field, or the optimizer's step


class Optimistic(Vanilla):
    """Optimism: each player moves along 2Fₜ - Fₜ₋₁ (`on=gradient`, the field handed to the optimizer),
    or takes 2Δₜ - Δₜ₋₁ with Δ its optimizer's own step (`on=update`: Optimistic Adam when the optimizer
    is Adam; plain OGD when it is SGD). The first step is a plain one.

    The previous field or step is method state (`ctx.state`), saved and restored with the run.
    """

    Params = OptimisticParams
    batchable = True  # not capturable: the previous step is rebound in ctx.state every iteration
    source = "Daskalakis et al. 2018 (Optimistic Mirror Descent; Optimistic Adam)"
    spectrum_note = ("spectrum of the plain GAN field: an optimistic update also depends on the previous step, "
                     "so it is no function of the current point")

    spectrum_field = plain_spectrum_field

    def d_direction(self, game, point, batch, params, ctx):
        return self._optimistic("d", super().d_direction(game, point, batch, params, ctx), params, ctx)

    def g_direction(self, game, point, batch, params, ctx):
        return self._optimistic("g", super().g_direction(game, point, batch, params, ctx), params, ctx)

    def _optimistic(self, player, direction, params, ctx):
        if params.on != "gradient":
            return direction
        previous = ctx.state.get(f"previous_{player}", direction)
        ctx.state[f"previous_{player}"] = {name: t.detach().clone() for name, t in direction.items()}
        return {name: 2 * t - previous[name] for name, t in direction.items()}

    def apply(self, player, direction, params, ctx):
        if params.on != "update":
            ctx.step(player, direction)
            return
        parameters = ctx.named[player]
        before = {name: p.detach().clone() for name, p in parameters.items()}
        ctx.step(player, direction)
        update = {name: p.detach() - before[name] for name, p in parameters.items()}
        previous = ctx.state.get(f"previous_update_{player}", update)
        with torch.no_grad():
            for name, p in parameters.items():
                p.copy_(before[name] + 2 * update[name] - previous[name])
        ctx.state[f"previous_update_{player}"] = update
