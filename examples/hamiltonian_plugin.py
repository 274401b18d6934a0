"""A stabench plugin: Hamiltonian gradient descent (Balduzzi et al. 2018; Abernethy, Lai & Wibisono 2019;
Loizou et al. 2020).

With v = (-∇_D V, ∇_G V) the players' descent directions (plain training follows θ' = -v), both players
descend the Hamiltonian H = ½‖v‖², i.e. follow θ' = -∇H = -Jᵀv (J = ∂v/∂θ): consensus optimization without
its plain term. ∇H couples the players, so the method defines the joint `field`, by double backprop. At an
equilibrium (v = 0) the Jacobian of θ' is -JᵀJ: symmetric negative semi-definite, all rotation gone.
"""
from dataclasses import dataclass
from typing import Literal

import stabench


@dataclass
class HamiltonianParams(stabench.MethodParams):
    schedule: Literal["alternating", "simultaneous"] = "simultaneous"  # ∇H is one direction of both players


class Hamiltonian(stabench.Method):
    """Both players descend grad(|v|^2/2), v the simultaneous GAN field."""

    Params = HamiltonianParams
    source = "Balduzzi et al. 2018; Abernethy, Lai & Wibisono 2019; Loizou et al. 2020"

    def field(self, game, point, batch, params, ctx):
        value = game.value(point, batch, self.loss(params))
        v = {"d": stabench.negate(game.gradient(value, point.d, create_graph=True)),
             "g": game.gradient(value, point.g, create_graph=True)}
        # ∇H over both players in one backward pass, keyed by player (D and G may share parameter names).
        # game.gradient keeps this graph only when game.differentiable: spectra differentiate the field
        # again, a training step wants plain tensors.
        both = {(player, name): p for player, part in (("d", point.d), ("g", point.g)) for name, p in part.items()}
        grad_h = game.gradient(0.5 * (stabench.squared_norm(v["d"]) + stabench.squared_norm(v["g"])), both)
        return stabench.Field(d={name: grad_h[("d", name)] for name in point.d},
                              g={name: grad_h[("g", name)] for name in point.g})

    # Under `alternating` (or n_critic > 1) a player takes its part of ∇H at the current point.
    def d_direction(self, game, point, batch, params, ctx):
        return self.field(game, point, batch, params, ctx).d

    def g_direction(self, game, point, batch, params, ctx):
        return self.field(game, point, batch, params, ctx).g


hamiltonian = stabench.register_method(Hamiltonian("hamiltonian", "Hamiltonian gradient descent: both players "
                                                   "descend grad(|v|^2/2), v the simultaneous GAN field"))
