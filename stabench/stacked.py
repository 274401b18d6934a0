"""Many seeds of one cell as one model: every parameter and buffer stacked along a leading seed axis.

`StackedGame` evaluates its networks with `torch.func.vmap` over seeds (`functional_call` on a one-seed
template) and averages over samples per seed, summing over seeds, so that each seed's gradient is its
own; `StackedContext`'s optimizers step the stacked parameters (Adam, RMSprop and SGD are elementwise,
and every seed takes every step, so one optimizer over the stack is one per seed, step counts included)
and its random draws are each seed's own. `Seed` puts one seed's slice back into that seed's own game
and context, to evaluate and record it as a single run. What a method must do to run stacked is said
once, in `stabench.methods.base.Method` ("Batchable methods").
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from stabench.context import Context
from stabench.game import Batch, Game, Params
from stabench.seeds import sub_seed


def stack_modules(modules: list[nn.Module]) -> nn.Module:
    """A copy of `modules[0]` whose parameters and buffers are those of all `modules`, stacked on axis 0."""
    parameters, buffers = stack_module_state(modules)
    stacked = copy.deepcopy(modules[0])
    for name, value in {**parameters, **buffers}.items():
        owner, _, leaf = name.rpartition(".")
        module = stacked.get_submodule(owner)
        if leaf in module._parameters:
            module._parameters[leaf] = nn.Parameter(value.detach())
        else:
            module._buffers[leaf] = value
    return stacked


def _vmapped(template: nn.Module, buffers: Params, params: Params, x: Tensor) -> Tensor:
    return vmap(lambda p, b, x: functional_call(template, (p, b), (x,)))(params, buffers, x)


@dataclass
class StackedGame(Game):
    """The games of several seeds as one: samples (seeds, batch, ...), parameters (seeds, ...)."""

    games: list[Game] = field(default_factory=list, repr=False)  # each seed's own (its samplers, its modules)

    def __post_init__(self):
        super().__post_init__()
        # One-seed copies for functional_call: the seeds' own modules are overwritten at every evaluation.
        self._templates = (copy.deepcopy(self.games[0].discriminator), copy.deepcopy(self.games[0].generator))
        # Buffers (spectral norm's estimates) are updated in place, so these references stay current.
        self._buffers = (dict(self.discriminator.named_buffers()), dict(self.generator.named_buffers()))

    @classmethod
    def of(cls, games: list[Game]) -> StackedGame:
        def stacked(sampler):
            return lambda n: torch.stack([sampler(game)(n) for game in games])

        return cls(stack_modules([g.discriminator for g in games]), stack_modules([g.generator for g in games]),
                   stacked(lambda g: g.sample_real), stacked(lambda g: g.sample_latent), games=list(games))

    @property
    def seeds(self) -> int:
        return len(self.games)

    def discriminate(self, d: Params, x: Tensor) -> Tensor:
        return _vmapped(self._templates[0], self._buffers[0], d, x).squeeze(-1)

    def generate(self, g: Params, z: Tensor) -> Tensor:
        return _vmapped(self._templates[1], self._buffers[1], g, z)

    def mean(self, t: Tensor) -> Tensor:
        return t.reshape(len(t), -1).mean(1).sum()

    def per_sample(self, t: Tensor) -> Tensor:
        return t.flatten(2)

    def total(self, t: Tensor) -> Tensor:
        return t.reshape(len(t), -1).sum(1)

    def per_seed(self, values: Tensor, like: Tensor) -> Tensor:
        return values.reshape(values.shape + (1,) * (like.dim() - values.dim()))

    def seed_batch(self, batch: Batch, seed: int) -> Batch:
        """Seed number `seed`'s part of a stacked batch."""
        return Batch(batch.real[seed], batch.latent[seed], batch.index)


class StackedContext(Context):
    """A `Context` over a `StackedGame`: stacked optimizers and method state, each seed's own noise."""

    def __init__(self, game: StackedGame, settings, noise_seeds: list[int]):
        super().__init__(game, settings, noise_seeds[0])
        self.noise_seeds = list(noise_seeds)

    def noise(self, batch: Batch) -> torch.Generator:
        raise TypeError("a stacked context has one noise stream per seed: draw with ctx.random(batch, draw)")

    def random(self, batch: Batch, draw) -> Tensor:
        device = batch.real.device
        return torch.stack([draw(torch.Generator(device=device).manual_seed(sub_seed(seed, batch.index)))
                            for seed in self.noise_seeds])


def unstack(value: Any, seed: int) -> Any:
    """Seed `seed`'s copy of stacked state (nested dicts, lists and tuples). Zero-dimensional tensors
    (optimizer step counts, which every seed shares) and other values are kept as they are."""
    if torch.is_tensor(value):
        return value[seed].clone() if value.dim() > 0 else value.clone()
    if isinstance(value, dict):
        return {key: unstack(item, seed) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(unstack(item, seed) for item in value)
    return value


class Seed:
    """One seed of a stacked game as a single run: its own game and context, filled on demand."""

    def __init__(self, stacked: StackedGame, ctx: StackedContext, index: int, context: Context):
        self.stacked, self.stacked_ctx, self.index = stacked, ctx, index
        self.game, self.ctx = stacked.games[index], context

    @torch.no_grad()
    def fill(self) -> None:
        """Copy the seed's slice of the stacked parameters, buffers, optimizer and method state into its own."""
        for own, stacked in ((self.game.discriminator, self.stacked.discriminator),
                             (self.game.generator, self.stacked.generator)):
            mine = dict(own.named_parameters()) | dict(own.named_buffers())
            for name, value in [*stacked.named_parameters(), *stacked.named_buffers()]:
                mine[name].copy_(value[self.index])
        for player, optimizer in self.stacked_ctx.optimizers.items():
            own_optimizer = self.ctx.optimizers[player]
            saved = optimizer.state_dict()
            # The groups (lr, betas, ...) stay the seed's own; loading casts the state to its parameters.
            state = unstack(saved["state"], self.index)
            for entry in state.values():
                if "step" in entry:  # a captured optimizer counts on the GPU; a single run's count lives on the CPU
                    entry["step"] = entry["step"].cpu()
            own_optimizer.load_state_dict({"state": state, "param_groups": own_optimizer.state_dict()["param_groups"]})
        self.ctx.state = unstack(self.stacked_ctx.state, self.index)

    def snapshot(self) -> list[Tensor]:
        """A copy of the seed's slice of every stacked parameter."""
        return [p[self.index].detach().clone() for p in self._stacked_parameters()]

    @torch.no_grad()
    def restore(self, snapshot: list[Tensor]) -> None:
        """Put back what `snapshot` copied (a diverged seed stays frozen while the others train on)."""
        for p, saved in zip(self._stacked_parameters(), snapshot):
            p[self.index].copy_(saved)

    def _stacked_parameters(self) -> list[Tensor]:
        return [*self.stacked.discriminator.parameters(), *self.stacked.generator.parameters()]
