"""The game every method plays: V(D, G) = E_x f(D(x)) + E_z f(-D(G(z))) (eq. 2 of the paper).

D outputs a logit, ascends V; G descends V. Parameters travel as dicts of tensors (a `Point`), so the
same functions serve a training step (on the live parameters) and the stability analysis (on any
point, differentiated once more by autograd: `Game.differentiable` keeps the graph of every
gradient a method takes).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

Params = dict[str, Tensor]

LOSSES: dict[str, Callable[[Tensor], Tensor]] = {
    "gan": lambda t: -F.softplus(-t),  # f(t) = -log(1 + e^-t): f'(0) = 1/2, f''(0) = -1/4
    "wgan": lambda t: t,
}


@dataclass
class Point:
    """Parameters of both players."""

    d: Params
    g: Params


@dataclass
class Batch:
    """Real samples x and latents z for one evaluation of the field; `index` numbers the batches of a
    run (a method's noise for this batch is seeded by it, see `Context.noise`)."""

    real: Tensor
    latent: Tensor
    index: int = 0


@dataclass
class Field:
    """Descent directions: what each player's optimizer subtracts (h = -(d, g) is the dynamics)."""

    d: Params
    g: Params


@dataclass
class Game:
    """Two networks and the samplers of real data and latents (seeded, on the game's device).

    Training state (optimizers, a method's noise and memory) lives in the `Context`, not here.
    """

    discriminator: nn.Module
    generator: nn.Module
    sample_real: Callable[[int], Tensor]
    sample_latent: Callable[[int], Tensor]
    differentiable: bool = False  # keep the graph of every gradient (for Jacobians of the field)
    # Every random generator the samplers draw from (() when they draw nothing): a run saves and restores
    # their state to resume where it stopped. None: undeclared, so a run of this game cannot be resumed.
    streams: tuple[torch.Generator, ...] | None = None
    _live: Point = field(init=False, repr=False)

    def __post_init__(self):
        self._live = Point(dict(self.discriminator.named_parameters()), dict(self.generator.named_parameters()))

    def point(self) -> Point:
        """The live parameters: gradients taken at this point are the training step's."""
        return self._live

    def discriminate(self, d: Params, x: Tensor) -> Tensor:
        # Calling the module directly at the live point skips functional_call's parameter swap.
        out = self.discriminator(x) if d is self._live.d else functional_call(self.discriminator, d, (x,))
        return out.squeeze(-1)

    def generate(self, g: Params, z: Tensor) -> Tensor:
        return self.generator(z) if g is self._live.g else functional_call(self.generator, g, (z,))

    def gradient(self, output: Tensor, params: Params, create_graph: bool = False) -> Params:
        """∂output/∂params as a dict; `create_graph` for a gradient that is differentiated again."""
        grads = torch.autograd.grad(output, list(params.values()), create_graph=create_graph or self.differentiable)
        return dict(zip(params, grads))

    def input_gradient(self, d: Params, x: Tensor) -> Tensor:
        """∇_x D(x), one row per sample, with its graph (a penalty on it is differentiated again)."""
        if not x.requires_grad:  # constant samples (real data) still need a gradient of their own
            x = x.detach().requires_grad_(True)
        return torch.autograd.grad(self.discriminate(d, x).sum(), x, create_graph=True)[0]

    def value(self, point: Point, batch: Batch, loss: str) -> Tensor:
        """V on a batch: the mean of f over real logits plus the mean of f(-logit) over fakes."""
        return self.value_of_samples(point.d, batch.real, self.generate(point.g, batch.latent), loss)

    def value_of_samples(self, d: Params, real: Tensor, fake: Tensor, loss: str) -> Tensor:
        """V with the fakes already generated (so several D points can share one pass of G)."""
        f = LOSSES[loss]
        return self.mean(f(self.discriminate(d, real))) + self.mean(f(-self.discriminate(d, fake)))

    # Reductions a batchable method uses instead of tensor methods (see `stabench.methods.base`): here they
    # are the plain ones; a stacked game of many seeds (`stabench.batched`) keeps every seed's apart.

    def mean(self, t: Tensor) -> Tensor:
        """The mean over samples (every axis of a per-sample quantity such as the logits)."""
        return t.mean()

    def per_sample(self, t: Tensor) -> Tensor:
        """`t` with each sample's values flattened into the last axis: (samples, values)."""
        return t.flatten(1)

    def total(self, t: Tensor) -> Tensor:
        """The sum of every entry of `t` (a stacked game: one sum per seed)."""
        return t.sum()

    def per_seed(self, values: Tensor, like: Tensor) -> Tensor:
        """`values` (a `total`) shaped to broadcast against a tensor `like` of parameters or samples."""
        return values

    def sample_batch(self, batch_size: int, index: int = 0) -> Batch:
        return Batch(self.sample_real(batch_size), self.sample_latent(batch_size), index)


def squared_norm(tensors: Params) -> Tensor:
    """Sum of squares over all tensors of a parameter dict (the squared global norm)."""
    return cast(Tensor, sum((t * t).sum() for t in tensors.values()))


def negate(tensors: Params) -> Params:
    """Every tensor of a parameter dict negated (an ascent gradient as a descent direction)."""
    return {name: -t for name, t in tensors.items()}
