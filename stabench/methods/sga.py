"""Symplectic gradient adjustment (Balduzzi et al. 2018, "The Mechanics of n-Player Differentiable Games")."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from stabench.game import Field
from stabench.hyperparams import hyperparameter
from stabench.methods.vanilla import JointFieldMethod, PlainGameParams, plain_field

ALIGNMENT_EPSILON = 0.1  # ε of the paper's Algorithm 1


@dataclass
class SgaParams(PlainGameParams):
    schedule: Literal["alternating", "simultaneous"] = "simultaneous"  # the adjustment couples both players
    lam: float = hyperparameter(1.0, at_least=0)  # λ, the paper's value
    align: bool = True  # the paper's sign alignment: λ takes the sign that moves towards a stable fixed point


class Sga(JointFieldMethod):
    """Both players follow ξ + λAᵀξ: ξ the joint field (descent directions), A = (H - Hᵀ)/2 the
    antisymmetric part of its Jacobian H, Aᵀξ = (Hᵀξ - Hξ)/2 by two Jacobian-vector products.

    With `align`, λ is multiplied by sign(⟨ξ, Hᵀξ⟩⟨Aᵀξ, Hᵀξ⟩/d + ε) (d parameters). At an equilibrium
    the dynamics' Jacobian is J + λ(J - Jᵀ)J/2 (J the plain one): -λf'(0)² ± i f'(0) on the Dirac-GAN.
    """

    Params = SgaParams
    batchable = capturable = True
    source = "Balduzzi et al. 2018 (Algorithm 1)"

    def field(self, game, point, batch, params, ctx):
        xi_field = plain_field(game, point, batch, self.loss(params), params.nonsaturating, create_graph=True)
        leaves = [*point.d.values(), *point.g.values()]
        xi = [*xi_field.d.values(), *xi_field.g.values()]
        detached = [t.detach() for t in xi]
        keep = game.differentiable  # the analysis differentiates the adjusted field once more
        # Hᵀξ is one vector-Jacobian product; Hξ is the derivative of Hᵀw in w along ξ (w only marks the product).
        marks = [torch.zeros_like(t, requires_grad=True) for t in xi]
        transposed_marked = torch.autograd.grad(xi, leaves, marks, create_graph=True, materialize_grads=True)
        h_transpose_xi = torch.autograd.grad(xi, leaves, xi if keep else detached, retain_graph=True,
                                             create_graph=keep, materialize_grads=True)
        h_xi = torch.autograd.grad(transposed_marked, marks, xi if keep else detached, create_graph=keep,
                                   materialize_grads=True)
        adjustment = [(ht - h) / 2 for ht, h in zip(h_transpose_xi, h_xi)]
        lam = torch.tensor(params.lam, dtype=xi[0].dtype, device=xi[0].device)
        if params.align:  # per seed in a stacked game, on the device: no host round trip
            size = sum(game.total(torch.ones_like(t)) for t in xi)
            alignment = (_dot(game, detached, h_transpose_xi) * _dot(game, adjustment, h_transpose_xi)).detach() / size
            lam = torch.where(alignment + ALIGNMENT_EPSILON >= 0, lam, -lam)
        adjusted = [x + game.per_seed(lam, a) * a for x, a in zip(xi, adjustment)]
        n_d = len(point.d)
        return Field(dict(zip(point.d, adjusted[:n_d])), dict(zip(point.g, adjusted[n_d:])))


def _dot(game, left, right) -> torch.Tensor:
    return sum(game.total(a * b) for a, b in zip(left, right))
