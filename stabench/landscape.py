"""Rotation against potential at the end of a run (Berard et al. 2020, "A closer look at the
optimization landscapes of generative adversarial networks").

Two views of how much of a method's field h(θ) = -(g_D, g_G) turns around a point rather than
descends toward it, both on the cell's fixed evaluation batch (`spectra.analysis_field`), in float64:

Path angle. Along the line θ(α) = (1 - α)θ₀ + αθ₁ from the initial parameters θ₀ (the cell's game
freshly built from its seeds) through the final ones θ₁ (the run's state file), the cosine of the
angle between h(θ(α)) and the line's direction Δ = θ₁ - θ₀, jointly and for each player's block
(cos_d: h_D against Δ_D; cos_g: h_G against Δ_G). Sign convention: h is the direction the dynamics
move, so where the game is a potential around θ₁ (h = -∇f, θ₁ a minimum of f) the field points back
toward θ₁: cos = +1 before α = 1 and -1 after (Berard et al. plot the cosine with the gradient,
-h: their curves are these mirrored). Rotation around θ₁ shows as |cos| well below 1 near α = 1
(a pure rotation around θ₁, h ⟂ θ - θ₁, gives cos = 0 there). With the recorded optimizer and method
state held fixed along the line: a method whose field reads them (unrolled GANs) sees the final state.

Jacobian parts at θ₁. J = ∂h/∂θ splits into its symmetric part S = (J + Jᵀ)/2 (real eigenvalues: the
potential, curvature of a shared objective) and its antisymmetric part A = (J - Jᵀ)/2 (purely
imaginary eigenvalues ±iσ: the rotation). Reported: the k largest and k smallest eigenvalues of S,
the k of largest modulus of A, and `rotation` = ‖A‖₂ / ‖S‖₂, the ratio of the spectral norms, each
the largest modulus among its part's eigenvalues (S and A are normal), so exact from the top-k. Zero
for a potential game (J symmetric), infinite (null in JSON) for a pure rotation (S = 0, the WGAN on
`lq1d` at its equilibrium). Dense up to `dense_limit` parameters, else Lanczos (`eigsh`) on S and
Arnoldi (`eigs`) on A from Jacobian-vector and vector-Jacobian products of one autograd graph.
"""
from __future__ import annotations

import csv
import dataclasses
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigs, eigsh

from stabench.cell import pick_device
from stabench.errors import StabenchError
from stabench.records import (
    LANDSCAPE_FILE, PATH_ANGLE_FIGURE, PATH_ANGLE_FILE, to_json, write_file_atomically, write_rows,
)
from stabench.spectra import (
    ARNOLDI_BASIS_BYTES, ARNOLDI_TOLERANCE, DENSE_LIMIT, FieldMap, NotDifferentiable, analysis_field, dense_jacobian,
    load_run,
)

DEFAULT_ALPHAS = tuple(i / 40 for i in range(49))  # 0, 0.025, ..., 1.2: α = 1 (the final point) exactly
DEFAULT_K = 10
# Restarts per Lanczos or Arnoldi search; past it, what converged is kept (`converged` false).
MAX_RESTARTS = 300
PATH_COLUMNS = ("alpha", "cos_joint", "cos_d", "cos_g", "field_norm", "projection")
ROTATION_DEFINITION = "‖A‖₂/‖S‖₂: the largest |eigenvalue| of A = (J-Jᵀ)/2 over that of S = (J+Jᵀ)/2"


# --- the path angle ---------------------------------------------------------------------------------

@dataclass
class PathAngle:
    """h along θ(α) = (1 - α)θ₀ + αθ₁: the cosines of its angle with Δ = θ₁ - θ₀ (joint, D's block, G's
    block; NaN where h or Δ's block is zero or h is not finite), ‖h‖, and h·Δ/‖Δ‖ (`projection`, the
    component of h along the line: positive toward and past θ₁)."""

    alpha: np.ndarray
    cos_joint: np.ndarray
    cos_d: np.ndarray
    cos_g: np.ndarray
    field_norm: np.ndarray
    projection: np.ndarray

    def rows(self) -> list[dict[str, float]]:
        """One row per α, for PATH_ANGLE_FILE."""
        return [{column: float(getattr(self, column)[i]) for column in PATH_COLUMNS} for i in range(len(self.alpha))]

    def nearest(self, alpha: float) -> dict[str, float]:
        """The row at the grid's α nearest `alpha`."""
        return self.rows()[int(np.argmin(np.abs(self.alpha - alpha)))]


def _cosine(h: torch.Tensor, direction: torch.Tensor) -> float:
    scale = float(h.norm()) * float(direction.norm())
    return float(h @ direction) / scale if scale > 0 and math.isfinite(scale) else math.nan


def path_angle(field_map: FieldMap, start: torch.Tensor, end: torch.Tensor,
               alphas: Sequence[float] = DEFAULT_ALPHAS) -> PathAngle:
    """The path angle of `field_map`'s field on the line from `start` (θ₀) through `end` (θ₁), flat θs
    in `field_map`'s order (D first). The field is the training one (no graph kept for a Jacobian)."""
    grid = np.asarray(alphas, dtype=np.float64)
    if grid.ndim != 1 or not len(grid) or not np.isfinite(grid).all():
        raise StabenchError("the path angle needs a non-empty list of finite α values")
    training_game = dataclasses.replace(field_map.game, differentiable=False)
    plain = FieldMap(field_map.method, field_map.method_params, training_game, field_map.batch, field_map.ctx)
    dtype = next(field_map.game.generator.parameters()).dtype
    start, end = start.detach().to(dtype), end.detach().to(dtype)
    direction, n_d = end - start, sum(field_map.sizes[:len(field_map.d_shapes)])
    length = float(direction.norm())
    columns: dict[str, list[float]] = {column: [] for column in PATH_COLUMNS}
    for alpha in grid:
        h = plain.at((1 - alpha) * start + alpha * end)
        finite = bool(torch.isfinite(h).all())
        values = {
            "alpha": float(alpha),
            "cos_joint": _cosine(h, direction) if finite else math.nan,
            "cos_d": _cosine(h[:n_d], direction[:n_d]) if finite else math.nan,
            "cos_g": _cosine(h[n_d:], direction[n_d:]) if finite else math.nan,
            "field_norm": float(h.norm()) if finite else math.nan,
            "projection": float(h @ direction) / length if finite and length > 0 else math.nan,
        }
        for column, value in values.items():
            columns[column].append(value)
    return PathAngle(**{column: np.array(values) for column, values in columns.items()})


# --- the symmetric and antisymmetric parts of J -----------------------------------------------------

@dataclass
class JacobianParts:
    """Eigenvalues of S = (J + Jᵀ)/2 and A = (J - Jᵀ)/2 at one point.

    `symmetric_top`: the k largest of S, largest first; `symmetric_bottom`: the k smallest, smallest
    first; `antisymmetric`: the k of A of largest modulus (complex, real parts zero up to rounding),
    largest first, +iσ before -iσ."""

    symmetric_top: np.ndarray
    symmetric_bottom: np.ndarray
    antisymmetric: np.ndarray
    solver: str  # "dense" or "lanczos/arnoldi"
    n_parameters: int
    converged: bool = True

    @property
    def symmetric_norm(self) -> float:
        """‖S‖₂: the largest |eigenvalue| of S."""
        found = np.concatenate([self.symmetric_top, self.symmetric_bottom])
        return float(np.abs(found).max()) if len(found) else 0.0

    @property
    def antisymmetric_norm(self) -> float:
        """‖A‖₂: the largest |eigenvalue| of A."""
        return float(np.abs(self.antisymmetric).max()) if len(self.antisymmetric) else 0.0

    @property
    def rotation(self) -> float:
        """‖A‖₂ / ‖S‖₂: 0 for a potential game, inf for a pure rotation (NaN if J = 0)."""
        a, s = self.antisymmetric_norm, self.symmetric_norm
        if s == 0:
            return math.inf if a > 0 else math.nan
        return a / s

    def summary(self) -> dict[str, Any]:
        return {
            "n_parameters": self.n_parameters, "solver": self.solver, "converged": self.converged,
            "k": max(len(self.symmetric_top), len(self.antisymmetric)),
            "rotation": self.rotation, "antisymmetric_norm": self.antisymmetric_norm,
            "symmetric_norm": self.symmetric_norm,
            "symmetric_top": [float(value) for value in self.symmetric_top],
            "symmetric_bottom": [float(value) for value in self.symmetric_bottom],
            "antisymmetric": [[float(value.real), float(value.imag)] for value in self.antisymmetric],
        }


def _by_modulus(values: np.ndarray) -> np.ndarray:
    """Largest modulus first; of a conjugate pair the positive imaginary part first."""
    values = np.asarray(values, dtype=complex)
    return values[np.lexsort((-values.imag, -np.round(np.abs(values), 12)))]


def _flat(grads, leaves) -> torch.Tensor:
    return torch.cat([(g if g is not None else torch.zeros_like(leaf)).reshape(-1) for g, leaf in zip(grads, leaves)])


def part_operators(field_map: FieldMap, theta: torch.Tensor) -> tuple[LinearOperator, LinearOperator]:
    """(S, A) at θ as LinearOperators, J never formed: h and Jᵀu (u a tensor) are built once; Jv is
    ∂/∂u [(Jᵀu)·v] (one backward pass) and Jᵀv one backward pass through h."""
    leaves = field_map.leaves(theta)
    h = field_map(leaves)
    u = torch.zeros_like(h, requires_grad=True)
    transposed = (_flat(torch.autograd.grad(h, leaves, u, create_graph=True, allow_unused=True), leaves)
                  if h.requires_grad else torch.zeros_like(h))

    def products(v) -> tuple[torch.Tensor, torch.Tensor]:
        tangent = torch.as_tensor(np.ravel(v), dtype=h.dtype, device=h.device)
        forward, backward = torch.zeros_like(tangent), torch.zeros_like(tangent)  # where h does not depend on θ
        if transposed.requires_grad:
            (forward,) = torch.autograd.grad(transposed, u, tangent, retain_graph=True, allow_unused=True,
                                             materialize_grads=True)
        if h.requires_grad:
            backward = _flat(torch.autograd.grad(h, leaves, tangent, retain_graph=True, allow_unused=True), leaves)
        if not (torch.isfinite(forward).all() and torch.isfinite(backward).all()):
            raise NotDifferentiable(field_map.method.name)
        return forward, backward

    def symmetric(v):
        forward, backward = products(v)
        return ((forward + backward) / 2).cpu().numpy()

    def antisymmetric(v):
        forward, backward = products(v)
        return ((forward - backward) / 2).cpu().numpy()

    shape = (len(h), len(h))
    return (LinearOperator(shape, matvec=symmetric, rmatvec=symmetric, dtype=np.float64),
            LinearOperator(shape, matvec=antisymmetric, rmatvec=lambda v: -antisymmetric(v), dtype=np.float64))


def dense_parts(jacobian: np.ndarray, k: int) -> JacobianParts:
    """The parts of a dense J: every eigenvalue of S by `eigvalsh`, and A's as -iμ with μ those of the
    Hermitian iA, which come in pairs ±μ: paired exactly (real parts zero, imaginary ones opposite)."""
    S = (jacobian + jacobian.T) / 2
    A = (jacobian - jacobian.T) / 2
    symmetric = np.linalg.eigvalsh(S)  # ascending
    mu = np.linalg.eigvalsh(1j * A)  # ascending: mu[i] = -mu[-1 - i] up to rounding
    antisymmetric = _by_modulus(-1j * (mu - mu[::-1]) / 2)
    return JacobianParts(symmetric[::-1][:k].copy(), symmetric[:k].copy(), antisymmetric[:k], "dense", len(jacobian))


def jacobian_parts(field_map: FieldMap, theta: torch.Tensor, k: int = DEFAULT_K, *, dense_limit: int = DENSE_LIMIT,
                   seed: int = 0, max_restarts: int = MAX_RESTARTS,
                   tolerance: float = ARNOLDI_TOLERANCE) -> JacobianParts:
    """The top-k eigenvalues of J's symmetric and antisymmetric parts at θ: dense up to `dense_limit`
    parameters (or when k is nearly the size), else three ARPACK searches from one seeded start
    (S's largest and smallest algebraic by Lanczos, A's largest modulus by Arnoldi)."""
    if k < 1:
        raise StabenchError(f"`--k` must be at least 1, got {k}")
    size = field_map.size
    if size <= dense_limit or k >= size - 1:
        jacobian = dense_jacobian(field_map, theta).cpu().numpy()
        if not np.isfinite(jacobian).all():
            raise NotDifferentiable(field_map.method.name)
        return dense_parts(jacobian, k)
    symmetric, antisymmetric = part_operators(field_map, theta)
    start = np.random.default_rng(seed).standard_normal(size)
    basis = min(size - 1, max(2 * k + 1, min(5 * k, ARNOLDI_BASIS_BYTES // (8 * size))))
    converged = True
    found = {}
    for which in ("LA", "SA"):
        try:
            found[which] = eigsh(symmetric, k=k, which=which, v0=start, ncv=basis, tol=tolerance, maxiter=max_restarts,
                                 return_eigenvectors=False)
        except ArpackNoConvergence as partial:
            found[which], converged = partial.eigenvalues, False
    try:
        rotation = eigs(antisymmetric, k=k, which="LM", v0=start, ncv=basis, tol=tolerance, maxiter=max_restarts,
                        return_eigenvectors=False)
    except ArpackNoConvergence as partial:
        rotation, converged = partial.eigenvalues, False
    top, bottom = np.sort(np.real(found["LA"]))[::-1], np.sort(np.real(found["SA"]))
    return JacobianParts(top.copy(), bottom.copy(), _by_modulus(rotation)[:k], "lanczos/arnoldi", size, converged)


# --- a run folder -----------------------------------------------------------------------------------

def landscape(run_dir: str | Path, *, alphas: Sequence[float] = DEFAULT_ALPHAS, k: int = DEFAULT_K,
              dense_limit: int = DENSE_LIMIT, device: str = "cpu") -> dict[str, Any]:
    """Path angle from the run's initial point through its final one, and the top-k eigenvalues of
    J's symmetric and antisymmetric parts at the final point; writes PATH_ANGLE_FILE and
    LANDSCAPE_FILE into `run_dir` (each atomically) and returns what LANDSCAPE_FILE holds."""
    started = time.perf_counter()
    if k < 1:
        raise StabenchError(f"`--k` must be at least 1, got {k}")
    loaded = load_run(run_dir, device=device)
    cell, record = loaded.cell, loaded.record
    field_map, _ = analysis_field(cell, loaded.game, loaded.ctx)
    end = field_map.flatten(field_map.game.point())
    if not torch.isfinite(end).all():
        raise StabenchError(f"the final parameters of the run at `{run_dir}` are not finite (it {record.status}): "
                            "no landscape there")
    initial = cell.build_game(pick_device(device))  # as the run began
    start = field_map.flatten(initial.point()).to(end.dtype)
    path = path_angle(field_map, start, end, alphas)
    parts = jacobian_parts(field_map, end, k, dense_limit=dense_limit, seed=cell.seed)
    notes = list(field_map.ctx.notes)
    if record.task_version != cell.task.version:
        notes.append(f"the run was made with version {record.task_version} of task `{cell.task.name}`, this is "
                     f"version {cell.task.version}: θ₀ is this version's initial point")
    at_end = path.nearest(1.0)
    report = {
        "method": cell.method.name, "task": cell.task.name, "seed": cell.seed, "run_id": record.run_id,
        "status": record.status, "at": str(run_dir),
        **parts.summary(),
        "rotation_definition": ROTATION_DEFINITION,
        "field_norm": float(field_map.at(end).norm()),
        "distance": float((end - start).norm()),
        "path_angle": {"alpha": at_end["alpha"], "cos_joint": at_end["cos_joint"], "cos_d": at_end["cos_d"],
                       "cos_g": at_end["cos_g"], "n_alphas": len(path.alpha),
                       "alpha_range": [float(path.alpha.min()), float(path.alpha.max())]},
        "seconds": time.perf_counter() - started,
        **({"notes": " ".join(notes)} if notes else {}),
    }
    folder = Path(run_dir)
    write_file_atomically(folder / PATH_ANGLE_FILE, lambda file: write_rows(file, path.rows()))

    def write_report(file: Path) -> None:
        file.write_text(to_json(report) + "\n")

    write_file_atomically(folder / LANDSCAPE_FILE, write_report)
    path_angle_figure([(folder, f"{record.method}, seed {record.seed}")], folder / PATH_ANGLE_FIGURE)
    return report


def read_path_angle(run_dir: str | Path) -> dict[str, np.ndarray]:
    """A run's PATH_ANGLE_FILE as columns (written by `landscape`)."""
    file = Path(run_dir) / PATH_ANGLE_FILE
    if not file.is_file():
        raise StabenchError(f"run `{run_dir}` has no {PATH_ANGLE_FILE}; run `stabench landscape --at {run_dir}` first")
    with open(file, newline="") as handle:
        rows = list(csv.DictReader(handle))
    try:
        return {column: np.array([float(row[column]) for row in rows]) for column in ("alpha", "cos_joint")}
    except (KeyError, TypeError, ValueError):
        raise StabenchError(f"`{file}` is not a path-angle table") from None


def path_angle_figure(runs: Iterable[tuple[str | Path, str]], path: str | Path) -> Path:
    """cos_joint against α, one labelled line per (run folder, label), a dotted line at α = 1 (the
    final point): Berard et al.'s path-angle figure, e.g. vanilla against gradreg."""
    from stabench.plots import path_angle_axes, subplots

    runs = list(runs)
    if not runs:
        raise StabenchError("a path-angle figure needs at least one run")
    figure, axes = subplots(figsize=(5.5, 3.5))
    for run_dir, label in runs:
        columns = read_path_angle(run_dir)
        axes.plot(columns["alpha"], columns["cos_joint"], linewidth=1.2, label=label)
    path_angle_axes(axes)
    axes.set_xlabel("α   (θ = θ₀ + α(θ₁ - θ₀); θ₁ final at α = 1)")
    axes.set_ylabel("cos(h, θ₁ - θ₀)")
    axes.set_title("path angle: +1 descends toward θ₁, near 0 rotates around it", fontsize=9)
    axes.legend(loc="lower left", fontsize=7)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_file_atomically(path, lambda file: figure.savefig(file, format="png", dpi=120))


def _value(value) -> str:
    return "n/a" if value is None or value != value else f"{value:.4g}"


def landscape_text(report: dict[str, Any], shown: int = 10) -> str:
    """The summary of `landscape` for a person, a few lines."""
    angle = report["path_angle"]
    converged = "" if report["converged"] else " (not all converged)"
    lines = [
        f"{report['method']} on {report['task']}, seed {report['seed']} ({report['status']} run {report['run_id']}): "
        f"{report['n_parameters']} parameters, {report['solver']}{converged}, "
        f"|h| = {report['field_norm']:.3g} at the end",
        f"  rotation ‖A‖/‖S‖ = {_value(report['rotation'])}   (‖A‖ = {report['antisymmetric_norm']:.4g}, "
        f"‖S‖ = {report['symmetric_norm']:.4g}; S = (J+Jᵀ)/2, A = (J-Jᵀ)/2)",
        "  S largest:  " + " ".join(f"{value:+.4g}" for value in report["symmetric_top"][:shown]),
        "  S smallest: " + " ".join(f"{value:+.4g}" for value in report["symmetric_bottom"][:shown]),
        "  A largest:  " + " ".join(f"{im:+.4g}i" for _, im in report["antisymmetric"][:shown]),
        f"  path angle cos(h, θ₁-θ₀) at α = {angle['alpha']:g}: joint {_value(angle['cos_joint'])}   "
        f"D {_value(angle['cos_d'])}   G {_value(angle['cos_g'])}   ({angle['n_alphas']} points on "
        f"[{angle['alpha_range'][0]:g}, {angle['alpha_range'][1]:g}], |θ₁-θ₀| = {report['distance']:.3g})",
    ]
    if report.get("notes"):
        lines.append(f"  note: {report['notes']}")
    lines.append(f"  wrote {PATH_ANGLE_FILE}, {PATH_ANGLE_FIGURE} and {LANDSCAPE_FILE} in {report['at']}")
    return "\n".join(lines)
