"""What a method sees while it computes a field: the training settings, both players' optimizers
(update rule and state, replayable differentiably), a seeded noise stream, and its own state.

The trainer, `stabench spectrum` and `stabench phase` all build a context with `Context(game,
settings, noise_seed)`, so a method computes the same field in each. At a point where no optimizer state
exists (the initial point or a known equilibrium, analysed without training), `replay` falls back to
plain gradient steps at the training lr and says so in `notes`: the first step of Adam from empty
state has slope lr/eps, which is no property of the game.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from stabench.game import Batch, Game
from stabench.hyperparams import hyperparameter
from stabench.optim import DifferentiableOptimizer, learning_rate, make_optimizer
from stabench.seeds import sub_seed


@dataclass
class TrainingParams:
    """The training settings every task declares (a task's own dataclass extends this one): a method
    reads them through `ctx.settings` and may not declare these names itself."""

    batch_size: int = hyperparameter(64, at_least=1)
    optimizer: Literal["adam", "rmsprop", "sgd"] = "adam"
    lr: float = hyperparameter(2e-4, above=0)
    beta1: float = hyperparameter(0.5, at_least=0, below=1)
    beta2: float = hyperparameter(0.999, at_least=0, below=1)
    eps: float = hyperparameter(1e-8, above=0)
    g_lr: float | None = hyperparameter(None, above=0)  # G's own learning rate; none: `lr` (Metz et al.: half D's)


class Context:
    """The training context of one game: `settings`, `d_optimizer` and `g_optimizer` over the game's
    live parameters, `noise(batch)`, `replay(player)`, and `state`, a dict the method keeps across
    steps (saved with the run's final parameters in state.pt)."""

    def __init__(self, game: Game, settings, noise_seed: int, *, optimizer_state_known: bool = True):
        self.settings = settings
        self.named = {"d": dict(game.discriminator.named_parameters()), "g": dict(game.generator.named_parameters())}
        self.optimizers = {player: make_optimizer(list(named.values()), settings, learning_rate(settings, player))
                           for player, named in self.named.items()}
        self.noise_seed = noise_seed
        self.optimizer_state_known = optimizer_state_known
        self.state: dict[str, Any] = {}
        self.notes: list[str] = []

    @property
    def d_optimizer(self) -> torch.optim.Optimizer:
        return self.optimizers["d"]

    @property
    def g_optimizer(self) -> torch.optim.Optimizer:
        return self.optimizers["g"]

    def step(self, player: str, direction: dict[str, torch.Tensor]) -> None:
        """`player`'s optimizer step along the descent `direction` (one tensor per parameter name)."""
        for name, parameter in self.named[player].items():
            parameter.grad = direction[name].detach()  # a method may hand back a direction that keeps its graph
        self.optimizers[player].step()

    def noise(self, batch: Batch) -> torch.Generator:
        """A generator for the method's own random draws on `batch` (WGAN-GP's interpolation weights),
        seeded by the cell's noise seed and the batch's index: the field is a function of the
        parameters, the batch and the seed."""
        generator = torch.Generator(device=batch.real.device)
        return generator.manual_seed(sub_seed(self.noise_seed, batch.index))

    def random(self, batch: Batch, draw) -> torch.Tensor:
        """`draw(generator)` with this batch's noise generator (`noise(batch)`): a method's random draws of
        one seed, written that way so that a stacked context of many seeds (`stabench.batched`) can call
        it once per seed, with that seed's generator, and stack the draws."""
        return draw(self.noise(batch))

    def replay(self, player: str) -> DifferentiableOptimizer:
        """`player`'s ("d" or "g") optimizer as a differentiable update rule from a copy of its state."""
        if self.optimizer_state_known:
            return DifferentiableOptimizer(self.optimizers[player], self.named[player])
        lr = learning_rate(self.settings, player)
        note = (f"no optimizer state exists at this point: {player.upper()}'s update is replayed as plain gradient "
                f"steps at lr={lr:g}, not {self.settings.optimizer}")
        if note not in self.notes:
            self.notes.append(note)
        return DifferentiableOptimizer.sgd(self.named[player], lr)

    def state_dict(self) -> dict[str, Any]:
        """Both optimizers' state and the method's own, for state.pt."""
        return {"d_optimizer": self.d_optimizer.state_dict(), "g_optimizer": self.g_optimizer.state_dict(),
                "method_state": dict(self.state)}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Restore what `state_dict` saved (an older record may hold D's optimizer only)."""
        for player in ("d", "g"):
            if f"{player}_optimizer" in saved:
                self.optimizers[player].load_state_dict(saved[f"{player}_optimizer"])
        self.state = dict(saved.get("method_state", {}))

    def copy_for(self, game: Game) -> Context:
        """This context over `game` (a copy of the networks, say in float64), optimizer state cast to it."""
        copied = Context(game, self.settings, self.noise_seed, optimizer_state_known=self.optimizer_state_known)
        copied.load_state_dict(self.state_dict())
        dtype = next(game.generator.parameters()).dtype
        copied.state = map_tensors(copied.state, lambda t: t.to(dtype) if t.is_floating_point() else t)
        return copied


def map_tensors(value, change):
    """`value` with `change(tensor)` for every tensor inside its nested dicts, lists and tuples."""
    if torch.is_tensor(value):
        return change(value)
    if isinstance(value, dict):
        return {key: map_tensors(item, change) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(map_tensors(item, change) for item in value)
    return value
