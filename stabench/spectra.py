"""Jacobian spectra of a method's field at a parameter point.

Simultaneous gradient steps follow h(θ) = -(g_D, g_G), θ ← θ + αh(θ); the paper's stability analysis
linearises h: J = ∂h/∂θ. J is taken with torch.autograd, as the fields are (`Game.differentiable`
keeps the graph of every gradient a method takes), in float64 on a copy of the networks and on a
fixed evaluation batch: the task's exact batch where it knows an equilibrium (h = 0 there to machine
precision), else `batch_size` samples drawn from the cell's own `spectrum` stream (`Seeds`).

Up to `dense_limit` parameters: every eigenvalue of the dense J, built row by row from
vector-Jacobian products. Above: the k eigenvalues of largest real part and the k of largest
modulus, by Arnoldi (scipy's `eigs`) on Jacobian-vector products (the double-vjp trick:
Jv = ∂/∂u [(Jᵀu)·v]); J is never formed. For a ReLU network h is only piecewise smooth, and J is
its derivative on the piece the point lies in.
"""
from __future__ import annotations

import copy
import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigs

from stabench.cell import Cell, pick_device, resolve
from stabench.context import Context
from stabench.errors import StabenchError
from stabench.game import Batch, Game, Point
from stabench.hyperparams import identity
from stabench.records import RUN_FILE, CorruptRecord, RunRecord, is_record, read_record, read_state

DENSE_LIMIT = 2000  # parameters; a dense J of this size takes as many backward passes
# What a dense J may take, itself and the batched backward passes that make it; past it, refused. A pass
# takes about PASS_BYTES per row and number of the evaluation batch (lq: 90), so a record's batch setting
# (lq's spectrum_batch=10**7: 40 GB) or `--k` near the size of a large game could ask for far more memory.
DENSE_BYTES = 2**34
PASS_BYTES = 128
DEFAULT_K = 20
ZERO_TOLERANCE = 1e-6  # |λ| ≤ ZERO_TOLERANCE · max(1, spectral radius) counts as a zero eigenvalue
# ARPACK's stopping rule: residual ≤ tolerance · |λ|. Much tighter and the eigenvalues nearest zero (a
# network's J has a large null space) never converge.
ARNOLDI_TOLERANCE = 1e-8
# Implicit restarts per search, each about ncv - k products: bounds the time; past it, what converged is kept.
ARNOLDI_MAX_RESTARTS = 30
# The Krylov basis: 5k vectors converge the rightmost eigenvalues of the `mog` J in a third of the
# products of ARPACK's default 2k+1 (270 against 421 and not converged); capped at this many bytes.
ARNOLDI_BASIS_BYTES = 2**30


class NotDifferentiable(StabenchError):
    """The Jacobian has non-finite entries: the field is not differentiable at the point."""

    def __init__(self, method_name: str):
        super().__init__(f"the Jacobian of `{method_name}`'s field is not finite at this point "
                         "(the field is not differentiable there)")


def analysis_copy(game: Game, ctx: Context, dtype: torch.dtype = torch.float64) -> tuple[Game, Context]:
    """The game with its networks copied to `dtype`, keeping the graph of every gradient, and the
    context over the copy (optimizer and method state cast along); the live game is untouched."""
    copied = dataclasses.replace(game, discriminator=copy.deepcopy(game.discriminator).to(dtype),
                                 generator=copy.deepcopy(game.generator).to(dtype), differentiable=True)
    return copied, ctx.copy_for(copied)


class FieldMap:
    """h(θ) = -(g_D, g_G) of one method on one batch, as a function of one flat vector θ (D's parameters first)."""

    def __init__(self, method, method_params, game: Game, batch: Batch, ctx: Context):
        self.method, self.method_params, self.game, self.batch, self.ctx = method, method_params, game, batch, ctx
        if method.spectrum_note and method.spectrum_note not in ctx.notes:
            ctx.notes.append(method.spectrum_note)
        live = game.point()
        self.d_shapes = {name: p.shape for name, p in live.d.items()}
        self.g_shapes = {name: p.shape for name, p in live.g.items()}
        self.sizes = [math.prod(shape) for shape in (*self.d_shapes.values(), *self.g_shapes.values())]

    @property
    def size(self) -> int:
        return sum(self.sizes)

    def flatten(self, point: Point) -> torch.Tensor:
        parts = [point.d[name] for name in self.d_shapes] + [point.g[name] for name in self.g_shapes]
        return torch.cat([part.detach().reshape(-1) for part in parts])

    def leaves(self, theta: torch.Tensor) -> list[torch.Tensor]:
        """θ as one tensor per parameter, each a leaf requiring grad.

        Separate leaves rather than views of θ: gradients then need no θ-sized zero-filled buffers
        per parameter (a fifth of the time of a Jacobian-vector product on the `mog` networks).
        """
        shapes = [*self.d_shapes.values(), *self.g_shapes.values()]
        return [piece.detach().clone().view(shape).requires_grad_(True)
                for piece, shape in zip(theta.split(self.sizes), shapes)]

    def __call__(self, leaves: list[torch.Tensor]) -> torch.Tensor:
        """h, flat, at the point `leaves` (from `self.leaves`)."""
        n_d = len(self.d_shapes)
        point = Point(dict(zip(self.d_shapes, leaves[:n_d])), dict(zip(self.g_shapes, leaves[n_d:])))
        field = self.method.spectrum_field(self.game, point, self.batch, self.method_params, self.ctx)
        return -torch.cat([field.d[name].reshape(-1) for name in self.d_shapes]
                          + [field.g[name].reshape(-1) for name in self.g_shapes])

    def at(self, theta: torch.Tensor) -> torch.Tensor:
        """h at θ, detached."""
        return self(self.leaves(theta)).detach()


def _flat_gradient(output, leaves, grad_output, **options) -> torch.Tensor:
    return torch.cat([g.reshape(-1) for g in torch.autograd.grad(output, leaves, grad_output, materialize_grads=True,
                                                                 **options)])


def dense_jacobian(field_map: FieldMap, theta: torch.Tensor, rows_per_pass: int = 64) -> torch.Tensor:
    """J = ∂h/∂θ at θ from vector-Jacobian products, `rows_per_pass` rows per batched backward pass
    (vmapped: on a loaded CPU ~40 times faster than one pass per row for the small `mog` networks).
    Refused in one line where it would take more than DENSE_BYTES."""
    size, numbers = field_map.size, field_map.batch.real.numel() + field_map.batch.latent.numel()
    needed = size * size * 8 + min(rows_per_pass, size) * numbers * PASS_BYTES
    if needed > DENSE_BYTES:
        remedy = (f"ask for fewer eigenvalues (`--k` below {size - 1}) to use Arnoldi" if size > DENSE_LIMIT else
                  "the evaluation batch is this large by the run's task settings")
        raise StabenchError(f"a dense Jacobian of {size:,} parameters on an evaluation batch of {numbers:,} numbers "
                            f"would take about {needed / 1e9:.1f} GB, more than the {DENSE_BYTES / 1e9:.1f} GB "
                            f"allowed; {remedy}")
    leaves = field_map.leaves(theta)
    h = field_map(leaves)
    units = torch.eye(len(h), dtype=h.dtype, device=h.device)
    rows = []
    for first in range(0, len(h), rows_per_pass):
        chunk = units[first:first + rows_per_pass]
        grads = torch.autograd.grad(h, leaves, chunk, retain_graph=True, is_grads_batched=True, allow_unused=True)
        # a parameter h does not depend on (WGAN's output bias of D) has no gradient at all
        rows.append(torch.cat([(g if g is not None else torch.zeros((len(chunk), *leaf.shape), dtype=h.dtype,
                                                                   device=h.device)).reshape(len(chunk), -1)
                               for g, leaf in zip(grads, leaves)], dim=1))
    return torch.cat(rows)


def jacobian_operator(field_map: FieldMap, theta: torch.Tensor) -> LinearOperator:
    """v ↦ Jv at θ without forming J: h and Jᵀu are built once, each product is one backward pass."""
    leaves = field_map.leaves(theta)
    h = field_map(leaves)
    u = torch.zeros_like(h, requires_grad=True)
    transposed = _flat_gradient(h, leaves, u, create_graph=True)  # Jᵀu, linear in u

    def matvec(v):
        tangent = torch.as_tensor(np.ravel(v), dtype=h.dtype, device=h.device)
        (product,) = torch.autograd.grad(transposed, u, tangent, retain_graph=True)
        if not torch.isfinite(product).all():
            raise NotDifferentiable(field_map.method.name)
        return product.cpu().numpy()

    return LinearOperator((len(h), len(h)), matvec=matvec, dtype=np.float64)


class SpectrumTooSlow(StabenchError):
    """Even the shortest Arnoldi search would take far longer than the time allowed."""


@dataclass
class Searches:
    """The two Arnoldi searches at one point: the k eigenvalues of largest real part (`rightmost`) and
    the k of largest modulus (`largest`), whether both converged, and the real part of the rightmost
    Ritz vector (a warm start for the next point of a trajectory)."""

    rightmost: np.ndarray
    largest: np.ndarray
    converged: bool
    next_start: np.ndarray | None

    def merged(self) -> np.ndarray:
        """Both lists with an eigenvalue found by both searches kept once (a repeated one twice)."""
        unmatched, merged = list(self.rightmost), list(self.rightmost)
        for value in self.largest:
            twin = next((i for i, other in enumerate(unmatched) if abs(value - other) <= 1e-8 * max(1.0, abs(value))),
                        None)
            if twin is None:
                merged.append(value)
            else:
                del unmatched[twin]
        return np.array(merged, dtype=complex)


def arnoldi_searches(operator: LinearOperator, k: int, seed: int = 0, max_restarts: int = ARNOLDI_MAX_RESTARTS,
                     seconds: float | None = None, start: np.ndarray | None = None,
                     tolerance: float = ARNOLDI_TOLERANCE, at_least_one_pass: bool = False) -> Searches:
    """Both Arnoldi searches of `operator`, from `start` (else a seeded random vector).

    With `seconds`, the restarts are cut to fit that time, estimated from one timed product; what
    converged by then is kept (`converged` false). If even one pass of each search cannot fit, raise
    SpectrumTooSlow, or with `at_least_one_pass` take that one pass anyway.
    """
    size = operator.shape[0]
    if start is None:
        start = np.random.default_rng(seed).standard_normal(size)  # ARPACK's own start is random
    basis = min(size - 1, max(2 * k + 1, min(5 * k, ARNOLDI_BASIS_BYTES // (8 * size))))
    if seconds is not None:
        timed = time.perf_counter()
        operator.matvec(start)
        per_product = time.perf_counter() - timed
        affordable = seconds / (2 * per_product)  # products per search; each builds a basis, then restarts
        if affordable < basis and not at_least_one_pass:
            raise SpectrumTooSlow(f"two Arnoldi searches need about {2 * basis * per_product:.0f} s at "
                                  f"{per_product:.2g} s per Jacobian-vector product, over the {seconds:g} s allowed")
        max_restarts = max(1, min(max_restarts, int((affordable - basis) / (basis - k))))
    found, converged, next_start = {}, True, None
    for which in ("LR", "LM"):
        try:
            result = eigs(operator, k=k, which=which, v0=start, ncv=basis, tol=tolerance, maxiter=max_restarts,
                          return_eigenvectors=which == "LR")
        except ArpackNoConvergence as partial:
            result, converged = (partial.eigenvalues, partial.eigenvectors) if which == "LR" else partial.eigenvalues, False
        if which == "LR":
            values, vectors = result
            found[which] = values
            if len(values):
                next_start = vectors[:, int(np.argmax(values.real))].real.copy()
        else:
            found[which] = result
    return Searches(found["LR"], found["LM"], converged, next_start)


def arnoldi_eigenvalues(operator: LinearOperator, k: int, seed: int = 0, max_restarts: int = ARNOLDI_MAX_RESTARTS,
                        seconds: float | None = None) -> tuple[np.ndarray, bool]:
    """The k eigenvalues of largest real part and the k of largest modulus (duplicates dropped), and
    whether both searches converged within `max_restarts` (else the eigenvalues that did); see
    `arnoldi_searches`."""
    searches = arnoldi_searches(operator, k, seed, max_restarts, seconds)
    return searches.merged(), searches.converged


def by_real_part(eigenvalues: np.ndarray) -> np.ndarray:
    """Sorted by real part, largest first, then by imaginary part (a conjugate pair stays together)."""
    return eigenvalues[np.lexsort((-eigenvalues.imag, -eigenvalues.real))]


def summarize(eigenvalues: np.ndarray, complete: bool) -> dict[str, Any]:
    """max_real (over eigenvalues that are not zero), n_positive (Re λ above the zero tolerance),
    n_zero (|λ| within it), spectral_radius, max_imag. With `complete` false (Arnoldi) the counts
    and max_imag cover only the eigenvalues found, and are lower bounds."""
    radius = float(np.abs(eigenvalues).max()) if len(eigenvalues) else 0.0
    tolerance = ZERO_TOLERANCE * max(1.0, radius)
    nonzero = eigenvalues[np.abs(eigenvalues) > tolerance]
    return {
        "max_real": float(nonzero.real.max()) if len(nonzero) else None,
        "n_positive": int((eigenvalues.real > tolerance).sum()),
        "n_zero": int((np.abs(eigenvalues) <= tolerance).sum()),
        "spectral_radius": radius,
        "max_imag": float(np.abs(eigenvalues.imag).max()) if len(eigenvalues) else 0.0,
        "zero_tolerance": tolerance,
        "n_eigenvalues": len(eigenvalues),
        "complete": complete,
    }


@dataclass
class Spectrum:
    """Eigenvalues of J at one point (sorted by real part), how they were found, and |h| there."""

    eigenvalues: np.ndarray
    solver: str  # "dense" or "arnoldi"
    n_parameters: int
    field_norm: float  # ‖h‖ at the point: zero at an equilibrium
    seconds: float

    converged: bool = True  # Arnoldi: both searches converged (else the eigenvalues that did)
    notes: tuple[str, ...] = ()  # what the spectrum is of, where that is not plain (see Context.replay)

    @property
    def summary(self) -> dict[str, Any]:
        return {**summarize(self.eigenvalues, complete=self.solver == "dense"), "solver": self.solver,
                "converged": self.converged, "n_parameters": self.n_parameters, "field_norm": self.field_norm,
                "seconds": self.seconds, **({"notes": " ".join(self.notes)} if self.notes else {})}

    def rows(self) -> list[dict[str, float]]:
        """One row per eigenvalue, for spectrum.csv."""
        return [{"real": float(value.real), "imag": float(value.imag)} for value in self.eigenvalues]


def evaluation_batch(cell: Cell, game: Game) -> tuple[Point | None, Batch]:
    """The task's equilibrium (None if unknown) and the fixed batch spectra are evaluated on, in `game`'s dtype."""
    seeds = cell.seeds
    known = cell.task.equilibrium(game, cell.task_params, torch.Generator().manual_seed(seeds.spectrum))
    if known is not None:
        return known
    parameter = next(game.generator.parameters())
    sampler = cell.task.build(cell.task_params, dataclasses.replace(seeds, data=seeds.spectrum), parameter.device)
    batch = sampler.sample_batch(cell.task_params.batch_size)
    return None, Batch(batch.real.to(parameter.dtype), batch.latent.to(parameter.dtype))


def analysis_field(cell: Cell, game: Game | None = None, ctx: Context | None = None) -> tuple[FieldMap, Point | None]:
    """`cell.method`'s field on the cell's evaluation batch, over a float64 copy of `game` and `ctx` (by
    default a game freshly built from the cell's seeds, with no optimizer state), and the task's
    equilibrium (None where none is known)."""
    if game is None:
        game = cell.build_game(torch.device("cpu"))
        ctx = Context(game, cell.task_params, cell.seeds.noise, optimizer_state_known=False)
    analysed, analysed_ctx = analysis_copy(game, ctx)
    equilibrium, batch = evaluation_batch(cell, analysed)
    return FieldMap(cell.method, cell.method_params, analysed, batch, analysed_ctx), equilibrium


EQUILIBRIUM_TOLERANCE = 1e-8  # |h| at an equilibrium, relative to max(1, |θ|): zero up to rounding
NEIGHBOURHOOD = 1e-6  # how far from the task's equilibrium the field is probed
JUMP = 1e5  # |h| / NEIGHBOURHOOD next to the point above this: no smooth field, a kink (|J| would be 1e5)


def check_equilibrium(field_map: FieldMap, theta: torch.Tensor, field_norm: float, cell: Cell) -> None:
    """Refuse, in one line, a spectrum at the task's equilibrium when it is no equilibrium of this method:
    the field is not zero there, or jumps away from zero right next to it (a penalty with a kink there,
    such as WGAN-GP's E(‖∇ₓD‖ − 1)² at ∇ₓD = 0, which pushes D away)."""
    directions = torch.randn(3, len(theta), generator=torch.Generator().manual_seed(cell.seeds.spectrum),
                             dtype=theta.dtype)
    nearby = max(float(field_map.at(theta + NEIGHBOURHOOD * d / d.norm()).norm()) for d in directions)
    if field_norm > EQUILIBRIUM_TOLERANCE * max(1.0, float(theta.norm())) or nearby > JUMP * NEIGHBOURHOOD:
        raise StabenchError(f"the equilibrium of task `{cell.task.name}` is not an equilibrium of `{cell.method.name}`: "
                            f"|h| = {field_norm:.3g} there and up to {nearby:.3g} within {NEIGHBOURHOOD:g} of it")


def game_spectrum(cell: Cell, game: Game, ctx: Context, *, at_equilibrium: bool = False, k: int = DEFAULT_K,
                  dense_limit: int = DENSE_LIMIT, seconds: float | None = None) -> Spectrum:
    """The spectrum of `cell.method`'s field at `game`'s parameters, or at the task's known equilibrium.

    `seconds` bounds the time of an Arnoldi search (raises `SpectrumTooSlow` if it cannot fit)."""
    started = time.perf_counter()
    field_map, equilibrium = analysis_field(cell, game, ctx)
    if at_equilibrium and equilibrium is None:
        raise StabenchError(f"task `{cell.task.name}` has no known equilibrium; use `--at init` or a run directory")
    theta = field_map.flatten(equilibrium if at_equilibrium else field_map.game.point())
    field_norm = float(field_map.at(theta).norm())
    if not math.isfinite(field_norm):
        raise NotDifferentiable(cell.method.name)
    if at_equilibrium:
        check_equilibrium(field_map, theta, field_norm, cell)
    if field_map.size <= dense_limit or k >= field_map.size - 1:
        jacobian = dense_jacobian(field_map, theta).cpu().numpy()
        if not np.isfinite(jacobian).all():
            raise NotDifferentiable(cell.method.name)
        eigenvalues, solver, converged = np.linalg.eigvals(jacobian), "dense", True
    else:
        eigenvalues, converged = arnoldi_eigenvalues(jacobian_operator(field_map, theta), k, seed=cell.seed,
                                                     seconds=seconds)
        solver = "arnoldi"
    return Spectrum(by_real_part(eigenvalues), solver, field_map.size, field_norm, time.perf_counter() - started,
                    converged, tuple(field_map.ctx.notes))


@dataclass
class LoadedRun:
    """A run folder's record, its cell (resolved with the recorded identity settings, never its
    environment), and its game and training context at the final step (or a kept checkpoint)."""

    record: RunRecord
    cell: Cell
    game: Game
    ctx: Context


def load_run(at: str | Path, *, method: str | None = None, task: str | None = None, overrides: dict | None = None,
             step: int | None = None, device: str = "cpu") -> LoadedRun:
    """The run at `at`: task, seed and identity hyperparameters from its record, parameters and optimizer
    and method state from its state file (or the checkpoint at `step`). Another `method` than the
    record's keeps only the record's task hyperparameters; `overrides` come last."""
    if not is_record(at):
        raise StabenchError(f"`{at}` is not a run record (no {RUN_FILE})")
    try:
        record, state = read_record(at), read_state(at, step)
    except CorruptRecord as error:
        raise StabenchError(str(error)) from None
    if task is not None and task != record.task:
        raise StabenchError(f"the run at `{at}` is on task `{record.task}`, not `{task}`")
    plain = resolve(record.method if method is None else method, record.task, seed=record.seed)
    keys = set(plain.config) if method in (None, record.method) else set(identity(plain.task_params))
    settings = {key: value for key, value in record.config.items() if key in keys}
    cell = resolve(method or record.method, record.task, seed=record.seed, overrides={**settings, **(overrides or {})},
                   recipe=record.recipe if method in (None, record.method) else None)
    game = cell.build_game(pick_device(device))
    ctx = Context(game, cell.task_params, cell.seeds.noise, optimizer_state_known="d_optimizer" in state)
    try:
        game.discriminator.load_state_dict(state["discriminator"])
        game.generator.load_state_dict(state["generator"])
        ctx.load_state_dict(state)
    except (KeyError, ValueError, RuntimeError, TypeError) as error:
        raise StabenchError(f"the state file in `{at}` does not fit task `{record.task}`: "
                            f"{str(error).splitlines()[0] if str(error) else type(error).__name__}") from None
    return LoadedRun(record, cell, game, ctx)


def analyse(method: str | None, task: str | None, at: str, *, seed: int = 0, overrides: dict | None = None,
            k: int = DEFAULT_K, device: str = "cpu", step: int | None = None) -> dict[str, Any]:
    """The spectrum report behind `stabench spectrum`: at `equilibrium`, `init` or a run folder (its final
    parameters, or with `step` the checkpoint it kept there; see `load_run`)."""
    if k < 1:
        raise StabenchError(f"`--k` must be at least 1, got {k}")
    if step is not None and at in ("equilibrium", "init"):
        raise StabenchError("`--step` names a checkpoint of a run folder; pass the folder with `--at`")
    if at in ("equilibrium", "init"):
        if method is None or task is None:
            raise StabenchError("name `--method` and `--task` (only a run folder supplies them)")
        cell = resolve(method, task, seed=seed, overrides=overrides)
        game = cell.build_game(pick_device(device))
        ctx = Context(game, cell.task_params, cell.seeds.noise, optimizer_state_known=False)
    elif not is_record(at):
        raise StabenchError(f"`{at}` is not a run record (no {RUN_FILE}); pass equilibrium, init or a run folder")
    else:
        loaded = load_run(at, method=method, task=task, overrides=overrides, step=step, device=device)
        cell, game, ctx = loaded.cell, loaded.game, loaded.ctx
    spectrum = game_spectrum(cell, game, ctx, at_equilibrium=at == "equilibrium", k=k)
    return {
        "method": cell.method.name, "task": cell.task.name, "at": at if step is None else f"{at} step {step}",
        "seed": cell.seed, "config": cell.config, "task_params": cell.task.describe(cell.task_params),
        "summary": spectrum.summary,
        "eigenvalues": [[float(value.real), float(value.imag)] for value in spectrum.eigenvalues],
    }


TRACK_K = 6  # eigenvalues per search at each tracked step
# What a tracked step adds to its curve.csv row (the track file holds the eigenvalues themselves).
TRACKED_COLUMNS = ("max_real", "n_positive", "max_imag", "field_norm", "d_gradient_norm", "g_gradient_norm",
                   "spectrum_converged", "spectrum_error")
TRACK_TOLERANCE = 1e-6  # looser than the end-of-run spectrum's: a trajectory needs the leading digits
# Per tracked point of a large game: the searches keep what converged by then. One pass of each search
# always runs (about 40 s on stacked-mnist's 385k parameters at 0.65 s per Jacobian-vector product).
TRACK_SECONDS = 15.0


@dataclass
class TrackedPoint:
    """The spectrum summary, field and gradient norms at one step, and the eigenvalue rows for the track file."""

    summary: dict[str, Any]
    rows: list[dict[str, Any]]
    seconds: float


class SpectrumTracker:
    """The Jacobian spectrum of `cell.method`'s field along training, on the cell's fixed evaluation batch.

    At each call: the k eigenvalues of largest real part and the k of largest modulus (dense for a game
    of at most `dense_limit` parameters, else Arnoldi warm-started from the previous point's rightmost
    Ritz vector, bounded by `seconds` but never below one pass of each search), ‖h‖, and each player's own
    part of the field, ‖g_D‖ and ‖g_G‖.
    """

    def __init__(self, cell: Cell, k: int = TRACK_K, dense_limit: int = DENSE_LIMIT, seconds: float | None = None):
        self.cell, self.k, self.dense_limit = cell, k, dense_limit
        self.seconds = TRACK_SECONDS if seconds is None else seconds
        self.start: np.ndarray | None = None

    def __call__(self, step: int, game: Game, ctx: Context) -> TrackedPoint:
        started = time.perf_counter()
        field_map, _ = analysis_field(self.cell, game, ctx)
        theta = field_map.flatten(field_map.game.point())
        h = field_map.at(theta)
        n_d = sum(field_map.sizes[:len(field_map.d_shapes)])
        norms = {"field_norm": float(h.norm()), "d_gradient_norm": float(h[:n_d].norm()),
                 "g_gradient_norm": float(h[n_d:].norm())}
        if field_map.size <= self.dense_limit:
            values = np.linalg.eigvals(dense_jacobian(field_map, theta).cpu().numpy())
            rightmost = values[np.argsort(-values.real)[:self.k]]
            largest = values[np.argsort(-np.abs(values))[:self.k]]
            found, converged = summarize(values, complete=True), True
        else:
            searches = arnoldi_searches(jacobian_operator(field_map, theta), self.k, seed=self.cell.seed,
                                        seconds=self.seconds, start=self.start, tolerance=TRACK_TOLERANCE,
                                        at_least_one_pass=True)
            rightmost, largest, converged = searches.rightmost, searches.largest, searches.converged
            found = summarize(searches.merged(), complete=False)
            self.start = searches.next_start if searches.next_start is not None else self.start
        rows = [{"step": step, "search": search, "rank": rank, "real": float(value.real), "imag": float(value.imag)}
                for search, found in (("rightmost", by_real_part(np.asarray(rightmost))),
                                      ("largest", np.asarray(largest)[np.argsort(-np.abs(largest))]))
                for rank, value in enumerate(found)]
        summary = {"max_real": found["max_real"], "n_positive": found["n_positive"], "max_imag": found["max_imag"],
                   **norms, "spectrum_converged": converged}
        return TrackedPoint(summary, rows, time.perf_counter() - started)
