"""The gradient-regularized GAN of Nagarajan & Kolter (2017), eq. (4)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stabench.game import squared_norm
from stabench.hyperparams import hyperparameter
from stabench.methods.base import Method, MethodParams
from stabench.methods.vanilla import generator_loss


@dataclass
class GradRegParams(MethodParams):
    eta: float = hyperparameter(0.5, at_least=0)
    loss: Literal["gan", "wgan"] = "gan"
    nonsaturating: bool = False  # G's own term is -E f(D(G(z))); the penalty stays that of V


class GradReg(Method):
    """G descends V + η‖∇_{θD} V‖², the squared norm over all D parameters (double backprop);
    with `nonsaturating`, -E f(D(G(z))) + η‖∇_{θD} V‖².

    D is unchanged: it ascends V with no penalty. The penalty is zero at an equilibrium, so the
    equilibrium stays where it was while its Jacobian becomes Hurwitz (Theorem 3.2).
    """

    Params = GradRegParams
    batchable = capturable = True
    source = "Nagarajan & Kolter 2017, eq. (4); locuslab/gradient_regularized_gan"

    def diagnostics(self, game, point, batch, params, ctx):
        """`penalty` η‖∇_D V‖², G's own term (`objective`: V, or the non-saturating loss), and `penalty_share`,
        |penalty| / (|objective| + |penalty|): whether the penalty acts at all."""
        value = game.value(point, batch, self.loss(params))
        penalty = params.eta * float(squared_norm(game.gradient(value, point.d)))
        own = generator_loss(game, point, batch, self.loss(params), True) if params.nonsaturating else value
        own = float(own.detach())
        total = abs(own) + abs(penalty)
        return {"penalty": penalty, "objective": own, "penalty_share": abs(penalty) / total if total else 0.0}

    def g_direction(self, game, point, batch, params, ctx):
        value = game.value(point, batch, self.loss(params))
        d_gradient = game.gradient(value, point.d, create_graph=True)  # double backprop through ∇_D V
        own = generator_loss(game, point, batch, self.loss(params), True) if params.nonsaturating else value
        return game.gradient(own + params.eta * squared_norm(d_gradient), point.g)
