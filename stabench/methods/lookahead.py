"""Lookahead-minmax (Chavdarova et al. 2021, "Taming GANs with Lookahead-Minmax")."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from stabench.hyperparams import hyperparameter
from stabench.methods.vanilla import PlainGameParams, Vanilla, plain_spectrum_field


@dataclass
class LookaheadParams(PlainGameParams):
    k: int = hyperparameter(5, at_least=1)  # fast iterations between slow updates
    alpha: float = hyperparameter(0.5, above=0, at_most=1)  # how far the slow weights move towards the fast


class Lookahead(Vanilla):
    """The plain GAN's iterations as fast weights; every k iterations both players' slow weights move α
    of the way to the fast ones, and the fast weights restart from them. The slow weights are method
    state, saved with the run."""

    Params = LookaheadParams
    batchable = True  # not capturable: the slow update depends on the iteration count
    source = "Chavdarova et al. 2021 (Algorithm 1, joint lookahead on both players)"
    spectrum_note = ("spectrum of the plain GAN field: lookahead's averaging every k iterations is no function "
                     "of the current point")

    spectrum_field = plain_spectrum_field

    def between_iterations(self, game, params, ctx, completed):
        fast = ctx.named
        if "slow" not in ctx.state:
            ctx.state["slow"] = {player: {name: p.detach().clone() for name, p in named.items()}
                                 for player, named in fast.items()}
        if completed == 0 or completed % params.k:
            return
        with torch.no_grad():
            for player, named in fast.items():
                for name, p in named.items():
                    slow = ctx.state["slow"][player][name]
                    slow.add_(p - slow, alpha=params.alpha)
                    p.copy_(slow)
