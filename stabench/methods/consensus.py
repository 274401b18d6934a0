"""Consensus optimization (Mescheder, Nowozin & Geiger 2017, "The Numerics of GANs")."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from stabench.game import Field, squared_norm
from stabench.hyperparams import hyperparameter
from stabench.methods.vanilla import JointFieldMethod, PlainGameParams, plain_field


@dataclass
class ConsensusParams(PlainGameParams):
    schedule: Literal["alternating", "simultaneous"] = "simultaneous"  # as the paper: both players at once
    gamma: float = hyperparameter(10.0, at_least=0)  # their value with RMSProp on the toy and image tasks


def joint_gradient(game, point, output) -> Field:
    """∂output/∂(D, G) as a Field."""
    grads = torch.autograd.grad(output, [*point.d.values(), *point.g.values()], create_graph=game.differentiable)
    return Field(dict(zip(point.d, grads[:len(point.d)])), dict(zip(point.g, grads[len(point.d):])))


class Consensus(JointFieldMethod):
    """Both players follow v - γ∇L, L = ½‖v‖² of the joint field v: the plain field plus γ Jᵀv.

    L's gradient costs one double backprop through the joint field; at an equilibrium the Jacobian
    becomes J - γJᵀJ, whose eigenvalues have real part ≤ 0 (on the Dirac-GAN -γf'(0)² ± i f'(0)).
    """

    Params = ConsensusParams
    batchable = capturable = True
    source = "Mescheder et al. 2017, The Numerics of GANs"

    def field(self, game, point, batch, params, ctx):
        plain = plain_field(game, point, batch, self.loss(params), params.nonsaturating, create_graph=True)
        consensus = joint_gradient(game, point, (squared_norm(plain.d) + squared_norm(plain.g)) / 2)
        return Field({name: plain.d[name] + params.gamma * consensus.d[name] for name in plain.d},
                     {name: plain.g[name] + params.gamma * consensus.g[name] for name in plain.g})
