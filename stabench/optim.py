"""Optimizers: building them from the training settings, and replaying their update differentiably.

`DifferentiableOptimizer` is a torch optimizer's update rule as a function of tensors, started from
a copy of its state (Adam's moments and step count included), so autograd follows parameters and
optimizer state through any number of steps (unrolled GANs, Extra-Adam).
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

Params = dict[str, Tensor]
SUPPORTED = ("adam", "rmsprop", "sgd")  # the one list: TrainingParams.optimizer, make, replay

# Options the functional steps below do not implement, with the value that makes them inert.
INERT_OPTIONS = {
    torch.optim.Adam: {"weight_decay": 0, "amsgrad": False, "maximize": False},
    torch.optim.RMSprop: {"weight_decay": 0, "momentum": 0, "centered": False, "maximize": False},
    torch.optim.SGD: {"weight_decay": 0, "momentum": 0, "maximize": False},
}


def learning_rate(settings, player: str) -> float:
    """`player`'s ("d" or "g") learning rate: `lr`, or for G `g_lr` where a setting gives one."""
    return settings.g_lr if player == "g" and settings.g_lr is not None else settings.lr


def make_optimizer(parameters, settings, lr: float | None = None) -> torch.optim.Optimizer:
    """The torch optimizer named by `settings.optimizer` with its lr (or `lr`), betas and eps."""
    lr = settings.lr if lr is None else lr
    if settings.optimizer == "adam":
        return torch.optim.Adam(parameters, lr=lr, betas=(settings.beta1, settings.beta2), eps=settings.eps)
    if settings.optimizer == "rmsprop":
        return torch.optim.RMSprop(parameters, lr=lr, eps=settings.eps)
    if settings.optimizer == "sgd":
        return torch.optim.SGD(parameters, lr=lr)
    raise ValueError(f"unknown optimizer {settings.optimizer!r}; supported: {', '.join(SUPPORTED)}")


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

    `step(params, grads)` returns new tensors (never touching the real parameters or state). Supports
    the optimizers `make_optimizer` builds: Adam, RMSprop and SGD, without momentum or weight decay.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, named_parameters: Mapping[str, Tensor]):
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

    @classmethod
    def sgd(cls, named_parameters: Mapping[str, Tensor], lr: float) -> DifferentiableOptimizer:
        """Plain gradient steps of size `lr`: the replay where no optimizer state exists."""
        return cls(torch.optim.SGD(list(named_parameters.values()), lr=lr), named_parameters)

    def step(self, params: Params, grads: Params) -> Params:
        """Parameters after one step along the descent directions `grads`; advances the copied state."""
        updated = {}
        for name, param in params.items():
            updated[name], self.state[name] = self.update(param, grads[name], self.state[name], self.groups[name])
        return updated
