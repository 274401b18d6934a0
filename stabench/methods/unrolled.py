"""Unrolled GANs (Metz et al. 2017): G descends V(D_k, G), D_k being k steps of D's own optimizer.

The unroll replays the update rule of the discriminator's real torch optimizer (`game.d_optimizer`,
set by the runner) on tensors, from a copy of its state (Adam's moments and step count included),
so the generator's gradient flows through every step and through the optimizer state.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from stabench.game import Params, negate
from stabench.methods.base import Method, MethodParams

# Options the functional steps below do not implement, with the value that makes them inert.
INERT_OPTIONS = {
    torch.optim.Adam: {"weight_decay": 0, "amsgrad": False, "maximize": False},
    torch.optim.RMSprop: {"weight_decay": 0, "momentum": 0, "centered": False, "maximize": False},
    torch.optim.SGD: {"weight_decay": 0, "momentum": 0, "maximize": False},
}


def _sqrt(t: Tensor) -> Tensor:
    """√t with derivative 0 instead of ∞ at t = 0, where a dead unit's zero gradient would make NaN.

    Clamping 0 up to the smallest normal number changes nothing downstream: its root is far below an
    ulp of the optimizer's eps, which is added to it.
    """
    return t.clamp_min(torch.finfo(t.dtype).tiny).sqrt()


def _adam(param: Tensor, grad: Tensor, state: dict, group: dict) -> tuple[Tensor, dict]:
    beta1, beta2 = group["betas"]
    step = state.get("step", 0.0) + 1
    exp_avg = torch.lerp(state.get("exp_avg", torch.zeros_like(param)), grad, 1 - beta1)
    exp_avg_sq = torch.addcmul(state.get("exp_avg_sq", torch.zeros_like(param)) * beta2, grad, grad, value=1 - beta2)
    denom = _sqrt(exp_avg_sq) / (1 - beta2**step) ** 0.5 + group["eps"]
    param = torch.addcdiv(param, exp_avg, denom, value=-group["lr"] / (1 - beta1**step))
    return param, {"step": step, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}


def _rmsprop(param: Tensor, grad: Tensor, state: dict, group: dict) -> tuple[Tensor, dict]:
    alpha = group["alpha"]
    square_avg = torch.addcmul(state.get("square_avg", torch.zeros_like(param)) * alpha, grad, grad, value=1 - alpha)
    param = torch.addcdiv(param, grad, _sqrt(square_avg) + group["eps"], value=-group["lr"])
    return param, {"step": state.get("step", 0.0) + 1, "square_avg": square_avg}


def _sgd(param: Tensor, grad: Tensor, state: dict, group: dict) -> tuple[Tensor, dict]:
    return torch.add(param, grad, alpha=-group["lr"]), state


STEPS = {torch.optim.Adam: _adam, torch.optim.RMSprop: _rmsprop, torch.optim.SGD: _sgd}


class DifferentiableOptimizer:
    """A torch optimizer's update rule as a function of tensors, started from a copy of its state.

    `step(params, grads)` returns new tensors (never touching the real parameters or state), so
    autograd follows parameters and optimizer state through any number of steps. Supports the
    optimizers the runner builds: Adam, RMSprop and SGD, without momentum or weight decay.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, named_parameters: dict[str, Tensor]):
        kind = type(optimizer)
        if kind not in STEPS:
            raise ValueError(f"cannot unroll {kind.__name__}; supported: {', '.join(k.__name__ for k in STEPS)}")
        group_of = {id(p): group for group in optimizer.param_groups for p in group["params"]}
        self.update = STEPS[kind]
        self.groups: dict[str, dict[str, Any]] = {}
        self.state: dict[str, dict[str, Any]] = {}
        for name, parameter in named_parameters.items():
            group = group_of[id(parameter)]
            active = {key: group[key] for key, inert in INERT_OPTIONS[kind].items() if group[key] != inert}
            if active:
                raise ValueError(f"cannot unroll {kind.__name__} with {active}")
            self.groups[name] = group
            self.state[name] = {
                key: float(value) if key == "step" else value.detach()
                for key, value in optimizer.state.get(parameter, {}).items()
            }

    def step(self, params: Params, grads: Params) -> Params:
        """Parameters after one step along the descent directions `grads`; advances the copied state."""
        updated = {}
        for name, param in params.items():
            updated[name], self.state[name] = self.update(param, grads[name], self.state[name], self.groups[name])
        return updated


@dataclass
class UnrolledParams(MethodParams):
    k: int = 1  # D optimizer steps unrolled inside G's objective


class Unrolled(Method):
    """G descends V(D_k, G), D_k = k steps of D's optimizer from the current D on the same batch.

    The generator's gradient flows through all k steps; D itself takes ordinary steps. k = 0 is the
    plain GAN.
    """

    Params = UnrolledParams

    def g_direction(self, game, point, batch, params):
        loss = self.loss(params)
        fake = game.generate(point.g, batch.latent)  # G runs once: every unrolled step sees the same fakes
        d = point.d
        if params.k > 0:
            if game.d_optimizer is None:
                raise ValueError("unrolling needs the discriminator's optimizer: set `game.d_optimizer`")
            optimizer = DifferentiableOptimizer(game.d_optimizer, game.point().d)
            for _ in range(params.k):
                ascent = game.gradient(game.value_of_samples(d, batch.real, fake, loss), d, create_graph=True)
                d = optimizer.step(d, negate(ascent))
        return game.gradient(game.value_of_samples(d, batch.real, fake, loss), point.g)
