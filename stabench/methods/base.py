"""What a method is: typed hyperparameters, a schedule, a field, and optional constraints.

Every hook receives the `Context` (`ctx`): the training settings (`ctx.settings.lr`), both players'
optimizers and their differentiable replay (`ctx.replay("d")`), a seeded noise generator per batch
(`ctx.noise(batch)`), and `ctx.state`, a dict the method keeps across steps.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from stabench.context import Context, TrainingParams
from stabench.errors import StabenchError
from stabench.game import Batch, Field, Game, Point, negate
from stabench.hyperparams import check_params_class, field_types, hyperparameter
from stabench.hyperparams import defaults as declared_defaults


@dataclass
class MethodParams:
    """Hyperparameters every method has; a family's own dataclass extends this one."""

    schedule: Literal["alternating", "simultaneous"] = "alternating"
    n_critic: int = hyperparameter(1, at_least=1)  # D steps per G step


@dataclass(frozen=True)
class Schedule:
    """How the two players take turns: `simultaneous`, or D `d_steps` times then G, fresh batches."""

    simultaneous: bool
    d_steps: int


class Method:
    """A family of stabilizers; an instance is a named variant with some defaults fixed.

    Subclasses set `Params` and implement `g_direction` (and `d_direction` where D differs from
    plain ascent on V). Variants are one line: `Unrolled("unrolled10", "...", k=10)`. Bump `version`
    when a change makes old numbers incomparable: it is part of every run_id.

    Batchable methods. The seeds of one cell can train as one stacked model (`stabench.batched`): every
    parameter, sample and field then has a leading seed axis, and losses are summed over seeds, so each
    seed's gradient is its own. A method is batchable when its hooks
    - average over samples with `game.mean(t)`, never `t.mean()`; flatten a sample with
      `game.per_sample(t)`; reduce over parameters per seed with `game.total(t)` (and broadcast such a
      per-seed value back with `game.per_seed(values, like)`); read no Python number off a tensor;
    - draw random numbers with `ctx.random(batch, draw)`, not `ctx.noise(batch)`;
    - otherwise go through `game` (`discriminate`, `generate`, `value`, `gradient`, `input_gradient`),
      elementwise tensor operations, `ctx.step`, `ctx.replay`, `ctx.named` and `ctx.state` (whose tensors
      are stacked too);
    and the class that defines each hook a method overrides says `batchable = True` in its own body (a
    subclass that overrides a hook vouches for it again: `vouches`). Other methods train one seed per
    process, and their records say why. `capturable = True` says more: an iteration reads no state that
    changes between iterations other than the parameters, the optimizers' state and module buffers (no
    `ctx.random`, no `ctx.replay`, no rebound `ctx.state` entry, no step count), so on CUDA it is
    recorded once as a CUDA graph and replayed (`stabench.graphs`).
    """

    Params: ClassVar[type] = MethodParams
    version: ClassVar[int] = 1
    source: ClassVar[str] = ""  # the paper (and code) the method follows, for `stabench list methods`
    # What `stabench spectrum` analyses when the update is no function of the current point alone
    # (optimism, lookahead): said in the spectrum's notes; `spectrum_field` is then that field.
    spectrum_note: ClassVar[str] = ""
    batchable: ClassVar[bool] = True  # see "Batchable methods" above; declared by each class defining a hook
    capturable: ClassVar[bool] = True

    def __init__(self, name: str, description: str, **fixed: Any):
        unknown = set(fixed) - set(declared_defaults(self.Params))
        if unknown:
            raise TypeError(f"{type(self).__name__} has no hyperparameters {sorted(unknown)}")
        self.name = name
        self.description = description
        self.fixed = fixed

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def defaults(self) -> dict[str, Any]:
        """The variant's default hyperparameters (before a task's reference settings)."""
        return {**declared_defaults(self.Params), **self.fixed}

    def loss(self, params) -> str:
        """The loss family f of V: `gan` unless the method's parameters say otherwise."""
        return getattr(params, "loss", "gan")

    def schedule(self, params) -> Schedule:
        return Schedule(simultaneous=params.schedule == "simultaneous", d_steps=params.n_critic)

    def d_direction(self, game: Game, point: Point, batch: Batch, params, ctx: Context) -> dict:
        """D's descent direction: -∇_D V (D ascends V)."""
        return negate(game.gradient(game.value(point, batch, self.loss(params)), point.d))

    def g_direction(self, game: Game, point: Point, batch: Batch, params, ctx: Context) -> dict:
        raise NotImplementedError

    def field(self, game: Game, point: Point, batch: Batch, params, ctx: Context) -> Field:
        """Both descent directions on one batch: the simultaneous field the analysis linearises."""
        return Field(self.d_direction(game, point, batch, params, ctx), self.g_direction(game, point, batch, params, ctx))

    def spectrum_field(self, game: Game, point: Point, batch: Batch, params, ctx: Context) -> Field:
        """The field `stabench spectrum` linearises: `field` unless `spectrum_note` says otherwise."""
        return self.field(game, point, batch, params, ctx)

    def prepare(self, game: Game, params) -> Game:
        """The task's game as this method trains it (spectral normalisation reparametrises D); unchanged by default."""
        return game

    def apply(self, player: str, direction: dict, params, ctx: Context) -> None:
        """Move `player` ("d" or "g") along its descent `direction`: its optimizer's step by default."""
        ctx.step(player, direction)

    def constrain(self, game: Game, params) -> None:
        """Called after every D step (weight clipping); nothing by default."""

    def diagnostics(self, game: Game, point: Point, batch: Batch, params, ctx: Context) -> dict[str, float]:
        """Extra columns of the curve at each evaluation, on the last training batch (never ranked); none by default."""
        return {}

    def between_iterations(self, game: Game, params, ctx: Context, completed: int) -> None:
        """Called before the first training iteration (`completed` = 0) and after each one; nothing by default."""


HOOKS = ("d_direction", "g_direction", "field", "apply", "constrain", "between_iterations", "prepare")


def vouches(method: Method, flag: str) -> bool:
    """Every class that defines one of `method`'s tensor hooks says `flag = True` (`batchable`,
    `capturable`) in its own body, so a plugin overriding a hook of a batchable family is not taken on trust."""
    owners = {next(cls for cls in type(method).__mro__ if hook in vars(cls)) for hook in HOOKS}
    return all(vars(owner).get(flag) is True for owner in owners)


TRAINING_KEYS = frozenset(f.name for f in dataclasses.fields(TrainingParams))


def check_method(method: Method) -> None:
    """What registration refuses, in one line, beside a name outside `names.NAME` (the registry checks
    names): a Params type `--set` cannot parse, a hyperparameter that shadows a training setting (read those
    from `ctx.settings`), a version that is not an integer."""
    owner = f"method `{getattr(method, 'name', method)}`"
    check_params_class(method.Params, owner)
    shadowed = sorted(TRAINING_KEYS & set(field_types(method.Params)))
    if shadowed:
        raise StabenchError(f"{owner} declares `{shadowed[0]}`, a training setting every task declares; "
                            f"read it from ctx.settings.{shadowed[0]} instead")
    if not isinstance(method.version, int) or isinstance(method.version, bool):
        raise StabenchError(f"{owner}: `version` must be an integer, got {method.version!r}")
