"""A stabench plugin: consensus optimization (Mescheder, Nowozin & Geiger 2017, "The Numerics of GANs").

With g = (-∇_D V, ∇_G V) the players' descent directions (training follows θ' = -g), consensus
optimization follows θ' = -g - γ∇L with L = ½‖g‖², so each player descends g + γ∇L = g + γJᵀg
(J = ∂g/∂θ). ∇L couples the players, so the method defines the joint `field`, by double backprop.
"""
from dataclasses import dataclass
from typing import Literal

import stabench
from stabench.game import squared_norm


@dataclass
class ConsensusParams(stabench.MethodParams):
    schedule: Literal["alternating", "simultaneous"] = "simultaneous"
    gamma: float = stabench.hyperparameter(10.0, at_least=0)  # weight of ∇(½‖g‖²)


class Consensus(stabench.Method):
    """Both players descend g + gamma*grad(|g|^2/2), g the simultaneous GAN field."""

    Params = ConsensusParams
    source = "Mescheder, Nowozin & Geiger 2017, The Numerics of GANs"

    def field(self, game, point, batch, params, ctx):
        value = game.value(point, batch, self.loss(params))
        g = {"d": {name: -t for name, t in game.gradient(value, point.d, create_graph=True).items()},
             "g": game.gradient(value, point.g, create_graph=True)}
        # ∇L over both players in one backward pass, keyed by player (D and G may share parameter names)
        both = {(player, name): p for player, part in (("d", point.d), ("g", point.g)) for name, p in part.items()}
        grad_l = game.gradient(0.5 * (squared_norm(g["d"]) + squared_norm(g["g"])), both)
        keep = game.differentiable  # spectra differentiate the field again; a training step wants plain tensors

        def descent(player):  # g + γ∇L for one player
            return {name: (t if keep else t.detach()) + params.gamma * grad_l[(player, name)]
                    for name, t in g[player].items()}

        return stabench.Field(d=descent("d"), g=descent("g"))

    # Under `alternating` (or n_critic > 1) a player takes its part of the field at the current point.
    def d_direction(self, game, point, batch, params, ctx):
        return self.field(game, point, batch, params, ctx).d

    def g_direction(self, game, point, batch, params, ctx):
        return self.field(game, point, batch, params, ctx).g


consensus = stabench.register_method(Consensus("consensus", "consensus optimization: both players descend "
                                               "g + gamma*grad(|g|^2/2), g the simultaneous field"))
